// Supervisor: `lanekeeper jobs supervisor` — owns a queue's worker.
//
// Owns: the queue's owner lease while it holds it (standby until then), one `jobs work`
// child running with the lease's epoch, the pid file, and the restart policy:
//   - crash (any exit it did not ask for, other than 12/13): restart after a backoff from
//     1 s doubling to restart_backoff_max (60 s), +-10% jitter, reset after 5 min of
//     healthy running; more than max_crashes crashes within 10 min -> degraded: keep
//     retrying at 60 s, say so.
//   - RSS of the worker's process tree past max_rss_mb (sampled every 250 ms), or worker
//     exit 12: drain and restart at once; not a crash. More than 3 in 10 min ->
//     rss_restart_loop event.
//   - wedge: waiting jobs, none active, no completion for wedge_time, over 3 consecutive
//     checks -> drain and restart (not a crash), at most 3 times in 30 min.
//   - lease lost (the epoch moved on): drain the worker and go back to standby, publishing
//     its status and answering SIGTERM while the worker drains.
// The lease, the worker and its restarts are the OwnedWorker loop it shares with the
// autopilot (owner/owned_worker.h); the rules above are owner/supervisor_rules.h.
// Everything happens on one thread in Run(); signals arrive through a signalfd.
#pragma once

#include <string>

#include "controller/process/process_spawner.h"
#include "worker/clock.h"
#include "worker/duration.h"

namespace lk {

struct SupervisorOptions {
  std::string redis_url;
  std::string queue = "default";
  int concurrency = 1;
  int max_rss_mb = 0;  // 0: no RSS limit
  std::string pid_file;  // empty: DefaultSupervisorPidFile(queue)
  int max_crashes = 10;
  // The crash restart backoff's cap (1 s doubling up to it). 60 s suits a worker that crashes
  // by itself; where workers are killed from outside often (the chaos soak's long profile),
  // a lower cap keeps the lane up between kills.
  Millis restart_backoff_max{60'000};
  std::string handlers_file;
  Millis drain_timeout{30'000};
  Millis lease_ttl{15'000};
  Millis lease_renew_every{5'000};
  Millis standby_poll{500};
  Millis wedge_time{15 * 60'000};
  Millis wedge_check_every{60'000};
  std::string worker_binary;  // empty: this executable
  std::string log_format = "text";
  std::string log_level = "info";
  int redis_replicas = 0;  // the lease and the worker wait for this many replicas (WAIT)
  const Clock* clock = nullptr;       // nullptr: SystemClock()
  ProcessSpawner* spawner = nullptr;  // nullptr: PosixProcessSpawner()
};

// ${LANEKEEPER_RUN_DIR:-${XDG_RUNTIME_DIR:-/tmp}}/lanekeeper-supervisor-QUEUE.pid
std::string DefaultSupervisorPidFile(const std::string& queue);

// Runs until SIGTERM/SIGINT; returns the process exit code (0 after a clean stop, 2 when
// the pid file is held by a live process, 1 on a fatal error).
int RunSupervisor(const SupervisorOptions& options);

}  // namespace lk
