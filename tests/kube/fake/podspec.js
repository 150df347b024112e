'use strict';
// How the fake kubelet turns a pod's first container into a local command line: argv from
// `command` + `args` with Kubernetes' `$(VAR)` expansion (`$$` escapes), a leading
// `lanekeeper` (or no `command` at all: the image's entrypoint) mapped to --binary; env from
// literal values, `valueFrom` (secretKeyRef, configMapKeyRef, fieldRef) and `envFrom`, plus
// HOSTNAME = pod name, KUBERNETES_SERVICE_HOST/PORT (the fake itself), PATH and the
// sanitizer options of the fake's own environment, HOME = the pod's directory; ConfigMap, Secret and emptyDir
// volumes written into the pod's own directory.
//
// The one place the fake differs from a kubelet on purpose: there are no mount namespaces,
// so every argv element or env value that starts with a volume's mountPath is rewritten to
// that volume's directory on this machine (`--config /etc/lane/lane.yaml` becomes
// `--config /tmp/…/volumes/config/lane.yaml`). A program that builds such a path itself, or
// reads a fixed path like /var/run/secrets/kubernetes.io/serviceaccount, sees no file; for
// that one, the kubelet's service account directory (serviceAccountDir) is also named by
// $LANEKEEPER_SERVICEACCOUNT_DIR, where lanekeeper's in-cluster config looks first.

const fs = require('fs');
const path = require('path');

class ConfigError extends Error {}

const SANITIZER_ENV = ['ASAN_OPTIONS', 'LSAN_OPTIONS', 'UBSAN_OPTIONS'];

function expand(s, env) {
  return String(s).replace(/\$\$|\$\(([A-Za-z_][A-Za-z0-9_.-]*)\)/g, (m, name) => {
    if (m === '$$') return '$';
    return Object.prototype.hasOwnProperty.call(env, name) ? env[name] : m;
  });
}

function fieldRefValue(pod, fieldPath) {
  const m = fieldPath.match(/^metadata\.(labels|annotations)\['(.+)'\]$/);
  if (m) return (pod.metadata[m[1]] || {})[m[2]] || '';
  switch (fieldPath) {
    case 'metadata.name': return pod.metadata.name;
    case 'metadata.namespace': return pod.metadata.namespace;
    case 'metadata.uid': return pod.metadata.uid;
    case 'spec.nodeName': return pod.spec.nodeName || 'fake-node';
    case 'spec.serviceAccountName': return pod.spec.serviceAccountName || 'default';
    case 'status.podIP': case 'status.hostIP': return '127.0.0.1';
    case 'status.podIPs': case 'status.hostIPs': return '127.0.0.1';
    default: throw new ConfigError(`unsupported fieldRef ${fieldPath}`);
  }
}

// lookup(kind, ns, name) → object or null (kind: 'secrets' | 'configmaps').
function dataOf(lookup, kind, ns, name, optional) {
  const o = lookup(kind, ns, name);
  if (!o) {
    if (optional) return null;
    throw new ConfigError(`${kind === 'secrets' ? 'secret' : 'configmap'} "${name}" not found`);
  }
  const out = {};
  for (const [k, v] of Object.entries(o.data || {})) out[k] = kind === 'secrets' ? Buffer.from(v, 'base64') : Buffer.from(v);
  for (const [k, v] of Object.entries(o.binaryData || {})) out[k] = Buffer.from(v, 'base64');
  return out;
}

function containerEnv(pod, c, lookup, extra) {
  const env = { ...extra };
  const ns = pod.metadata.namespace;
  for (const from of c.envFrom || []) {
    const ref = from.configMapRef || from.secretRef;
    const data = dataOf(lookup, from.secretRef ? 'secrets' : 'configmaps', ns, ref.name, ref.optional);
    for (const [k, v] of Object.entries(data || {})) env[(from.prefix || '') + k] = v.toString();
  }
  for (const e of c.env || []) {
    if (e.value !== undefined || !e.valueFrom) { env[e.name] = expand(e.value ?? '', env); continue; }
    const vf = e.valueFrom;
    if (vf.fieldRef) env[e.name] = fieldRefValue(pod, vf.fieldRef.fieldPath);
    else if (vf.secretKeyRef || vf.configMapKeyRef) {
      const ref = vf.secretKeyRef || vf.configMapKeyRef;
      const kind = vf.secretKeyRef ? 'secrets' : 'configmaps';
      const data = dataOf(lookup, kind, ns, ref.name, ref.optional);
      if (data && data[ref.key] !== undefined) env[e.name] = data[ref.key].toString();
      else if (!ref.optional) throw new ConfigError(`couldn't find key ${ref.key} in ${kind === 'secrets' ? 'Secret' : 'ConfigMap'} ${ns}/${ref.name}`);
    } else if (vf.resourceFieldRef) {
      const r = vf.resourceFieldRef.resource.split('.');
      env[e.name] = String(((c.resources || {})[r[0]] || {})[r[1]] || '0');
    }
  }
  return env;
}

