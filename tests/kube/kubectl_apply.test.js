'use strict';
// The fake API server as the real kubectl 1.35 sees it: Lanes applied from crds/lane.yaml and
// examples/, client-side and server-side, printed with the CRD's columns, refused with the
// CRD's own messages, deleted through a finalizer.

const test = require('node:test');
const assert = require('node:assert/strict');
const fs = require('fs');
const path = require('path');
const { FakeCluster, waitFor, REPO } = require('./harness');

const EXAMPLES = fs.readdirSync(path.join(REPO, 'examples')).filter(f => f.endsWith('.yaml')).map(f => `examples/${f}`);

let cluster;
test.before(async () => {
  cluster = await FakeCluster.start();
  await cluster.ok(['apply', '-f', 'crds/lane.yaml']);
});
test.after(async () => { if (cluster) await cluster.stop(); });

function writeTemp(name, text) {
  const f = path.join(cluster.dir, name);
  fs.writeFileSync(f, text);
  return f;
}

test('kubectl apply creates every example Lane, and a re-apply is unchanged', async () => {
  const out = await cluster.ok(['apply', ...EXAMPLES.flatMap(f => ['-f', f])]);
  for (const f of EXAMPLES) assert.match(out, /lane\.lanekeeper\.dev\/\S+ created/, f);
  const again = await cluster.ok(['apply', ...EXAMPLES.flatMap(f => ['-f', f])]);
  assert.doesNotMatch(again, /created|configured/);
  assert.match(again, /unchanged/);
});

test('a changed spec re-applied is a merge patch that bumps generation and keeps other fields', async () => {
  const text = fs.readFileSync(path.join(REPO, 'examples/quickstart.yaml'), 'utf8').replace('concurrency: 2', 'concurrency: 3');
  const before = await cluster.getJson(['lane', 'quickstart']);
  assert.match(await cluster.ok(['apply', '-f', writeTemp('quickstart.yaml', text)]), /configured/);
  const after = await cluster.getJson(['lane', 'quickstart']);
  assert.equal(after.spec.supervisor.concurrency, 3);
  assert.equal(after.metadata.generation, before.metadata.generation + 1);
  assert.equal(after.metadata.uid, before.metadata.uid);
  assert.ok(Number(after.metadata.resourceVersion) > Number(before.metadata.resourceVersion));
  assert.deepEqual(after.spec.handlers, before.spec.handlers);
});

test('kubectl apply --server-side creates and updates, and owns what it applied', async () => {
  const text = `apiVersion: lanekeeper.dev/v1alpha1
kind: Lane
metadata: {name: ssa}
spec:
  queue: ssa
  supervisor: {concurrency: 4, maxRSS: 1Gi}
`;
  assert.match(await cluster.ok(['apply', '--server-side', '-f', writeTemp('ssa.yaml', text)]), /serverside-applied/);
  let lane = await cluster.getJson(['lane', 'ssa', '--show-managed-fields']);
  assert.equal(lane.spec.supervisor.concurrency, 4);
  assert.ok(lane.metadata.managedFields.some(m => m.manager === 'kubectl' && m.operation === 'Apply'), JSON.stringify(lane.metadata.managedFields));
  // Dropping a field this manager applied removes it from the object.
  const smaller = text.replace(', maxRSS: 1Gi', '');
  await cluster.ok(['apply', '--server-side', '-f', writeTemp('ssa.yaml', smaller)]);
  lane = await cluster.getJson(['lane', 'ssa']);
  assert.equal(lane.spec.supervisor.maxRSS, undefined);
  assert.equal(lane.spec.supervisor.concurrency, 4);
  // Another manager changing a field this one owns conflicts, unless forced.
  const other = await cluster.kubectl(['apply', '--server-side', '--field-manager', 'someone-else', '-f', writeTemp('ssa2.yaml', text.replace('concurrency: 4', 'concurrency: 5'))]);
  assert.notEqual(other.code, 0);
  assert.match(other.stderr, /conflict with "kubectl"/);
  assert.match(other.stderr, /\.spec\.supervisor\.concurrency/);
  await cluster.ok(['apply', '--server-side', '--force-conflicts', '--field-manager', 'someone-else', '-f', path.join(cluster.dir, 'ssa2.yaml')]);
  lane = await cluster.getJson(['lane', 'ssa']);
  assert.equal(lane.spec.supervisor.concurrency, 5);
});

