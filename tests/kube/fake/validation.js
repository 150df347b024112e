'use strict';
// Validates custom resources from their CRD as the real API server does, in its order:
//   1. defaults from the schema's `default`s (top-down, so a defaulted object gets its own
//      children's defaults),
//   2. unknown fields: pruned; with fieldValidation=Strict refused (400, `unknown field
//      "spec.x"`), with Warn (the default) pruned and reported in a Warning header;
//      `x-kubernetes-preserve-unknown-fields` and embedded resources respected,
//   3. the openAPIV3Schema with ajv (types, enums, patterns, bounds, required, ...), and the
//      uniqueness of x-kubernetes-list-type map keys and set items,
//   4. every CEL `x-kubernetes-validations` rule with @bufbuild/cel, `self` bound to the
//      node (objects as maps, integers as BigInt; at the root only metadata.name and
//      generateName are visible) and `oldSelf` to the correlated old node on update
//      (transition rules are skipped on create, as for real). CEL is skipped when step 3
//      found a type or enum error, with the same cause the real server adds.
// Failures are causes {field, message, reason} in the real server's wording; the caller
// turns them into a 422 Invalid Status. Approximated: CEL rules are parsed, not type-checked,
// when the CRD is created (a rule with a type error fails on the first object instead of
// refusing the CRD); no CEL cost budget; only the CEL strings extension, not Kubernetes'
// own CEL libraries (quantity, url, ip, ...); formats other than date-time are not checked.

const Ajv = require('ajv');
const { parse, plan, celEnv, isCelError } = require('@bufbuild/cel');
const { strings } = require('@bufbuild/cel/ext');
const { RE2JS } = require('@bufbuild/re2');
const { isObj } = require('./patch');

const OBJECT_META_FIELDS = new Set(['name', 'generateName', 'namespace', 'selfLink', 'uid',
  'resourceVersion', 'generation', 'creationTimestamp', 'deletionTimestamp',
  'deletionGracePeriodSeconds', 'labels', 'annotations', 'ownerReferences', 'finalizers', 'managedFields']);

function makeAjv() {
  const ajv = new Ajv({ strict: false, allErrors: true, validateFormats: true, verbose: true });
  for (const f of ['int32', 'int64', 'float', 'double', 'byte', 'binary', 'password', 'uri', 'email',
    'hostname', 'ipv4', 'ipv6', 'cidr', 'mac', 'uuid', 'duration', 'quantity', 'date']) ajv.addFormat(f, true);
  ajv.addFormat('date-time', /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:\d{2})$/);
  return ajv;
}
const ajv = makeAjv();

// A Kubernetes structural schema as a JSON Schema ajv understands.
function toJsonSchema(s) {
  if (Array.isArray(s)) return s.map(toJsonSchema);
  if (!isObj(s)) return s;
  const out = {};
  for (const [k, v] of Object.entries(s)) {
    if (k.startsWith('x-kubernetes-') || k === 'default' || k === 'nullable' || k === 'example' || k === 'externalDocs') continue;
    out[k] = ['properties', 'patternProperties', 'definitions'].includes(k)
      ? Object.fromEntries(Object.entries(v).map(([pk, pv]) => [pk, toJsonSchema(pv)]))
      : toJsonSchema(v);
  }
  if (s['x-kubernetes-int-or-string'] && !s.anyOf && !s.oneOf) out.anyOf = [{ type: 'integer' }, { type: 'string' }];
  if (s.nullable && out.type) out.type = [out.type, 'null'];
  if (s['x-kubernetes-preserve-unknown-fields'] && !s.type) delete out.type;
  return out;
}

function fieldPath(instancePath) {
  if (!instancePath) return '';
  return instancePath.slice(1).split('/').map(s => s.replace(/~1/g, '/').replace(/~0/g, '~'))
    .reduce((p, seg) => (/^\d+$/.test(seg) ? `${p}[${seg}]` : p ? `${p}.${seg}` : seg), '');
}

function typeName(v) {
  if (v === null) return 'null';
  if (Array.isArray(v)) return 'array';
  if (typeof v === 'number') return Number.isInteger(v) ? 'integer' : 'number';
  return typeof v;
}

const show = v => (typeof v === 'string' ? JSON.stringify(v) : isObj(v) || Array.isArray(v) ? `"${typeName(v)}"` : String(v));

