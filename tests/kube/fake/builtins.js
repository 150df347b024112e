'use strict';
// The built-in kinds the fake serves, with the defaults and the few validations the real
// server applies that a client can notice (Deployment replicas/strategy/pod defaults, Service
// clusterIP, Secret stringData folded into data, a Deployment's selector matching its
// template). Unknown fields of built-in kinds are kept, not pruned: the fake has no schema
// for them (a real server drops them, or refuses them under fieldValidation=Strict).

const ALL_VERBS = ['create', 'delete', 'deletecollection', 'get', 'list', 'patch', 'update', 'watch'];

function kind(group, version, kindName, plural, opts = {}) {
  return {
    group, version, kind: kindName, listKind: `${kindName}List`, plural,
    singular: kindName.toLowerCase(), namespaced: opts.namespaced !== false,
    shortNames: opts.shortNames || [], categories: opts.categories || [],
    status: !!opts.status, scale: !!opts.scale, log: !!opts.log, builtin: true,
    verbs: ALL_VERBS,
  };
}

const BUILTIN_KINDS = [
  kind('', 'v1', 'Namespace', 'namespaces', { namespaced: false, shortNames: ['ns'], status: true }),
  kind('', 'v1', 'Secret', 'secrets'),
  kind('', 'v1', 'ConfigMap', 'configmaps', { shortNames: ['cm'] }),
  kind('', 'v1', 'Event', 'events', { shortNames: ['ev'] }),
  kind('', 'v1', 'Pod', 'pods', { shortNames: ['po'], categories: ['all'], status: true, log: true }),
  kind('', 'v1', 'Service', 'services', { shortNames: ['svc'], categories: ['all'], status: true }),
  kind('', 'v1', 'ServiceAccount', 'serviceaccounts', { shortNames: ['sa'] }),
  kind('apps', 'v1', 'Deployment', 'deployments', { shortNames: ['deploy'], categories: ['all'], status: true, scale: true }),
  kind('apps', 'v1', 'ReplicaSet', 'replicasets', { shortNames: ['rs'], categories: ['all'], status: true, scale: true }),
  kind('coordination.k8s.io', 'v1', 'Lease', 'leases'),
  kind('events.k8s.io', 'v1', 'Event', 'events', { shortNames: ['ev'] }),
  kind('rbac.authorization.k8s.io', 'v1', 'Role', 'roles'),
  kind('rbac.authorization.k8s.io', 'v1', 'ClusterRole', 'clusterroles', { namespaced: false }),
  kind('rbac.authorization.k8s.io', 'v1', 'RoleBinding', 'rolebindings'),
  kind('rbac.authorization.k8s.io', 'v1', 'ClusterRoleBinding', 'clusterrolebindings', { namespaced: false }),
  kind('apiextensions.k8s.io', 'v1', 'CustomResourceDefinition', 'customresourcedefinitions',
    { namespaced: false, shortNames: ['crd', 'crds'], categories: ['api-extensions'], status: true }),
];

function defaultPodSpec(spec) {
  if (!spec) return;
  spec.restartPolicy ??= 'Always';
  spec.terminationGracePeriodSeconds ??= 30;
  spec.dnsPolicy ??= 'ClusterFirst';
  spec.schedulerName ??= 'default-scheduler';
  spec.securityContext ??= {};
  for (const c of [...(spec.containers || []), ...(spec.initContainers || [])]) {
    c.terminationMessagePath ??= '/dev/termination-log';
    c.terminationMessagePolicy ??= 'File';
    if (c.image !== undefined) c.imagePullPolicy ??= (/:latest$/.test(c.image) || !/:[^/]+$/.test(c.image) ? 'Always' : 'IfNotPresent');
    c.resources ??= {};
    for (const p of c.ports || []) p.protocol ??= 'TCP';
    for (const probe of [c.livenessProbe, c.readinessProbe, c.startupProbe]) {
      if (!probe) continue;
      probe.timeoutSeconds ??= 1; probe.periodSeconds ??= 10; probe.successThreshold ??= 1; probe.failureThreshold ??= 3;
      if (probe.httpGet) probe.httpGet.scheme ??= 'HTTP', probe.httpGet.path ??= '/';
    }
  }
}

let nextClusterIP = 1;

