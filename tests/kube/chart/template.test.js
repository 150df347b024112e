'use strict';
// The chart as helm renders it (no server): lint, the controller Deployment with default and
// other values (flags, probes, securityContext, leader election), the CRD it ships, and the
// values schema refusing what the chart cannot use.

const test = require('node:test');
const assert = require('node:assert/strict');
const fs = require('fs');
const path = require('path');
const yaml = require('js-yaml');
const { CHART, helm, render, find } = require('./render');
const { REPO } = require('../harness');

test('helm lint --strict finds nothing to warn about', async () => {
  const r = await helm(['lint', '--strict', CHART]);
  assert.equal(r.code, 0, r.stdout + r.stderr);
  assert.doesNotMatch(r.stdout, /\[(WARNING|ERROR)\]/);
  assert.match(r.stdout, /1 chart\(s\) linted, 0 chart\(s\) failed/);
});

test("the chart's CRD is crds/lane.yaml, byte for byte", () => {
  assert.ok(fs.readFileSync(path.join(CHART, 'crds', 'lane.yaml')).equals(fs.readFileSync(path.join(REPO, 'crds', 'lane.yaml'))),
    'charts/lanekeeper/crds/lane.yaml differs from crds/lane.yaml: cp crds/lane.yaml charts/lanekeeper/crds/');
});

test('default values: one controller watching the release namespace, locked down, probed', async () => {
  const objs = await render();
  assert.deepEqual(objs.map(o => o.kind).sort(), ['Deployment', 'Role', 'RoleBinding', 'Service', 'ServiceAccount']);
  const dep = find(objs, 'Deployment', 'lk-lanekeeper');
  assert.equal(dep.metadata.namespace, 'lanekeeper');
  assert.equal(dep.spec.replicas, 1);
  assert.equal(dep.spec.strategy.type, 'Recreate', 'without leader election two controllers must never overlap');
  const pod = dep.spec.template.spec;
  assert.equal(pod.serviceAccountName, 'lk-lanekeeper');
  assert.deepEqual(pod.securityContext, { runAsNonRoot: true, runAsUser: 65532, runAsGroup: 65532, seccompProfile: { type: 'RuntimeDefault' } });
  const [c] = pod.containers;
  assert.equal(pod.containers.length, 1);
  assert.equal(c.image, 'lanekeeper:0.1.0', "the tag defaults to the chart's appVersion");
  assert.deepEqual(c.args, ['controller', '--kube', '--namespace', 'lanekeeper', '--status-addr', '0.0.0.0:8081',
    '--insecure', '--log-format', 'json', '--log-level', 'info']);
  assert.equal(c.command, undefined, "the image's ENTRYPOINT is lanekeeper");
  assert.deepEqual(c.securityContext, { runAsNonRoot: true, allowPrivilegeEscalation: false, readOnlyRootFilesystem: true,
    capabilities: { drop: ['ALL'] }, seccompProfile: { type: 'RuntimeDefault' } });
  assert.deepEqual(c.ports, [{ name: 'status', containerPort: 8081, protocol: 'TCP' }]);
  assert.deepEqual(c.livenessProbe.httpGet, { path: '/healthz', port: 'status' });
  assert.deepEqual(c.readinessProbe.httpGet, { path: '/readyz', port: 'status' });
  assert.deepEqual(c.resources, { requests: { cpu: '50m', memory: '64Mi' }, limits: { memory: '256Mi' } });
  assert.deepEqual(c.volumeMounts, [{ name: 'tmp', mountPath: '/tmp' }], 'a read-only root needs a scratch dir');
  assert.deepEqual(c.env.map(e => e.name), ['POD_NAME', 'POD_NAMESPACE', 'LANEKEEPER_IMAGE'], 'no default Redis unless asked for');
  assert.equal(c.env.find(e => e.name === 'LANEKEEPER_IMAGE').value, c.image, "the lanes' pods run the controller's image");
  const svc = find(objs, 'Service');
  assert.deepEqual(svc.spec.ports, [{ name: 'metrics', port: 8081, targetPort: 'status', protocol: 'TCP' }]);
  assert.deepEqual(svc.spec.selector, dep.spec.selector.matchLabels);
  assert.deepEqual(dep.spec.template.metadata.labels, dep.spec.selector.matchLabels);
});

test('more than one replica turns leader election on, with its lease Role, and rolls updates', async () => {
  for (const sets of [['replicaCount=3'], ['leaderElection.enabled=true']]) {
    const objs = await render(sets);
    const dep = find(objs, 'Deployment');
    assert.ok(dep.spec.template.spec.containers[0].args.includes('--leader-elect'), sets.join());
    assert.equal(dep.spec.strategy.type, 'RollingUpdate', sets.join());
    const role = find(objs, 'Role', 'lk-lanekeeper-leader-election');
    assert.equal(role.metadata.namespace, 'lanekeeper', "the lease lives in the controller's namespace");
    const binding = find(objs, 'RoleBinding', 'lk-lanekeeper-leader-election');
    assert.deepEqual(binding.subjects, [{ kind: 'ServiceAccount', name: 'lk-lanekeeper', namespace: 'lanekeeper' }]);
  }
  assert.equal((await render(['replicaCount=3'])).find(o => o.kind === 'Deployment').spec.replicas, 3);
  const one = await render(['replicaCount=1']);
  assert.ok(!find(one, 'Deployment').spec.template.spec.containers[0].args.includes('--leader-elect'));
  assert.equal(find(one, 'Role', 'lk-lanekeeper-leader-election'), undefined, 'no lease rights without leader election');
});

