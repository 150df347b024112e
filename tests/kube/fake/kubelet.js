'use strict';
// The fake kubelet (in the fake API server's process, behind `--kubelet --binary PATH`): runs
// each Pod's first container as a real local process, and the deployment controller's part
// (deployments.js) that makes ReplicaSets and Pods from Deployments.
//   - a process per pod, in its own session and process group, stdout and stderr appended to the pod's
//     log file (served as pods/NAME/log, so `kubectl logs` works); argv, env and volumes as
//     podspec.js resolves them (a missing Secret or key: waiting, CreateContainerConfigError,
//     retried);
//   - a process that exits is restarted after a CrashLoopBackOff-like delay (10 s doubling to
//     5 min; --restart-backoff sets the first step), restartCount counted; restartPolicy Never
//     and OnFailure honoured;
//   - exec, httpGet (127.0.0.1) and tcpSocket probes: readiness sets the Ready condition,
//     liveness failures restart the process, startup gates both;
//   - a deleted pod's process group gets SIGTERM, SIGKILL after the grace period, and the pod
//     object is removed only once the process was reaped — which is what makes Recreate
//     ("the old process is gone before the new one starts") hold;
//   - a pod's processes are its session (sessions.js): when its main process exits, what it
//     left behind in other process groups (lanekeeper's workers, handlers) is killed with
//     it, as a container's PID namespace ends with its PID 1;
//   - on stop() every process group is killed and reaped, and if the fake dies without
//     stopping (SIGKILL), its reaper (pod-reaper.js, which outlives it) kills every pod's
//     session;
//   - the service account token, as a kubelet projects it (unless automountServiceAccountToken
//     is false on the pod, or on its ServiceAccount and not true on the pod): token (issued by
//     the fake API server for system:serviceaccount:NS:NAME), ca.crt (the fake's CA, with
//     --tls-dir) and namespace in the pod's directory, mounted at
//     /var/run/secrets/kubernetes.io/serviceaccount the way podspec.js mounts volumes, and
//     named by $LANEKEEPER_SERVICEACCOUNT_DIR (lanekeeper's in-cluster config reads it there:
//     without mount namespaces a fixed path cannot be given to each pod).
// Pod status: phase, podIP/hostIP 127.0.0.1, containerStatuses (ready, started,
// restartCount, state, lastState), conditions PodScheduled, Initialized, ContainersReady,
// Ready. Only the first container runs; init containers and sidecars do not.

const fs = require('fs');
const os = require('os');
const net = require('net');
const path = require('path');
const http = require('http');
const { spawn } = require('child_process');
const { resolveContainer, ConfigError } = require('./podspec');
const { DeploymentController } = require('./deployments');
const { signalSessions } = require('./sessions');

const now = () => new Date().toISOString().replace(/\.\d{3}Z$/, 'Z');
const MAX_BACKOFF_MS = 5 * 60 * 1000;

function killGroup(pid, signal) {
  try { process.kill(-pid, signal); } catch { /* already gone */ }
}

class FakeKubelet {
  // serviceAccount: {issueToken(ns, name) → token, caFile} to mount service account tokens.
  constructor(store, { binary, dir, restartBackoffMs = 10000, apiPort = 0, log = () => {}, serviceAccount = null }) {
    this.store = store;
    this.binary = binary;
    this.dir = dir || fs.mkdtempSync(path.join(os.tmpdir(), 'lanekeeper-fake-kubelet-'));
    this.ownsDir = !dir;
    this.restartBackoffMs = restartBackoffMs;
    this.apiPort = apiPort;
    this.log = log;
    this.serviceAccount = serviceAccount;
    this.pods = store.resource('', 'v1', 'pods');
    this.deployments = new DeploymentController(store, log);
    this.runtimes = new Map(); // pod uid → runtime
    this.scheduled = false;
    this.stopping = false;
  }

  start() {
    // Its own session, so that nothing sent to the fake's process group reaches it; it
    // exits once the fake is gone and the pods with it.
    this.reaper = spawn(process.execPath, [path.join(__dirname, 'pod-reaper.js')], { detached: true, stdio: ['pipe', 'ignore', 'ignore'] });
    this.reaper.stdin.on('error', () => {});
    this.reaper.unref();
    this.store.hooks.podDeleting = pod => this.terminate(pod);
    this.unsubscribe = this.store.subscribe('/pods', this.store.rv, () => this.schedule());
    const others = ['apps/deployments', 'apps/replicasets', '/secrets', '/configmaps'].map(k => this.store.subscribe(k, this.store.rv, () => this.schedule()));
    this.unsubscribeOthers = () => others.forEach(u => u());
    this.tick = setInterval(() => this.schedule(), 1000);
    this.schedule();
  }

