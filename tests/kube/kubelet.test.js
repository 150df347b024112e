'use strict';
// The fake kubelet runs each Deployment's container as a real local process: the real
// lanekeeper binary (LANEKEEPER_BIN, set by ctest) for `lanekeeper …` commands, env from
// Secrets and fieldRefs, ConfigMap volumes in a per-pod directory, probes, restarts with
// backoff, Recreate ordering, `kubectl logs`, and no process left behind.

const test = require('node:test');
const assert = require('node:assert/strict');
const fs = require('fs');
const path = require('path');
const { spawn } = require('child_process');
const { FakeCluster, waitFor, lanekeeperBinary, REPO } = require('./harness');

let cluster;
const BIN = lanekeeperBinary();
test.before(async () => { cluster = await FakeCluster.start({ args: ['--kubelet', '--binary', BIN, '--restart-backoff', '300'] }); });
test.after(async () => { if (cluster) await cluster.stop(); });

function deployment(name, container, { strategy = 'Recreate', volumes, replicas = 1, grace = 5 } = {}) {
  return {
    apiVersion: 'apps/v1', kind: 'Deployment', metadata: { name },
    spec: { replicas, strategy: { type: strategy }, selector: { matchLabels: { app: name } },
      template: { metadata: { labels: { app: name } },
        spec: { terminationGracePeriodSeconds: grace, volumes, containers: [{ name: 'main', image: 'lanekeeper:test', ...container }] } } },
  };
}

async function apply(obj) {
  const f = path.join(cluster.dir, `${obj.kind}-${obj.metadata.name}.json`);
  fs.writeFileSync(f, JSON.stringify(obj));
  return cluster.ok(['apply', '-f', f]);
}

async function podsOf(app) {
  return (await cluster.getJson(['pods', '-l', `app=${app}`])).items;
}

const alive = pid => { try { process.kill(pid, 0); return true; } catch { return false; } };
const pidOf = pod => Number(pod.status.containerStatuses[0].containerID.replace('fake://', ''));

test('a lanekeeper command runs the real binary, and a process that exits is restarted with backoff', async () => {
  await apply(deployment('version', { command: ['lanekeeper', '--version'] }));
  const pod = await waitFor(async () => {
    const [p] = await podsOf('version');
    return p && p.status.containerStatuses && p.status.containerStatuses[0].restartCount >= 2 ? p : null;
  }, { what: 'two restarts of lanekeeper --version' });
  assert.match(pod.metadata.name, /^version-[0-9a-f]{10}-[a-z0-9]{5}$/);
  assert.equal(pod.metadata.ownerReferences[0].kind, 'ReplicaSet');
  const cs = pod.status.containerStatuses[0];
  assert.equal(cs.lastState.terminated.exitCode, 0);
  const logs = await cluster.ok(['logs', pod.metadata.name]);
  assert.match(logs, /^lanekeeper 0\.1\.0$/m);
  const waiting = await waitFor(async () => {
    const [p] = await podsOf('version');
    const st = p.status.containerStatuses[0].state;
    return st.waiting && st.waiting.reason === 'CrashLoopBackOff' ? st : null;
  }, { what: 'CrashLoopBackOff between restarts' });
  assert.match(waiting.waiting.message, /back-off/);
  await cluster.ok(['delete', 'deployment', 'version']);
});

test('env comes from literals, a Secret and fieldRefs, with $(VAR) expansion in args', async () => {
  await cluster.ok(['create', 'secret', 'generic', 'redis', '--from-literal=url=redis://:s3cret@127.0.0.1:6390/0']);
  await apply(deployment('envdemo', {
    command: ['sh', '-c'], args: ['echo "url=$REDIS_URL pod=$(POD_NAME) ns=$POD_NS ip=$POD_IP host=$HOSTNAME lit=$(LIT) esc=$ESC"; exec sleep 600'],
    env: [
      { name: 'LIT', value: 'plain' },
      { name: 'ESC', value: '$$(LIT)' },
      { name: 'REDIS_URL', valueFrom: { secretKeyRef: { name: 'redis', key: 'url' } } },
      { name: 'POD_NAME', valueFrom: { fieldRef: { fieldPath: 'metadata.name' } } },
      { name: 'POD_NS', valueFrom: { fieldRef: { fieldPath: 'metadata.namespace' } } },
      { name: 'POD_IP', valueFrom: { fieldRef: { fieldPath: 'status.podIP' } } },
    ],
  }));
  const [pod] = await waitFor(async () => { const ps = await podsOf('envdemo'); return ps.length && ps[0].status.containerStatuses ? ps : null; }, { what: 'envdemo running' });
  const line = await waitFor(async () => (await cluster.ok(['logs', `deployment/envdemo`])).trim(), { what: 'envdemo output' });
  const name = pod.metadata.name;
  assert.equal(line, `url=redis://:s3cret@127.0.0.1:6390/0 pod=${name} ns=default ip=127.0.0.1 host=${name} lit=plain esc=$(LIT)`);
  await cluster.ok(['delete', 'deployment', 'envdemo']);
  await waitFor(() => !alive(pidOf(pod)), { what: 'envdemo process gone after its Deployment' });
});