// Writes the pod's volumes under dir; returns [{mountPath, hostPath}] for the container.
function materializeVolumes(pod, c, lookup, dir) {
  const vols = new Map();
  for (const v of pod.spec.volumes || []) {
    const vdir = path.join(dir, 'volumes', v.name);
    fs.mkdirSync(vdir, { recursive: true });
    const src = v.configMap ? ['configmaps', v.configMap] : v.secret ? ['secrets', { ...v.secret, name: v.secret.secretName }] : null;
    if (src) {
      const data = dataOf(lookup, src[0], pod.metadata.namespace, src[1].name, src[1].optional) || {};
      const items = src[1].items || Object.keys(data).map(k => ({ key: k, path: k }));
      for (const it of items) {
        if (data[it.key] === undefined) {
          if (src[1].optional) continue;
          throw new ConfigError(`configmap or secret ${src[1].name} has no key ${it.key}`);
        }
        const file = path.join(vdir, it.path);
        fs.mkdirSync(path.dirname(file), { recursive: true });
        fs.writeFileSync(file, data[it.key], { mode: it.mode ?? src[1].defaultMode ?? 0o644 });
      }
    }
    vols.set(v.name, vdir);
  }
  const mounts = [];
  for (const m of c.volumeMounts || []) {
    const host = vols.get(m.name);
    if (!host) throw new ConfigError(`volume "${m.name}" not found`);
    mounts.push({ mountPath: m.mountPath.replace(/\/+$/, ''), hostPath: m.subPath ? path.join(host, m.subPath) : host });
  }
  return mounts.sort((a, b) => b.mountPath.length - a.mountPath.length);
}

function rewriteMountPaths(s, mounts) {
  for (const m of mounts) {
    if (s === m.mountPath || s.startsWith(m.mountPath + '/')) return m.hostPath + s.slice(m.mountPath.length);
    const eq = s.indexOf('=');
    if (eq > 0) {
      const v = s.slice(eq + 1);
      if (v === m.mountPath || v.startsWith(m.mountPath + '/')) return s.slice(0, eq + 1) + m.hostPath + v.slice(m.mountPath.length);
    }
  }
  return s;
}

function isLanekeeper(cmd) {
  return cmd === 'lanekeeper' || cmd.endsWith('/lanekeeper') || cmd === 'kubectl-lanekeeper';
}

// Everything needed to start the container: {argv, env, cwd}. Throws ConfigError when a
// referenced Secret, ConfigMap or key is missing (the pod waits: CreateContainerConfigError).
const SERVICE_ACCOUNT_MOUNT = '/var/run/secrets/kubernetes.io/serviceaccount';

function resolveContainer(pod, lookup, { binary, dir, apiPort, serviceAccountDir = null }) {
  const c = pod.spec.containers[0];
  const base = { PATH: process.env.PATH, HOME: dir, HOSTNAME: pod.metadata.name,
    KUBERNETES_SERVICE_HOST: '127.0.0.1', KUBERNETES_SERVICE_PORT: String(apiPort || 443) };
  // The kubelet's own values (this host's paths: the binary, HOME, PATH, the service
  // account dir) are never rewritten below: only what the pod spec says is a path inside
  // the container. A checkout under /tmp with a chart that mounts /tmp would otherwise
  // have its binary's path mapped into the pod's /tmp volume.
  if (serviceAccountDir) base.LANEKEEPER_SERVICEACCOUNT_DIR = serviceAccountDir;
  // The sanitizer settings of a test run reach the binaries it runs in pods.
  for (const k of SANITIZER_ENV) if (process.env[k] !== undefined) base[k] = process.env[k];
  const env = containerEnv(pod, c, lookup, base);
  const mounts = materializeVolumes(pod, c, lookup, dir);
  if (serviceAccountDir) {
    mounts.push({ mountPath: SERVICE_ACCOUNT_MOUNT, hostPath: serviceAccountDir });
    mounts.sort((a, b) => b.mountPath.length - a.mountPath.length);
  }
  let argv = [...(c.command || []), ...(c.args || [])].map(a => rewriteMountPaths(expand(a, env), mounts));
  if (!c.command) argv = [binary, ...argv];
  else if (isLanekeeper(argv[0])) argv[0] = binary;
  for (const k of Object.keys(env)) {
    if (Object.prototype.hasOwnProperty.call(base, k) && env[k] === base[k]) continue;
    env[k] = rewriteMountPaths(env[k], mounts);
  }
  const cwd = c.workingDir ? rewriteMountPaths(c.workingDir, mounts) : dir;
  return { argv, env, cwd: fs.existsSync(cwd) ? cwd : dir, mounts, container: c };
}

module.exports = { resolveContainer, ConfigError };
