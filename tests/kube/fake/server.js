'use strict';
// The HTTP(S) front of the fake API server: authentication (bearer token, service account
// tokens the fake kubelet mounts, client certificate), routing of /api, /apis, /version, /openapi and resource paths to the store,
// content negotiation (JSON, YAML, and protobuf for the kinds helm sends that way; replies are
// JSON, or a meta.k8s.io Table when asked for), lists (selectors, limit/continue), watches,
// subresources (status, scale, pods/log) and the Status bodies of errors.

const http = require('http');
const https = require('https');
const fs = require('fs');
const yaml = require('js-yaml');
const { ApiError, errors } = require('./status');
const { parseLabelSelector, parseFieldSelector } = require('./selectors');
const { toTable, wantsTable } = require('./table');
const { watch } = require('./watch');
const protobuf = require('./protobuf');

const MAX_BODY = 3 * 1024 * 1024;

function readBody(req) {
  return new Promise((resolve, reject) => {
    const chunks = [];
    let size = 0;
    req.on('data', c => {
      size += c.length;
      if (size > MAX_BODY) { reject(new ApiError(413, 'RequestEntityTooLarge', 'the request is too large')); req.destroy(); return; }
      chunks.push(c);
    });
    req.on('end', () => resolve(Buffer.concat(chunks)));
    req.on('error', reject);
  });
}

function decodeBody(buf, contentType, res) {
  const type = (contentType || 'application/json').split(';')[0].trim();
  if (!buf.length) return undefined;
  if (type === 'application/vnd.kubernetes.protobuf') {
    let obj;
    try { obj = protobuf.decode(buf); } catch (e) { throw errors.badRequest(`protobuf: ${e.message}`); }
    if (!obj) throw errors.unsupportedMediaType(`${type} for ${res ? res.kind : 'this kind'}`);
    return obj;
  }
  const text = buf.toString('utf8');
  try {
    if (type === 'application/yaml' || type === 'application/apply-patch+yaml') return yaml.load(text);
    return JSON.parse(text);
  } catch (e) {
    throw errors.badRequest(`couldn't get version/kind; json parse error: ${e.message}`);
  }
}

class FakeApiServer {
  constructor(store, { token = null, tls = null, requireClientCert = false, bookmarkIntervalMs = 5000, expiredAsStatus = false, log = () => {} }) {
    this.store = store;
    this.token = token;
    this.serviceAccountTokens = new Map(); // token → user name
    this.requireClientCert = requireClientCert;
    this.bookmarkIntervalMs = bookmarkIntervalMs;
    this.expiredAsStatus = expiredAsStatus;
    this.log = log;
    this.watches = new Set();
    this.logSource = null; // set by the fake kubelet: pod → log file path
    const handler = (req, resp) => this.handle(req, resp).catch(e => this.fail(resp, e));
    this.server = tls
      ? https.createServer({ key: tls.key, cert: tls.cert, ca: tls.ca, requestCert: true, rejectUnauthorized: false }, handler)
      : http.createServer(handler);
    this.server.keepAliveTimeout = 60000;
  }

  listen(host = '127.0.0.1', port = 0) {
    return new Promise((resolve, reject) => {
      this.server.once('error', reject);
      this.server.listen(port, host, () => resolve(this.server.address().port));
    });
  }

  close() {
    for (const end of this.watches) end();
    this.server.closeAllConnections && this.server.closeAllConnections();
    return new Promise(resolve => this.server.close(() => resolve()));
  }

  fail(resp, e) {
    if (!(e instanceof ApiError)) {
      this.log(`internal error: ${e.stack || e}`);
      e = errors.internal(String(e && e.message ? e.message : e));
    }
    if (resp.headersSent) { resp.end(); return; }
    this.json(resp, e.code, e.toStatus());
  }

  json(resp, code, body, headers = {}) {
    const text = JSON.stringify(body);
    resp.writeHead(code, { 'Content-Type': 'application/json', 'Cache-Control': 'no-cache, private', 'Content-Length': Buffer.byteLength(text), ...headers });
    resp.end(text);
  }

  // A bearer token for a pod of service account ns/name, as the token controller issues one
  // (the fake kubelet mounts it); accepted beside --token, and requests with it are logged
  // as user=system:serviceaccount:NS:NAME.
  issueServiceAccountToken(ns, name) {
    const token = `fake-sa.${require('crypto').randomBytes(24).toString('hex')}`;
    this.serviceAccountTokens.set(token, `system:serviceaccount:${ns}:${name}`);
    return token;
  }

