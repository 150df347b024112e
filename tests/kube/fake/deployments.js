'use strict';
// The deployment controller's part of the fake kubelet: for each apps/v1 Deployment it keeps
// spec.replicas Pods of the current template, named `<deploy>-<podTemplateHash>-<5 chars>`,
// labelled with the template's labels and `pod-template-hash`, owned by the Deployment (there
// are no ReplicaSets: pods point at the Deployment directly), and writes the Deployment's
// status (replicas, updatedReplicas, readyReplicas, availableReplicas, observedGeneration,
// conditions Available and Progressing).
//   - Recreate: every old pod is deleted, and no new pod is created until they are all gone
//     (the kubelet removes a pod only after its process was reaped);
//   - RollingUpdate: new pods are created first, old ones deleted once the new are ready.

const crypto = require('crypto');

const now = () => new Date().toISOString().replace(/\.\d{3}Z$/, 'Z');

function templateHash(template) {
  return crypto.createHash('sha256').update(JSON.stringify(template)).digest('hex').slice(0, 10);
}

function isReady(pod) {
  return ((pod.status && pod.status.conditions) || []).some(c => c.type === 'Ready' && c.status === 'True');
}

class DeploymentController {
  constructor(store, log) {
    this.store = store;
    this.log = log;
    this.deployments = store.resource('apps', 'v1', 'deployments');
    this.pods = store.resource('', 'v1', 'pods');
  }

  reconcileAll() {
    for (const d of this.store.list(this.deployments, '').items) {
      try { this.reconcile(d); } catch (e) { this.log(`deployment ${d.metadata.namespace}/${d.metadata.name}: ${e.message}`); }
    }
  }

  reconcile(d) {
    if (d.metadata.deletionTimestamp) return;
    const ns = d.metadata.namespace;
    const hash = templateHash(d.spec.template);
    const owned = this.store.list(this.pods, ns, p => (p.metadata.ownerReferences || []).some(r => r.uid === d.metadata.uid)).items;
    const live = owned.filter(p => !p.metadata.deletionTimestamp);
    const current = live.filter(p => (p.metadata.labels || {})['pod-template-hash'] === hash);
    const old = owned.filter(p => (p.metadata.labels || {})['pod-template-hash'] !== hash);
    const want = d.spec.paused ? current.length : d.spec.replicas ?? 1;
    const recreate = d.spec.strategy && d.spec.strategy.type === 'Recreate';

    if (recreate) {
      for (const p of old) if (!p.metadata.deletionTimestamp) this.deletePod(p);
      if (old.length === 0) this.scaleTo(d, hash, current, want);
    } else {
      this.scaleTo(d, hash, current, want);
      const readyNew = current.filter(isReady).length;
      if (readyNew >= want) for (const p of old) if (!p.metadata.deletionTimestamp) this.deletePod(p);
    }
    this.writeStatus(d, hash);
  }

  scaleTo(d, hash, current, want) {
    for (let i = current.length; i < want; i++) this.createPod(d, hash);
    const extra = current.slice().sort((a, b) => b.metadata.creationTimestamp.localeCompare(a.metadata.creationTimestamp)).slice(0, Math.max(0, current.length - want));
    for (const p of extra) this.deletePod(p);
  }

  createPod(d, hash) {
    const t = structuredClone(d.spec.template);
    const meta = t.metadata || {};
    this.store.create(this.pods, d.metadata.namespace, {
      apiVersion: 'v1', kind: 'Pod',
      metadata: {
        generateName: `${d.metadata.name}-${hash}-`,
        labels: { ...meta.labels, 'pod-template-hash': hash },
        annotations: meta.annotations,
        ownerReferences: [{ apiVersion: 'apps/v1', kind: 'Deployment', name: d.metadata.name, uid: d.metadata.uid, controller: true, blockOwnerDeletion: true }],
      },
      spec: { ...t.spec, nodeName: 'fake-node' },
      status: { phase: 'Pending' },
    }, { fieldManager: 'kube-controller-manager' });
  }

  deletePod(p) {
    try { this.store.delete(this.pods, p.metadata.namespace, p.metadata.name, {}); } catch (e) { if (e.code !== 404) throw e; }
  }

  writeStatus(d, hash) {
    const pods = this.store.list(this.pods, d.metadata.namespace,
      p => (p.metadata.ownerReferences || []).some(r => r.uid === d.metadata.uid) && !p.metadata.deletionTimestamp).items;
    const updated = pods.filter(p => (p.metadata.labels || {})['pod-template-hash'] === hash);
    const ready = pods.filter(isReady);
    const want = d.spec.replicas ?? 1;
    const old = d.status || {};
    const cond = (type, status, reason, message) => {
      const prev = (old.conditions || []).find(c => c.type === type);
      const t = prev && prev.status === status ? prev.lastTransitionTime : now();
      return { type, status, reason, message, lastUpdateTime: prev && prev.status === status && prev.reason === reason ? prev.lastUpdateTime : now(), lastTransitionTime: t };
    };
    const available = ready.length >= want;
    const complete = updated.length === want && pods.length === want && available;
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
          complete ? `ReplicaSet "${d.metadata.name}-${hash}" has successfully progressed.` : `ReplicaSet "${d.metadata.name}-${hash}" is progressing.`),
      ],
    };
    for (const k of ['readyReplicas', 'availableReplicas', 'unavailableReplicas', 'updatedReplicas', 'replicas']) if (!status[k]) delete status[k];
    const strip = s => JSON.stringify({ ...s, conditions: (s.conditions || []).map(c => ({ ...c, lastUpdateTime: undefined, lastTransitionTime: undefined })) });
    if (strip(status) === strip(old)) return;
    this.store.writeExisting(this.deployments, d.metadata.namespace, d, { ...d, status },
      { subresource: 'status', fieldManager: 'kube-controller-manager' });
  }
}

module.exports = { DeploymentController, templateHash };
