// OwnedWorker: a queue's worker as its owner runs it — the loop that `jobs supervisor`
// and an `autopilot` without --no-worker share:
//
//   lease    take the queue's owner lease when it is free, renew it, notice when it is
//            lost (the epoch moved on). Never taken while a worker of ours still runs: a
//            new worker is then never the second one
//   worker   one `jobs work --epoch E` child while the lease is held
//   drain    SIGTERM and a deadline; SIGKILL to its group past it. Never blocks: the
//            owner's loop keeps publishing its status and answering signals meanwhile
//   exit     why it ended: the drain's reason when asked, else max_rss (exit 12: start
//            again at once), fenced (exit 13: check the lease, then start again), crash
//            (start again after RestartBackoff: 1 s doubling to 60 s or the owner's cap,
//            +-10 %, reset by 5 minutes of healthy running)
// Events: lease_acquired, lease_lost, worker_started, worker_exited, crash, and those of
// owner/lease_news.h; on redis_regressed (Redis lost writes, owner_lease.h) the
// worker drains (it is fenced already) and the lease is taken again at once under a new
// epoch, before any other worker could claim.
//
// Tend() runs one pass and returns what happened, for what the owner adds on top: the
// supervisor's RSS and wedge watchdogs and degraded rule, the autopilot's dispatch. The
// epoch passed to the worker fences it even if we lose the lease without noticing.
// Owns: the lease and the worker process. Does not own: the Redis connection or the
// event stream (the owner's), time (a Clock) or spawning (a ProcessSpawner). Not
// thread-safe: the owner's one thread.
#pragma once

#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>

#include "controller/owner/lifecycle_events.h"
#include "controller/owner/owner_lease.h"
#include "controller/process/process_spawner.h"
#include "controller/process/restart_backoff.h"
#include "worker/clock.h"
#include "worker/duration.h"

namespace lk {

// How often an owner's loop wakes (besides its worker's exit and its signals): the RSS
// sample, the lease's renewal check, the autopilot's dispatch check.
inline constexpr Millis kOwnerTick{250};

struct OwnedWorkerOptions {
  std::string queue;
  std::string redis_url;  // passed to the worker in its environment, never in argv
  int concurrency = 1;
  int max_rss_mb = 0;
  std::string handlers_file;
  Millis drain_timeout{30'000};
  Millis lease_renew_every{5'000};
  Millis acquire_every{500};  // how often a free or foreign lease is tried again
  std::string worker_binary;  // empty: this executable
  std::string log_format = "text";
  std::string log_level = "info";
  int redis_replicas = 0;  // passed to the worker as --redis-replicas
  RestartBackoff::Options restart;  // the defaults above
  // Called on a crash with the backoff's delay; returns the delay to use (the supervisor
  // holds a degraded lane at the maximum). Empty: the backoff's.
  std::function<Millis(Clock::TimePoint now, Millis backoff)> on_crash;
  const Clock* clock = nullptr;       // nullptr: SystemClock()
  ProcessSpawner* spawner = nullptr;  // nullptr: PosixProcessSpawner()
};

// The worker settings an owner's options share (SupervisorOptions, AutopilotOptions).
template <typename OwnerOptions>
OwnedWorkerOptions OwnedWorkerOptionsOf(const OwnerOptions& o, Millis acquire_every) {
  OwnedWorkerOptions w;
  w.queue = o.queue;
  w.redis_url = o.redis_url;
  w.concurrency = o.concurrency;
  w.max_rss_mb = o.max_rss_mb;
  w.handlers_file = o.handlers_file;
  w.drain_timeout = o.drain_timeout;
  w.lease_renew_every = o.lease_renew_every;
  w.acquire_every = acquire_every;
  w.worker_binary = o.worker_binary;
  w.log_format = o.log_format;
  w.log_level = o.log_level;
  w.redis_replicas = o.redis_replicas;
  w.clock = o.clock;
  w.spawner = o.spawner;
  return w;
}

// How a worker ended, as its owner sees it.
struct WorkerEnd {
  ProcessExit exit;
  std::string reason;  // crash | max_rss | fenced | the drain's reason (asked)
  bool asked = false;  // we drained it
  Millis ran{0};
};

// One pass of Tend().
struct OwnedWorkerPass {
  bool acquired = false;                 // took the lease in this pass
  bool lost = false;                     // lost it in this pass (a drain began)
  std::optional<OwnerRecord> held_by;    // the lease is someone else's (standby)
  std::optional<WorkerEnd> ended;        // the worker exited in this pass
  Status redis;                          // a Redis failure in this pass (keep going)
};

class OwnedWorker {
 public:
  OwnedWorker(OwnedWorkerOptions options, OwnerLease& lease, LifecycleEvents& events);
  ~OwnedWorker();
  OwnedWorker(const OwnedWorker&) = delete;
  OwnedWorker& operator=(const OwnedWorker&) = delete;

  // take_lease: whether to take a free lease in this pass (an autopilot that yields to
  // a supervisor asks only every so often; a stopping owner never).
  OwnedWorkerPass Tend(bool take_lease = true);
  // Drains the worker (SIGTERM, then SIGKILL past the drain timeout); its end carries
  // reason. A no-op when none runs or it drains already.
  void BeginDrain(const std::string& reason);
  // On stop: drains the worker with the lease kept alive (no standby may start a second
  // worker while ours finishes its jobs), then releases the lease. Blocks up to the drain
  // timeout.
  void Shutdown();

  bool held() const { return lease_.held(); }
  int64_t epoch() const { return lease_.epoch(); }
  bool running() const { return worker_ != nullptr; }
  bool draining() const { return draining_; }
  pid_t worker_pid() const;
  // When the worker started (steady clock); only while running().
  Clock::TimePoint worker_started() const { return started_at_; }
  // Readable when the worker exits: for the owner's poll().
  int wait_fd() const;
  const std::string& last_exit() const { return last_exit_; }
  const RestartBackoff& backoff() const { return backoff_; }

 private:
  void TryAcquire(Clock::TimePoint now, OwnedWorkerPass& pass);
  void Renew(Clock::TimePoint now, OwnedWorkerPass& pass);
  void StartWorker(Clock::TimePoint now, OwnedWorkerPass& pass);
  // Classifies an exit, emits worker_exited, and schedules the next start.
  WorkerEnd Finish(const ProcessExit& exit, Clock::TimePoint now);
  void Emit(const std::string& type, const std::map<std::string, std::string>& fields);

  OwnedWorkerOptions o_;
  const Clock& clock_;
  ProcessSpawner& spawner_;
  OwnerLease& lease_;
  LifecycleEvents& events_;
  RestartBackoff backoff_;
  std::unique_ptr<ProcessHandle> worker_;
  Clock::TimePoint started_at_{};
  bool draining_ = false;
  std::string drain_reason_;
  Clock::TimePoint drain_deadline_{};
  bool killed_ = false;
  Clock::TimePoint next_acquire_{}, next_renew_{}, next_start_{};
  std::string last_exit_;
};

}  // namespace lk
