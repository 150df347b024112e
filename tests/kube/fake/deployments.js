'use strict';
// The controllers the fake kubelet runs besides itself, as kube-controller-manager would:
//   - deployment: for each apps/v1 Deployment one ReplicaSet per pod template
//     (`<deploy>-<podTemplateHash>`, annotated with the revision), owned by the Deployment;
//     Recreate scales every old ReplicaSet to 0 and creates no new pod until all old pods are
//     gone (the kubelet removes a pod only after its process was reaped); RollingUpdate scales
//     the new ReplicaSet up first and the old ones down once the new pods are ready. Status:
//     replicas, updatedReplicas, readyReplicas, availableReplicas, observedGeneration,
//     conditions Available and Progressing.
//   - replicaset: keeps spec.replicas Pods (`<rs>-<5 chars>`, template labels plus
//     pod-template-hash, owned by the ReplicaSet) and writes the ReplicaSet's status.
// minReadySeconds, maxSurge/maxUnavailable arithmetic and progress deadlines are not modelled.

const crypto = require('crypto');

const now = () => new Date().toISOString().replace(/\.\d{3}Z$/, 'Z');
const REVISION = 'deployment.kubernetes.io/revision';

function templateHash(template) {
  return crypto.createHash('sha256').update(JSON.stringify(template)).digest('hex').slice(0, 10);
}

function isReady(pod) {
  return ((pod.status && pod.status.conditions) || []).some(c => c.type === 'Ready' && c.status === 'True');
}

const ownedBy = uid => o => (o.metadata.ownerReferences || []).some(r => r.uid === uid);
const ownerRef = o => ({ apiVersion: o.apiVersion, kind: o.kind, name: o.metadata.name, uid: o.metadata.uid, controller: true, blockOwnerDeletion: true });

class DeploymentController {
  constructor(store, log) {
    this.store = store;
    this.log = log;
    this.deployments = store.resource('apps', 'v1', 'deployments');
    this.replicasets = store.resource('apps', 'v1', 'replicasets');
    this.pods = store.resource('', 'v1', 'pods');
  }

  reconcileAll() {
    for (const [res, fn] of [[this.deployments, d => this.reconcileDeployment(d)], [this.replicasets, rs => this.reconcileReplicaSet(rs)]]) {
      for (const o of this.store.list(res, '').items) {
        try { fn(o); } catch (e) { if (e.code !== 409 && e.code !== 404) this.log(`${o.kind} ${o.metadata.namespace}/${o.metadata.name}: ${e.stack}`); }
      }
    }
  }

  podsOf(rs, includeTerminating = false) {
    return this.store.list(this.pods, rs.metadata.namespace, p => ownedBy(rs.metadata.uid)(p) && (includeTerminating || !p.metadata.deletionTimestamp)).items;
  }

  reconcileDeployment(d) {
    if (d.metadata.deletionTimestamp) return;
    const ns = d.metadata.namespace;
    const hash = templateHash(d.spec.template);
    const owned = this.store.list(this.replicasets, ns, ownedBy(d.metadata.uid)).items;
    const revision = Math.max(0, ...owned.map(r => Number((r.metadata.annotations || {})[REVISION] || 0)));
    let current = owned.find(r => (r.metadata.labels || {})['pod-template-hash'] === hash);
    const old = owned.filter(r => r !== current);
    const want = d.spec.replicas ?? 1;
    const recreate = d.spec.strategy && d.spec.strategy.type === 'Recreate';
    if (!current) current = this.createReplicaSet(d, hash, recreate && old.some(r => this.podsOf(r, true).length) ? 0 : want, revision + 1);

    if (recreate) {
      for (const r of old) this.scaleReplicaSet(r, 0);
      const oldPods = old.reduce((n, r) => n + this.podsOf(r, true).length, 0);
      if (oldPods === 0) this.scaleReplicaSet(current, want);
    } else {
      this.scaleReplicaSet(current, want);
      const readyNew = this.podsOf(current).filter(isReady).length;
      if (readyNew >= want) for (const r of old) this.scaleReplicaSet(r, 0);
    }
    this.writeDeploymentStatus(this.store.get(this.deployments, ns, d.metadata.name), current, [current, ...old]);
  }

  createReplicaSet(d, hash, replicas, revision) {
    const t = structuredClone(d.spec.template);
    t.metadata = { ...t.metadata, labels: { ...(t.metadata && t.metadata.labels), 'pod-template-hash': hash } };
    return this.store.create(this.replicasets, d.metadata.namespace, {
      apiVersion: 'apps/v1', kind: 'ReplicaSet',
      metadata: { name: `${d.metadata.name}-${hash}`, labels: t.metadata.labels,
        annotations: { [REVISION]: String(revision), 'deployment.kubernetes.io/desired-replicas': String(d.spec.replicas ?? 1) },
        ownerReferences: [ownerRef(d)] },
      spec: { replicas, selector: { matchLabels: { ...(d.spec.selector.matchLabels || {}), 'pod-template-hash': hash } }, template: t },
    }, { fieldManager: 'kube-controller-manager' }).obj;
  }