  // Who made the request ("" when nobody is, and anonymous requests are refused).
  user(req) {
    const auth = req.headers.authorization || '';
    if (this.token && auth === `Bearer ${this.token}`) return 'token';
    if (auth.startsWith('Bearer ') && this.serviceAccountTokens.has(auth.slice(7))) return this.serviceAccountTokens.get(auth.slice(7));
    const sock = req.socket;
    if (sock.authorized && sock.getPeerCertificate && sock.getPeerCertificate().subject) return 'client-certificate';
    return !this.token && !this.requireClientCert ? 'anonymous' : '';
  }

  async handle(req, resp) {
    const url = new URL(req.url, 'http://fake');
    const q = url.searchParams;
    const path = url.pathname.replace(/\/+$/, '') || '/';
    const user = this.user(req);
    this.log(`${req.method} ${req.url} user=${user || '-'} agent=${req.headers['user-agent'] || ''}`);
    if (['/healthz', '/readyz', '/livez'].includes(path)) { resp.writeHead(200, { 'Content-Type': 'text/plain' }); resp.end('ok'); return; }
    if (!user) throw errors.unauthorized();
    const reg = this.store.registry;
    if (path === '/version') {
      this.json(resp, 200, { major: '1', minor: '35', gitVersion: 'v1.35.0-lanekeeper-fake', gitCommit: '0000000000000000000000000000000000000000',
        gitTreeState: 'clean', buildDate: '2026-01-01T00:00:00Z', goVersion: 'go1.25.0', compiler: 'gc', platform: 'linux/amd64', emulationMajor: '1', emulationMinor: '35' });
      return;
    }
    if (path === '/api') { this.json(resp, 200, reg.apiVersions(req.headers.host)); return; }
    if (path === '/apis') { this.json(resp, 200, reg.apiGroupList()); return; }
    if (path === '/openapi/v3') { this.json(resp, 200, reg.openApiIndex()); return; }
    if (path.startsWith('/openapi/v3/')) {
      const m = path.match(/^\/openapi\/v3\/(?:api\/(v1)|apis\/([^/]+)\/([^/]+))$/);
      const doc = m && (m[1] ? reg.openApiDocument('', m[1]) : reg.openApiDocument(m[2], m[3]));
      if (!doc) throw new ApiError(404, 'NotFound', 'the server could not find the requested resource');
      this.json(resp, 200, doc, { 'Cache-Control': 'public, immutable', Etag: `"${q.get('hash') || ''}"` });
      return;
    }
    const segs = path.split('/').filter(Boolean);
    let group, version, rest;
    if (segs[0] === 'api' && segs.length >= 2) { group = ''; version = segs[1]; rest = segs.slice(2); }
    else if (segs[0] === 'apis' && segs.length >= 3) { group = segs[1]; version = segs[2]; rest = segs.slice(3); }
    else if (segs[0] === 'apis' && segs.length === 2) {
      const g = reg.apiGroup(segs[1]);
      if (!g) throw new ApiError(404, 'NotFound', 'the server could not find the requested resource');
      this.json(resp, 200, g);
      return;
    } else throw new ApiError(404, 'NotFound', 'the server could not find the requested resource');
    if (!rest.length) {
      const list = reg.apiResourceList(group, version);
      if (!list) throw new ApiError(404, 'NotFound', 'the server could not find the requested resource');
      this.json(resp, 200, list);
      return;
    }
    let ns = '', plural, name, sub;
    if (rest[0] === 'namespaces' && rest.length >= 3 && reg.find(group, version, rest[2]) && reg.find(group, version, rest[2]).namespaced) {
      [, ns, plural, name, sub] = rest;
    } else [plural, name, sub] = rest;
    const res = reg.find(group, version, plural);
    if (!res || rest.length > (ns ? 5 : 3)) throw new ApiError(404, 'NotFound', 'the server could not find the requested resource');
    if (sub && !((sub === 'status' && res.status) || (sub === 'scale' && res.scale) || (sub === 'log' && res.log))) {
      throw new ApiError(404, 'NotFound', 'the server could not find the requested resource');
    }
    const body = ['POST', 'PUT', 'PATCH', 'DELETE'].includes(req.method) ? await readBody(req) : Buffer.alloc(0);
    await this.resource(req, resp, q, res, ns, name, sub, body);
  }

  writeOpts(req, q, sub) {
    const fv = q.get('fieldValidation') || 'Warn';
    if (!['Strict', 'Warn', 'Ignore'].includes(fv)) throw errors.badRequest(`fieldValidation: Unsupported value: "${fv}": supported values: "Ignore", "Strict", "Warn"`);
    const dryRun = q.getAll('dryRun');
    const ua = (req.headers['user-agent'] || 'unknown').split('/')[0];
    return { subresource: sub, fieldValidation: fv, dryRun: dryRun.includes('All'), fieldManager: q.get('fieldManager') || ua, force: q.get('force') === 'true' };
  }