  logPath(pod) {
    const rt = this.runtimes.get(pod.metadata.uid);
    return rt ? rt.logFile : null;
  }

  schedule() {
    if (this.scheduled || this.stopping) return;
    this.scheduled = true;
    setImmediate(() => {
      this.scheduled = false;
      if (this.stopping) return;
      this.deployments.reconcileAll();
      for (const pod of this.store.list(this.pods, '').items) this.sync(pod);
    });
  }

  runtime(pod) {
    let rt = this.runtimes.get(pod.metadata.uid);
    if (!rt) {
      const dir = path.join(this.dir, `${pod.metadata.namespace}_${pod.metadata.name}_${pod.metadata.uid.slice(0, 8)}`);
      fs.mkdirSync(dir, { recursive: true });
      rt = { uid: pod.metadata.uid, ns: pod.metadata.namespace, name: pod.metadata.name, dir,
        logFile: path.join(dir, `${pod.spec.containers[0].name}.log`), proc: null, restartCount: 0,
        state: { waiting: { reason: 'ContainerCreating' } }, lastState: {}, nextStart: 0, crashes: 0,
        probes: {}, ready: false, started: false, terminating: false, done: false };
      this.runtimes.set(pod.metadata.uid, rt);
    }
    return rt;
  }

  sync(pod) {
    const rt = this.runtime(pod);
    if (pod.metadata.deletionTimestamp) { this.terminate(pod); return; }
    if (!rt.proc && !rt.done && Date.now() >= rt.nextStart) this.startProcess(pod, rt);
    this.writeStatus(pod, rt);
  }

  startProcess(pod, rt) {
    let spec;
    try {
      spec = resolveContainer(pod, (kind, ns, name) => this.store.tryGet(this.store.resource('', 'v1', kind), ns, name),
        { binary: this.binary, dir: rt.dir, apiPort: this.apiPort, serviceAccountDir: this.mountServiceAccount(pod, rt) });
    } catch (e) {
      if (!(e instanceof ConfigError)) throw e;
      rt.state = { waiting: { reason: 'CreateContainerConfigError', message: e.message } };
      rt.nextStart = Date.now() + 1000;
      return;
    }
    const out = fs.openSync(rt.logFile, 'a');
    let proc;
    try {
      proc = spawn(spec.argv[0], spec.argv.slice(1), { cwd: spec.cwd, env: spec.env, detached: true, stdio: ['ignore', out, out] });
    } finally { fs.closeSync(out); }
    rt.proc = proc;
    if (proc.pid) this.reaper.stdin.write(`${proc.pid}\n`);
    rt.spec = spec;
    rt.startedAt = now();
    rt.startedAtMs = Date.now();
    rt.state = { running: { startedAt: rt.startedAt } };
    rt.ready = false;
    rt.started = !spec.container.startupProbe;
    this.log(`pod ${rt.ns}/${rt.name}: started pid ${proc.pid}: ${spec.argv.join(' ')}`);
    proc.on('error', e => {
      fs.appendFileSync(rt.logFile, `fake-kubelet: cannot start ${spec.argv[0]}: ${e.message}\n`);
    });
    proc.on('exit', (code, signal) => this.exited(rt, proc, code, signal));
    this.startProbes(pod, rt);
  }

  // The pod's service account directory (token, ca.crt, namespace), or null when none is
  // mounted. The token is issued once per pod and kept across container restarts.
  mountServiceAccount(pod, rt) {
    if (!this.serviceAccount) return null;
    const ns = pod.metadata.namespace;
    const name = pod.spec.serviceAccountName || 'default';
    const sa = this.store.tryGet(this.store.resource('', 'v1', 'serviceaccounts'), ns, name);
    const automount = pod.spec.automountServiceAccountToken ?? (sa ? sa.automountServiceAccountToken : undefined) ?? true;
    if (!automount) return null;
    const dir = path.join(rt.dir, 'serviceaccount');
    if (!rt.serviceAccountToken) {
      rt.serviceAccountToken = this.serviceAccount.issueToken(ns, name);
      fs.mkdirSync(dir, { recursive: true });
      fs.writeFileSync(path.join(dir, 'token'), rt.serviceAccountToken, { mode: 0o600 });
      fs.writeFileSync(path.join(dir, 'namespace'), ns);
      if (this.serviceAccount.caFile) fs.copyFileSync(this.serviceAccount.caFile, path.join(dir, 'ca.crt'));
    }
    return dir;
  }

