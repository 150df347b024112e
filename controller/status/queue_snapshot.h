// QueueSnapshot: what Redis says about one queue right now — its counts, its owner lease,
// its live workers and supervisors, when a job last finished — read in one place, so that
// /status, /doctor, /metrics, the dashboard, `lanekeeper doctor` and the supervisor's
// wedge watchdog count workers the same way and mean the same by "wedged".
//
//   workers  live (a heartbeat within worker_live_within), one per incarnation: two
//            entries of one epoch > 0 are a worker that died without deregistering and
//            its successor, and only the fresher counts (epoch 0 workers each count)
//   wedged   work waits, nothing is active, and nothing has finished (completed or dead)
//            for wedge_time: "stuck" is the oldest waiting job's age, cut short by the
//            last finish (a job submitted a minute ago onto a queue idle for a day has not
//            been stuck for a day)
// Read-only. Not thread-safe: one JobQueue (and its connection) per thread.
#pragma once

#include <cstdint>
#include <optional>
#include <vector>

#include "controller/owner/owner_lease.h"
#include "controller/owner/supervisor_status.h"
#include "worker/duration.h"
#include "worker/job_queue.h"
#include "worker/status.h"
#include "worker/worker_registry.h"

namespace lk {

// Workers beat every second; much shorter risks calling a busy worker dead, longer counts
// a crashed worker as live for longer. The same as supervisors' staleness.
inline constexpr Millis kWorkerLiveWithin{5'000};

struct QueueSnapshot {
  int64_t read_ms = 0;
  QueueStats counts;                          // counts.current_epoch is the queue's epoch
  std::optional<OwnerRecord> owner;           // nullopt: nobody holds the lease
  std::vector<WorkerInfo> workers;            // live, one per incarnation, newest first
  std::vector<SupervisorStatus> supervisors;  // live
  int64_t last_finished_ms = 0;               // newest completed or dead job; 0: none yet

  // How long work has waited with nothing active and nothing finishing; 0 when nothing
  // waits or something is active. Not counting time before since_ms (a watcher that
  // started later has not seen it stuck for longer).
  int64_t StuckMs(int64_t since_ms = 0) const;
  bool Wedged(Millis wedge_time, int64_t since_ms = 0) const;
};

StatusOr<QueueSnapshot> ReadQueueSnapshot(JobQueue& queue, Millis worker_live_within,
                                          int64_t now_ms);

}  // namespace lk
