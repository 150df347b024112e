'use strict';
// Which resources the fake serves, and the documents that describe them: legacy discovery
// (/api, /apis, /api/v1, /apis/G/V; kubectl and helm accept it when they asked for the
// aggregated format), /version, and OpenAPI v3 (/openapi/v3 index with a content hash per
// group-version, so kubectl's cache sees a new CRD; one document per group-version whose
// paths carry x-kubernetes-group-version-kind and a `fieldValidation` parameter, which makes
// kubectl validate server-side). Built-in kinds are fixed; custom resources come and go with
// their CRD objects (served versions, names, shortNames, categories, printer columns,
// status subresource, schema).

const crypto = require('crypto');
const { BUILTIN_KINDS, ALL_VERBS } = require('./builtins');
const { SchemaValidator } = require('./validation');

class Registry {
  constructor() {
    this.resources = []; // every served (group, version, plural)
    for (const r of BUILTIN_KINDS) this.resources.push(r);
  }

  find(group, version, plural) {
    return this.resources.find(r => r.group === group && r.version === version && r.plural === plural);
  }

  // Storage is shared by all versions of a resource: "group/plural".
  static storageKey(res) { return `${res.group}/${res.plural}`; }

  // Builds the resources a CRD serves; throws {problems} when its schema does not compile.
  static resourcesOfCrd(crd) {
    const spec = crd.spec, names = spec.names;
    return spec.versions.filter(v => v.served).map((v, i) => {
      const validator = new SchemaValidator(v.schema && v.schema.openAPIV3Schema,
        `spec.versions[${i}].schema.openAPIV3Schema`);
      return {
        group: spec.group, version: v.name, kind: names.kind, listKind: names.listKind || `${names.kind}List`,
        plural: names.plural, singular: names.singular || names.kind.toLowerCase(),
        namespaced: spec.scope !== 'Cluster', shortNames: names.shortNames || [], categories: names.categories || [],
        status: !!(v.subresources && v.subresources.status), scale: false, builtin: false,
        crdName: crd.metadata.name, schema: validator.schema, validator,
        printerColumns: v.additionalPrinterColumns || [], verbs: ALL_VERBS,
      };
    });
  }

  setCrd(crd, resources) {
    this.removeCrd(crd.metadata.name);
    this.resources.push(...resources);
  }

  removeCrd(crdName) {
    this.resources = this.resources.filter(r => r.crdName !== crdName);
  }

  groupVersions() {
    const gvs = new Map();
    for (const r of this.resources) {
      const key = r.group ? `${r.group}/${r.version}` : r.version;
      if (!gvs.has(key)) gvs.set(key, { group: r.group, version: r.version, resources: [] });
      gvs.get(key).resources.push(r);
    }
    return gvs;
  }

  apiVersions(host) {
    return { kind: 'APIVersions', versions: ['v1'],
      serverAddressByClientCIDRs: [{ clientCIDR: '0.0.0.0/0', serverAddress: host }] };
  }

  apiGroup(name) {
    const versions = [];
    for (const r of this.resources) {
      if (r.group === name && !versions.some(v => v.version === r.version)) {
        versions.push({ groupVersion: `${name}/${r.version}`, version: r.version });
      }
    }
    if (!versions.length) return null;
    return { kind: 'APIGroup', apiVersion: 'v1', name, versions, preferredVersion: versions[0] };
  }

  apiGroupList() {
    const names = [...new Set(this.resources.filter(r => r.group).map(r => r.group))];
    return { kind: 'APIGroupList', apiVersion: 'v1', groups: names.map(n => { const g = this.apiGroup(n); delete g.kind; delete g.apiVersion; return g; }) };
  }

  apiResourceList(group, version) {
    const rs = this.resources.filter(r => r.group === group && r.version === version);
    if (!rs.length) return null;
    const resources = [];
    for (const r of rs) {
      const base = { name: r.plural, singularName: r.singular, namespaced: r.namespaced, kind: r.kind, verbs: r.verbs };
      if (r.shortNames.length) base.shortNames = r.shortNames;
      if (r.categories.length) base.categories = r.categories;
      base.storageVersionHash = crypto.createHash('sha256').update(`${r.group}/${r.version}/${r.kind}`).digest('base64').slice(0, 11);
      resources.push(base);
      if (r.status) resources.push({ name: `${r.plural}/status`, singularName: '', namespaced: r.namespaced, kind: r.kind, verbs: ['get', 'patch', 'update'] });
      if (r.scale) resources.push({ name: `${r.plural}/scale`, singularName: '', namespaced: r.namespaced, group: 'autoscaling', version: 'v1', kind: 'Scale', verbs: ['get', 'patch', 'update'] });
      if (r.log) resources.push({ name: `${r.plural}/log`, singularName: '', namespaced: r.namespaced, kind: 'Pod', verbs: ['get'] });
    }
    return { kind: 'APIResourceList', apiVersion: 'v1', groupVersion: group ? `${group}/${version}` : version, resources };
  }

