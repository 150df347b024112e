'use strict';
// The object store: an in-memory etcd with one global resourceVersion counter. It owns every
// write's server-side rules — uid, creationTimestamp, generation (bumped when anything outside
// metadata, and status where a status subresource exists, changes), resourceVersion
// preconditions (409), the status subresource split, defaulting and validation (CRD schema and
// CEL, or the built-in rules), field ownership, finalizers and deletionTimestamp, namespace
// existence, and the background garbage collector (ownerReferences; Foreground and Orphan
// propagation; a namespace's or a CRD's contents deleted with it). Every change is an event in
// a bounded history (--history N) that watches replay from; a resourceVersion older than the
// history is answered with 410 Expired. A write that changes nothing is not a write: no new
// resourceVersion and no event, as for real.

const crypto = require('crypto');
const { errors } = require('./status');
const { Registry } = require('./registry');
const { defaultBuiltin, validateBuiltin, checkImmutable } = require('./builtins');
const { mergePatch, strategicMergePatch, jsonPatch, isObj, clone } = require('./patch');
const { shapeFor } = require('./shape');
const { FieldManagers } = require('./fieldmanager');

const now = () => new Date().toISOString().replace(/\.\d{3}Z$/, 'Z');
const same = (a, b) => JSON.stringify(a) === JSON.stringify(b);
const apiVersionOf = res => (res.group ? `${res.group}/${res.version}` : res.version);
const DNS_SUBDOMAIN = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/;
const DNS_LABEL = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/;
const CRD_FINALIZER = 'customresourcecleanup.apiextensions.k8s.io';

function randomSuffix(n = 5) {
  const alphabet = 'bcdfghjklmnpqrstvwxz2456789';
  let s = '';
  for (const b of crypto.randomBytes(n)) s += alphabet[b % alphabet.length];
  return s;
}

function withoutMeta(o, dropStatus) {
  const c = { ...o };
  delete c.metadata;
  if (dropStatus) delete c.status;
  return c;
}

class Store {
  constructor({ historyLimit = 10000 } = {}) {
    this.registry = new Registry();
    this.rv = 1;
    this.collections = new Map(); // storage key → Map "ns/name" → object
    this.byUid = new Map(); // uid → {skey, obj}
    this.managers = new Map(); // uid → FieldManagers
    this.history = [];
    this.historyLimit = historyLimit;
    this.compactedThrough = 0; // events with rv ≤ this are gone from history
    this.listeners = new Set();
    this.hooks = { podDeleting: null }; // set by the fake kubelet
    this.gcScheduled = false;
    // The collector looks only at what can have changed since it last ran: objects written
    // with ownerReferences, dependents of an owner that went or began deleting, and every
    // object with a deletionTimestamp. Looking at every owned object on every write made a
    // burst of N creates cost N² (2 s of 8 in the 1000-Lane bench).
    this.gcDirty = new Set(); // uids to look at on the next run
    this.terminating = new Set(); // uids with a deletionTimestamp: looked at on every run
    this.ownersOf = new Map(); // uid → owner uids of its ownerReferences
    this.dependentsOf = new Map(); // owner uid → Set of dependent uids
    for (const ns of ['default', 'kube-system', 'kube-public', 'kube-node-lease']) {
      this.create(this.resource('', 'v1', 'namespaces'), '', { metadata: { name: ns } }, {});
    }
  }

  resource(group, version, plural) { return this.registry.find(group, version, plural); }
  resourceByKind(apiVersion, kind) {
    const [g, v] = apiVersion.includes('/') ? apiVersion.split('/') : ['', apiVersion];
    return this.registry.resources.find(r => r.group === g && r.version === v && r.kind === kind);
  }

  coll(res) {
    const k = Registry.storageKey(res);
    if (!this.collections.has(k)) this.collections.set(k, new Map());
    return this.collections.get(k);
  }

  // The object as a client of this version sees it.
  view(res, obj) {
    const o = clone(obj);
    o.apiVersion = apiVersionOf(res);
    return o;
  }

