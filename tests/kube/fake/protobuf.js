'use strict';
// Decodes the Kubernetes protobuf wire format for the few kinds clients send that way: helm
// writes its release Secrets as `application/vnd.kubernetes.protobuf`, and its DeleteOptions
// too. The envelope is the 4 bytes `k8s\0`, then runtime.Unknown {1: TypeMeta {1: apiVersion,
// 2: kind}, 2: raw}. Only Secret, ConfigMap, Namespace, ServiceAccount and DeleteOptions are
// understood (what helm and `kubectl create secret|configmap|namespace|serviceaccount` send);
// anything else is a 415 from the caller, so `kubectl create deployment` fails here. Replies are always JSON (clients accept that).

function reader(buf) {
  let pos = 0;
  const varint = () => {
    let result = 0n, shift = 0n;
    for (;;) {
      const b = buf[pos++];
      if (b === undefined) throw new Error('truncated varint');
      result |= BigInt(b & 0x7f) << shift;
      if (!(b & 0x80)) return result;
      shift += 7n;
    }
  };
  return {
    done: () => pos >= buf.length,
    field() {
      const key = Number(varint());
      const no = key >>> 3, wire = key & 7;
      if (wire === 0) return { no, value: varint() };
      if (wire === 2) { const len = Number(varint()); const v = buf.subarray(pos, pos + len); pos += len; return { no, bytes: v }; }
      if (wire === 1) { pos += 8; return { no }; }
      if (wire === 5) { pos += 4; return { no }; }
      throw new Error(`unsupported wire type ${wire}`);
    },
  };
}

function fields(buf) {
  const r = reader(buf), out = [];
  while (!r.done()) out.push(r.field());
  return out;
}

const str = f => Buffer.from(f.bytes).toString('utf8');

function mapEntry(bytes, asBytes) {
  let k = '', v = asBytes ? Buffer.alloc(0) : '';
  for (const f of fields(bytes)) {
    if (f.no === 1) k = str(f);
    if (f.no === 2) v = asBytes ? Buffer.from(f.bytes) : str(f);
  }
  return [k, v];
}

function time(bytes) {
  let seconds = 0n;
  for (const f of fields(bytes)) if (f.no === 1) seconds = f.value;
  return new Date(Number(seconds) * 1000).toISOString().replace(/\.\d{3}Z$/, 'Z');
}

function ownerReference(bytes) {
  const o = {};
  for (const f of fields(bytes)) {
    if (f.no === 1) o.kind = str(f);
    if (f.no === 3) o.name = str(f);
    if (f.no === 4) o.uid = str(f);
    if (f.no === 5) o.apiVersion = str(f);
    if (f.no === 6) o.controller = f.value !== 0n;
    if (f.no === 7) o.blockOwnerDeletion = f.value !== 0n;
  }
  return o;
}

function objectMeta(bytes) {
  const m = {};
  for (const f of fields(bytes)) {
    switch (f.no) {
      case 1: m.name = str(f); break;
      case 2: m.generateName = str(f); break;
      case 3: m.namespace = str(f); break;
      case 5: m.uid = str(f); break;
      case 6: m.resourceVersion = str(f); break;
      case 7: m.generation = Number(f.value); break;
      case 8: m.creationTimestamp = time(f.bytes); break;
      case 9: m.deletionTimestamp = time(f.bytes); break;
      case 11: { const [k, v] = mapEntry(f.bytes); (m.labels ||= {})[k] = v; break; }
      case 12: { const [k, v] = mapEntry(f.bytes); (m.annotations ||= {})[k] = v; break; }
      case 13: (m.ownerReferences ||= []).push(ownerReference(f.bytes)); break;
      case 14: (m.finalizers ||= []).push(str(f)); break;
      default: break;
    }
  }
  for (const k of Object.keys(m)) if (m[k] === '') delete m[k];
  return m;
}

function secret(bytes) {
  const s = { metadata: {} };
  for (const f of fields(bytes)) {
    if (f.no === 1) s.metadata = objectMeta(f.bytes);
    if (f.no === 2) { const [k, v] = mapEntry(f.bytes, true); (s.data ||= {})[k] = v.toString('base64'); }
    if (f.no === 3) s.type = str(f);
    if (f.no === 4) { const [k, v] = mapEntry(f.bytes); (s.stringData ||= {})[k] = v; }
    if (f.no === 5) s.immutable = f.value !== 0n;
  }
  return s;
}

function configMap(bytes) {
  const c = { metadata: {} };
  for (const f of fields(bytes)) {
    if (f.no === 1) c.metadata = objectMeta(f.bytes);
    if (f.no === 2) { const [k, v] = mapEntry(f.bytes); (c.data ||= {})[k] = v; }
    if (f.no === 3) { const [k, v] = mapEntry(f.bytes, true); (c.binaryData ||= {})[k] = v.toString('base64'); }
    if (f.no === 4) c.immutable = f.value !== 0n;
  }
  return c;
}

function deleteOptions(bytes) {
  const d = {};
  for (const f of fields(bytes)) {
    if (f.no === 1) d.gracePeriodSeconds = Number(f.value);
    if (f.no === 3) d.orphanDependents = f.value !== 0n;
    if (f.no === 4) d.propagationPolicy = str(f);
  }
  return d;
}

function namespace(bytes) {
  const n = { metadata: {} };
  for (const f of fields(bytes)) {
    if (f.no === 1) n.metadata = objectMeta(f.bytes);
    if (f.no === 2) for (const g of fields(f.bytes)) if (g.no === 1) ((n.spec ||= {}).finalizers ||= []).push(str(g));
  }
  return n;
}

function serviceAccount(bytes) {
  const a = { metadata: {} };
  for (const f of fields(bytes)) {
    if (f.no === 1) a.metadata = objectMeta(f.bytes);
    if (f.no === 3) for (const g of fields(f.bytes)) if (g.no === 1) (a.imagePullSecrets ||= []).push({ name: str(g) });
    if (f.no === 4) a.automountServiceAccountToken = f.value !== 0n;
  }
  return a;
}

const DECODERS = { Secret: secret, ConfigMap: configMap, Namespace: namespace, ServiceAccount: serviceAccount, DeleteOptions: deleteOptions };

// Returns the object as JSON would have carried it, or null when its kind is not understood.
function decode(buf) {
  if (buf.length < 4 || buf.subarray(0, 4).toString('latin1') !== 'k8s\0') throw new Error('no k8s protobuf envelope');
  let apiVersion = '', kind = '', raw = Buffer.alloc(0);
  for (const f of fields(buf.subarray(4))) {
    if (f.no === 1) for (const t of fields(f.bytes)) { if (t.no === 1) apiVersion = str(t); if (t.no === 2) kind = str(t); }
    if (f.no === 2) raw = f.bytes;
  }
  const dec = DECODERS[kind];
  if (!dec) return null;
  return { apiVersion, kind, ...dec(raw) };
}

module.exports = { decode };