const DEFAULTERS = {
  'apps/deployments'(o) {
    const s = o.spec ||= {};
    s.replicas ??= 1;
    s.revisionHistoryLimit ??= 10;
    s.progressDeadlineSeconds ??= 600;
    s.strategy ??= { type: 'RollingUpdate' };
    s.strategy.type ??= 'RollingUpdate';
    if (s.strategy.type === 'RollingUpdate') s.strategy.rollingUpdate = { maxUnavailable: '25%', maxSurge: '25%', ...s.strategy.rollingUpdate };
    defaultPodSpec(s.template && s.template.spec);
  },
  'apps/replicasets'(o) {
    const s = o.spec ||= {};
    s.replicas ??= 1;
    defaultPodSpec(s.template && s.template.spec);
  },
  '/pods'(o) { defaultPodSpec(o.spec); },
  '/services'(o) {
    const s = o.spec ||= {};
    s.type ??= 'ClusterIP';
    s.sessionAffinity ??= 'None';
    if (s.clusterIP === undefined) { s.clusterIP = `10.96.${Math.floor(nextClusterIP / 250)}.${(nextClusterIP % 250) + 2}`; nextClusterIP++; }
    s.clusterIPs ??= [s.clusterIP];
    for (const p of s.ports || []) { p.protocol ??= 'TCP'; p.targetPort ??= p.port; }
  },
  '/secrets'(o) {
    o.type ??= 'Opaque';
    if (o.stringData) {
      o.data ||= {};
      for (const [k, v] of Object.entries(o.stringData)) o.data[k] = Buffer.from(String(v)).toString('base64');
      delete o.stringData;
    }
  },
  '/namespaces'(o) {
    o.metadata.labels = { ...o.metadata.labels, 'kubernetes.io/metadata.name': o.metadata.name };
    o.spec ??= { finalizers: ['kubernetes'] };
    o.status ??= { phase: 'Active' };
  },
};

function defaultBuiltin(res, obj) {
  const d = DEFAULTERS[`${res.group}/${res.plural}`];
  if (d) d(obj);
}

function validateBuiltin(res, obj) {
  const causes = [];
  if (res.group === 'apps' && res.plural === 'deployments') {
    const s = obj.spec || {};
    const sel = s.selector && s.selector.matchLabels;
    const labels = (s.template && s.template.metadata && s.template.metadata.labels) || {};
    if (!s.selector) causes.push({ field: 'spec.selector', reason: 'FieldValueRequired', message: 'Required value' });
    else if (sel && !Object.entries(sel).every(([k, v]) => labels[k] === v)) {
      causes.push({ field: 'spec.template.metadata.labels',
        message: `Invalid value: ${JSON.stringify(labels)}: \`selector\` does not match template \`labels\`` });
    }
    if (!s.template || !s.template.spec || !(s.template.spec.containers || []).length) {
      causes.push({ field: 'spec.template.spec.containers', reason: 'FieldValueRequired', message: 'Required value' });
    }
    if (s.strategy && s.strategy.type === 'Recreate' && s.strategy.rollingUpdate) {
      causes.push({ field: 'spec.strategy.rollingUpdate', reason: 'FieldValueForbidden',
        message: 'Forbidden: may not be specified when strategy `type` is \'Recreate\'' });
    }
    if (s.replicas !== undefined && s.replicas < 0) {
      causes.push({ field: 'spec.replicas', message: `Invalid value: ${s.replicas}: must be greater than or equal to 0` });
    }
  }
  const containers = res.plural === 'pods' ? obj.spec && obj.spec.containers
    : res.plural === 'deployments' ? obj.spec && obj.spec.template && obj.spec.template.spec && obj.spec.template.spec.containers : null;
  const prefix = res.plural === 'pods' ? 'spec.containers' : 'spec.template.spec.containers';
  for (const [i, c] of (containers || []).entries()) {
    if (!c.name) causes.push({ field: `${prefix}[${i}].name`, reason: 'FieldValueRequired', message: 'Required value' });
    if (!c.image) causes.push({ field: `${prefix}[${i}].image`, reason: 'FieldValueRequired', message: 'Required value' });
  }
  return causes;
}

// The real server refuses updates to a few fields after creation.
function checkImmutable(res, oldObj, newObj) {
  if (res.plural === 'secrets' || res.plural === 'configmaps') {
    if (oldObj.immutable && JSON.stringify([oldObj.data, oldObj.binaryData]) !== JSON.stringify([newObj.data, newObj.binaryData])) {
      return [{ field: 'data', reason: 'FieldValueForbidden', message: 'Forbidden: field is immutable when `immutable` is set' }];
    }
  }
  if (res.group === 'apps' && res.plural === 'deployments'
    && JSON.stringify(oldObj.spec.selector) !== JSON.stringify(newObj.spec && newObj.spec.selector)) {
    return [{ field: 'spec.selector', message: `Invalid value: ${JSON.stringify(newObj.spec && newObj.spec.selector)}: field is immutable` }];
  }
  return [];
}

module.exports = { BUILTIN_KINDS, ALL_VERBS, defaultBuiltin, validateBuiltin, checkImmutable };
