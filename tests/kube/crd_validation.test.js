'use strict';
// CRD validation features beyond crds/lane.yaml's, through kubectl: a rule that does not
// compile refuses the CRD; transition rules (oldSelf) apply on update only; messageExpression,
// fieldPath and reason shape the cause; defaults; x-kubernetes-preserve-unknown-fields.

const test = require('node:test');
const assert = require('node:assert/strict');
const fs = require('fs');
const path = require('path');
const yaml = require('js-yaml');
const { FakeCluster } = require('./harness');

let cluster;
test.before(async () => { cluster = await FakeCluster.start(); });
test.after(async () => { if (cluster) await cluster.stop(); });

function crd(name, specSchema) {
  return { apiVersion: 'apiextensions.k8s.io/v1', kind: 'CustomResourceDefinition', metadata: { name: `${name}s.test.example` },
    spec: { group: 'test.example', scope: 'Namespaced',
      names: { kind: name[0].toUpperCase() + name.slice(1), plural: `${name}s`, singular: name },
      versions: [{ name: 'v1', served: true, storage: true, schema: { openAPIV3Schema: { type: 'object', properties: { spec: specSchema } } } }] } };
}

async function applyObj(obj, extra = []) {
  const f = path.join(cluster.dir, `${obj.kind}-${obj.metadata.name}-${Date.now()}.yaml`);
  fs.writeFileSync(f, yaml.dump(obj));
  return cluster.kubectl(['apply', ...extra, '-f', f]);
}

test('a CRD whose CEL rule does not compile is refused, naming the rule', async () => {
  const r = await applyObj(crd('broken', { type: 'object', 'x-kubernetes-validations': [{ rule: 'self.size >', message: 'x' }] }));
  assert.notEqual(r.code, 0);
  assert.match(r.stderr, /spec\.versions\[0\]\.schema\.openAPIV3Schema\.properties\[spec\]\.x-kubernetes-validations\[0\]\.rule: Invalid value: "self\.size >": compilation failed/);
});

test('transition rules, messageExpression, fieldPath and reason', async () => {
  const r = await applyObj(crd('gadget', { type: 'object', properties: {
    size: { type: 'integer', default: 1, 'x-kubernetes-validations': [{ rule: 'self >= oldSelf', message: 'size may only grow' }] },
    name: { type: 'string', 'x-kubernetes-validations': [{ rule: 'self == oldSelf', message: 'name is immutable', reason: 'FieldValueForbidden' }] },
    limits: { type: 'object', properties: { max: { type: 'integer' } } },
    extra: { type: 'object', 'x-kubernetes-preserve-unknown-fields': true },
  }, 'x-kubernetes-validations': [
    { rule: '!has(self.limits) || !has(self.limits.max) || self.size <= self.limits.max', messageExpression: "'size ' + string(self.size) + ' exceeds ' + string(self.limits.max)", fieldPath: '.limits.max' },
  ] }));
  assert.equal(r.code, 0, r.stderr);
  const gadget = spec => ({ apiVersion: 'test.example/v1', kind: 'Gadget', metadata: { name: 'g' }, spec });
  assert.equal((await applyObj(gadget({ name: 'a', extra: { anything: { goes: [1, 2] } } }))).code, 0);
  const stored = await cluster.getJson(['gadget', 'g']);
  assert.equal(stored.spec.size, 1, 'default applied');
  assert.deepEqual(stored.spec.extra, { anything: { goes: [1, 2] } }, 'preserved unknown fields');
  const shrink = await applyObj(gadget({ name: 'a', size: 0 }));
  assert.match(shrink.stderr, /spec\.size: Invalid value: "integer": size may only grow/);
  const rename = await applyObj(gadget({ name: 'b', size: 2 }));
  assert.match(rename.stderr, /spec\.name: Forbidden: name is immutable/);
  const over = await applyObj(gadget({ name: 'a', size: 5, limits: { max: 3 } }));
  assert.match(over.stderr, /spec\.limits\.max: Invalid value: "object": size 5 exceeds 3/);
  assert.equal((await applyObj(gadget({ name: 'a', size: 3, limits: { max: 3 } }))).code, 0);
});

test('every example Lane passes the CRD, and a table of bad Lanes fails with the CRD messages', async () => {
  assert.equal((await cluster.kubectl(['apply', '-f', 'crds/lane.yaml'])).code, 0);
  for (const f of fs.readdirSync(path.join(__dirname, '../../examples')).filter(x => x.endsWith('.yaml'))) {
    const r = await cluster.kubectl(['apply', '--dry-run=server', '-f', `examples/${f}`]);
    assert.equal(r.code, 0, `${f}: ${r.stderr}`);
  }
  const bad = [
    [{ autopilot: { mode: 'managed-worker', repo: '/r' } }, /two worker owners/],
    [{ supervisor: { enabled: false } }, /no worker owner/],
    [{ autopilot: { mode: 'dispatch-only' } }, /spec\.autopilot\.repo: Required value: required unless mode is off/],
    [{ autopilot: { repo: '/r', concurrency: 2 } }, /spec\.autopilot\.concurrency: Invalid value: "object": has no effect unless mode is\s+managed-worker/],
    [{ supervisor: { maxRSS: 12 } }, /256Mi to 1Ti/],
    [{ supervisor: { maxRSS: '100Mi' } }, /256Mi to 1Ti/],
    [{ supervisor: { drainTimeout: '31d' } }, /must be 1s to 30d/],
    [{ supervisor: { enabled: false, concurrency: 2 }, autopilot: { mode: 'managed-worker', repo: '/r' } }, /spec\.supervisor\.concurrency: Invalid value: "object": has no effect while\s+the supervisor is disabled/],
    [{ handlers: { '': { command: ['x'] } } }, /a handler's name is a job name/],
    [{ handlers: { h: { command: ['x'], lease: '1s' } } }, /must be 5s to 1h/],
    [{ queue: 'has space' }, /spec\.queue in body should match/],
    [{ autopilot: { repo: '/r', cycle: [{ name: 'a', command: ['x'] }, { name: 'a', command: ['y'] }] } },
      /spec\.autopilot\.cycle\[1\]: Duplicate value: map\[string\]interface \{\}\{"name":"a"\}/],
    [{ redis: { url: 'http://x' } }, /spec\.redis\.url in body should match/],
  ];
  for (const [i, [spec, message]] of bad.entries()) {
    const r = await applyObj({ apiVersion: 'lanekeeper.dev/v1alpha1', kind: 'Lane', metadata: { name: `bad-${i}` }, spec });
    assert.notEqual(r.code, 0, JSON.stringify(spec));
    assert.match(r.stderr, message, JSON.stringify(spec));
  }
  const longName = await applyObj({ apiVersion: 'lanekeeper.dev/v1alpha1', kind: 'Lane', metadata: { name: 'x'.repeat(64) }, spec: {} });
  assert.match(longName.stderr, /metadata\.name must be 1 to 63 lowercase letters/);
});
