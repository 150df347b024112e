'use strict';
// Server-side printing: the `meta.k8s.io/v1` Table that `kubectl get` asks for
// (`Accept: application/json;as=Table;v=v1;g=meta.k8s.io`). Custom resources get their CRD's
// additionalPrinterColumns, each jsonPath evaluated as the real server does (simple paths,
// `[n]`, `[*]` and the `[?(@.type=="Ready")]` filter), `date` columns as ages ("5m"); other
// kinds get a few columns like the real ones (pods, deployments) or Name and Age.

function humanDuration(ms) {
  const seconds = Math.floor(ms / 1000);
  if (seconds < -1) return '<invalid>';
  if (seconds < 0) return '0s';
  if (seconds < 120) return `${seconds}s`;
  const minutes = Math.floor(seconds / 60);
  if (minutes < 10) { const s = seconds % 60; return s === 0 ? `${minutes}m` : `${minutes}m${s}s`; }
  if (minutes < 180) return `${minutes}m`;
  const hours = Math.floor(minutes / 60);
  if (hours < 8) { const m = minutes % 60; return m === 0 ? `${hours}h` : `${hours}h${m}m`; }
  if (hours < 48) return `${hours}h`;
  if (hours < 24 * 8) { const h = hours % 24; return h === 0 ? `${Math.floor(hours / 24)}d` : `${Math.floor(hours / 24)}d${h}h`; }
  if (hours < 24 * 365 * 2) return `${Math.floor(hours / 24)}d`;
  if (hours < 24 * 365 * 8) { const d = Math.floor(hours / 24) % 365; return `${Math.floor(hours / 24 / 365)}y${d}d`; }
  return `${Math.floor(hours / 24 / 365)}y`;
}

function age(ts) { return ts ? humanDuration(Date.now() - Date.parse(ts)) : '<unknown>'; }

// Parses `.a.b[0].c[?(@.type=="Ready")].status` (optionally wrapped in `{}`) into steps.
function parseJsonPath(path) {
  let p = path.trim();
  if (p.startsWith('{') && p.endsWith('}')) p = p.slice(1, -1);
  const steps = [];
  const re = /\.([A-Za-z0-9_-]+)|\[\?\(@\.([A-Za-z0-9_.-]+)\s*(==|!=)\s*(?:"([^"]*)"|'([^']*)'|([^)\s]+))\)\]|\[(\*|-?\d+)\]|\.\*/y;
  let m;
  while (re.lastIndex < p.length && (m = re.exec(p))) {
    if (m[1] !== undefined) steps.push({ field: m[1] });
    else if (m[2] !== undefined) steps.push({ filter: m[2].split('.'), op: m[3], value: m[4] ?? m[5] ?? m[6] });
    else if (m[7] !== undefined) steps.push(m[7] === '*' ? { all: true } : { index: Number(m[7]) });
    else steps.push({ all: true });
  }
  if (re.lastIndex !== p.length && p.length) throw new Error(`unsupported jsonPath ${path}`);
  return steps;
}

function evalJsonPath(obj, path) {
  let cur = [obj];
  for (const s of parseJsonPath(path)) {
    const next = [];
    for (const v of cur) {
      if (v == null) continue;
      if (s.field !== undefined) { if (typeof v === 'object' && !Array.isArray(v) && s.field in v) next.push(v[s.field]); }
      else if (s.index !== undefined) { if (Array.isArray(v)) { const i = s.index < 0 ? v.length + s.index : s.index; if (i in v) next.push(v[i]); } }
      else if (s.all) { if (Array.isArray(v)) next.push(...v); else if (typeof v === 'object') next.push(...Object.values(v)); }
      else if (s.filter) {
        for (const item of Array.isArray(v) ? v : []) {
          const got = s.filter.reduce((o, k) => (o == null ? undefined : o[k]), item);
          const eq = got !== undefined && String(got) === s.value;
          if (s.op === '==' ? eq : (got !== undefined && !eq)) next.push(item);
        }
      }
    }
    cur = next;
  }
  return cur;
}

function cellFor(type, value) {
  if (type === 'date') return typeof value === 'string' ? age(value) : null;
  if (type === 'string') return typeof value === 'object' ? JSON.stringify(value) : String(value);
  return value;
}

function columnsFor(res) {
  if (res.printerColumns && res.printerColumns.length) {
    return res.printerColumns.map(c => ({ name: c.name, type: c.type, format: c.format || '',
      description: c.description || '', priority: c.priority || 0,
      cell: obj => { const r = evalJsonPath(obj, c.jsonPath); return r.length ? cellFor(c.type, r[0]) : null; } }));
  }
  const ageCol = { name: 'Age', type: 'string', format: '', description: 'CreationTimestamp', priority: 0,
    cell: obj => age(obj.metadata.creationTimestamp) };
  if (res.plural === 'pods') {
    const cs = o => (o.status && o.status.containerStatuses) || [];
    return [
      { name: 'Ready', type: 'string', cell: o => `${cs(o).filter(c => c.ready).length}/${(o.spec.containers || []).length}` },
      { name: 'Status', type: 'string', cell: o => podStatusReason(o) },
      { name: 'Restarts', type: 'string', cell: o => String(cs(o).reduce((n, c) => n + (c.restartCount || 0), 0)) },
      ageCol,
    ];
  }
  if (res.plural === 'deployments') {
    const st = o => o.status || {};
    return [
      { name: 'Ready', type: 'string', cell: o => `${st(o).readyReplicas || 0}/${o.spec.replicas ?? 1}` },
      { name: 'Up-to-date', type: 'integer', cell: o => st(o).updatedReplicas || 0 },
      { name: 'Available', type: 'integer', cell: o => st(o).availableReplicas || 0 },
      ageCol,
    ];
  }
  return [ageCol];
}

function podStatusReason(pod) {
  if (pod.metadata.deletionTimestamp) return 'Terminating';
  for (const c of (pod.status && pod.status.containerStatuses) || []) {
    if (c.state && c.state.waiting && c.state.waiting.reason) return c.state.waiting.reason;
    if (c.state && c.state.terminated && c.state.terminated.reason) return c.state.terminated.reason;
  }
  return (pod.status && pod.status.phase) || 'Pending';
}

function partialMetadata(obj) {
  return { kind: 'PartialObjectMetadata', apiVersion: 'meta.k8s.io/v1', metadata: obj.metadata };
}

// includeObject: None | Metadata (the default) | Object, as the `includeObject` parameter.
function toTable(res, objects, listMeta, includeObject = 'Metadata') {
  const cols = columnsFor(res);
  return {
    kind: 'Table', apiVersion: 'meta.k8s.io/v1', metadata: listMeta || {},
    columnDefinitions: [
      { name: 'Name', type: 'string', format: 'name', description: 'Name must be unique within a namespace.', priority: 0 },
      ...cols.map(c => ({ name: c.name, type: c.type, format: c.format || '', description: c.description || '', priority: c.priority || 0 })),
    ],
    rows: objects.map(o => {
      const row = { cells: [o.metadata.name, ...cols.map(c => c.cell(o))] };
      if (includeObject === 'Object') row.object = o;
      else if (includeObject !== 'None') row.object = partialMetadata(o);
      return row;
    }),
  };
}

function wantsTable(accept) {
  return /as=Table/.test(accept || '');
}

module.exports = { toTable, wantsTable };