  get(res, ns, name) {
    const o = this.coll(res).get(`${ns}/${name}`);
    if (!o) throw errors.notFound(res, name);
    return this.view(res, o);
  }

  tryGet(res, ns, name) { const o = this.coll(res).get(`${ns}/${name}`); return o ? this.view(res, o) : null; }

  list(res, ns, match = () => true) {
    const items = [];
    for (const o of this.coll(res).values()) {
      if (ns && o.metadata.namespace !== ns) continue;
      if (match(o)) items.push(this.view(res, o));
    }
    items.sort((a, b) => `${a.metadata.namespace || ''}/${a.metadata.name}`.localeCompare(`${b.metadata.namespace || ''}/${b.metadata.name}`));
    return { items, resourceVersion: String(this.rv) };
  }

  // creating: the name of an object about to be created (refused in a terminating namespace).
  requireNamespace(res, ns, creating) {
    if (!res.namespaced) return;
    const nsObj = this.coll(this.resource('', 'v1', 'namespaces')).get(`/${ns}`);
    if (!nsObj) throw errors.namespaceNotFound(ns);
    if (creating && nsObj.metadata.deletionTimestamp) {
      throw Object.assign(errors.badRequest(`${res.plural} "${creating}" is forbidden: unable to create new content in namespace ${ns} because it is being terminated`),
        { code: 403, reason: 'Forbidden' });
    }
  }

  // ---- writes ---------------------------------------------------------------------------

  create(res, ns, body, opts) {
    const obj = clone(body);
    obj.metadata ||= {};
    if (!obj.metadata.name && obj.metadata.generateName) obj.metadata.name = obj.metadata.generateName + randomSuffix();
    this.requireNamespace(res, ns, obj.metadata.name || '');
    if (!obj.metadata.name) {
      throw errors.invalid(res, '', [{ field: 'metadata.name', reason: 'FieldValueRequired', message: 'Required value: name or generateName is required' }]);
    }
    if (this.coll(res).has(`${ns}/${obj.metadata.name}`)) throw errors.alreadyExists(res, obj.metadata.name);
    delete obj.metadata.resourceVersion;
    const managers = new FieldManagers();
    const out = this.prepare(res, ns, null, obj, opts);
    if (opts.applyConfig) {
      // The apply's own fields; prepare() ran defaulting on the object, not on the config.
      managers.apply(res, null, opts.applyConfig, shapeFor(res), opts.fieldManager, true, opts.subresource);
    } else managers.recordUpdate(null, out.obj, shapeFor(res), opts.fieldManager, undefined, out.obj.apiVersion);
    return this.commit(res, null, out, managers, opts, 201);
  }

  // PUT. The body must carry metadata.resourceVersion for custom resources.
  update(res, ns, name, body, opts) {
    const old = this.get(res, ns, name);
    const obj = clone(body);
    obj.metadata ||= {};
    if (obj.metadata.name && obj.metadata.name !== name) {
      throw errors.badRequest(`the name of the object (${obj.metadata.name}) does not match the name on the URL (${name})`);
    }
    obj.metadata.name = name;
    if (!obj.metadata.resourceVersion && !res.builtin) {
      throw errors.invalid(res, name, [{ field: 'metadata.resourceVersion', message: 'Invalid value: 0x0: must be specified for an update' }]);
    }
    return this.writeExisting(res, ns, old, obj, opts);
  }

  patch(res, ns, name, type, body, opts) {
    if (type === 'application/apply-patch+yaml') return this.apply(res, ns, name, body, opts);
    const old = this.get(res, ns, name);
    const base = old;
    let obj;
    if (type === 'application/merge-patch+json') obj = mergePatch(base, body);
    else if (type === 'application/strategic-merge-patch+json') {
      if (!res.builtin) {
        throw Object.assign(errors.unsupportedMediaType(type), { message: `the body of the request was in an unknown format - accepted media types include: application/json-patch+json, application/merge-patch+json, application/apply-patch+yaml` });
      }
      obj = strategicMergePatch(base, body, shapeFor(res));
    } else if (type === 'application/json-patch+json') obj = jsonPatch(base, body);
    else throw errors.unsupportedMediaType(type);
    if (!isObj(obj)) throw errors.badRequest('patch did not produce an object');
    obj.metadata ||= {};
    if (obj.metadata.name !== name) throw errors.badRequest('metadata.name cannot be changed by a patch');
    return this.writeExisting(res, ns, old, obj, opts);
  }

