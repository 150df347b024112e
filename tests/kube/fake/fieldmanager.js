'use strict';
// Field ownership and server-side apply (`application/apply-patch+yaml`), kept as simple as
// it can be while a client still sees the real rules:
//   - every write records which fields its manager set: an apply owns exactly the fields of
//     its configuration; an update (PUT, merge/strategic/JSON patch, create) takes the fields
//     it changed from whoever owned them;
//   - an apply that sets a field another manager owns, to a different value than the object
//     holds, is a 409 Conflict naming manager and field, unless `force=true` (then it takes
//     the field);
//   - a field the same manager applied before and omits now is removed, unless another
//     manager also owns it;
//   - the configuration is merged into the object: objects field by field, keyed lists
//     (containers by name, CRD x-kubernetes-list-type: map) item by item, set lists by value,
//     other lists replaced whole.
// Ownership is shown in metadata.managedFields (FieldsV1). Approximated: ownership is by
// leaf field and keyed-list item, versions are not converted, and a manager's Apply and
// Update entries never conflict with each other.

const { errors } = require('./status');
const { isObj, clone } = require('./patch');
const { keyOf } = require('./shape');

// Metadata a manager can own; the rest of metadata belongs to the server.
const OWNED_METADATA = new Set(['labels', 'annotations', 'finalizers', 'ownerReferences']);

// statusSeparate: the resource has a status subresource, so its main writes own no status.
function trackable(segs, subresource, statusSeparate) {
  const top = segs[0];
  if (statusSeparate && subresource !== 'status' && top === 'f:status') return false;
  if (top === 'f:apiVersion' || top === 'f:kind') return false;
  if (top === 'f:metadata') return segs.length > 1 && OWNED_METADATA.has(segs[1].slice(2));
  if (subresource === 'status') return top === 'f:status';
  return true;
}

// Leaf paths (JSON-encoded segment arrays) of a value: `f:field`, `k:{"name":"x"}` for a
// keyed-list item (the item itself is a path too), `v:"x"` for a set-list value.
function paths(value, shape, prefix = [], out = new Set()) {
  if (isObj(value) && Object.keys(value).length) {
    for (const [k, v] of Object.entries(value)) paths(v, shape.child(k), prefix.concat(`f:${k}`), out);
  } else if (Array.isArray(value)) {
    const keys = shape.keysFor(value);
    if (keys && value.length) {
      for (const item of value) {
        const p = prefix.concat(`k:${keyOf(item, keys)}`);
        out.add(JSON.stringify(p));
        paths(item, shape.item(), p, out);
      }
    } else if (shape.set && value.length) {
      for (const v of value) out.add(JSON.stringify(prefix.concat(`v:${JSON.stringify(v)}`)));
    } else out.add(JSON.stringify(prefix));
  } else out.add(JSON.stringify(prefix));
  return out;
}

function pathsOf(obj, shape, subresource) {
  const out = new Set();
  for (const p of paths(obj, shape)) if (trackable(JSON.parse(p), subresource, shape.statusSeparate)) out.add(p);
  return out;
}

// Finds the value at a path; `undefined` when absent. Returns {parent, key} for removal.
function locate(obj, segs) {
  let parent = null, key = null, cur = obj;
  for (const seg of segs) {
    parent = cur;
    if (seg.startsWith('f:')) {
      key = seg.slice(2);
      cur = isObj(cur) ? cur[key] : undefined;
    } else if (seg.startsWith('k:')) {
      const want = JSON.parse(seg.slice(2));
      const keys = Object.keys(want);
      key = Array.isArray(cur) ? cur.findIndex(i => keyOf(i, keys) === JSON.stringify(want)) : -1;
      cur = key >= 0 ? cur[key] : undefined;
    } else if (seg.startsWith('v:')) {
      const want = JSON.parse(seg.slice(2));
      key = Array.isArray(cur) ? cur.findIndex(i => i === want) : -1;
      cur = key >= 0 ? cur[key] : undefined;
    }
    if (cur === undefined) return { value: undefined };
  }
  return { value: cur, parent, key };
}

function removeAt(obj, segs) {
  const { value, parent, key } = locate(obj, segs);
  if (value === undefined || parent == null) return;
  if (Array.isArray(parent)) parent.splice(key, 1); else delete parent[key];
}

function applyMerge(target, config, shape) {
  if (isObj(config)) {
    const out = isObj(target) ? { ...target } : {};
    for (const [k, v] of Object.entries(config)) out[k] = applyMerge(out[k], v, shape.child(k));
    return out;
  }
  if (Array.isArray(config)) {
    const keys = shape.keysFor(config);
    if (keys) {
      const out = Array.isArray(target) ? target.map(clone) : [];
      for (const item of config) {
        const i = out.findIndex(o => keyOf(o, keys) === keyOf(item, keys));
        if (i >= 0) out[i] = applyMerge(out[i], item, shape.item()); else out.push(clone(item));
      }
      return out;
    }
    if (shape.set) {
      const out = Array.isArray(target) ? [...target] : [];
      for (const v of config) if (!out.includes(v)) out.push(v);
      return out;
    }
  }
  return clone(config);
}