  reply(resp, { obj, code, warnings }) {
    const headers = {};
    if (warnings && warnings.length) headers.Warning = warnings.map(w => `299 - ${JSON.stringify(w)}`).join(', ');
    this.json(resp, code, obj, headers);
  }

  async resource(req, resp, q, res, ns, name, sub, body) {
    const store = this.store;
    const accept = req.headers.accept || '';
    if (res.namespaced && ns && req.method !== 'GET') store.requireNamespace(res, ns, false);
    if (sub === 'log') { await this.podLog(req, resp, q, res, ns, name); return; }
    if (sub === 'scale') { this.scale(req, resp, q, res, ns, name, body); return; }
    switch (req.method) {
      case 'GET': {
        if (name) {
          if (res.namespaced && ns) store.requireNamespace(res, ns, false);
          const o = store.get(res, ns, name);
          if (wantsTable(accept)) this.json(resp, 200, toTable(res, [o], { resourceVersion: o.metadata.resourceVersion }, q.get('includeObject') || 'Metadata'));
          else this.json(resp, 200, o);
          return;
        }
        const lmatch = parseLabelSelector(q.get('labelSelector'));
        const fmatch = parseFieldSelector(q.get('fieldSelector'), res);
        const match = o => lmatch(o) && fmatch(o);
        if (q.get('watch') === 'true' || q.get('watch') === '1') {
          const end = watch(store, res, ns, q, { match, table: wantsTable(accept), includeObject: q.get('includeObject') || 'Metadata' },
            req, resp, { bookmarkIntervalMs: this.bookmarkIntervalMs, expiredAsStatus: this.expiredAsStatus });
          if (end) { this.watches.add(end); resp.on('close', () => this.watches.delete(end)); }
          return;
        }
        const rvm = q.get('resourceVersionMatch');
        if (rvm === 'Exact' && q.get('resourceVersion') !== String(store.rv)) {
          throw errors.gone(`too old resource version: ${q.get('resourceVersion')} (${store.rv})`);
        }
        let { items, resourceVersion } = store.list(res, ns, match);
        const meta = { resourceVersion };
        const start = q.get('continue') ? Number(JSON.parse(Buffer.from(q.get('continue'), 'base64').toString()).start) : 0;
        const limit = Number(q.get('limit') || 0);
        items = items.slice(start);
        if (limit > 0 && items.length > limit) {
          meta.continue = Buffer.from(JSON.stringify({ rv: resourceVersion, start: start + limit })).toString('base64');
          meta.remainingItemCount = items.length - limit;
          items = items.slice(0, limit);
        }
        if (wantsTable(accept)) { this.json(resp, 200, toTable(res, items, meta, q.get('includeObject') || 'Metadata')); return; }
        for (const i of items) { delete i.apiVersion; delete i.kind; }
        this.json(resp, 200, { apiVersion: res.group ? `${res.group}/${res.version}` : res.version, kind: res.listKind, metadata: meta, items: items.map(i => ({ apiVersion: res.group ? `${res.group}/${res.version}` : res.version, kind: res.kind, ...i })) });
        return;
      }
      case 'POST': {
        if (name) throw errors.methodNotAllowed(`the server does not allow this method on the requested resource`);
        const obj = decodeBody(body, req.headers['content-type'], res);
        if (!obj || typeof obj !== 'object') throw errors.badRequest('the body of the request is empty');
        if (obj.kind && obj.kind !== res.kind) throw errors.badRequest(`the kind of the object (${obj.kind}) does not match the kind of the URL (${res.kind})`);
        this.reply(resp, store.create(res, ns, obj, this.writeOpts(req, q)));
        return;
      }
      case 'PUT': {
        if (!name) throw errors.methodNotAllowed('the server does not allow this method on the requested resource');
        const obj = decodeBody(body, req.headers['content-type'], res);
        if (!obj || typeof obj !== 'object') throw errors.badRequest('the body of the request is empty');
        this.reply(resp, store.update(res, ns, name, obj, this.writeOpts(req, q, sub)));
        return;
      }
      case 'PATCH': {
        if (!name) throw errors.methodNotAllowed('the server does not allow this method on the requested resource');
        const type = (req.headers['content-type'] || '').split(';')[0].trim();
        const patch = decodeBody(body, type, res);
        if (type === 'application/apply-patch+yaml') {
          const opts = this.writeOpts(req, q, sub);
          if (!q.get('fieldManager')) opts.fieldManager = '';
          this.reply(resp, store.apply(res, ns, name, patch, opts));
        } else {
          this.reply(resp, store.patch(res, ns, name, type, patch, this.writeOpts(req, q, sub)));
        }
        return;
      }
      case 'DELETE': {
        let opts = {};
        try { opts = decodeBody(body, req.headers['content-type'], res) || {}; } catch { opts = {}; }
        if (q.get('propagationPolicy')) opts.propagationPolicy = q.get('propagationPolicy');
        if (q.get('gracePeriodSeconds')) opts.gracePeriodSeconds = Number(q.get('gracePeriodSeconds'));
        if (q.getAll('dryRun').includes('All')) opts.dryRun = true;
        if (!name) {
          const lmatch = parseLabelSelector(q.get('labelSelector'));
          const fmatch = parseFieldSelector(q.get('fieldSelector'), res);
          const { items, resourceVersion } = store.list(res, ns, o => lmatch(o) && fmatch(o));
          const deleted = items.map(i => store.delete(res, i.metadata.namespace || '', i.metadata.name, opts).obj);
          this.json(resp, 200, { apiVersion: res.group ? `${res.group}/${res.version}` : res.version, kind: res.listKind, metadata: { resourceVersion }, items: deleted });
          return;
        }
        this.reply(resp, store.delete(res, ns, name, opts));
        return;
      }
      default:
        throw errors.methodNotAllowed(`the server does not allow this method on the requested resource`);
    }
  }