test('a ConfigMap volume is visible to the process at its mountPath, rewritten to the pod directory', async () => {
  await cluster.ok(['create', 'configmap', 'lane', `--from-file=lane.yaml=${path.join(REPO, 'examples/quickstart.yaml')}`]);
  await apply(deployment('validate', { command: ['lanekeeper', 'validate', '-f', '/etc/lanekeeper/lane.yaml'],
    volumeMounts: [{ name: 'spec', mountPath: '/etc/lanekeeper', readOnly: true }] }, { volumes: [{ name: 'spec', configMap: { name: 'lane' } }] }));
  const logs = await waitFor(async () => { const l = await cluster.kubectl(['logs', 'deployment/validate']); return /valid/.test(l.stdout) ? l.stdout : null; },
    { what: 'lanekeeper validate output' });
  assert.match(logs, /1 lane\(s\) valid: quickstart/);
  await cluster.ok(['delete', 'deployment', 'validate']);
});

test('a missing Secret keeps the pod waiting with CreateContainerConfigError until it exists', async () => {
  await apply(deployment('needs-secret', { command: ['sh', '-c', 'echo "$TOKEN"; exec sleep 600'],
    env: [{ name: 'TOKEN', valueFrom: { secretKeyRef: { name: 'later', key: 'token' } } }] }));
  const st = await waitFor(async () => { const [p] = await podsOf('needs-secret'); return p && p.status.containerStatuses && p.status.containerStatuses[0].state.waiting; },
    { what: 'the waiting state' });
  assert.equal(st.reason, 'CreateContainerConfigError');
  assert.match(st.message, /secret "later" not found/);
  await cluster.ok(['create', 'secret', 'generic', 'later', '--from-literal=token=now']);
  await waitFor(async () => (await cluster.ok(['logs', 'deployment/needs-secret'])).trim() === 'now', { what: 'the container to start with the Secret' });
  await cluster.ok(['delete', 'deployment', 'needs-secret']);
});

test('Recreate: the old process has exited and is reaped before the new one starts', async () => {
  const stamps = path.join(cluster.dir, 'recreate.log');
  const script = 'echo "start $(date +%s%N) $HOSTNAME $$" >> "$STAMPS"; trap \'sleep 0.3; echo "exit $(date +%s%N) $HOSTNAME $$" >> "$STAMPS"; exit 0\' TERM; while :; do sleep 0.05; done';
  const make = v => deployment('recreate', { command: ['sh', '-c', script], env: [{ name: 'STAMPS', value: stamps }, { name: 'VERSION', value: v }] });
  await apply(make('1'));
  const [first] = await waitFor(async () => { const ps = await podsOf('recreate'); return ps.length && ps[0].status.containerStatuses && ps[0].status.containerStatuses[0].ready ? ps : null; },
    { what: 'the first pod ready' });
  const list = await cluster.request('GET', '/api/v1/namespaces/default/pods');
  const w = cluster.watch(`/api/v1/namespaces/default/pods?watch=true&resourceVersion=${list.json.metadata.resourceVersion}&labelSelector=app%3Drecreate`);
  await w.ready;
  await apply(make('2'));
  const second = await waitFor(async () => {
    const ps = await podsOf('recreate');
    return ps.length === 1 && ps[0].metadata.name !== first.metadata.name && ps[0].status.containerStatuses && ps[0].status.containerStatuses[0].ready ? ps[0] : null;
  }, { what: 'the second pod ready, alone' });
  w.close();
  const lines = fs.readFileSync(stamps, 'utf8').trim().split('\n').map(l => l.split(' '));
  const at = (what, pod) => BigInt(lines.find(l => l[0] === what && l[2] === pod)[1]);
  assert.ok(at('exit', first.metadata.name) < at('start', second.metadata.name), lines.join('\n'));
  assert.ok(!alive(pidOf(first)), 'the first process was reaped');
  // In the API too: the old pod was DELETED before the new one was ADDED.
  const deleted = w.events.findIndex(e => e.type === 'DELETED' && e.object.metadata.name === first.metadata.name);
  const added = w.events.findIndex(e => e.type === 'ADDED' && e.object.metadata.name === second.metadata.name);
  assert.ok(deleted >= 0 && added > deleted, w.events.map(e => `${e.type} ${e.object.metadata.name}`).join('\n'));
  const d = await cluster.getJson(['deployment', 'recreate']);
  assert.equal(d.status.observedGeneration, d.metadata.generation);
  assert.equal(d.status.updatedReplicas, 1);
  assert.equal(d.status.readyReplicas, 1);
  assert.equal(d.status.availableReplicas, 1);
  assert.ok(d.status.conditions.some(c => c.type === 'Available' && c.status === 'True'));
  // Scaling to 0 stops the process, which is gone before the pod is.
  await cluster.ok(['scale', 'deployment', 'recreate', '--replicas=0']);
  await waitFor(async () => (await podsOf('recreate')).length === 0, { what: 'no pods at replicas 0' });
  assert.ok(!alive(pidOf(second)));
  await cluster.ok(['delete', 'deployment', 'recreate']);
});