test('kubectl get lanes prints the CRD printer columns, evaluating the Ready filter', async () => {
  // MODE is status.mode, the effective mode the controller writes.
  await cluster.ok(['patch', 'lane', 'laptop', '--subresource=status', '--type=merge', '-p', JSON.stringify({ status: { mode: 'managed-worker' } })]);
  await cluster.ok(['patch', 'lane', 'knowledge', '--subresource=status', '--type=merge', '-p',
    JSON.stringify({ status: { mode: 'dispatch-only', owner: 'supervisor knowledge-abc epoch 3', concurrency: 2, maxRSS: '2048Mi',
      conditions: [{ type: 'Ready', status: 'True', reason: 'OwnerRunning', message: '', lastTransitionTime: '2026-01-02T03:04:05Z' },
        { type: 'Degraded', status: 'False', reason: 'NoCrashes', message: '', lastTransitionTime: '2026-01-02T03:04:05Z' }] } })]);
  const out = await cluster.ok(['get', 'lanes']);
  const [header, ...rows] = out.trim().split('\n');
  assert.deepEqual(header.split(/\s+/), ['NAME', 'QUEUE', 'MODE', 'CONCURRENCY', 'MAXRSS', 'OWNER', 'READY', 'AGE']);
  const knowledge = rows.find(r => r.startsWith('knowledge '));
  assert.match(knowledge, /^knowledge\s+default\s+dispatch-only\s+2\s+2048Mi\s+supervisor knowledge-abc epoch 3\s+True\s+\d+s$/);
  assert.match(rows.find(r => r.startsWith('laptop ')), /^laptop\s+laptop\s+managed-worker\s+/);
  // The category and the status subresource show in discovery too.
  assert.match(await cluster.ok(['get', 'lanekeeper']), /knowledge/);
  assert.match(await cluster.ok(['get', 'lk']), /knowledge/, 'the short name');
  assert.match(await cluster.ok(['api-resources', '--api-group=lanekeeper.dev']), /lanes\s+lk\s+lanekeeper\.dev\/v1alpha1\s+true\s+Lane/);
});

test('kubectl get lanes -o yaml shows the stored objects with server-set metadata', async () => {
  const out = await cluster.ok(['get', 'lanes', '-o', 'yaml']);
  const doc = require('js-yaml').load(out);
  assert.equal(doc.kind, 'List');
  const lane = doc.items.find(i => i.metadata.name === 'knowledge');
  assert.equal(lane.apiVersion, 'lanekeeper.dev/v1alpha1');
  assert.equal(lane.kind, 'Lane');
  assert.match(lane.metadata.uid, /^[0-9a-f-]{36}$/);
  assert.match(lane.metadata.creationTimestamp, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$/);
  assert.equal(lane.metadata.namespace, 'default');
  assert.equal(lane.spec.queue, 'default');
});

test('a Lane breaking a CEL rule is refused with the rule message', async () => {
  const bad = `apiVersion: lanekeeper.dev/v1alpha1
kind: Lane
metadata: {name: two-owners}
spec:
  autopilot: {mode: managed-worker, repo: /srv/x}
`;
  const r = await cluster.kubectl(['apply', '-f', writeTemp('bad.yaml', bad)]);
  assert.notEqual(r.code, 0);
  assert.match(r.stderr, /The Lane "two-owners" is invalid: spec\.autopilot\.mode: Invalid value: "object": two worker owners: set autopilot.mode to dispatch-only, or spec.supervisor.enabled to false/);
  const interval = bad.replace('name: two-owners', 'name: too-fast').replace('mode: managed-worker, repo: /srv/x', 'repo: /srv/x, interval: 10ms');
  const r2 = await cluster.kubectl(['apply', '-f', writeTemp('bad2.yaml', interval)]);
  assert.match(r2.stderr, /spec\.autopilot\.interval: Invalid value: "string": must be 1s to 30d/);
  const typ = bad.replace('name: two-owners', 'name: wrong-type').replace('mode: managed-worker, repo: /srv/x', 'repo: /srv/x, concurrency: "many"');
  const r3 = await cluster.kubectl(['apply', '-f', writeTemp('bad3.yaml', typ)]);
  assert.match(r3.stderr, /spec\.autopilot\.concurrency: Invalid value: "string": spec\.autopilot\.concurrency in body must be of type integer/);
  const missing = await cluster.kubectl(['get', 'lane', 'two-owners']);
  assert.match(missing.stderr, /NotFound|not found/);
});

test('a Lane with an unknown field is refused by kubectl (fieldValidation=Strict), pruned without it', async () => {
  const text = `apiVersion: lanekeeper.dev/v1alpha1
kind: Lane
metadata: {name: typo}
spec:
  supervisor: {concurency: 3}
`;
  const r = await cluster.kubectl(['apply', '-f', writeTemp('typo.yaml', text)]);
  assert.notEqual(r.code, 0);
  assert.match(r.stderr, /unknown field "spec\.supervisor\.concurency"/);
  const warn = await cluster.kubectl(['apply', '--validate=warn', '-f', path.join(cluster.dir, 'typo.yaml')]);
  assert.equal(warn.code, 0, warn.stderr);
  assert.match(warn.stderr, /unknown field "spec\.supervisor\.concurency"/);
  const lane = await cluster.getJson(['lane', 'typo']);
  assert.deepEqual(lane.spec.supervisor, {});
  assert.equal(lane.spec.queue, 'default', 'the schema default is applied');
});