  apply(res, ns, name, body, opts) {
    if (!isObj(body)) throw errors.badRequest('apply patch must be an object');
    const config = clone(body);
    if (!config.apiVersion || !config.kind) {
      throw errors.badRequest(`invalid object type: ${config.apiVersion ? '' : '/'}${config.kind || ', Kind='}`);
    }
    if (config.kind !== res.kind) throw errors.badRequest(`the kind of the object (${config.kind}) does not match the kind of the URL (${res.kind})`);
    config.metadata ||= {};
    if (config.metadata.name && config.metadata.name !== name) {
      throw errors.badRequest(`the name of the object (${config.metadata.name}) does not match the name on the URL (${name})`);
    }
    config.metadata.name = name;
    if (!opts.fieldManager || opts.fieldManager === '') {
      throw errors.badRequest('PatchOptions.meta.k8s.io "" is invalid: fieldManager: Required value: is required for apply patch');
    }
    const old = this.tryGet(res, ns, name);
    if (!old) {
      if (opts.subresource) throw errors.notFound(res, name);
      return this.create(res, ns, config, { ...opts, applyConfig: config });
    }
    const managers = (this.managers.get(old.metadata.uid) || new FieldManagers()).clone();
    const merged = managers.apply(res, old, config, shapeFor(res), opts.fieldManager, opts.force, opts.subresource);
    merged.metadata.resourceVersion = config.metadata.resourceVersion || old.metadata.resourceVersion;
    return this.writeExisting(res, ns, old, merged, { ...opts, managers });
  }

  writeExisting(res, ns, old, obj, opts) {
    const out = this.prepare(res, ns, old, obj, opts);
    const prev = this.managers.get(old.metadata.uid) || new FieldManagers();
    const managers = opts.managers || prev.clone();
    if (!opts.managers) managers.recordUpdate(old, out.obj, shapeFor(res), opts.fieldManager, opts.subresource, out.obj.apiVersion);
    const comparable = o => ({ ...o, metadata: { ...o.metadata, managedFields: undefined, resourceVersion: undefined } });
    const ownership = m => m.render().map(e => ({ ...e, time: undefined }));
    const unchanged = same(comparable(out.obj), comparable(old)) && same(ownership(managers), ownership(prev));
    if (unchanged) return { obj: old, code: 200, warnings: out.warnings };
    return this.commit(res, old, out, managers, opts, 200);
  }