function ajvErrorToCause(e) {
  const path = fieldPath(e.instancePath);
  const p = e.params;
  const v = e.data;
  switch (e.keyword) {
    case 'type':
      return { field: path, reason: 'FieldValueTypeInvalid',
        message: `Invalid value: "${typeName(v)}": ${path} in body must be of type ${[].concat(p.type).join(',')}: "${typeName(v)}"` };
    case 'anyOf':
      return { field: path, reason: 'FieldValueTypeInvalid',
        message: `Invalid value: "${typeName(v)}": ${path} in body must be of type integer,string: "${typeName(v)}"` };
    case 'required': {
      const f = path ? `${path}.${p.missingProperty}` : p.missingProperty;
      return { field: f, reason: 'FieldValueRequired', message: 'Required value' };
    }
    case 'enum':
      return { field: path, reason: 'FieldValueNotSupported',
        message: `Unsupported value: ${JSON.stringify(v)}: supported values: ${p.allowedValues.map(a => JSON.stringify(a)).join(', ')}` };
    case 'pattern':
      return { field: path, message: `Invalid value: ${show(v)}: ${path} in body should match '${p.pattern}'` };
    case 'minimum': case 'exclusiveMinimum':
      return { field: path, message: `Invalid value: ${show(v)}: ${path} in body should be greater than ${e.keyword === 'minimum' ? 'or equal to ' : ''}${p.limit}` };
    case 'maximum': case 'exclusiveMaximum':
      return { field: path, message: `Invalid value: ${show(v)}: ${path} in body should be less than ${e.keyword === 'maximum' ? 'or equal to ' : ''}${p.limit}` };
    case 'maxLength':
      return { field: path, reason: 'FieldValueTooLong', message: `Too long: may not be more than ${p.limit} bytes` };
    case 'minLength':
      return { field: path, message: `Invalid value: ${show(v)}: ${path} in body should be at least ${p.limit} chars long` };
    case 'maxItems':
      return { field: path, reason: 'FieldValueTooMany', message: `Too many: ${v.length}: must have at most ${p.limit} items` };
    case 'minItems':
      return { field: path, message: `Invalid value: ${v.length}: ${path} in body should have at least ${p.limit} items` };
    case 'maxProperties':
      return { field: path, reason: 'FieldValueTooMany', message: `Too many: ${Object.keys(v).length}: must have at most ${p.limit} items` };
    case 'minProperties':
      return { field: path, message: `Invalid value: ${Object.keys(v).length}: ${path} in body should have at least ${p.limit} properties` };
    case 'format':
      return { field: path, message: `Invalid value: ${show(v)}: ${path} in body must be of type ${p.format}: ${show(v)}` };
    default:
      return { field: path, message: `Invalid value: ${show(v)}: ${e.message}` };
  }
}

// Values as CEL sees them: objects as maps, integers as BigInt (from the schema's type).
function toCel(v, schema) {
  if (v === null || v === undefined) return null;
  if (Array.isArray(v)) return v.map(x => toCel(x, schema && schema.items));
  if (isObj(v)) {
    return new Map(Object.entries(v).map(([k, x]) => [k, toCel(x,
      schema && ((schema.properties && schema.properties[k]) || (isObj(schema.additionalProperties) ? schema.additionalProperties : undefined)))]));
  }
  if (typeof v === 'number') {
    const t = schema && schema.type;
    if (t === 'number') return v;
    return Number.isInteger(v) ? BigInt(v) : v;
  }
  return v;
}

function schemaTypeName(s) {
  if (s.type) return s.type;
  return '';
}

// Rules that parsed when their CRD was stored, each with its evaluation plan; a rule that
// did not parse is never evaluated.
const compiledRules = new WeakMap();
// matches() with each pattern compiled once (the default compiles it on every call).
const regexes = new Map();
const CEL_ENV = celEnv({ funcs: strings, re2: { compile(pattern) {
  if (!regexes.has(pattern)) regexes.set(pattern, RE2JS.compile(pattern));
  return regexes.get(pattern);
} } });

