'use strict';
// Certificates for `--tls-dir DIR`, made with the openssl CLI: a CA (ca.crt), the server's
// certificate for 127.0.0.1 and localhost (server.crt, server.key) and a client certificate
// (client.crt, client.key; CN lanekeeper-test, O system:masters) that the server accepts in
// place of a bearer token. Existing files in DIR are reused.

const fs = require('fs');
const path = require('path');
const { execFileSync } = require('child_process');

function openssl(args, cwd) {
  execFileSync('openssl', args, { cwd, stdio: ['ignore', 'ignore', 'pipe'] });
}

function ensureCertificates(dir) {
  fs.mkdirSync(dir, { recursive: true });
  const f = n => path.join(dir, n);
  if (![f('ca.crt'), f('server.crt'), f('server.key'), f('client.crt'), f('client.key')].every(p => fs.existsSync(p))) {
    openssl(['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', 'ca.key', '-out', 'ca.crt',
      '-days', '365', '-subj', '/CN=lanekeeper-fake-ca'], dir);
    fs.writeFileSync(f('server.ext'), 'subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth\n');
    openssl(['req', '-newkey', 'rsa:2048', '-nodes', '-keyout', 'server.key', '-out', 'server.csr', '-subj', '/CN=127.0.0.1'], dir);
    openssl(['x509', '-req', '-in', 'server.csr', '-CA', 'ca.crt', '-CAkey', 'ca.key', '-CAcreateserial',
      '-out', 'server.crt', '-days', '365', '-extfile', 'server.ext'], dir);
    fs.writeFileSync(f('client.ext'), 'extendedKeyUsage=clientAuth\n');
    openssl(['req', '-newkey', 'rsa:2048', '-nodes', '-keyout', 'client.key', '-out', 'client.csr',
      '-subj', '/O=system:masters/CN=lanekeeper-test'], dir);
    openssl(['x509', '-req', '-in', 'client.csr', '-CA', 'ca.crt', '-CAkey', 'ca.key', '-CAcreateserial',
      '-out', 'client.crt', '-days', '365', '-extfile', 'client.ext'], dir);
  }
  return { ca: fs.readFileSync(f('ca.crt')), cert: fs.readFileSync(f('server.crt')), key: fs.readFileSync(f('server.key')) };
}

module.exports = { ensureCertificates };