  // Server-side rules of every write; returns {obj, warnings} or throws a Status.
  prepare(res, ns, old, obj, opts) {
    const warnings = [];
    obj.apiVersion = apiVersionOf(res);
    obj.kind = res.kind;
    const meta = obj.metadata;
    if (res.namespaced) {
      if (meta.namespace && meta.namespace !== ns) {
        throw errors.badRequest('the namespace of the provided object does not match the namespace sent on the request');
      }
      meta.namespace = ns;
    } else delete meta.namespace;
    delete meta.managedFields;
    if (opts.subresource === 'status') {
      // A status write changes status only.
      obj = { ...clone(old), status: obj.status, metadata: { ...clone(old.metadata), resourceVersion: meta.resourceVersion } };
      if (obj.status === undefined) delete obj.status;
    } else if (res.status) {
      if (old && old.status !== undefined) obj.status = clone(old.status); else delete obj.status;
    }
    if (res.validator) {
      res.validator.applyDefaults(obj);
      const unknown = res.validator.prune(obj);
      if (unknown.length && opts.fieldValidation === 'Strict') {
        throw errors.badRequest(`${res.kind} in version "${res.version}" cannot be handled as a ${res.kind}: strict decoding error: ${unknown.map(u => `unknown field "${u}"`).join(', ')}`);
      }
      if (unknown.length && opts.fieldValidation !== 'Ignore') warnings.push(...unknown.map(u => `unknown field "${u}"`));
    } else defaultBuiltin(res, obj);
    if (res.plural === 'customresourcedefinitions' && res.group === 'apiextensions.k8s.io') this.prepareCrd(obj, old);
    const causes = [];
    const name = obj.metadata.name;
    if (res.plural === 'namespaces' ? !DNS_LABEL.test(name) || name.length > 63 : !DNS_SUBDOMAIN.test(name) || name.length > 253) {
      causes.push({ field: 'metadata.name', message: res.plural === 'namespaces'
        ? `Invalid value: ${JSON.stringify(name)}: a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must start and end with an alphanumeric character (e.g. 'my-name',  or '123-abc', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?')`
        : `Invalid value: ${JSON.stringify(name)}: a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character (e.g. 'example.com', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')` });
    }
    if (res.validator) causes.push(...res.validator.validate(obj, old, { onlyStatus: opts.subresource === 'status' }));
    else {
      causes.push(...validateBuiltin(res, obj));
      if (old) causes.push(...checkImmutable(res, old, obj));
    }
    if (causes.length) throw errors.invalid(res, name, causes);
    if (old) {
      if (meta.resourceVersion && meta.resourceVersion !== old.metadata.resourceVersion) throw errors.conflict(res, name);
      for (const k of ['uid', 'creationTimestamp', 'deletionTimestamp', 'deletionGracePeriodSeconds', 'generation']) {
        if (old.metadata[k] !== undefined) obj.metadata[k] = old.metadata[k]; else delete obj.metadata[k];
      }
      if (old.metadata.deletionTimestamp) {
        const added = (obj.metadata.finalizers || []).filter(f => !(old.metadata.finalizers || []).includes(f));
        if (added.length) {
          throw errors.invalid(res, name, [{ field: 'metadata.finalizers', reason: 'FieldValueForbidden',
            message: `Forbidden: no new finalizers can be added if the object is being deleted, found new finalizers ${JSON.stringify(added)}` }]);
        }
      }
      if (!same(withoutMeta(old, res.status), withoutMeta(obj, res.status))) obj.metadata.generation = (old.metadata.generation || 1) + 1;
    } else {
      obj.metadata.uid = crypto.randomUUID();
      obj.metadata.creationTimestamp = now();
      obj.metadata.generation = 1;
      delete obj.metadata.deletionTimestamp;
      delete obj.metadata.deletionGracePeriodSeconds;
    }
    if (obj.metadata.finalizers && !obj.metadata.finalizers.length) delete obj.metadata.finalizers;
    return { obj, warnings };
  }

