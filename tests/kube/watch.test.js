'use strict';
// List and watch over plain HTTP, as a controller's client uses them: resourceVersions,
// events newer than a version only, bookmarks, initial events for kubectl 1.35's
// sendInitialEvents, selectors, 410 for a version the history no longer holds, 409 for a
// stale update; Leases for leader election, Events, and --servicemonitor.

const test = require('node:test');
const assert = require('node:assert/strict');
const { FakeCluster, waitFor } = require('./harness');

let cluster;
const CM = '/api/v1/namespaces/default/configmaps';
test.before(async () => { cluster = await FakeCluster.start({ args: ['--history', '20', '--bookmark-interval', '300'] }); });
test.after(async () => { if (cluster) await cluster.stop(); });

const cm = (name, data = {}, labels = {}) => ({ apiVersion: 'v1', kind: 'ConfigMap', metadata: { name, labels }, data });

test('a watch from a list resourceVersion gets only later events, in order', async () => {
  const a = await cluster.request('POST', CM, { body: cm('w-a', { v: '1' }) });
  assert.equal(a.status, 201);
  const list = await cluster.request('GET', CM);
  assert.equal(list.json.kind, 'ConfigMapList');
  const rv = list.json.metadata.resourceVersion;
  assert.ok(Number(rv) >= Number(a.json.metadata.resourceVersion));
  const w = cluster.watch(`${CM}?watch=true&resourceVersion=${rv}`);
  await w.ready;
  assert.equal(w.status, 200);
  const b = await cluster.request('POST', CM, { body: cm('w-b') });
  await cluster.request('PATCH', `${CM}/w-a`, { body: { data: { v: '2' } }, contentType: 'application/merge-patch+json' });
  await cluster.request('DELETE', `${CM}/w-b`);
  await w.waitFor(e => e.type === 'DELETED', 'DELETED w-b');
  w.close();
  assert.deepEqual(w.events.map(e => [e.type, e.object.metadata.name]), [['ADDED', 'w-b'], ['MODIFIED', 'w-a'], ['DELETED', 'w-b']]);
  assert.equal(w.events[0].object.metadata.resourceVersion, b.json.metadata.resourceVersion);
  const rvs = w.events.map(e => Number(e.object.metadata.resourceVersion));
  assert.deepEqual(rvs, [...rvs].sort((x, y) => x - y));
  assert.equal(w.events[1].object.data.v, '2');
});

test('watch=1 with a resourceVersion replays the events after it', async () => {
  const first = await cluster.request('POST', CM, { body: cm('r-1') });
  await cluster.request('POST', CM, { body: cm('r-2') });
  const w = cluster.watch(`${CM}?watch=1&resourceVersion=${first.json.metadata.resourceVersion}`);
  await w.waitFor(e => e.object.metadata.name === 'r-2', 'replayed r-2');
  w.close();
  assert.ok(!w.events.some(e => e.object.metadata.name === 'r-1'));
});

test('bookmarks arrive with allowWatchBookmarks and carry the current resourceVersion', async () => {
  const list = await cluster.request('GET', CM);
  const w = cluster.watch(`${CM}?watch=true&allowWatchBookmarks=true&resourceVersion=${list.json.metadata.resourceVersion}`);
  const bm = await w.waitFor(e => e.type === 'BOOKMARK', 'a BOOKMARK', 5000);
  w.close();
  assert.equal(bm.object.kind, 'ConfigMap');
  assert.ok(Number(bm.object.metadata.resourceVersion) >= Number(list.json.metadata.resourceVersion));
  const plain = cluster.watch(`${CM}?watch=true&resourceVersion=${list.json.metadata.resourceVersion}`);
  await plain.ready;
  await new Promise(r => setTimeout(r, 800));
  plain.close();
  assert.ok(!plain.events.some(e => e.type === 'BOOKMARK'), 'no bookmarks unless asked');
});

test('sendInitialEvents sends what exists, then the initial-events-end bookmark, then changes', async () => {
  await cluster.request('POST', CM, { body: cm('init-a') });
  const w = cluster.watch(`${CM}?watch=true&sendInitialEvents=true&resourceVersionMatch=NotOlderThan&allowWatchBookmarks=true&fieldSelector=metadata.name%3Dinit-a`);
  const end = await w.waitFor(e => e.type === 'BOOKMARK', 'the initial-events-end bookmark');
  assert.equal(end.object.metadata.annotations['k8s.io/initial-events-end'], 'true');
  assert.deepEqual(w.events.slice(0, -1).map(e => [e.type, e.object.metadata.name]), [['ADDED', 'init-a']]);
  await cluster.request('POST', CM, { body: cm('init-b') });
  await cluster.request('PATCH', `${CM}/init-a`, { body: { data: { x: 'y' } }, contentType: 'application/merge-patch+json' });
  await w.waitFor(e => e.type === 'MODIFIED', 'MODIFIED init-a');
  w.close();
  assert.ok(!w.events.some(e => e.object.metadata && e.object.metadata.name === 'init-b'), 'the field selector filters');
});

