'use strict';
// Deletion as the real API server and its garbage collector do it: ownerReferences
// (background, foreground, orphan), finalizers on dependents, a namespace's contents, a CRD's
// custom resources.

const test = require('node:test');
const assert = require('node:assert/strict');
const { FakeCluster, waitFor } = require('./harness');

let cluster;
test.before(async () => {
  cluster = await FakeCluster.start();
  await cluster.ok(['apply', '-f', 'crds/lane.yaml']);
});
test.after(async () => { if (cluster) await cluster.stop(); });

const LANES = '/apis/lanekeeper.dev/v1alpha1/namespaces/default/lanes';
const CM = '/api/v1/namespaces/default/configmaps';

async function lane(name) {
  const r = await cluster.request('POST', LANES, { body: { apiVersion: 'lanekeeper.dev/v1alpha1', kind: 'Lane', metadata: { name }, spec: { queue: name } } });
  assert.equal(r.status, 201, r.text);
  return r.json;
}

async function ownedConfigMap(name, owner, extra = {}) {
  const r = await cluster.request('POST', CM, { body: { apiVersion: 'v1', kind: 'ConfigMap',
    metadata: { name, ownerReferences: [{ apiVersion: owner.apiVersion, kind: owner.kind, name: owner.metadata.name, uid: owner.metadata.uid, controller: true }], ...extra } } });
  assert.equal(r.status, 201, r.text);
  return r.json;
}

const exists = async p => (await cluster.request('GET', p)).status === 200;

test('dependents whose owner is gone are deleted in the background', async () => {
  const owner = await lane('gc-owner');
  await ownedConfigMap('gc-child-1', owner);
  await ownedConfigMap('gc-child-2', owner);
  const del = await cluster.request('DELETE', `${LANES}/gc-owner`, { body: { propagationPolicy: 'Background' } });
  assert.equal(del.status, 200);
  assert.equal(del.json.metadata.name, 'gc-owner');
  await waitFor(async () => !(await exists(`${CM}/gc-child-1`)) && !(await exists(`${CM}/gc-child-2`)), { what: 'children collected' });
});

test('a dependent with two owners stays while one owner remains', async () => {
  const a = await lane('two-a');
  const b = await lane('two-b');
  const r = await cluster.request('POST', CM, { body: { apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: 'shared',
    ownerReferences: [a, b].map(o => ({ apiVersion: o.apiVersion, kind: o.kind, name: o.metadata.name, uid: o.metadata.uid })) } } });
  assert.equal(r.status, 201);
  await cluster.ok(['delete', 'lane', 'two-a']);
  await new Promise(res => setTimeout(res, 300));
  assert.ok(await exists(`${CM}/shared`));
  await cluster.ok(['delete', 'lane', 'two-b']);
  await waitFor(async () => !(await exists(`${CM}/shared`)), { what: 'shared collected after its last owner' });
});

test('a dependent with a finalizer is collected through deletionTimestamp and goes when the finalizer is cleared', async () => {
  const owner = await lane('fin-owner');
  await ownedConfigMap('fin-child', owner, { finalizers: ['example.com/hold'] });
  await cluster.ok(['delete', 'lane', 'fin-owner']);
  const child = await waitFor(async () => { const c = await cluster.request('GET', `${CM}/fin-child`); return c.json.metadata.deletionTimestamp ? c.json : null; },
    { what: 'deletionTimestamp on fin-child' });
  assert.deepEqual(child.metadata.finalizers, ['example.com/hold']);
  await cluster.ok(['patch', 'configmap', 'fin-child', '--type=merge', '-p', '{"metadata":{"finalizers":null}}']);
  await waitFor(async () => !(await exists(`${CM}/fin-child`)), { what: 'fin-child removed' });
});

test('foreground deletion keeps the owner until its dependents are gone', async () => {
  const owner = await lane('fg-owner');
  await ownedConfigMap('fg-child', owner, { finalizers: ['example.com/hold'] });
  const del = await cluster.request('DELETE', `${LANES}/fg-owner`, { body: { propagationPolicy: 'Foreground' } });
  assert.equal(del.status, 200);
  assert.ok(del.json.metadata.deletionTimestamp);
  assert.ok(del.json.metadata.finalizers.includes('foregroundDeletion'));
  await waitFor(async () => (await cluster.request('GET', `${CM}/fg-child`)).json.metadata.deletionTimestamp, { what: 'fg-child terminating' });
  assert.ok(await exists(`${LANES}/fg-owner`), 'the owner waits for its dependents');
  await cluster.request('PATCH', `${CM}/fg-child`, { body: { metadata: { finalizers: null } }, contentType: 'application/merge-patch+json' });
  await waitFor(async () => !(await exists(`${LANES}/fg-owner`)), { what: 'fg-owner removed after its dependent' });
});

test('orphan deletion leaves dependents without the ownerReference', async () => {
  const owner = await lane('orphan-owner');
  await ownedConfigMap('orphan-child', owner);
  await cluster.ok(['delete', 'lane', 'orphan-owner', '--cascade=orphan']);
  await new Promise(res => setTimeout(res, 300));
  const child = await cluster.request('GET', `${CM}/orphan-child`);
  assert.equal(child.status, 200);
  assert.equal(child.json.metadata.ownerReferences, undefined);
});

test('deleting a namespace deletes what is in it, then the namespace', async () => {
  await cluster.ok(['create', 'namespace', 'doomed']);
  await cluster.ok(['-n', 'doomed', 'create', 'configmap', 'inside', '--from-literal=a=b']);
  await cluster.ok(['delete', 'namespace', 'doomed', '--timeout=30s']);
  assert.match((await cluster.kubectl(['get', 'namespace', 'doomed'])).stderr, /not found/);
  const r = await cluster.request('GET', '/api/v1/namespaces/doomed/configmaps/inside');
  assert.equal(r.status, 404);
});

test('deleting the CRD deletes its custom resources and stops serving them', async () => {
  await lane('last-lane');
  await cluster.ok(['delete', '-f', 'crds/lane.yaml', '--timeout=30s']);
  await waitFor(async () => (await cluster.request('GET', '/apis/lanekeeper.dev/v1alpha1')).status === 404, { what: 'lanekeeper.dev no longer served' });
  const r = await cluster.kubectl(['get', 'lanes']);
  assert.notEqual(r.code, 0);
  // kubectl's discovery cache may still name lanes; the server answers 404 either way.
  assert.match(r.stderr, /the server doesn't have a resource type "lanes"|the server could not find the requested resource/);
  // Re-creating the CRD serves an empty collection: the old objects went with it.
  await cluster.ok(['apply', '-f', 'crds/lane.yaml']);
  const list = await cluster.request('GET', LANES);
  assert.deepEqual(list.json.items, []);
});