  exited(rt, proc, code, signal) {
    if (rt.proc !== proc) return;
    killGroup(proc.pid, 'SIGKILL'); // anything it left in its group goes with it,
    signalSessions(new Set([proc.pid]), 'SIGKILL'); // and in its session
    this.reaper.stdin.write(`-${proc.pid}\n`); // a session id that may be reused from now on
    this.stopProbes(rt);
    rt.proc = null;
    rt.ready = false;
    const exitCode = code ?? 128 + (os.constants.signals[signal] || 9);
    const terminated = { exitCode, reason: exitCode === 0 ? 'Completed' : 'Error', startedAt: rt.startedAt, finishedAt: now() };
    if (signal) terminated.signal = os.constants.signals[signal];
    this.log(`pod ${rt.ns}/${rt.name}: pid ${proc.pid} exited ${code ?? signal}`);
    if (rt.onExit) { const f = rt.onExit; rt.onExit = null; rt.state = { terminated }; f(); return; }
    const pod = this.store.tryGet(this.pods, rt.ns, rt.name);
    if (!pod || pod.metadata.uid !== rt.uid || this.stopping) { rt.state = { terminated }; return; }
    const policy = pod.spec.restartPolicy || 'Always';
    if (policy === 'Never' || (policy === 'OnFailure' && exitCode === 0)) {
      rt.state = { terminated };
      rt.done = true;
    } else {
      // CrashLoopBackOff: 10 s, 20 s, … 5 min; a run of 10 minutes resets it.
      if (Date.now() - rt.startedAtMs > 10 * 60 * 1000) rt.crashes = 0;
      const delay = Math.min(this.restartBackoffMs * 2 ** rt.crashes, MAX_BACKOFF_MS);
      rt.crashes++;
      rt.restartCount++;
      rt.lastState = { terminated };
      rt.state = { waiting: { reason: 'CrashLoopBackOff', message: `back-off ${Math.round(delay / 1000)}s restarting failed container=${pod.spec.containers[0].name} pod=${rt.name}_${rt.ns}(${rt.uid})` } };
      rt.nextStart = Date.now() + delay;
      rt.restartTimer = setTimeout(() => this.schedule(), delay + 10);
    }
    this.writeStatus(pod, rt);
  }

  // SIGTERM, then SIGKILL after the grace period; the pod object goes once the process was reaped.
  terminate(pod) {
    const rt = this.runtime(pod);
    if (rt.terminating) return;
    rt.terminating = true;
    clearTimeout(rt.restartTimer);
    this.stopProbes(rt);
    const remove = () => {
      this.store.removeNow(this.pods, rt.ns, rt.name);
      this.runtimes.delete(rt.uid);
      this.schedule();
    };
    if (!rt.proc) { setImmediate(remove); return; }
    const grace = pod.metadata.deletionGracePeriodSeconds ?? pod.spec.terminationGracePeriodSeconds ?? 30;
    const pid = rt.proc.pid;
    rt.onExit = () => { clearTimeout(rt.killTimer); remove(); };
    killGroup(pid, 'SIGTERM');
    rt.killTimer = setTimeout(() => killGroup(pid, 'SIGKILL'), grace * 1000);
  }

  // ---- probes ----------------------------------------------------------------------------

  startProbes(pod, rt) {
    const c = rt.spec.container;
    for (const kind of ['startupProbe', 'readinessProbe', 'livenessProbe']) {
      const p = c[kind];
      if (!p) continue;
      const state = { successes: 0, failures: 0 };
      const run = () => {
        if (!rt.proc) return;
        if (kind !== 'startupProbe' && !rt.started) { state.timer = setTimeout(run, (p.periodSeconds || 10) * 1000); return; }
        this.probe(p, rt, c).then(ok => {
          if (!rt.proc) return;
          if (ok) { state.successes++; state.failures = 0; } else { state.failures++; state.successes = 0; }
          const passed = state.successes >= (p.successThreshold || 1);
          const failed = state.failures >= (p.failureThreshold || 3);
          if (kind === 'startupProbe') {
            if (passed) { rt.started = true; return this.schedule(); }
            if (failed) return killGroup(rt.proc.pid, 'SIGKILL');
          } else if (kind === 'readinessProbe') {
            if (passed !== rt.ready && (passed || failed)) { rt.ready = passed; this.schedule(); }
          } else if (failed) {
            fs.appendFileSync(rt.logFile, 'fake-kubelet: liveness probe failed, restarting\n');
            killGroup(rt.proc.pid, 'SIGTERM');
            const pid = rt.proc.pid;
            setTimeout(() => killGroup(pid, 'SIGKILL'), (pod.spec.terminationGracePeriodSeconds ?? 30) * 1000).unref();
            return;
          }
          state.timer = setTimeout(run, (p.periodSeconds || 10) * 1000);
        });
      };
      state.timer = setTimeout(run, (p.initialDelaySeconds || 0) * 1000);
      rt.probes[kind] = state;
    }
    if (!c.readinessProbe) rt.ready = true;
  }

