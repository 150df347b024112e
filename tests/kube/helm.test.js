'use strict';
// helm 4 against the fake: install (CRDs from the chart's crds/, then server-side apply of
// every template, release Secrets sent as protobuf), upgrade, a failed upgrade refused by the
// CRD's CEL rule, --wait on a Deployment the fake kubelet makes ready, and uninstall.

const test = require('node:test');
const assert = require('node:assert/strict');
const { FakeCluster, waitFor, lanekeeperBinary } = require('./harness');

const CHART = 'tests/kube/testdata/tinychart';
let cluster;
test.before(async () => { cluster = await FakeCluster.start({ args: ['--kubelet', '--binary', lanekeeperBinary()] }); });
test.after(async () => { if (cluster) await cluster.stop(); });

async function helm(args) {
  const r = await cluster.helm(args);
  if (r.code !== 0) throw new Error(`helm ${args.join(' ')} failed (${r.code}): ${r.stderr}${r.stdout}`);
  return r.stdout;
}

test('helm install creates the chart CRD and every object, and records the release', async () => {
  assert.match(await helm(['install', 'tiny', CHART, '--wait', '--timeout', '60s']), /STATUS: deployed/);
  assert.equal(await cluster.ok(['get', 'configmap', 'tiny-config', '-o', 'jsonpath={.data.greeting}']), 'hello');
  assert.equal(await cluster.ok(['get', 'widget', 'tiny', '-o', 'jsonpath={.spec.size}']), '3');
  const token = await cluster.ok(['get', 'secret', 'tiny-secret', '-o', 'jsonpath={.data.token}']);
  assert.equal(Buffer.from(token, 'base64').toString(), 'not-a-real-token');
  const dep = await cluster.getJson(['deployment', 'tiny', '--show-managed-fields']);
  assert.equal(dep.status.readyReplicas, 1, '--wait returned with the Deployment ready');
  assert.ok(dep.metadata.managedFields.some(m => m.manager === 'helm' && m.operation === 'Apply'));
  const releases = await cluster.getJson(['secrets', '-l', 'owner=helm,name=tiny']);
  assert.deepEqual(releases.items.map(s => [s.metadata.name, s.metadata.labels.status, s.type]),
    [['sh.helm.release.v1.tiny.v1', 'deployed', 'helm.sh/release.v1']]);
  assert.match(await helm(['list']), /tiny\s+default\s+1\s+.*deployed\s+tinychart-0\.1\.0/);
  const logs = await cluster.ok(['logs', 'deployment/tiny']);
  assert.match(logs, /^hello$/m);
});

test('helm upgrade changes the objects and supersedes the release', async () => {
  assert.match(await helm(['upgrade', 'tiny', CHART, '--set', 'greeting=bye', '--set', 'widgetSize=5']), /REVISION: 2/);
  assert.equal(await cluster.ok(['get', 'configmap', 'tiny-config', '-o', 'jsonpath={.data.greeting}']), 'bye');
  assert.equal(await cluster.ok(['get', 'widget', 'tiny', '-o', 'jsonpath={.spec.size}']), '5');
  const releases = await cluster.getJson(['secrets', '-l', 'owner=helm,name=tiny']);
  assert.deepEqual(releases.items.map(s => [s.metadata.name, s.metadata.labels.status]),
    [['sh.helm.release.v1.tiny.v1', 'superseded'], ['sh.helm.release.v1.tiny.v2', 'deployed']]);
});

test('helm upgrade with values the CRD refuses fails with the CEL message', async () => {
  const r = await cluster.helm(['upgrade', 'tiny', CHART, '--set', 'widgetSize=11']);
  assert.notEqual(r.code, 0);
  assert.match(r.stderr, /Widget\.example\.com "tiny" is invalid: spec: Invalid value: "object": size must be at most 10/);
  assert.equal(await cluster.ok(['get', 'widget', 'tiny', '-o', 'jsonpath={.spec.size}']), '5');
});

test('helm uninstall deletes the objects and the release, and keeps the CRD', async () => {
  await helm(['uninstall', 'tiny', '--wait', '--timeout', '60s']);
  for (const kind of ['configmap/tiny-config', 'secret/tiny-secret', 'deployment/tiny', 'widget/tiny', 'serviceaccount/tiny', 'role/tiny', 'rolebinding/tiny', 'service/tiny']) {
    const r = await cluster.kubectl(['get', kind]);
    assert.match(r.stderr, /not found/, kind);
  }
  await waitFor(async () => (await cluster.getJson(['pods'])).items.length === 0, { what: 'the pods of the uninstalled Deployment to go' });
  assert.equal((await cluster.getJson(['secrets', '-l', 'owner=helm'])).items.length, 0);
  await cluster.ok(['get', 'crd', 'widgets.example.com']);
});
