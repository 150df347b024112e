// LaneObserver: what Redis says about a lane right now — its owner lease, epoch, live
// workers and supervisors, queue counts — and the lane's conditions (SpecValid,
// OwnerElected, Degraded, Ready), computed from that and the controller's LaneState.
//
// Owns: one Redis connection per (Redis URL, queue), opened on first use and reused, with
// short timeouts so a dead Redis never hangs a caller; a per-queue cache of what it read, so
// any number of callers read Redis at most once per cache period per queue. It reads only
// when asked: an idle controller polls nothing. Does not own: the LaneState (the reconcile
// loop's snapshot, controller/status/controller_state.h) or rendering (controller/status/status_server.h).
// Thread-safe: callers on different queues run in parallel, callers on one queue share its
// connection in turn.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "controller/status/controller_state.h"
#include "controller/status/doctor.h"
#include "controller/owner/owner_lease.h"
#include "controller/owner/supervisor_status.h"
#include "worker/duration.h"
#include "worker/job_queue.h"
#include "worker/status.h"
#include "worker/worker_registry.h"

namespace lk {

// One queue as read from its Redis at read_ms (status/queue_snapshot.h, the reading doctor
// makes too); when Redis could not be read, redis says why and the rest is empty.
struct QueueView : QueueSnapshot {
  Status redis;  // not OK: the message names the redacted URL
};

struct LaneObservation {
  QueueView queue;
  // SpecValid, OwnerElected, Degraded, Ready — always all four, in that order.
  std::vector<LaneCondition> conditions;

  // nullptr when type is not one of the four.
  const LaneCondition* Condition(std::string_view type) const;
  bool ready() const;  // Ready is True
};

// A role counts as restart-looping (Degraded/RoleRestarting) when the controller restarted
// it at least this many times and its current process is younger than the window: a role
// that stays up for the window stops counting, without the observer keeping any history.
inline constexpr int kRoleRestartLoopCount = 3;
inline constexpr Millis kRoleRestartLoopWindow{10 * 60'000};

// The conditions of lane given what Redis said, at now_ms (wall clock). Pure. Reasons and
// messages are listed in docs/status.md:
//   SpecValid     True Valid | False InvalidSpec (first error as file:line:column, "+N more")
//   OwnerElected  True Elected | False NoOwner | Unknown RedisUnreachable
//   Degraded      True SupervisorDegraded | RoleFailed | RoleRestarting | ReconcileFailed
//                 False NotDegraded
//   Ready         True RolesRunning | False with the first failing of: RoleNotRunning,
//                 GenerationPending, RedisUnreachable, NoOwner, and Degraded's reason
// Ready does not look at SpecValid: an invalid edit leaves the last good spec running.
std::vector<LaneCondition> ComputeLaneConditions(const LaneState& lane, const QueueView& queue,
                                                 int64_t now_ms);

struct LaneObserverOptions {
  // Connect and read timeout for every Redis command. Short, so a dead or black-holed
  // Redis costs a request about this much once per cache period; long enough for a
  // loaded Redis on a LAN.
  Millis redis_timeout{500};
  // Read timeout while running doctor checks, which scan more (events, finished jobs).
  Millis doctor_timeout{2'000};
  // How long a queue's reading is reused. Bounds Redis load from /status, /metrics and /
  // to one read per queue per period, however many clients poll; status lags that much.
  Millis cache_for{1'000};
  // Connections of queues nobody asked about for this long are closed (deleted lanes).
  Millis idle_close_after{5 * 60'000};
};

class LaneObserver {
 public:
  explicit LaneObserver(LaneObserverOptions options = {});
  ~LaneObserver();
  LaneObserver(const LaneObserver&) = delete;
  LaneObserver& operator=(const LaneObserver&) = delete;

  // Reads lane's queue (or reuses a reading younger than cache_for) and computes its
  // conditions. Never fails: an unreachable Redis is part of the observation.
  LaneObservation Observe(const LaneState& lane);

  // Runs doctor's checks (controller/status/doctor.h, the same code as `lanekeeper doctor`) on
  // lane's queue over the observer's connection. Not cached.
  DoctorReport Doctor(const LaneState& lane, const DoctorOptions& options);

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace lk