  stopProbes(rt) {
    for (const s of Object.values(rt.probes)) clearTimeout(s.timer);
    rt.probes = {};
  }

  probe(p, rt, c) {
    const timeoutMs = (p.timeoutSeconds || 1) * 1000;
    const port = v => (typeof v === 'number' || /^\d+$/.test(v) ? Number(v)
      : ((c.ports || []).find(x => x.name === v) || {}).containerPort);
    return new Promise(resolve => {
      if (p.exec) {
        const argv = p.exec.command.map(a => (a === 'lanekeeper' ? this.binary : a));
        const child = spawn(argv[0], argv.slice(1), { env: rt.spec.env, cwd: rt.spec.cwd, stdio: 'ignore', detached: true });
        const t = setTimeout(() => killGroup(child.pid, 'SIGKILL'), timeoutMs);
        child.on('error', () => { clearTimeout(t); resolve(false); });
        child.on('exit', code => { clearTimeout(t); resolve(code === 0); });
      } else if (p.httpGet) {
        const req = http.get({ host: '127.0.0.1', port: port(p.httpGet.port), path: p.httpGet.path || '/', timeout: timeoutMs,
          headers: Object.fromEntries((p.httpGet.httpHeaders || []).map(h => [h.name, h.value])) }, r => {
          r.resume();
          resolve(r.statusCode >= 200 && r.statusCode < 400);
        });
        req.on('timeout', () => req.destroy());
        req.on('error', () => resolve(false));
      } else if (p.tcpSocket) {
        const s = net.connect({ host: '127.0.0.1', port: port(p.tcpSocket.port) });
        s.setTimeout(timeoutMs, () => { s.destroy(); resolve(false); });
        s.on('connect', () => { s.destroy(); resolve(true); });
        s.on('error', () => resolve(false));
      } else resolve(true);
    });
  }

  // ---- status --------------------------------------------------------------------------

  writeStatus(pod, rt) {
    if (pod.metadata.deletionTimestamp) return;
    const c = pod.spec.containers[0];
    const running = !!rt.proc;
    const ready = running && rt.started && rt.ready;
    const old = pod.status || {};
    const cond = (type, ok) => {
      const prev = (old.conditions || []).find(x => x.type === type);
      const status = ok ? 'True' : 'False';
      return { type, status, lastProbeTime: null, lastTransitionTime: prev && prev.status === status ? prev.lastTransitionTime : now() };
    };
    const phase = running || !rt.done ? (running || rt.restartCount > 0 ? 'Running' : 'Pending')
      : rt.state.terminated && rt.state.terminated.exitCode === 0 ? 'Succeeded' : 'Failed';
    const cs = { name: c.name, image: c.image || '', imageID: '', containerID: running ? `fake://${rt.proc.pid}` : undefined,
      ready, started: running && rt.started, restartCount: rt.restartCount, state: rt.state };
    if (rt.lastState.terminated) cs.lastState = rt.lastState; else cs.lastState = {};
    if (!cs.containerID) delete cs.containerID;
    const status = {
      phase, hostIP: '127.0.0.1', hostIPs: [{ ip: '127.0.0.1' }], podIP: '127.0.0.1', podIPs: [{ ip: '127.0.0.1' }],
      startTime: old.startTime || now(), qosClass: 'BestEffort',
      conditions: [cond('PodScheduled', true), cond('Initialized', true), cond('ContainersReady', ready), cond('Ready', ready)],
      containerStatuses: [cs],
    };
    if (JSON.stringify(status) === JSON.stringify(old)) return;
    try {
      this.store.writeExisting(this.pods, pod.metadata.namespace, pod, { ...pod, status }, { subresource: 'status', fieldManager: 'kubelet' });
    } catch (e) { if (e.code !== 404 && e.code !== 409) throw e; }
  }

  async stop() {
    this.stopping = true;
    clearInterval(this.tick);
    if (this.unsubscribe) { this.unsubscribe(); this.unsubscribeOthers(); }
    this.store.hooks.podDeleting = null;
    const waits = [];
    for (const rt of this.runtimes.values()) {
      clearTimeout(rt.restartTimer); clearTimeout(rt.killTimer);
      this.stopProbes(rt);
      if (!rt.proc) continue;
      const proc = rt.proc;
      waits.push(new Promise(resolve => { if (proc.exitCode !== null || proc.signalCode !== null) resolve(); else proc.once('exit', resolve); }));
      killGroup(proc.pid, 'SIGTERM');
      setTimeout(() => killGroup(proc.pid, 'SIGKILL'), 2000).unref();
    }
    await Promise.race([Promise.all(waits), new Promise(r => setTimeout(r, 5000))]);
    if (this.ownsDir) fs.rmSync(this.dir, { recursive: true, force: true });
  }
}

module.exports = { FakeKubelet };