const same = (a, b) => JSON.stringify(a) === JSON.stringify(b);
const now = () => new Date().toISOString().replace(/\.\d{3}Z$/, 'Z');

// The managers of one object: [{manager, operation, subresource, apiVersion, time, paths}].
class FieldManagers {
  constructor(entries = []) { this.entries = entries; }

  clone() { return new FieldManagers(this.entries.map(e => ({ ...e, paths: new Set(e.paths) }))); }

  entry(manager, operation, subresource, apiVersion) {
    let e = this.entries.find(x => x.manager === manager && x.operation === operation && (x.subresource || '') === (subresource || ''));
    if (!e) { e = { manager, operation, subresource, apiVersion, paths: new Set() }; this.entries.push(e); }
    e.apiVersion = apiVersion;
    e.time = now();
    return e;
  }

  // A non-apply write: the manager takes the fields that changed (all of them on create).
  recordUpdate(oldObj, newObj, shape, manager, subresource, apiVersion) {
    const before = oldObj ? pathsOf(oldObj, shape, subresource) : new Set();
    const after = pathsOf(newObj, shape, subresource);
    const changed = [...after].filter(p => !before.has(p) || !same(locate(oldObj, JSON.parse(p)).value, locate(newObj, JSON.parse(p)).value));
    const gone = [...before].filter(p => !after.has(p));
    for (const e of this.entries) for (const p of [...changed, ...gone]) e.paths.delete(p);
    if (changed.length) {
      const e = this.entry(manager, 'Update', subresource, apiVersion);
      for (const p of changed) e.paths.add(p);
    }
    this.dropEmpty();
  }

  // Server-side apply of `config` onto `current` (null when creating). Returns the object.
  apply(res, current, config, shape, manager, force, subresource) {
    const apiVersion = config.apiVersion;
    const applied = pathsOf(config, shape, subresource);
    if (current) {
      const conflicts = [];
      for (const e of this.entries) {
        if (e.manager === manager) continue;
        for (const p of applied) {
          if (!e.paths.has(p)) continue;
          const segs = JSON.parse(p);
          const have = locate(current, segs).value, want = locate(config, segs).value;
          if (have !== undefined && !isObj(want) && !same(have, want)) conflicts.push({ manager: e.manager, apiVersion: e.apiVersion, segs });
        }
      }
      if (conflicts.length && !force) {
        const field = c => '.' + c.segs.map(s => (s.startsWith('f:') ? s.slice(2) : `[${s.slice(2)}]`)).join('.').replace(/\.\[/g, '[');
        const lines = conflicts.map(c => `conflict with "${c.manager}"${c.apiVersion ? ` using ${c.apiVersion}` : ''}: ${field(c)}`);
        throw Object.assign(errors.conflict(res, config.metadata.name), {
          message: conflicts.length === 1 ? `Apply failed with 1 conflict: ${lines[0]}` : `Apply failed with ${conflicts.length} conflicts: ${lines.join('\n')}`,
          details: { name: config.metadata.name, group: res.group || undefined, kind: res.plural,
            causes: conflicts.map((c, i) => ({ reason: 'FieldManagerConflict', message: lines[i].replace(/: [^:]*$/, ''), field: field(c) })) },
        });
      }
      if (force) for (const c of conflicts) for (const e of this.entries) if (e.manager !== manager) e.paths.delete(JSON.stringify(c.segs));
    }
    let merged = applyMerge(current || {}, config, shape);
    const mine = this.entry(manager, 'Apply', subresource, apiVersion);
    const under = (q, p) => q.startsWith(p.slice(0, -1) + ',');
    const dropped = [...mine.paths].filter(p => !applied.has(p) && ![...applied].some(q => under(q, p)))
      .filter(p => !this.entries.some(e => e !== mine && [...e.paths].some(q => q === p || under(q, p))))
      .sort((a, b) => b.length - a.length);
    for (const p of dropped) removeAt(merged, JSON.parse(p));
    mine.paths = applied;
    this.dropEmpty();
    return merged;
  }

  dropEmpty() { this.entries = this.entries.filter(e => e.paths.size > 0); }

  // metadata.managedFields as the real server renders it.
  render() {
    return this.entries.map(e => {
      const tree = {};
      for (const p of [...e.paths].sort()) {
        let node = tree;
        const segs = JSON.parse(p);
        segs.forEach((s, i) => {
          node[s] ||= {};
          node = node[s];
          if (i < segs.length - 1 && s.startsWith('k:')) node['.'] = {};
        });
        if (segs.length && segs[segs.length - 1].startsWith('k:')) node['.'] = {};
      }
      const out = { manager: e.manager, operation: e.operation, apiVersion: e.apiVersion, time: e.time, fieldsType: 'FieldsV1', fieldsV1: tree };
      if (e.subresource) out.subresource = e.subresource;
      return out;
    });
  }
}

module.exports = { FieldManagers };
