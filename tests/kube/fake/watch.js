'use strict';
// Watch streams: `GET …?watch=true|1`, answered 200 with newline-delimited JSON events sent
// chunked. Semantics as the real server:
//   - resourceVersion unset or "0": synthetic ADDED events for what exists, then changes;
//   - resourceVersion N: only events newer than N, replayed from the history; N older than
//     the history: an ERROR event with a 410 Expired Status, then the stream ends (the watch
//     cache's answer; client-go then relists);
//   - sendInitialEvents=true (needs resourceVersionMatch=NotOlderThan and
//     allowWatchBookmarks=true): ADDED for what exists, then a BOOKMARK annotated
//     `k8s.io/initial-events-end: "true"`, then changes;
//   - allowWatchBookmarks: a BOOKMARK with the current resourceVersion every bookmark
//     interval (--bookmark-interval, 1 minute for real, shorter here so tests see them);
//   - label/field selectors: an object that starts matching arrives as ADDED, one that stops
//     matching as DELETED;
//   - timeoutSeconds ends the stream (default 30 minutes);
//   - Accept as=Table: every event's object is a one-row Table (`kubectl get -w`).

const { errors } = require('./status');
const { toTable } = require('./table');

function watch(store, res, ns, q, { match, table, includeObject }, req, resp, { bookmarkIntervalMs, expiredAsStatus }) {
  const rvParam = q.get('resourceVersion') || '';
  const sendInitial = q.get('sendInitialEvents') === 'true';
  const bookmarks = q.get('allowWatchBookmarks') === 'true';
  if (sendInitial && (q.get('resourceVersionMatch') !== 'NotOlderThan' || !bookmarks)) {
    throw errors.invalid({ kind: 'ListOptions', group: 'meta.k8s.io' }, '', [{ field: 'sendInitialEvents',
      reason: 'FieldValueForbidden', message: 'Forbidden: sendInitialEvents is forbidden for watch unless the WatchList feature gate is enabled and resourceVersionMatch is NotOlderThan and allowWatchBookmarks is true' }]);
  }
  if (rvParam !== '' && !/^\d+$/.test(rvParam)) throw errors.badRequest(`invalid resource version: ${rvParam}`);
  const wrap = obj => {
    const o = store.view(res, obj);
    return table ? toTable(res, [o], { resourceVersion: o.metadata.resourceVersion }, includeObject) : o;
  };
  const inNs = o => !ns || o.metadata.namespace === ns;
  const matches = o => o && inNs(o) && match(o);

  const initial = rvParam === '' || rvParam === '0' || sendInitial;
  const fromRv = initial ? store.rv : Number(rvParam);
  // --expired-watch-status: answer a too-old resourceVersion with an HTTP 410 Status (what a
  // watch served from etcd without the watch cache does) instead of the ERROR event.
  if (expiredAsStatus && fromRv < store.compactedThrough) {
    throw errors.gone(`too old resource version: ${fromRv} (${store.compactedThrough + 1})`);
  }

  resp.writeHead(200, { 'Content-Type': 'application/json', 'Cache-Control': 'no-cache, private', 'Transfer-Encoding': 'chunked' });
  resp.flushHeaders();
  // Events are written once per turn of the event loop, all that turn's events in one
  // chunk, as the real server's watch buffers them: one write per event was a quarter of the
  // fake's time in a burst of writes. Clients read lines, wherever the chunks end.
  let pending = [];
  const flush = () => {
    const text = pending.join('');
    pending = [];
    if (text && !resp.writableEnded && !resp.destroyed) resp.write(text);
  };
  const send = (type, object) => {
    if (resp.writableEnded) return;
    if (!pending.length) setImmediate(flush);
    pending.push(JSON.stringify({ type, object }) + '\n');
  };

  if (initial) {
    const { items } = store.list(res, ns, match);
    for (const o of items) send('ADDED', table ? toTable(res, [o], {}, includeObject) : o);
    if (sendInitial) {
      send('BOOKMARK', { kind: res.kind, apiVersion: res.group ? `${res.group}/${res.version}` : res.version,
        metadata: { resourceVersion: String(fromRv), annotations: { 'k8s.io/initial-events-end': 'true' } } });
    }
  }

  let unsubscribe = () => {};
  let lastRv = fromRv;
  const timers = [];
  const end = () => {
    flush();
    unsubscribe();
    for (const t of timers) clearTimeout(t), clearInterval(t);
    if (!resp.writableEnded) resp.end();
  };
  try {
    unsubscribe = store.subscribe(`${res.group}/${res.plural}`, fromRv, ev => {
      lastRv = ev.rv;
      const now = matches(ev.obj), before = ev.type !== 'ADDED' && matches(ev.prev);
      if (ev.type === 'DELETED') { if (before || matches(ev.obj)) send('DELETED', wrap(ev.obj)); return; }
      if (now && before) send('MODIFIED', wrap(ev.obj));
      else if (now) send('ADDED', wrap(ev.obj));
      else if (before) send('DELETED', wrap(ev.obj));
    });
  } catch (e) {
    if (e.code !== 410) throw e;
    send('ERROR', e.toStatus());
    end();
    return;
  }
  if (bookmarks) {
    timers.push(setInterval(() => send('BOOKMARK', { kind: res.kind,
      apiVersion: res.group ? `${res.group}/${res.version}` : res.version,
      metadata: { resourceVersion: String(Math.max(lastRv, store.rv)) } }), bookmarkIntervalMs));
  }
  const timeout = Number(q.get('timeoutSeconds') || 1800);
  timers.push(setTimeout(end, timeout * 1000));
  req.on('close', end);
  resp.on('close', end);
  return end;
}

module.exports = { watch };