  scaleReplicaSet(rs, replicas) {
    const cur = this.store.get(this.replicasets, rs.metadata.namespace, rs.metadata.name);
    if (cur.spec.replicas === replicas) return;
    this.store.writeExisting(this.replicasets, cur.metadata.namespace, cur, { ...cur, spec: { ...cur.spec, replicas } }, { fieldManager: 'kube-controller-manager' });
  }

  reconcileReplicaSet(rs) {
    if (rs.metadata.deletionTimestamp) return;
    const pods = this.podsOf(rs);
    const want = rs.spec.replicas ?? 1;
    for (let i = pods.length; i < want; i++) this.createPod(rs);
    const extra = pods.slice().sort((a, b) => b.metadata.creationTimestamp.localeCompare(a.metadata.creationTimestamp)).slice(0, Math.max(0, pods.length - want));
    for (const p of extra) this.deletePod(p);
    const live = this.podsOf(rs);
    const ready = live.filter(isReady).length;
    const status = { replicas: live.length, fullyLabeledReplicas: live.length, readyReplicas: ready, availableReplicas: ready, observedGeneration: rs.metadata.generation };
    for (const k of ['fullyLabeledReplicas', 'readyReplicas', 'availableReplicas']) if (!status[k]) delete status[k];
    if (JSON.stringify(status) === JSON.stringify(rs.status || {})) return;
    const cur = this.store.get(this.replicasets, rs.metadata.namespace, rs.metadata.name);
    this.store.writeExisting(this.replicasets, cur.metadata.namespace, cur, { ...cur, status }, { subresource: 'status', fieldManager: 'kube-controller-manager' });
  }

  createPod(rs) {
    const t = structuredClone(rs.spec.template);
    const meta = t.metadata || {};
    this.store.create(this.pods, rs.metadata.namespace, {
      apiVersion: 'v1', kind: 'Pod',
      metadata: { generateName: `${rs.metadata.name}-`, labels: meta.labels, annotations: meta.annotations, ownerReferences: [ownerRef(rs)] },
      spec: { ...t.spec, nodeName: 'fake-node' },
    }, { fieldManager: 'kube-controller-manager' });
  }

  deletePod(p) {
    try { this.store.delete(this.pods, p.metadata.namespace, p.metadata.name, {}); } catch (e) { if (e.code !== 404) throw e; }
  }

  writeDeploymentStatus(d, current, all) {
    const pods = all.flatMap(r => this.podsOf(r));
    const updated = this.podsOf(current);
    const ready = pods.filter(isReady);
    const want = d.spec.replicas ?? 1;
    const old = d.status || {};
    const cond = (type, status, reason, message) => {
      const prev = (old.conditions || []).find(c => c.type === type);
      return { type, status, reason, message,
        lastUpdateTime: prev && prev.status === status && prev.reason === reason ? prev.lastUpdateTime : now(),
        lastTransitionTime: prev && prev.status === status ? prev.lastTransitionTime : now() };
    };
    const available = ready.length >= want;
    const complete = updated.length === want && pods.length === want && updated.filter(isReady).length === want;
    const rsName = current.metadata.name;
    const status = {
      observedGeneration: d.metadata.generation,
      replicas: pods.length,
      updatedReplicas: updated.length,
      readyReplicas: ready.length,
      availableReplicas: ready.length,
      unavailableReplicas: Math.max(0, want - ready.length),
      conditions: [
        cond('Available', available ? 'True' : 'False', available ? 'MinimumReplicasAvailable' : 'MinimumReplicasUnavailable',
          available ? 'Deployment has minimum availability.' : 'Deployment does not have minimum availability.'),
        cond('Progressing', 'True', complete ? 'NewReplicaSetAvailable' : 'ReplicaSetUpdated',
          complete ? `ReplicaSet "${rsName}" has successfully progressed.` : `ReplicaSet "${rsName}" is progressing.`),
      ],
    };
    for (const k of ['readyReplicas', 'availableReplicas', 'unavailableReplicas', 'updatedReplicas', 'replicas']) if (!status[k]) delete status[k];
    const strip = s => JSON.stringify({ ...s, conditions: (s.conditions || []).map(c => ({ ...c, lastUpdateTime: undefined, lastTransitionTime: undefined })) });
    if (strip(status) === strip(old)) return;
    this.store.writeExisting(this.deployments, d.metadata.namespace, d, { ...d, status }, { subresource: 'status', fieldManager: 'kube-controller-manager' });
  }
}

module.exports = { DeploymentController };
