// Autopilot: `lanekeeper autopilot` — dispatches a repo's maintenance cycles, and owns a
// worker for them only when nobody else owns the queue.
//
// Owns:
//   - dispatch: one `autopilot-cycle` job per interval slot (slot = floor(now_ms /
//     interval_ms), idempotency key "autopilot-cycle:<repo>:<slot>"), the first at start;
//     never more than one pending — while the last one is waiting, delayed or active, a
//     slot is skipped (logged at debug). max_attempts is 1: the next slot is the retry.
//   - its record lk:{Q}:autopilot (controller/owner/autopilot_record.h), heartbeat every 2 s.
//   - unless no_worker: the queue's owner lease (role autopilot) while nobody else holds
//     it, and one `jobs work --epoch E` child under it: the OwnedWorker loop it shares
//     with the supervisor (owner/owned_worker.h), restarted after a crash with the same
//     backoff, 1 s doubling to 60 s. Holding, it renews every lease_renew_every and keeps
//     the lease until it stops (a supervisor started later waits as standby); losing it, it
//     drains its worker and goes dispatch-only. Finding the lease held by another, it runs
//     dispatch-only, says so once per holder, and looks again every owner_poll.
// Never two workers: it takes the lease only when it has no worker left, and the epoch
// fences a worker whose owner lost the lease without noticing.
// Does not own: running the steps (worker/autopilot_cycle_handler.h, in whichever worker
// claims the job), the supervisor's restart policy. Everything happens on one thread in
// RunAutopilot(); signals arrive through a signalfd.
#pragma once

#include <string>

#include "controller/process/process_spawner.h"
#include "worker/clock.h"
#include "worker/duration.h"

namespace lk {

struct AutopilotOptions {
  std::string redis_url;
  std::string queue = "default";
  std::string repo;            // required; made absolute, since the worker may run elsewhere
  Millis interval{300'000};    // >= 1 s
  bool no_worker = false;      // true: dispatch only; never touches the lease
  std::string cycle_file;      // empty: no steps, the job only checks that the repo exists
  int concurrency = 1;         // for its own worker
  int max_rss_mb = 0;          // for its own worker (which drains and exits 12 past it)
  std::string handlers_file;   // for its own worker
  Millis drain_timeout{30'000};
  Millis lease_ttl{15'000};
  Millis lease_renew_every{5'000};
  Millis owner_poll{2'000};    // how often a dispatch-only autopilot looks at the lease again
  std::string worker_binary;   // empty: this executable
  std::string log_format = "text";
  std::string log_level = "info";
  // Its dispatches, its lease and its worker wait for this many replicas (WAIT); 0: off.
  int redis_replicas = 0;
  const Clock* clock = nullptr;       // nullptr: SystemClock()
  ProcessSpawner* spawner = nullptr;  // nullptr: PosixProcessSpawner()
};

// Runs until SIGTERM/SIGINT; returns the process exit code (0 after a clean stop, also
// when stopped while still waiting for Redis; 2 for a bad cycle file, repo path or Redis
// URL; 1 on a fatal error).
int RunAutopilot(const AutopilotOptions& options);

}  // namespace lk