  // OpenAPI v3 --------------------------------------------------------------------------

  openApiDocument(group, version) {
    const rs = this.resources.filter(r => r.group === group && r.version === version);
    if (!rs.length) return null;
    const prefix = group ? `/apis/${group}/${version}` : `/api/${version}`;
    const paths = {}, schemas = {
      'io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta': { type: 'object', description: 'ObjectMeta is metadata that all persisted resources must have.' },
    };
    for (const r of rs) {
      const gvk = { group, version, kind: r.kind };
      const schemaName = `${(group || 'io.k8s.api.core').split('.').reverse().join('.')}.${version}.${r.kind}`;
      const ref = { $ref: `#/components/schemas/${schemaName}` };
      const body = types => ({ content: Object.fromEntries(types.map(t => [t, { schema: ref }])), required: true });
      const ok = { 200: { description: 'OK', content: { 'application/json': { schema: ref } } } };
      const params = [{ name: 'dryRun', in: 'query', schema: { type: 'string', uniqueItems: true } },
        { name: 'fieldManager', in: 'query', schema: { type: 'string', uniqueItems: true } },
        { name: 'fieldValidation', in: 'query', schema: { type: 'string', uniqueItems: true } }];
      const op = (action, extra = {}) => ({ operationId: `${action}${r.kind}`, 'x-kubernetes-action': action,
        'x-kubernetes-group-version-kind': gvk, responses: ok, ...extra });
      const patchTypes = ['application/apply-patch+yaml', 'application/json-patch+json', 'application/merge-patch+json'];
      if (r.builtin) patchTypes.push('application/strategic-merge-patch+json');
      const item = {
        get: op('get'), put: op('put', { parameters: params, requestBody: body(['*/*']) }),
        patch: op('patch', { parameters: [...params, { name: 'force', in: 'query', schema: { type: 'boolean', uniqueItems: true } }], requestBody: body(patchTypes) }),
        delete: op('delete'),
        parameters: [{ name: 'name', in: 'path', required: true, schema: { type: 'string', uniqueItems: true } }],
      };
      const coll = { get: op('list'), post: op('post', { parameters: params, requestBody: body(['*/*']) }) };
      if (r.namespaced) {
        const nsParam = { name: 'namespace', in: 'path', required: true, schema: { type: 'string', uniqueItems: true } };
        item.parameters.push(nsParam);
        coll.parameters = [nsParam];
        paths[`${prefix}/namespaces/{namespace}/${r.plural}/{name}`] = item;
        paths[`${prefix}/namespaces/{namespace}/${r.plural}`] = coll;
        paths[`${prefix}/${r.plural}`] = { get: op('list') };
      } else {
        paths[`${prefix}/${r.plural}/{name}`] = item;
        paths[`${prefix}/${r.plural}`] = coll;
      }
      if (r.status) {
        paths[`${prefix}${r.namespaced ? '/namespaces/{namespace}' : ''}/${r.plural}/{name}/status`] = {
          get: op('get'), put: op('put', { parameters: params, requestBody: body(['*/*']) }),
          patch: op('patch', { parameters: params, requestBody: body(patchTypes) }), parameters: item.parameters };
      }
      const s = r.schema ? structuredClone(r.schema) : { type: 'object' };
      s.properties = { ...s.properties, metadata: { $ref: '#/components/schemas/io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta' } };
      s['x-kubernetes-group-version-kind'] = [gvk];
      schemas[schemaName] = s;
    }
    return { openapi: '3.0.0', info: { title: 'Kubernetes (lanekeeper fake API server)', version: 'v1.35.0' },
      paths, components: { schemas } };
  }

  openApiIndex() {
    const paths = {};
    for (const { group, version } of this.groupVersions().values()) {
      const key = group ? `apis/${group}/${version}` : `api/${version}`;
      const hash = crypto.createHash('sha512').update(JSON.stringify(this.openApiDocument(group, version))).digest('hex').slice(0, 128).toUpperCase();
      paths[key] = { serverRelativeURL: `/openapi/v3/${key}?hash=${hash}` };
    }
    return { paths };
  }
}

module.exports = { Registry };
