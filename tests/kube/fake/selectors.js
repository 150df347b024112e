'use strict';
// Label and field selectors as the API server parses them from `labelSelector=` and
// `fieldSelector=`: `a=b`, `a==b`, `a!=b`, `a in (x,y)`, `a notin (x)`, `a`, `!a` for labels;
// `path=value`, `path!=value` for fields. Field selectors on any kind accept metadata.name
// and metadata.namespace; a few kinds accept more (as the real server's field label
// conversion does); anything else is a 400 as it is for real.

const { errors } = require('./status');

function splitTerms(s) {
  const terms = [];
  let depth = 0, cur = '';
  for (const ch of s) {
    if (ch === '(') depth++;
    if (ch === ')') depth--;
    if (ch === ',' && depth === 0) { terms.push(cur); cur = ''; } else cur += ch;
  }
  if (cur.trim() !== '') terms.push(cur);
  return terms.map(t => t.trim()).filter(t => t !== '');
}

function parseLabelSelector(s) {
  if (!s) return () => true;
  const preds = splitTerms(s).map(term => {
    let m;
    if ((m = term.match(/^([^\s!=]+)\s+(in|notin)\s+\((.*)\)$/))) {
      const [, key, op, list] = m;
      const vals = new Set(list.split(',').map(v => v.trim()));
      return op === 'in' ? l => key in l && vals.has(l[key]) : l => !(key in l) || !vals.has(l[key]);
    }
    if ((m = term.match(/^([^\s!=]+)\s*!=\s*(\S*)$/))) { const [, k, v] = m; return l => l[k] !== v; }
    if ((m = term.match(/^([^\s!=]+)\s*==?\s*(\S*)$/))) { const [, k, v] = m; return l => l[k] === v; }
    if ((m = term.match(/^!\s*([^\s!=]+)$/))) { const k = m[1]; return l => !(k in l); }
    if ((m = term.match(/^([^\s!=()]+)$/))) { const k = m[1]; return l => k in l; }
    throw errors.badRequest(`unable to parse requirement: found '${term}', expected: in, notin, =, ==, !=, gt, lt`);
  });
  return obj => { const l = (obj.metadata && obj.metadata.labels) || {}; return preds.every(p => p(l)); };
}

const EXTRA_FIELDS = {
  pods: ['spec.nodeName', 'spec.restartPolicy', 'spec.schedulerName', 'spec.serviceAccountName', 'status.phase', 'status.podIP'],
  events: ['involvedObject.kind', 'involvedObject.namespace', 'involvedObject.name', 'involvedObject.uid',
    'involvedObject.apiVersion', 'involvedObject.resourceVersion', 'involvedObject.fieldPath', 'reason', 'source', 'type'],
  secrets: ['type'],
  namespaces: ['status.phase'],
};

function getPath(obj, path) {
  return path.split('.').reduce((o, k) => (o == null ? undefined : o[k]), obj);
}

function parseFieldSelector(s, res) {
  if (!s) return () => true;
  const allowed = new Set(['metadata.name', 'metadata.namespace', ...(EXTRA_FIELDS[res.plural] || [])]);
  const preds = splitTerms(s).map(term => {
    const m = term.match(/^([^!=]+?)\s*(==|!=|=)\s*(.*)$/);
    if (!m) throw errors.badRequest(`invalid selector: '${s}'; can't understand '${term}'`);
    const [, field, op, value] = m;
    if (!allowed.has(field)) {
      throw errors.badRequest(`field label not supported: ${field}`);
    }
    const get = o => { const v = getPath(o, field); return v == null ? '' : String(v); };
    return op === '!=' ? o => get(o) !== value : o => get(o) === value;
  });
  return obj => preds.every(p => p(obj));
}

module.exports = { parseLabelSelector, parseFieldSelector };