test('readiness and liveness probes: exec probes gate Ready, a failing liveness probe restarts the process', async () => {
  const flag = path.join(cluster.dir, 'ready-flag');
  const live = path.join(cluster.dir, 'live-flag');
  fs.writeFileSync(live, '');
  await apply(deployment('probed', { command: ['sh', '-c', 'exec sleep 600'],
    readinessProbe: { exec: { command: ['test', '-f', flag] }, periodSeconds: 1 },
    livenessProbe: { exec: { command: ['test', '-f', live] }, periodSeconds: 1, failureThreshold: 2 } }));
  const [pod] = await waitFor(async () => { const ps = await podsOf('probed'); return ps.length && ps[0].status.containerStatuses ? ps : null; }, { what: 'probed running' });
  await new Promise(r => setTimeout(r, 1500));
  let d = await cluster.getJson(['deployment', 'probed']);
  assert.equal(d.status.readyReplicas, undefined, 'not ready while the readiness probe fails');
  fs.writeFileSync(flag, '');
  await waitFor(async () => (await cluster.getJson(['deployment', 'probed'])).status.readyReplicas === 1, { what: 'ready once the probe passes' });
  const [p] = await podsOf('probed');
  assert.ok(p.status.conditions.some(c => c.type === 'Ready' && c.status === 'True'));
  fs.rmSync(live);
  await waitFor(async () => { const [q] = await podsOf('probed'); return q.status.containerStatuses[0].restartCount >= 1; }, { what: 'a restart after liveness failures' });
  assert.ok(!alive(pidOf(pod)));
  await cluster.ok(['delete', 'deployment', 'probed']);
});

test('an httpGet readiness probe against 127.0.0.1 on a named port', async () => {
  const port = await new Promise(resolve => { const srv = require('net').createServer().listen(0, '127.0.0.1', () => { const p = srv.address().port; srv.close(() => resolve(p)); }); });
  // It listens only once the test creates the flag file: a handshake, not a head start.
  const flag = path.join(cluster.dir, 'http-probed-listen');
  const server = `const t = setInterval(() => { if (!require('fs').existsSync(${JSON.stringify(flag)})) return; clearInterval(t);
    require('http').createServer((q, s) => { s.statusCode = q.url === '/readyz' ? 200 : 404; s.end(); }).listen(${port}, '127.0.0.1'); }, 50)`;
  await apply(deployment('http-probed', { command: ['node', '-e', server], ports: [{ name: 'status', containerPort: port }],
    readinessProbe: { httpGet: { path: '/readyz', port: 'status' }, periodSeconds: 1 } }));
  await waitFor(async () => { const [p] = await podsOf('http-probed'); return p && p.status.containerStatuses && p.status.containerStatuses[0].started; }, { what: 'http-probed started' });
  const [early] = await podsOf('http-probed');
  assert.equal(early.status.containerStatuses[0].ready, false, 'not ready before it listens');
  fs.writeFileSync(flag, '');
  await waitFor(async () => (await cluster.getJson(['deployment', 'http-probed'])).status.readyReplicas === 1, { what: 'ready once /readyz answers 200' });
  await cluster.ok(['delete', 'deployment', 'http-probed']);
});