test('kubectl delete waits on a finalizer, and clearing it with a merge patch completes the delete', async () => {
  await cluster.ok(['patch', 'lane', 'laptop', '--type', 'merge', '-p', '{"metadata":{"finalizers":["lanekeeper.dev/drain"]}}']);
  const del = cluster.kubectl(['delete', 'lane', 'laptop', '--timeout=60s']);
  const terminating = await waitFor(async () => {
    const l = await cluster.getJson(['lane', 'laptop']);
    return l.metadata.deletionTimestamp ? l : null;
  }, { what: 'deletionTimestamp on lane laptop' });
  assert.deepEqual(terminating.metadata.finalizers, ['lanekeeper.dev/drain']);
  const pending = await Promise.race([del.then(() => 'finished'), new Promise(r => setTimeout(() => r('waiting'), 1000))]);
  assert.equal(pending, 'waiting', 'kubectl delete returns only once the object is gone');
  await cluster.ok(['patch', 'lane', 'laptop', '--type', 'merge', '-p', '{"metadata":{"finalizers":null}}']);
  const r = await del;
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stdout, /lane.lanekeeper.dev "laptop" deleted/);
  const gone = await cluster.kubectl(['get', 'lane', 'laptop']);
  assert.match(gone.stderr, /not found/);
});

test('a status subresource write changes status only and does not bump generation', async () => {
  const before = await cluster.getJson(['lane', 'quickstart']);
  await cluster.ok(['patch', 'lane', 'quickstart', '--subresource=status', '--type=merge', '-p',
    '{"status":{"observedGeneration":2,"workers":1},"spec":{"queue":"ignored"}}']);
  const after = await cluster.getJson(['lane', 'quickstart']);
  assert.equal(after.metadata.generation, before.metadata.generation);
  assert.equal(after.status.workers, 1);
  assert.equal(after.spec.queue, 'quickstart');
  // A write to the main resource keeps status.
  await cluster.ok(['patch', 'lane', 'quickstart', '--type=merge', '-p', '{"spec":{"queue":"renamed"},"status":{"workers":9}}']);
  const main = await cluster.getJson(['lane', 'quickstart']);
  assert.equal(main.status.workers, 1);
  assert.equal(main.spec.queue, 'renamed');
  assert.equal(main.metadata.generation, before.metadata.generation + 1);
  // The status is validated against its own schema.
  const bad = await cluster.kubectl(['patch', 'lane', 'quickstart', '--subresource=status', '--type=merge', '-p', '{"status":{"workers":"one"}}']);
  assert.match(bad.stderr, /status\.workers: Invalid value: "string"/);
});

test('kubectl apply of built-in kinds uses strategic merge: containers merge by name', async () => {
  const dep = (image, extra = '') => `apiVersion: apps/v1
kind: Deployment
metadata: {name: web}
spec:
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      containers:
      - name: main
        image: ${image}
        env: [{name: A, value: "1"}]${extra}
`;
  await cluster.ok(['apply', '-f', writeTemp('dep.yaml', dep('busybox:1'))]);
  // Someone else adds an env var; a re-apply that changes the image keeps it (3-way merge).
  await cluster.ok(['patch', 'deployment', 'web', '--type=strategic', '-p',
    '{"spec":{"template":{"spec":{"containers":[{"name":"main","env":[{"name":"B","value":"2"}]}]}}}}']);
  await cluster.ok(['apply', '-f', writeTemp('dep.yaml', dep('busybox:2'))]);
  const d = await cluster.getJson(['deployment', 'web']);
  const c = d.spec.template.spec.containers;
  assert.equal(c.length, 1);
  assert.equal(c[0].image, 'busybox:2');
  assert.deepEqual(c[0].env.map(e => e.name).sort(), ['A', 'B']);
  assert.equal(d.spec.replicas, 1, 'defaulted');
  assert.equal(d.spec.strategy.type, 'RollingUpdate', 'defaulted');
});

test('kubectl patch --type json edits a Lane; a failing test op changes nothing', async () => {
  await cluster.ok(['patch', 'lane', 'knowledge', '--type=json', '-p', '[{"op":"replace","path":"/spec/supervisor/concurrency","value":7},{"op":"add","path":"/metadata/labels","value":{"team":"a"}}]']);
  const lane = await cluster.getJson(['lane', 'knowledge']);
  assert.equal(lane.spec.supervisor.concurrency, 7);
  assert.equal(lane.metadata.labels.team, 'a');
  const r = await cluster.kubectl(['patch', 'lane', 'knowledge', '--type=json', '-p', '[{"op":"test","path":"/spec/queue","value":"nope"},{"op":"remove","path":"/spec/supervisor"}]']);
  assert.notEqual(r.code, 0);
  assert.equal((await cluster.getJson(['lane', 'knowledge'])).spec.supervisor.concurrency, 7);
});

test('namespaced objects in a missing namespace are refused, as for real', async () => {
  const r = await cluster.kubectl(['-n', 'nowhere', 'create', 'configmap', 'x', '--from-literal=a=b']);
  assert.notEqual(r.code, 0);
  assert.match(r.stderr, /namespaces "nowhere" not found/);
  await cluster.ok(['create', 'namespace', 'somewhere']);
  await cluster.ok(['-n', 'somewhere', 'create', 'configmap', 'x', '--from-literal=a=b']);
  assert.match(await cluster.ok(['-n', 'somewhere', 'get', 'configmap', 'x', '-o', 'jsonpath={.data.a}']), /^b$/);
});
