'use strict';
// helm install, upgrade and uninstall of charts/lanekeeper into the fake API server (no
// kubelet: this is about the objects, not the controller running). The chart's CRD comes
// first and serves Lanes; an upgrade to two replicas turns leader election on; a refused
// upgrade changes nothing; uninstall removes the controller and keeps the CRD and the Lanes.

const test = require('node:test');
const assert = require('node:assert/strict');
const { FakeCluster } = require('../harness');
const { CHART } = require('./render');

let cluster;
test.before(async () => { cluster = await FakeCluster.start({ args: ['--servicemonitor'] }); });
test.after(async () => { if (cluster) await cluster.stop(); });

async function helm(args) {
  const r = await cluster.helm(args);
  if (r.code !== 0) throw new Error(`helm ${args.join(' ')} failed (${r.code}): ${r.stderr}${r.stdout}`);
  return r.stdout;
}

const OBJECTS = ['deployment/lk-lanekeeper', 'serviceaccount/lk-lanekeeper', 'role/lk-lanekeeper', 'rolebinding/lk-lanekeeper',
  'service/lk-lanekeeper'];

test('helm install creates the CRD, the controller and its RBAC, and the CRD serves Lanes', async () => {
  const out = await helm(['install', 'lk', CHART]);
  assert.match(out, /STATUS: deployed/);
  assert.match(out, /kubectl lanekeeper doctor hello/, 'NOTES.txt');
  await cluster.ok(['get', 'crd', 'lanes.lanekeeper.dev']);
  for (const o of OBJECTS) await cluster.ok(['get', o]);
  const dep = await cluster.getJson(['deployment', 'lk-lanekeeper']);
  assert.deepEqual(dep.spec.template.spec.containers[0].args.slice(0, 4), ['controller', '--kube', '--namespace', 'default']);
  await cluster.ok(['create', 'secret', 'generic', 'redis', '--from-literal=url=redis://:pw@redis:6379/0']);
  await cluster.ok(['apply', '-f', 'examples/kubernetes/hello.yaml']);
  const header = (await cluster.ok(['get', 'lanes'])).split('\n')[0].split(/\s+/);
  assert.deepEqual(header, ['NAME', 'QUEUE', 'MODE', 'CONCURRENCY', 'MAXRSS', 'OWNER', 'READY', 'AGE']);
  const bad = await cluster.kubectl(['apply', '-f', '-'], { input: 'apiVersion: lanekeeper.dev/v1alpha1\nkind: Lane\nmetadata: {name: bad}\nspec: {redis: {}}\n' });
  assert.match(bad.stderr, /spec\.redis: Invalid value: "object": expected url or urlFrom/);
});

test('helm upgrade to two replicas turns leader election on, with a ServiceMonitor', async () => {
  assert.match(await helm(['upgrade', 'lk', CHART, '--set', 'replicaCount=2', '--set', 'metrics.serviceMonitor.enabled=true']), /REVISION: 2/);
  const dep = await cluster.getJson(['deployment', 'lk-lanekeeper']);
  assert.equal(dep.spec.replicas, 2);
  assert.ok(dep.spec.template.spec.containers[0].args.includes('--leader-elect'));
  assert.equal(dep.spec.strategy.type, 'RollingUpdate');
  const role = await cluster.getJson(['role', 'lk-lanekeeper-leader-election']);
  assert.deepEqual(role.rules[0].resources, ['leases']);
  await cluster.ok(['get', 'servicemonitor', 'lk-lanekeeper']);
});

test('an upgrade with values the chart refuses fails and changes nothing', async () => {
  const r = await cluster.helm(['upgrade', 'lk', CHART, '--set', 'replicaCount=0']);
  assert.notEqual(r.code, 0);
  assert.match(r.stderr, /replicaCount/);
  assert.equal((await cluster.getJson(['deployment', 'lk-lanekeeper'])).spec.replicas, 2);
  assert.match(await helm(['history', 'lk']), /2\s+.*deployed/);
});

test('helm uninstall removes the controller and keeps the CRD and the Lanes', async () => {
  await helm(['uninstall', 'lk']);
  for (const o of [...OBJECTS, 'role/lk-lanekeeper-leader-election', 'servicemonitor/lk-lanekeeper']) {
    const r = await cluster.kubectl(['get', o]);
    assert.match(r.stderr, /not found/, o);
  }
  assert.equal((await cluster.getJson(['secrets', '-l', 'owner=helm'])).items.length, 0);
  await cluster.ok(['get', 'crd', 'lanes.lanekeeper.dev']);
  await cluster.ok(['get', 'lane', 'hello']);
});