function compileRules(schema, path, problems) {
  for (const [i, r] of (schema['x-kubernetes-validations'] || []).entries()) {
    const at = `${path}.x-kubernetes-validations[${i}]`;
    let rulePlan, messagePlan = null;
    try { rulePlan = plan(CEL_ENV, parse(r.rule)); } catch (e) {
      problems.push({ field: `${at}.rule`, message: `Invalid value: ${JSON.stringify(r.rule)}: compilation failed: ERROR: ${e.message}` });
    }
    if (r.messageExpression) {
      try { messagePlan = plan(CEL_ENV, parse(r.messageExpression)); } catch (e) {
        problems.push({ field: `${at}.messageExpression`,
          message: `Invalid value: ${JSON.stringify(r.messageExpression)}: messageExpression compilation failed: ERROR: ${e.message}` });
      }
    }
    if (rulePlan) compiledRules.set(r, { rulePlan, messagePlan });
  }
  for (const [k, v] of Object.entries(schema.properties || {})) compileRules(v, `${path}.properties[${k}]`, problems);
  if (isObj(schema.additionalProperties)) compileRules(schema.additionalProperties, `${path}.additionalProperties`, problems);
  if (isObj(schema.items)) compileRules(schema.items, `${path}.items`, problems);
}

const PREFIX = { FieldValueForbidden: 'Forbidden', FieldValueRequired: 'Required value' };

class SchemaValidator {
  // schema: a version's openAPIV3Schema. Throws {problems} when it cannot be compiled.
  constructor(schema, schemaPath) {
    this.schema = structuredClone(schema || { type: 'object', 'x-kubernetes-preserve-unknown-fields': true });
    const problems = [];
    compileRules(this.schema, schemaPath, problems);
    try {
      this.ajvValidate = ajv.compile(toJsonSchema(this.schema));
    } catch (e) {
      problems.push({ field: schemaPath, message: `Invalid value: "object": ${e.message}` });
    }
    if (problems.length) { const err = new Error('invalid schema'); err.problems = problems; throw err; }
  }

  // Fills in defaults, in place.
  applyDefaults(obj) { defaults(obj, this.schema); }

  // Removes unknown fields in place; returns their paths.
  prune(obj) {
    const unknown = [];
    prune(obj, this.schema, '', unknown, true);
    return unknown;
  }