test('allNamespaces: --all-namespaces and a ClusterRole; watchNamespace: the Role there', async () => {
  const all = await render(['allNamespaces=true']);
  const args = find(all, 'Deployment').spec.template.spec.containers[0].args;
  assert.ok(args.includes('--all-namespaces'));
  assert.ok(!args.includes('--namespace'));
  assert.ok(find(all, 'ClusterRole', 'lk-lanekeeper'));
  assert.deepEqual(find(all, 'ClusterRoleBinding', 'lk-lanekeeper').subjects,
    [{ kind: 'ServiceAccount', name: 'lk-lanekeeper', namespace: 'lanekeeper' }]);
  assert.equal(find(all, 'Role'), undefined);

  const other = await render(['watchNamespace=team-a']);
  const otherArgs = find(other, 'Deployment').spec.template.spec.containers[0].args;
  assert.deepEqual(otherArgs.slice(2, 4), ['--namespace', 'team-a']);
  assert.equal(find(other, 'Role', 'lk-lanekeeper').metadata.namespace, 'team-a');
  const binding = find(other, 'RoleBinding', 'lk-lanekeeper');
  assert.equal(binding.metadata.namespace, 'team-a');
  assert.deepEqual(binding.subjects, [{ kind: 'ServiceAccount', name: 'lk-lanekeeper', namespace: 'lanekeeper' }]);
  assert.equal(find(other, 'ClusterRole'), undefined);
});

test('other values: image, resources, a default Redis from a Secret, a ServiceMonitor, logging', async () => {
  const objs = await render(['image.repository=registry.example/lanekeeper', 'image.tag=1.2.3', 'resources.limits.memory=1Gi',
    'defaultRedis.secretKeyRef.name=redis', 'metrics.serviceMonitor.enabled=true', 'metrics.serviceMonitor.labels.release=prom',
    'logLevel=debug', 'logFormat=text', 'statusPort=9090', 'serviceAccount.name=lanes']);
  const dep = find(objs, 'Deployment');
  const c = dep.spec.template.spec.containers[0];
  assert.equal(c.image, 'registry.example/lanekeeper:1.2.3');
  assert.equal(c.env.find(e => e.name === 'LANEKEEPER_IMAGE').value, 'registry.example/lanekeeper:1.2.3');
  assert.equal(c.resources.limits.memory, '1Gi');
  assert.deepEqual(c.env.find(e => e.name === 'LANEKEEPER_REDIS_URL').valueFrom, { secretKeyRef: { name: 'redis', key: 'url' } });
  assert.deepEqual(c.args.slice(4), ['--status-addr', '0.0.0.0:9090', '--insecure', '--log-format', 'text', '--log-level', 'debug']);
  assert.equal(c.ports[0].containerPort, 9090);
  assert.equal(dep.spec.template.spec.serviceAccountName, 'lanes');
  assert.equal(find(objs, 'ServiceAccount').metadata.name, 'lanes');
  const sm = find(objs, 'ServiceMonitor');
  assert.equal(sm.apiVersion, 'monitoring.coreos.com/v1');
  assert.equal(sm.metadata.labels.release, 'prom');
  assert.deepEqual(sm.spec.endpoints, [{ port: 'metrics', path: '/metrics', interval: '30s' }]);
  assert.deepEqual(sm.spec.selector.matchLabels, find(objs, 'Service').spec.selector);
});

test("NOTES.txt's example Lane is examples/kubernetes/hello.yaml, in the watched namespace", async () => {
  const r = await helm(['install', 'lk', CHART, '--dry-run=client', '-n', 'team-a']);
  assert.equal(r.code, 0, r.stderr);
  const notes = r.stdout.slice(r.stdout.indexOf('NOTES:'));
  const lane = notes.match(/<<'LANE'\n([\s\S]*?)\n\s*LANE\n/);
  assert.ok(lane, notes);
  assert.deepEqual(yaml.load(lane[1].replace(/^ {5}/gm, '')),
    yaml.load(fs.readFileSync(path.join(REPO, 'examples', 'kubernetes', 'hello.yaml'), 'utf8')));
  assert.match(notes, /kubectl -n team-a apply -f -/);
  assert.match(notes, /kubectl lanekeeper doctor hello -n team-a/);
});

test('values the chart cannot use are refused, saying which', async () => {
  for (const [sets, message] of [
    [['replicaCount=0'], /replicaCount.*minimum: got 0, want 1/],
    [['allNamespaces=yes'], /allNamespaces.*got string, want boolean/],
    [['logLevel=verbose'], /logLevel.*value must be one of/],
    [['watchNamespace=Team_A'], /watchNamespace.*does not match pattern/],
    [['replicas=2'], /additional properties 'replicas' not allowed/],
    [['allNamespaces=true', 'watchNamespace=team-a'], /watchNamespace and allNamespaces: set one/],
    [['serviceAccount.create=false'], /serviceAccount\.name: the ServiceAccount to run as/],
  ]) {
    const r = await helm(['template', 'lk', CHART, ...sets.flatMap(s => ['--set', s])]);
    assert.notEqual(r.code, 0, sets.join());
    assert.match(r.stderr, message, sets.join());
  }
});
