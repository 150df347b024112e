#!/usr/bin/env node
'use strict';
// A FAKE Kubernetes API server (a test double, not a Kubernetes), with an optional fake
// kubelet, for driving the real kubectl and helm and lanekeeper's Kubernetes client in tests.
// What it serves and how it differs from a real API server: README.md beside this file.
//
//   node fake-apiserver.js [--port N] [--tls-dir DIR] [--token T] [--client-cert-required]
//        [--history N] [--bookmark-interval MS] [--expired-watch-status] [--servicemonitor]
//        [--kubelet --binary PATH [--kubelet-dir DIR] [--restart-backoff MS]] [--verbose]
//
// Binds 127.0.0.1 port 0 (--port N: that port, so that a test can restart it at the same
// URL) and prints one JSON line on stdout: {"url":"http://127.0.0.1:PORT"}
// (https with --tls-dir, plus the certificate paths). Stops on SIGTERM, SIGINT, stdin EOF,
// (when stdin is a pipe), or when its parent dies, killing every pod process group the fake kubelet started.

const path = require('path');
const { Store } = require('./fake/store');
const { FakeApiServer } = require('./fake/server');
const { ensureCertificates } = require('./fake/tls');

function parseArgs(argv) {
  const o = { history: 10000, bookmarkIntervalMs: 5000, port: 0 };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    const value = () => { if (i + 1 >= argv.length) usage(`${a} needs a value`); return argv[++i]; };
    switch (a) {
      case '--port': o.port = Number(value()); break;
      case '--tls-dir': o.tlsDir = path.resolve(value()); break;
      case '--token': o.token = value(); break;
      case '--client-cert-required': o.requireClientCert = true; break;
      case '--history': o.history = Number(value()); break;
      case '--bookmark-interval': o.bookmarkIntervalMs = Number(value()); break;
      case '--expired-watch-status': o.expiredAsStatus = true; break;
      case '--servicemonitor': o.serviceMonitor = true; break;
      case '--kubelet': o.kubelet = true; break;
      case '--binary': o.binary = path.resolve(value()); break;
      case '--kubelet-dir': o.kubeletDir = path.resolve(value()); break;
      case '--restart-backoff': o.restartBackoffMs = Number(value()); break;
      case '--verbose': o.verbose = true; break;
      default: usage(`unknown argument ${a}`);
    }
  }
  if (o.kubelet && !o.binary) usage('--kubelet needs --binary PATH');
  if (!(o.history > 0)) usage('--history must be a positive number');
  if (!(Number.isInteger(o.port) && o.port >= 0 && o.port < 65536)) usage('--port must be a port number');
  return o;
}

function usage(msg) {
  process.stderr.write(`fake-apiserver: ${msg}\n`);
  process.exit(2);
}

async function main() {
  const opts = parseArgs(process.argv.slice(2));
  const log = opts.verbose ? m => process.stderr.write(`fake-apiserver: ${m}\n`) : () => {};
  const store = new Store({ historyLimit: opts.history });
  if (opts.serviceMonitor) require('./fake/servicemonitor').install(store);
  const tls = opts.tlsDir ? ensureCertificates(opts.tlsDir) : null;
  const api = new FakeApiServer(store, { token: opts.token, tls, requireClientCert: opts.requireClientCert,
    bookmarkIntervalMs: opts.bookmarkIntervalMs, expiredAsStatus: opts.expiredAsStatus, log });
  let kubelet = null;
  if (opts.kubelet) {
    const { FakeKubelet } = require('./fake/kubelet');
    kubelet = new FakeKubelet(store, { binary: opts.binary, dir: opts.kubeletDir, restartBackoffMs: opts.restartBackoffMs, log,
      serviceAccount: { issueToken: (ns, name) => api.issueServiceAccountToken(ns, name), caFile: tls ? path.join(opts.tlsDir, 'ca.crt') : null } });
    api.logSource = pod => kubelet.logPath(pod);
  }
  const port = await api.listen('127.0.0.1', opts.port);
  if (kubelet) { kubelet.apiPort = port; kubelet.start(); }
  const line = { url: `${tls ? 'https' : 'http'}://127.0.0.1:${port}` };
  if (tls) Object.assign(line, { ca: path.join(opts.tlsDir, 'ca.crt'), clientCert: path.join(opts.tlsDir, 'client.crt'), clientKey: path.join(opts.tlsDir, 'client.key') });
  process.stdout.write(JSON.stringify(line) + '\n');

  let stopping = false;
  const stop = async () => {
    if (stopping) return;
    stopping = true;
    if (kubelet) await kubelet.stop();
    await Promise.race([api.close(), new Promise(r => setTimeout(r, 2000))]);
    process.exit(0);
  };
  process.on('SIGTERM', stop);
  process.on('SIGINT', stop);
  // stdin EOF stops us when stdin is a pipe (a harness holds its end); /dev/null or a
  // terminal does not.
  const stdin = require('fs').fstatSync(0);
  if (stdin.isFIFO() || stdin.isSocket()) {
    process.stdin.on('end', stop);
    process.stdin.on('error', stop);
    process.stdin.resume();
  }
  // Like PR_SET_PDEATHSIG: a parent that died (we were re-parented) stops us too.
  const parent = process.ppid;
  setInterval(() => { if (process.ppid !== parent) stop(); }, 500).unref();
}

main().catch(e => { process.stderr.write(`fake-apiserver: ${e.stack || e}\n`); process.exit(1); });