test('a label selector filters lists and watches; objects leaving it arrive as DELETED', async () => {
  await cluster.request('POST', CM, { body: cm('l-1', {}, { lane: 'a', role: 'supervisor' }) });
  await cluster.request('POST', CM, { body: cm('l-2', {}, { lane: 'b', role: 'supervisor' }) });
  await cluster.request('POST', CM, { body: cm('l-3', {}, { lane: 'a', role: 'autopilot' }) });
  const sel = encodeURIComponent('lane=a,role!=autopilot');
  const list = await cluster.request('GET', `${CM}?labelSelector=${sel}`);
  assert.deepEqual(list.json.items.map(i => i.metadata.name), ['l-1']);
  const inSel = await cluster.request('GET', `${CM}?labelSelector=${encodeURIComponent('lane in (a,b),role')}`);
  assert.deepEqual(inSel.json.items.map(i => i.metadata.name), ['l-1', 'l-2', 'l-3']);
  const w = cluster.watch(`${CM}?watch=true&resourceVersion=${list.json.metadata.resourceVersion}&labelSelector=${sel}`);
  await w.ready;
  await cluster.request('PATCH', `${CM}/l-2`, { body: { metadata: { labels: { lane: 'a' } } }, contentType: 'application/merge-patch+json' });
  await cluster.request('PATCH', `${CM}/l-1`, { body: { metadata: { labels: { role: 'autopilot' } } }, contentType: 'application/merge-patch+json' });
  await w.waitFor(e => e.type === 'DELETED', 'l-1 leaving the selector');
  w.close();
  assert.deepEqual(w.events.map(e => [e.type, e.object.metadata.name]), [['ADDED', 'l-2'], ['DELETED', 'l-1']]);
});

test('a resourceVersion older than the history is 410 Expired; a fresh list recovers', async () => {
  const old = (await cluster.request('GET', CM)).json.metadata.resourceVersion;
  for (let i = 0; i < 25; i++) await cluster.request('POST', CM, { body: cm(`churn-${i}`) });
  const w = cluster.watch(`${CM}?watch=true&resourceVersion=${old}`);
  const err = await w.waitFor(e => e.type === 'ERROR', 'an ERROR event');
  await waitFor(() => w.ended, { what: 'the expired watch to end' });
  assert.equal(err.object.kind, 'Status');
  assert.equal(err.object.code, 410);
  assert.equal(err.object.reason, 'Expired');
  assert.match(err.object.message, /too old resource version/);
  const fresh = (await cluster.request('GET', CM)).json.metadata.resourceVersion;
  const ok = cluster.watch(`${CM}?watch=true&resourceVersion=${fresh}`);
  await ok.ready;
  await cluster.request('POST', CM, { body: cm('after-relist') });
  await ok.waitFor(e => e.object.metadata.name === 'after-relist', 'the change after relisting');
  ok.close();
});

test('with --expired-watch-status a too-old resourceVersion is an HTTP 410 Status', async () => {
  const c = await FakeCluster.start({ args: ['--history', '3', '--expired-watch-status'] });
  try {
    const old = (await c.request('GET', CM)).json.metadata.resourceVersion;
    for (let i = 0; i < 5; i++) await c.request('POST', CM, { body: cm(`x-${i}`) });
    const r = await c.request('GET', `${CM}?watch=true&resourceVersion=${old}`);
    assert.equal(r.status, 410);
    assert.equal(r.json.kind, 'Status');
    assert.equal(r.json.reason, 'Expired');
  } finally { await c.stop(); }
});

test('an update with a stale resourceVersion is 409 Conflict; with the current one it succeeds', async () => {
  const created = await cluster.request('POST', CM, { body: cm('stale', { v: '1' }) });
  const v1 = created.json;
  const v2 = await cluster.request('PUT', `${CM}/stale`, { body: { ...v1, data: { v: '2' } } });
  assert.equal(v2.status, 200);
  const conflict = await cluster.request('PUT', `${CM}/stale`, { body: { ...v1, data: { v: '3' } } });
  assert.equal(conflict.status, 409);
  assert.equal(conflict.json.reason, 'Conflict');
  assert.match(conflict.json.message, /the object has been modified; please apply your changes to the latest version and try again/);
  const v3 = await cluster.request('PUT', `${CM}/stale`, { body: { ...v2.json, data: { v: '3' } } });
  assert.equal(v3.status, 200);
  // An update that changes nothing is no write: same resourceVersion, no event.
  const same = await cluster.request('PUT', `${CM}/stale`, { body: v3.json });
  assert.equal(same.json.metadata.resourceVersion, v3.json.metadata.resourceVersion);
});

test('create twice is 409 AlreadyExists; a missing object is 404 NotFound; Status bodies as the real server', async () => {
  await cluster.request('POST', CM, { body: cm('dup') });
  const again = await cluster.request('POST', CM, { body: cm('dup') });
  assert.equal(again.status, 409);
  assert.equal(again.json.reason, 'AlreadyExists');
  assert.equal(again.json.message, 'configmaps "dup" already exists');
  const missing = await cluster.request('GET', `${CM}/nope`);
  assert.equal(missing.status, 404);
  assert.deepEqual({ ...missing.json, metadata: undefined }, { kind: 'Status', apiVersion: 'v1', metadata: undefined, status: 'Failure',
    message: 'configmaps "nope" not found', reason: 'NotFound', details: { name: 'nope', kind: 'configmaps' }, code: 404 });
});