test('kubectl logs -f follows the pod log', async () => {
  await apply(deployment('ticker', { command: ['sh', '-c', 'i=0; while :; do i=$((i+1)); echo "tick $i"; sleep 0.2; done'] }));
  await waitFor(async () => (await podsOf('ticker')).length === 1, { what: 'ticker pod' });
  const r = await cluster.kubectl(['logs', '-f', 'deployment/ticker', '--request-timeout=3s'], { timeoutMs: 10000 });
  assert.match(r.stdout, /tick 3/);
  await cluster.ok(['delete', 'deployment', 'ticker']);
});

test('the fake stops its pod processes when its parent dies', async () => {
  const marker = `orphan-check-${process.pid}-${Date.now()}`;
  const dir = fs.mkdtempSync(path.join(cluster.dir, 'parent-'));
  const found = () => fs.readdirSync('/proc').filter(d => /^\d+$/.test(d)).some(pid => {
    try { return fs.readFileSync(`/proc/${pid}/cmdline`, 'utf8').includes(marker); } catch { return false; }
  });
  // The inner fake's kubelet dir is under this test's dir, so the harness's stray-process
  // check covers its pods even if this test fails half-way.
  const parent = spawn('sh', ['-c', `node ${path.join(__dirname, 'fake-apiserver.js')} --kubelet --binary ${BIN} --kubelet-dir ${dir}/kubelet > ${dir}/out < /dev/null & wait`], { stdio: 'ignore', detached: true });
  try {
    const url = await waitFor(() => { const t = fs.existsSync(`${dir}/out`) && fs.readFileSync(`${dir}/out`, 'utf8'); return t && JSON.parse(t.split('\n')[0]).url; }, { what: 'the inner fake URL' });
    const http = require('http');
    const body = JSON.stringify(deployment('orphan', { command: ['sh', '-c', `sleep 600; : ${marker}`] }));
    await new Promise((resolve, reject) => {
      const req = http.request(`${url}/apis/apps/v1/namespaces/default/deployments`, { method: 'POST', headers: { 'Content-Type': 'application/json' } }, res => { res.resume(); res.on('end', resolve); });
      req.on('error', reject);
      req.end(body);
    });
    await waitFor(found, { what: 'the pod process to start' });
    process.kill(parent.pid, 'SIGKILL'); // the shell only: the fake sees itself re-parented
    await waitFor(() => !found(), { what: 'the pod process to be stopped after the parent died', timeoutMs: 20000 });
  } finally {
    try { process.kill(-parent.pid, 'SIGTERM'); } catch { /* already gone */ }
  }
});

test('a fake killed with SIGKILL leaves no pod process behind, not even one in another process group', async () => {
  const marker = `reaper-check-${process.pid}-${Date.now()}`;
  const dir = fs.mkdtempSync(path.join(cluster.dir, 'killed-'));
  const running = () => fs.readdirSync('/proc').filter(d => /^\d+$/.test(d)).filter(pid => {
    try { return fs.readFileSync(`/proc/${pid}/cmdline`, 'utf8').includes(marker); } catch { return false; }
  }).length;
  const fake = spawn(process.execPath, [path.join(__dirname, 'fake-apiserver.js'), '--kubelet', '--binary', BIN, '--kubelet-dir', `${dir}/kubelet`],
    { stdio: ['pipe', 'pipe', 'ignore'], detached: true });
  try {
    const url = await new Promise((resolve, reject) => {
      let out = '';
      fake.stdout.on('data', d => { out += d; if (out.includes('\n')) resolve(JSON.parse(out.split('\n')[0]).url); });
      fake.on('exit', code => reject(new Error(`the inner fake exited ${code}`)));
    });
    // The pod's process starts a child in a process group of its own, as lanekeeper's
    // supervisor starts its worker: killing the pod's group would miss it.
    const script = `import subprocess, time; subprocess.Popen(["sh", "-c", "sleep 600; : ${marker}"], process_group=0); time.sleep(600)  # ${marker}`;
    const body = JSON.stringify(deployment('killed', { command: ['/usr/bin/python3', '-c', script] }));
    const http = require('http');
    await new Promise((resolve, reject) => {
      const req = http.request(`${url}/apis/apps/v1/namespaces/default/deployments`, { method: 'POST', headers: { 'Content-Type': 'application/json' } }, res => { res.resume(); res.on('end', resolve); });
      req.on('error', reject);
      req.end(body);
    });
    await waitFor(() => running() === 2, { what: 'the pod process and its child in another group' });
    process.kill(-fake.pid, 'SIGKILL'); // the fake's whole group, as a harness's Kill() does
    await waitFor(() => running() === 0, { what: 'the pod processes to be killed after the fake died', timeoutMs: 20000 });
  } finally {
    try { process.kill(-fake.pid, 'SIGKILL'); } catch { /* already gone */ }
  }
});