  prepareCrd(crd, old) {
    const causes = [];
    const spec = crd.spec || {};
    const names = spec.names || {};
    if (!spec.group) causes.push({ field: 'spec.group', reason: 'FieldValueRequired', message: 'Required value' });
    if (!names.plural) causes.push({ field: 'spec.names.plural', reason: 'FieldValueRequired', message: 'Required value' });
    if (!names.kind) causes.push({ field: 'spec.names.kind', reason: 'FieldValueRequired', message: 'Required value' });
    if (!Array.isArray(spec.versions) || !spec.versions.length) causes.push({ field: 'spec.versions', reason: 'FieldValueRequired', message: 'Required value: must have exactly one version marked as storage version' });
    if (names.plural && spec.group && crd.metadata.name !== `${names.plural}.${spec.group}`) {
      causes.push({ field: 'metadata.name', message: `Invalid value: ${JSON.stringify(crd.metadata.name)}: must be spec.names.plural+"."+spec.group` });
    }
    if (old && spec.group !== old.spec.group) causes.push({ field: 'spec.group', message: `Invalid value: ${JSON.stringify(spec.group)}: field is immutable` });
    let resources = [];
    if (!causes.length) {
      try { resources = Registry.resourcesOfCrd(crd); } catch (e) {
        if (!e.problems) throw e;
        causes.push(...e.problems);
      }
    }
    if (causes.length) throw errors.invalid({ kind: 'CustomResourceDefinition', group: 'apiextensions.k8s.io' }, crd.metadata.name, causes);
    if (!old) crd.metadata.finalizers = [...new Set([...(crd.metadata.finalizers || []), CRD_FINALIZER])];
    spec.scope ??= 'Namespaced';
    spec.conversion ??= { strategy: 'None' };
    names.listKind ??= `${names.kind}List`;
    names.singular ??= names.kind.toLowerCase();
    const t = old && old.status && old.status.conditions ? old.status.conditions[0].lastTransitionTime : now();
    crd.status = {
      acceptedNames: clone(names),
      conditions: [
        { type: 'NamesAccepted', status: 'True', reason: 'NoConflicts', message: 'no conflicts found', lastTransitionTime: t },
        { type: 'Established', status: 'True', reason: 'InitialNamesAccepted', message: 'the initial names have been accepted', lastTransitionTime: t },
      ],
      storedVersions: spec.versions.filter(v => v.storage).map(v => v.name),
    };
    this.pendingCrd = resources;
  }

  commit(res, old, { obj, warnings }, managers, opts, code) {
    if (opts.dryRun) {
      obj.metadata.resourceVersion = old ? old.metadata.resourceVersion : undefined;
      obj.metadata.managedFields = managers.render();
      return { obj, code, warnings };
    }
    obj.metadata.resourceVersion = String(++this.rv);
    obj.metadata.managedFields = managers.render();
    if (!obj.metadata.managedFields.length) delete obj.metadata.managedFields;
    this.managers.set(obj.metadata.uid, managers);
    const stored = clone(obj);
    this.coll(res).set(`${stored.metadata.namespace || ''}/${stored.metadata.name}`, stored);
    this.byUid.set(stored.metadata.uid, { skey: Registry.storageKey(res), obj: stored });
    this.trackGcCandidate(stored);
    if (res.plural === 'customresourcedefinitions' && res.group === 'apiextensions.k8s.io') {
      this.registry.setCrd(stored, this.pendingCrd);
    }
    this.record(res, old ? 'MODIFIED' : 'ADDED', stored, old);
    if (stored.metadata.deletionTimestamp && !(stored.metadata.finalizers || []).length) this.remove(res, stored);
    this.scheduleGc();
    return { obj, code, warnings }; // obj is this write's own copy: the stored one is a clone
  }

  remove(res, obj) {
    const key = `${obj.metadata.namespace || ''}/${obj.metadata.name}`;
    const stored = this.coll(res).get(key);
    if (!stored || stored.metadata.uid !== obj.metadata.uid) return null;
    this.coll(res).delete(key);
    this.byUid.delete(stored.metadata.uid);
    this.untrackGc(stored.metadata.uid);
    this.managers.delete(stored.metadata.uid);
    const gone = clone(stored);
    gone.metadata.resourceVersion = String(++this.rv);
    this.record(res, 'DELETED', gone, stored);
    if (res.plural === 'customresourcedefinitions' && res.group === 'apiextensions.k8s.io') {
      this.registry.removeCrd(stored.metadata.name);
      this.collections.delete(`${stored.spec.group}/${stored.spec.names.plural}`);
    }
    this.scheduleGc();
    return gone;
  }