test('list with limit pages with continue', async () => {
  const page1 = await cluster.request('GET', `${CM}?limit=2`);
  assert.equal(page1.json.items.length, 2);
  assert.ok(page1.json.metadata.continue);
  const all = (await cluster.request('GET', CM)).json.items.map(i => i.metadata.name);
  const names = page1.json.items.map(i => i.metadata.name);
  let cont = page1.json.metadata.continue;
  while (cont) {
    const p = await cluster.request('GET', `${CM}?limit=2&continue=${encodeURIComponent(cont)}`);
    names.push(...p.json.items.map(i => i.metadata.name));
    cont = p.json.metadata.continue;
  }
  assert.deepEqual(names, all);
});

test('kubectl get --watch prints changes as they happen', async () => {
  const proc = cluster.kubectl(['get', 'configmaps', '--watch', '--request-timeout=4s']);
  await new Promise(r => setTimeout(r, 1500));
  await cluster.request('POST', CM, { body: cm('watched-by-kubectl') });
  const r = await proc;
  assert.match(r.stdout, /watched-by-kubectl/);
});

test('a Lease behaves as leader election needs: create once, renew with the current resourceVersion, lose a race with 409', async () => {
  const LEASES = '/apis/coordination.k8s.io/v1/namespaces/default/leases';
  const lease = { apiVersion: 'coordination.k8s.io/v1', kind: 'Lease', metadata: { name: 'lanekeeper-controller' },
    spec: { holderIdentity: 'a', leaseDurationSeconds: 15, acquireTime: '2026-01-01T00:00:00.000000Z', renewTime: '2026-01-01T00:00:00.000000Z', leaseTransitions: 0 } };
  const created = await cluster.request('POST', LEASES, { body: lease });
  assert.equal(created.status, 201);
  const second = await cluster.request('POST', LEASES, { body: { ...lease, spec: { ...lease.spec, holderIdentity: 'b' } } });
  assert.equal(second.status, 409);
  const renewA = await cluster.request('PUT', `${LEASES}/lanekeeper-controller`, { body: { ...created.json, spec: { ...created.json.spec, renewTime: '2026-01-01T00:00:10.000000Z' } } });
  assert.equal(renewA.status, 200);
  const takeB = await cluster.request('PUT', `${LEASES}/lanekeeper-controller`, { body: { ...created.json, spec: { ...created.json.spec, holderIdentity: 'b' } } });
  assert.equal(takeB.status, 409, 'b read the lease before a renewed it');
  assert.equal((await cluster.request('GET', `${LEASES}/lanekeeper-controller`)).json.spec.holderIdentity, 'a');
});

test('Events of core/v1 and events.k8s.io/v1 are stored and listed', async () => {
  const core = await cluster.request('POST', '/api/v1/namespaces/default/events', { body: { apiVersion: 'v1', kind: 'Event', metadata: { name: 'lane.1' },
    involvedObject: { apiVersion: 'lanekeeper.dev/v1alpha1', kind: 'Lane', name: 'knowledge', namespace: 'default' }, reason: 'Ready', message: 'lane ready', type: 'Normal' } });
  assert.equal(core.status, 201, core.text);
  const ev = await cluster.request('POST', '/apis/events.k8s.io/v1/namespaces/default/events', { body: { apiVersion: 'events.k8s.io/v1', kind: 'Event', metadata: { name: 'lane.2' },
    eventTime: '2026-01-01T00:00:00.000000Z', reportingController: 'lanekeeper.dev/controller', reportingInstance: 'x', action: 'Reconcile', reason: 'Ready', type: 'Normal',
    regarding: { kind: 'Lane', name: 'knowledge', namespace: 'default' } } });
  assert.equal(ev.status, 201, ev.text);
  const listed = await cluster.request('GET', `/api/v1/namespaces/default/events?fieldSelector=${encodeURIComponent('involvedObject.name=knowledge,reason=Ready')}`);
  assert.deepEqual(listed.json.items.map(i => i.metadata.name), ['lane.1']);
  const unsupported = await cluster.request('GET', `/api/v1/namespaces/default/configmaps?fieldSelector=${encodeURIComponent('data.a=b')}`);
  assert.equal(unsupported.status, 400);
  assert.match(unsupported.json.message, /field label not supported: data\.a/);
});

test('--servicemonitor is off by default: monitoring.coreos.com is not served', async () => {
  assert.equal((await cluster.request('GET', '/apis/monitoring.coreos.com/v1')).status, 404);
  const sm = await FakeCluster.start({ args: ['--servicemonitor'] });
  try {
    assert.match(await sm.ok(['api-resources', '--api-group=monitoring.coreos.com']), /servicemonitors\s+smon\s+monitoring\.coreos\.com\/v1\s+true\s+ServiceMonitor/);
  } finally { await sm.stop(); }
});