  scale(req, resp, q, res, ns, name, body) {
    const store = this.store;
    const toScale = d => ({ kind: 'Scale', apiVersion: 'autoscaling/v1',
      metadata: { name: d.metadata.name, namespace: d.metadata.namespace, uid: d.metadata.uid, resourceVersion: d.metadata.resourceVersion, creationTimestamp: d.metadata.creationTimestamp },
      spec: { replicas: d.spec.replicas }, status: { replicas: (d.status && d.status.replicas) || 0,
        selector: Object.entries((d.spec.selector && d.spec.selector.matchLabels) || {}).map(([k, v]) => `${k}=${v}`).join(',') } });
    const d = store.get(res, ns, name);
    if (req.method === 'GET') { this.json(resp, 200, toScale(d)); return; }
    const input = decodeBody(body, req.headers['content-type'], res) || {};
    const replicas = input.spec && input.spec.replicas;
    if (req.method !== 'PUT' && req.method !== 'PATCH') throw errors.methodNotAllowed('the server does not allow this method on the requested resource');
    if (input.metadata && input.metadata.resourceVersion && input.metadata.resourceVersion !== d.metadata.resourceVersion) throw errors.conflict(res, name);
    const next = { ...d, spec: { ...d.spec, replicas: replicas ?? d.spec.replicas } };
    const out = store.writeExisting(res, ns, d, next, this.writeOpts(req, q));
    this.json(resp, 200, toScale(out.obj));
  }

  async podLog(req, resp, q, res, ns, name) {
    const pod = this.store.get(res, ns, name);
    const file = this.logSource && this.logSource(pod);
    if (!file || !fs.existsSync(file)) {
      throw errors.badRequest(`container "${pod.spec.containers[0].name}" in pod "${name}" is waiting to start: ContainerCreating`);
    }
    resp.writeHead(200, { 'Content-Type': 'text/plain', 'Transfer-Encoding': 'chunked' });
    resp.flushHeaders();
    let text = fs.readFileSync(file);
    const tail = q.get('tailLines');
    if (tail !== null) {
      const lines = text.toString().split('\n');
      if (lines[lines.length - 1] === '') lines.pop();
      text = Buffer.from(lines.slice(-Number(tail)).map(l => l + '\n').join(''));
    }
    resp.write(text);
    if (q.get('follow') !== 'true') { resp.end(); return; }
    let offset = fs.statSync(file).size;
    const timer = setInterval(() => {
      const stillThere = this.store.tryGet(res, ns, name);
      const size = fs.existsSync(file) ? fs.statSync(file).size : offset;
      if (size > offset) {
        const fd = fs.openSync(file, 'r');
        const buf = Buffer.alloc(size - offset);
        fs.readSync(fd, buf, 0, buf.length, offset);
        fs.closeSync(fd);
        offset = size;
        resp.write(buf);
      }
      if (!stillThere || stillThere.metadata.uid !== pod.metadata.uid) { clearInterval(timer); resp.end(); }
    }, 200);
    const stop = () => { clearInterval(timer); if (!resp.writableEnded) resp.end(); };
    this.watches.add(stop);
    req.on('close', () => { clearInterval(timer); this.watches.delete(stop); });
  }
}

module.exports = { FakeApiServer };
