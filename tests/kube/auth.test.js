'use strict';
// The kubeconfig paths lanekeeper's client must support, checked with the real kubectl
// against the fake over HTTPS: CA file and CA data, client certificate and key, bearer token,
// insecure-skip-tls-verify; and the 401 without credentials.

const test = require('node:test');
const assert = require('node:assert/strict');
const fs = require('fs');
const { FakeCluster } = require('./harness');

let cluster;
test.before(async () => { cluster = await FakeCluster.start({ tls: true, args: ['--token', 'sekret', '--client-cert-required'] }); });
test.after(async () => { if (cluster) await cluster.stop(); });

test('the fake prints an https URL and the paths of its CA and client certificate', () => {
  assert.match(cluster.url, /^https:\/\/127\.0\.0\.1:\d+$/);
  for (const k of ['ca', 'clientCert', 'clientKey']) assert.ok(fs.existsSync(cluster.info[k]), k);
});

test('a bearer token with the CA file is accepted', async () => {
  cluster.writeKubeconfig({ token: 'sekret' });
  assert.match(await cluster.ok(['get', 'namespaces']), /kube-system/);
});

test('a wrong token, or none, is 401 Unauthorized', async () => {
  cluster.writeKubeconfig({ token: 'wrong' });
  const r = await cluster.kubectl(['get', 'namespaces']);
  assert.notEqual(r.code, 0);
  assert.match(r.stderr, /Unauthorized|must be logged in/);
  cluster.writeKubeconfig({});
  assert.notEqual((await cluster.kubectl(['get', 'namespaces'])).code, 0);
});

test('a client certificate and key (files, or inline data with CA data) are accepted', async () => {
  cluster.writeKubeconfig({ 'client-certificate': cluster.info.clientCert, 'client-key': cluster.info.clientKey });
  assert.match(await cluster.ok(['get', 'namespaces']), /default/);
  const b64 = f => fs.readFileSync(f).toString('base64');
  cluster.writeKubeconfig({ 'client-certificate-data': b64(cluster.info.clientCert), 'client-key-data': b64(cluster.info.clientKey) },
    { 'certificate-authority': undefined, 'certificate-authority-data': b64(cluster.info.ca) });
  assert.match(await cluster.ok(['get', 'namespaces']), /default/);
});

test('without the CA the server certificate is refused, unless insecure-skip-tls-verify', async () => {
  cluster.writeKubeconfig({ token: 'sekret' }, { 'certificate-authority': undefined });
  const r = await cluster.kubectl(['get', 'namespaces']);
  assert.notEqual(r.code, 0);
  assert.match(r.stderr, /certificate signed by unknown authority|x509/);
  cluster.writeKubeconfig({ token: 'sekret' }, { 'certificate-authority': undefined, 'insecure-skip-tls-verify': true });
  assert.match(await cluster.ok(['get', 'namespaces']), /default/);
});