  // DELETE. Returns the object as deleted, or with deletionTimestamp while finalizers remain.
  delete(res, ns, name, opts = {}) {
    const old = this.get(res, ns, name);
    if (opts.preconditions && opts.preconditions.uid && opts.preconditions.uid !== old.metadata.uid) throw errors.conflict(res, name);
    if (opts.preconditions && opts.preconditions.resourceVersion && opts.preconditions.resourceVersion !== old.metadata.resourceVersion) throw errors.conflict(res, name);
    if (opts.dryRun) return { obj: old, code: 200 };
    const policy = opts.propagationPolicy || (opts.orphanDependents ? 'Orphan' : 'Background');
    if (policy === 'Orphan') this.orphanDependents(old.metadata.uid);
    const finalizers = [...(old.metadata.finalizers || [])];
    if (policy === 'Foreground' && this.hasDependents(old.metadata.uid) && !finalizers.includes('foregroundDeletion')) finalizers.push('foregroundDeletion');
    if (res.plural === 'namespaces' && !res.group) finalizers.push('kubernetes');
    const podDeleting = res.plural === 'pods' && !res.group && this.hooks.podDeleting;
    if (old.metadata.deletionTimestamp) return { obj: old, code: 200 };
    if (finalizers.length || podDeleting) {
      const obj = clone(old);
      obj.metadata.deletionTimestamp = now();
      obj.metadata.deletionGracePeriodSeconds = podDeleting ? (opts.gracePeriodSeconds ?? old.spec.terminationGracePeriodSeconds ?? 30) : 0;
      obj.metadata.finalizers = finalizers.filter(f => f !== 'kubernetes');
      if (res.plural === 'namespaces' && !res.group) obj.status = { phase: 'Terminating' };
      obj.metadata.resourceVersion = String(++this.rv);
      if (!obj.metadata.finalizers.length) delete obj.metadata.finalizers;
      const stored = clone(obj);
      this.coll(res).set(`${ns}/${name}`, stored);
      this.byUid.set(stored.metadata.uid, { skey: Registry.storageKey(res), obj: stored });
      this.trackGcCandidate(stored);
      this.record(res, 'MODIFIED', stored, old);
      this.scheduleGc();
      if (podDeleting) podDeleting(stored);
      return { obj: this.view(res, stored), code: 200 };
    }
    const gone = this.remove(res, old);
    return { obj: this.view(res, gone), code: 200 };
  }

  // The kubelet's last word on a terminating pod: gone now.
  removeNow(res, ns, name) {
    const o = this.coll(res).get(`${ns}/${name}`);
    if (o) this.remove(res, o);
  }

  hasDependents(uid) {
    return this.dependentsOf.has(uid);
  }

  resourceOfStorage(skey) {
    return this.registry.resources.find(r => Registry.storageKey(r) === skey);
  }

  orphanDependents(uid) {
    for (const dep of [...(this.dependentsOf.get(uid) || [])]) {
      const { skey, obj } = this.byUid.get(dep);
      const refs = obj.metadata.ownerReferences || [];
      const res = this.resourceOfStorage(skey);
      const next = clone(obj);
      next.metadata.ownerReferences = refs.filter(r => r.uid !== uid);
      if (!next.metadata.ownerReferences.length) delete next.metadata.ownerReferences;
      this.writeExisting(res, obj.metadata.namespace || '', this.view(res, obj), next, { fieldManager: 'garbage-collector' });
    }
  }

  // ---- garbage collection --------------------------------------------------------------

  // Only objects with owners or a deletionTimestamp can need the collector.
  trackGcCandidate(obj) {
    const uid = obj.metadata.uid;
    this.setOwners(uid, (obj.metadata.ownerReferences || []).map(r => r.uid));
    if (this.ownersOf.has(uid)) this.gcDirty.add(uid);
    if (obj.metadata.deletionTimestamp) {
      this.terminating.add(uid);
      for (const d of this.dependentsOf.get(uid) || []) this.gcDirty.add(d); // a foreground owner
    } else this.terminating.delete(uid);
  }

  // An object is gone: its dependents may now be orphans.
  untrackGc(uid) {
    this.setOwners(uid, []);
    this.terminating.delete(uid);
    this.gcDirty.delete(uid);
    for (const d of this.dependentsOf.get(uid) || []) this.gcDirty.add(d);
  }

