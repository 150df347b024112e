'use strict';
// The processes of a pod, found by session: the fake kubelet starts each pod's process with
// setsid (spawn's `detached`), so everything it starts — lanekeeper's workers and handlers,
// which take process groups of their own — keeps its session id (/proc/PID/stat field 6)
// unless it calls setsid itself. Killing a pod's session is what tearing down its PID
// namespace does on a real node.

const fs = require('fs');

// pids of the live processes whose session id is in sids (a Set of numbers).
function processesOfSessions(sids) {
  const out = [];
  let entries;
  try { entries = fs.readdirSync('/proc'); } catch { return out; }
  for (const d of entries) {
    if (!/^\d+$/.test(d)) continue;
    let stat;
    try { stat = fs.readFileSync(`/proc/${d}/stat`, 'utf8'); } catch { continue; }
    // pid (comm) state ppid pgrp session …; comm may hold spaces and parentheses.
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    if (fields[0] !== 'Z' && sids.has(Number(fields[3]))) out.push(Number(d));
  }
  return out;
}

// Sends signal to every process of the sessions; how many there were.
function signalSessions(sids, signal) {
  const pids = processesOfSessions(sids);
  for (const pid of pids) {
    try { process.kill(pid, signal); } catch { /* gone */ }
  }
  return pids.length;
}

module.exports = { processesOfSessions, signalSessions };