  // Returns causes; empty when valid. onlyStatus: a status subresource write.
  validate(obj, oldObj, { onlyStatus = false } = {}) {
    let causes = [];
    if (!this.ajvValidate(obj)) {
      const errs = this.ajvValidate.errors.filter(e => !/\/anyOf\/\d+\//.test(e.schemaPath));
      causes = errs.map(ajvErrorToCause);
    }
    listKeys(obj, this.schema, '', causes);
    if (onlyStatus) causes = causes.filter(c => c.field === 'status' || c.field.startsWith('status.') || c.field.startsWith('status['));
    if (causes.some(c => c.reason === 'FieldValueTypeInvalid' || c.reason === 'FieldValueNotSupported')) {
      causes.push({ field: '<nil>', message: 'Invalid value: "null": some validation rules were not checked because the object was invalid; correct the existing errors to complete validation' });
      return causes;
    }
    const rootSelf = { ...obj, metadata: pick(obj.metadata, ['name', 'generateName']) };
    const rootOld = oldObj ? { ...oldObj, metadata: pick(oldObj.metadata, ['name', 'generateName']) } : undefined;
    if (onlyStatus) {
      if (this.schema.properties && this.schema.properties.status) {
        celWalk(this.schema.properties.status, obj.status, oldObj && oldObj.status, 'status', causes);
      }
    } else celWalk(this.schema, rootSelf, rootOld, '', causes);
    return causes;
  }
}

// x-kubernetes-list-type map and set: an item whose keys (map) or value (set) an earlier
// item has is refused, as the real server's structural validation does.
function listKeys(v, s, path, causes) {
  if (!s || v === null || v === undefined) return;
  if (Array.isArray(v)) {
    const type = s['x-kubernetes-list-type'];
    const seen = new Set();
    v.forEach((x, i) => {
      let key = null;
      let shown = null;
      if (type === 'map' && isObj(x)) {
        const keys = s['x-kubernetes-list-map-keys'] || [];
        key = JSON.stringify(keys.map(k => x[k]));
        shown = `map[string]interface {}{${keys.filter(k => x[k] !== undefined).map(k => `${JSON.stringify(k)}:${JSON.stringify(x[k])}`).join(', ')}}`;
      } else if (type === 'set') {
        key = JSON.stringify(x);
        shown = JSON.stringify(x);
      }
      if (key !== null) {
        if (seen.has(key)) causes.push({ field: `${path}[${i}]`, reason: 'FieldValueDuplicate', message: `Duplicate value: ${shown}` });
        seen.add(key);
      }
      listKeys(x, s.items, `${path}[${i}]`, causes);
    });
  } else if (isObj(v)) {
    for (const [k, x] of Object.entries(v)) {
      const ps = (s.properties && s.properties[k]) || (isObj(s.additionalProperties) ? s.additionalProperties : undefined);
      listKeys(x, ps, path ? `${path}.${k}` : k, causes);
    }
  }
}

function pick(o, keys) {
  const out = {};
  for (const k of keys) if (o && o[k] !== undefined) out[k] = o[k];
  return out;
}

function defaults(v, s) {
  if (!s) return;
  if (isObj(v)) {
    for (const [k, ps] of Object.entries(s.properties || {})) {
      if (v[k] === undefined && ps.default !== undefined) v[k] = structuredClone(ps.default);
      if (v[k] !== undefined) defaults(v[k], ps);
    }
    if (isObj(s.additionalProperties)) for (const x of Object.values(v)) defaults(x, s.additionalProperties);
  } else if (Array.isArray(v) && s.items) for (const x of v) defaults(x, s.items);
}

function prune(v, s, path, unknown, root) {
  if (!s) return;
  if (Array.isArray(v)) { v.forEach((x, i) => prune(x, s.items, `${path}[${i}]`, unknown, false)); return; }
  if (!isObj(v) || s['x-kubernetes-int-or-string']) return;
  const preserve = s['x-kubernetes-preserve-unknown-fields'];
  for (const k of Object.keys(v)) {
    const p = path ? `${path}.${k}` : k;
    if ((root || s['x-kubernetes-embedded-resource']) && (k === 'apiVersion' || k === 'kind')) continue;
    if ((root || s['x-kubernetes-embedded-resource']) && k === 'metadata') {
      if (isObj(v.metadata)) for (const mk of Object.keys(v.metadata)) {
        if (!OBJECT_META_FIELDS.has(mk)) { unknown.push(`${p}.${mk}`); delete v.metadata[mk]; }
      }
      continue;
    }
    if (s.properties && s.properties[k]) prune(v[k], s.properties[k], p, unknown, false);
    else if (isObj(s.additionalProperties)) prune(v[k], s.additionalProperties, p, unknown, false);
    else if (!preserve && s.additionalProperties !== true) { unknown.push(p); delete v[k]; }
  }
}

function celWalk(s, v, old, path, causes) {
  if (v === undefined || !s) return;
  for (const r of s['x-kubernetes-validations'] || []) {
    const compiled = compiledRules.get(r);
    if (!compiled) continue;
    const usesOldSelf = /\boldSelf\b/.test(r.rule);
    if (usesOldSelf && old === undefined && !r.optionalOldSelf) continue;
    const bindings = { self: toCel(v, s) };
    if (usesOldSelf) bindings.oldSelf = toCel(old, s);
    let result;
    try { result = compiled.rulePlan(bindings); } catch (e) { result = e; }
    if (result === true) continue;
    let message = r.message || `failed rule: ${r.rule.trim()}`;
    if (r.messageExpression) {
      let m = null;
      try { m = compiled.messagePlan && compiled.messagePlan(bindings); } catch { m = null; }
      if (typeof m === 'string' && m.trim() !== '') message = m;
    }
    if (isCelError(result) || result instanceof Error) message = `${message}: ${result.message}`;
    const field = r.fieldPath ? (path + r.fieldPath).replace(/^\./, '') : path;
    const reason = r.reason || 'FieldValueInvalid';
    const text = PREFIX[reason] ? `${PREFIX[reason]}: ${message}` : `Invalid value: "${schemaTypeName(s)}": ${message}`;
    causes.push({ field: field || '<nil>', reason, message: text });
  }
  const sub = (k) => (path ? `${path}.${k}` : k);
  if (isObj(v)) {
    for (const [k, x] of Object.entries(v)) {
      const ps = (s.properties && s.properties[k]) || (isObj(s.additionalProperties) ? s.additionalProperties : undefined);
      if (ps) celWalk(ps, x, isObj(old) ? old[k] : undefined, sub(k), causes);
    }
  } else if (Array.isArray(v) && s.items) {
    const keys = s['x-kubernetes-list-type'] === 'map' ? s['x-kubernetes-list-map-keys'] || [] : null;
    v.forEach((x, i) => {
      let o;
      if (keys && Array.isArray(old)) o = old.find(y => keys.every(k => isObj(y) && isObj(x) && y[k] === x[k]));
      celWalk(s.items, x, o, `${path}[${i}]`, causes);
    });
  }
}

module.exports = { SchemaValidator };
