'use strict';
// The three patch formats besides apply: JSON merge patch (RFC 7386), strategic merge patch
// (built-in kinds only, as for real: keyed lists merged by key, `$patch: delete|replace`,
// `$deleteFromPrimitiveList/…`, `$setElementOrder/…` and `$retainKeys` directives) and JSON
// patch (RFC 6902). Strategic merge keeps the order of the original list and appends new
// items, instead of following `$setElementOrder` (an approximation nobody can observe through
// a map-keyed list's semantics, only through its order).

const { errors } = require('./status');
const { keyOf } = require('./shape');

const isObj = v => v !== null && typeof v === 'object' && !Array.isArray(v);
// A deep copy of a JSON value (what every stored object and request body is). Ten times
// faster than structuredClone, which was the fake's largest cost in a burst of writes.
function clone(v) {
  if (v === null || typeof v !== 'object') return v;
  if (Array.isArray(v)) {
    const a = new Array(v.length);
    for (let i = 0; i < v.length; i++) a[i] = clone(v[i]);
    return a;
  }
  const o = {};
  for (const k of Object.keys(v)) o[k] = clone(v[k]);
  return o;
}

function mergePatch(target, patch) {
  if (!isObj(patch)) return clone(patch);
  const out = isObj(target) ? { ...target } : {};
  for (const [k, v] of Object.entries(patch)) {
    if (v === null) delete out[k];
    else out[k] = mergePatch(out[k], v);
  }
  return out;
}

function strategicMergePatch(target, patch, shape) {
  if (!isObj(patch)) return clone(patch);
  if (patch.$patch === 'replace') { const p = { ...patch }; delete p.$patch; return clone(p); }
  if (patch.$patch === 'delete') return undefined;
  const out = isObj(target) ? { ...target } : {};
  const retain = patch.$retainKeys;
  for (const [k, v] of Object.entries(patch)) {
    if (k === '$patch' || k === '$retainKeys' || k.startsWith('$setElementOrder/')) continue;
    if (k.startsWith('$deleteFromPrimitiveList/')) {
      const field = k.slice('$deleteFromPrimitiveList/'.length);
      if (Array.isArray(out[field])) out[field] = out[field].filter(x => !v.some(d => d === x));
      continue;
    }
    const child = shape.child(k);
    if (v === null) { delete out[k]; continue; }
    if (Array.isArray(v)) {
      out[k] = mergeList(out[k], v, child);
    } else if (isObj(v)) {
      const merged = strategicMergePatch(out[k], v, child);
      if (merged === undefined) delete out[k]; else out[k] = merged;
    } else out[k] = v;
  }
  if (Array.isArray(retain)) for (const k of Object.keys(out)) if (!retain.includes(k)) delete out[k];
  return out;
}

function mergeList(orig, patch, shape) {
  const base = Array.isArray(orig) ? orig : [];
  if (patch.some(i => isObj(i) && i.$patch === 'replace')) return clone(patch.filter(i => !(isObj(i) && i.$patch === 'replace')));
  if (shape.set) {
    const out = [...base];
    for (const x of patch) if (!out.some(y => y === x)) out.push(x);
    return out;
  }
  const keys = shape.keysFor(patch.concat(base));
  if (!keys) return clone(patch);
  const out = base.map(clone);
  for (const item of patch) {
    const i = out.findIndex(o => keyOf(o, keys) === keyOf(item, keys));
    if (isObj(item) && item.$patch === 'delete') { if (i >= 0) out.splice(i, 1); continue; }
    if (i >= 0) out[i] = strategicMergePatch(out[i], item, shape.item());
    else out.push(strategicMergePatch({}, item, shape.item()));
  }
  return out;
}

function pointer(path) {
  if (path === '') return [];
  if (!path.startsWith('/')) throw errors.badRequest(`json patch: invalid path ${path}`);
  return path.slice(1).split('/').map(s => s.replace(/~1/g, '/').replace(/~0/g, '~'));
}

function jsonPatch(target, ops) {
  if (!Array.isArray(ops)) throw errors.badRequest('json patch must be an array of operations');
  let doc = clone(target);
  const parentOf = (segs) => {
    let cur = doc;
    for (const s of segs.slice(0, -1)) {
      cur = Array.isArray(cur) ? cur[Number(s)] : cur == null ? undefined : cur[s];
      if (cur == null || typeof cur !== 'object') throw errors.internal(`jsonpatch: doc is missing path: ${'/' + segs.join('/')}`);
    }
    return cur;
  };
  const get = (segs) => segs.reduce((o, s) => {
    if (o == null || typeof o !== 'object' || !(Array.isArray(o) ? Number(s) < o.length : s in o)) {
      throw errors.internal(`jsonpatch: doc is missing path: ${'/' + segs.join('/')}`);
    }
    return o[Array.isArray(o) ? Number(s) : s];
  }, doc);
  const remove = (segs) => {
    get(segs);
    const p = parentOf(segs), last = segs[segs.length - 1];
    if (Array.isArray(p)) p.splice(Number(last), 1); else delete p[last];
  };
  const add = (segs, value) => {
    if (segs.length === 0) { doc = value; return; }
    const p = parentOf(segs), last = segs[segs.length - 1];
    if (Array.isArray(p)) p.splice(last === '-' ? p.length : Number(last), 0, value); else p[last] = value;
  };
  for (const op of ops) {
    const segs = pointer(op.path);
    switch (op.op) {
      case 'add': add(segs, clone(op.value)); break;
      case 'remove': remove(segs); break;
      case 'replace': get(segs); remove(segs); add(segs, clone(op.value)); break;
      case 'move': { const from = pointer(op.from); const v = get(from); remove(from); add(segs, v); break; }
      case 'copy': add(segs, clone(get(pointer(op.from)))); break;
      case 'test':
        if (JSON.stringify(get(segs)) !== JSON.stringify(op.value)) {
          throw errors.internal(`testing value ${op.path} failed: test failed`);
        }
        break;
      default: throw errors.badRequest(`json patch: unknown op ${op.op}`);
    }
  }
  return doc;
}

module.exports = { mergePatch, strategicMergePatch, jsonPatch, isObj, clone };
