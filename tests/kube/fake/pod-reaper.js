#!/usr/bin/env node
'use strict';
// The fake kubelet's reaper: a process of its own session that outlives the fake API server
// for one purpose. The fake writes the session id of each pod process it starts to our
// stdin, one per line ("-ID" once that session is over and its id may be reused); when stdin ends — the fake exited, however it died, SIGKILL included
// — every process still in one of those sessions is SIGKILLed (again, until none is left or
// 5 s passed), and we exit. So a fake killed with its test leaves no pod, worker or handler
// running. Started by fake/kubelet.js; not meant to be run by hand.

const { signalSessions } = require('./sessions');

const sids = new Set();
let buffered = '';
process.stdin.setEncoding('utf8');
process.stdin.on('data', chunk => {
  buffered += chunk;
  let nl;
  while ((nl = buffered.indexOf('\n')) >= 0) {
    const sid = Number(buffered.slice(0, nl));
    buffered = buffered.slice(nl + 1);
    if (Number.isInteger(sid) && sid > 1) sids.add(sid);
    else if (Number.isInteger(sid) && sid < -1) sids.delete(-sid);
  }
});

function reap() {
  const deadline = Date.now() + 5000;
  const round = () => {
    if (signalSessions(sids, 'SIGKILL') === 0 || Date.now() > deadline) process.exit(0);
    setTimeout(round, 50);
  };
  round();
}
process.stdin.on('end', reap);
process.stdin.on('error', reap);
// The fake's SIGTERM to its own group must not stop us before it is gone.
process.on('SIGTERM', () => {});
process.on('SIGINT', () => {});
process.on('SIGHUP', () => {});