  setOwners(uid, owners) {
    for (const o of this.ownersOf.get(uid) || []) {
      const deps = this.dependentsOf.get(o);
      if (deps) { deps.delete(uid); if (!deps.size) this.dependentsOf.delete(o); }
    }
    if (!owners.length) { this.ownersOf.delete(uid); return; }
    this.ownersOf.set(uid, owners);
    for (const o of owners) {
      if (!this.dependentsOf.has(o)) this.dependentsOf.set(o, new Set());
      this.dependentsOf.get(o).add(uid);
    }
  }

  scheduleGc() {
    if (this.gcScheduled) return;
    this.gcScheduled = true;
    setImmediate(() => { this.gcScheduled = false; this.collectGarbage(); });
  }

  collectGarbage() {
    const uids = new Set([...this.gcDirty, ...this.terminating]);
    this.gcDirty.clear();
    const entries = [...uids].map(uid => this.byUid.get(uid)).filter(Boolean);
    const resources = new Map(this.registry.resources.map(r => [Registry.storageKey(r), r]));
    for (const { skey, obj } of entries) {
      const res = resources.get(skey);
      if (!res || !this.byUid.has(obj.metadata.uid)) continue;
      const ns = obj.metadata.namespace || '';
      const refs = obj.metadata.ownerReferences || [];
      const owners = refs.map(r => this.byUid.get(r.uid)).filter(Boolean);
      const foregroundOwner = owners.some(o => o.obj.metadata.deletionTimestamp && (o.obj.metadata.finalizers || []).includes('foregroundDeletion'));
      if ((refs.length && !owners.length) || foregroundOwner) {
        if (!obj.metadata.deletionTimestamp) this.delete(res, ns, obj.metadata.name, { propagationPolicy: 'Background' });
        continue;
      }
      if (!obj.metadata.deletionTimestamp) continue;
      const fin = obj.metadata.finalizers || [];
      if (fin.includes('foregroundDeletion') && !this.hasDependents(obj.metadata.uid)) {
        this.dropFinalizer(res, obj, 'foregroundDeletion');
      } else if (res.plural === 'namespaces' && !res.group) {
        if (this.deleteAll(o => o.metadata.namespace === obj.metadata.name)) this.remove(res, obj);
      } else if (res.plural === 'customresourcedefinitions' && fin.includes(CRD_FINALIZER)) {
        const skeyCr = `${obj.spec.group}/${obj.spec.names.plural}`;
        if (this.deleteAll((o, k) => k === skeyCr)) this.dropFinalizer(res, obj, CRD_FINALIZER);
      }
    }
  }

  dropFinalizer(res, obj, f) {
    const next = clone(obj);
    next.metadata.finalizers = (next.metadata.finalizers || []).filter(x => x !== f);
    this.writeExisting(res, obj.metadata.namespace || '', this.view(res, obj), next, { fieldManager: 'garbage-collector' });
  }

  // Deletes every object matching; true when none is left.
  deleteAll(match) {
    let left = 0;
    for (const { skey, obj } of [...this.byUid.values()]) {
      if (!match(obj, skey)) continue;
      left++;
      const res = this.resourceOfStorage(skey);
      if (res && !obj.metadata.deletionTimestamp) this.delete(res, obj.metadata.namespace || '', obj.metadata.name, {});
    }
    return left === 0;
  }

  // ---- events --------------------------------------------------------------------------

  record(res, type, obj, prev) {
    const ev = { rv: Number(obj.metadata.resourceVersion), skey: Registry.storageKey(res), type, obj, prev };
    this.history.push(ev);
    while (this.history.length > this.historyLimit) this.compactedThrough = this.history.shift().rv;
    for (const l of this.listeners) l(ev);
  }

  // Events of one storage key newer than rv, then live ones; throws 410 when rv is too old.
  subscribe(skey, rv, listener) {
    if (rv < this.compactedThrough) {
      throw errors.gone(`too old resource version: ${rv} (${this.compactedThrough + 1})`);
    }
    const backlog = this.history.filter(e => e.skey === skey && e.rv > rv);
    const l = ev => { if (ev.skey === skey) listener(ev); };
    this.listeners.add(l);
    for (const e of backlog) listener(e);
    return () => this.listeners.delete(l);
  }
}

module.exports = { Store };
