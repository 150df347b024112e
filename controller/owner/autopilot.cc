#include "controller/owner/autopilot.h"

#include <unistd.h>

#include <spdlog/spdlog.h>

#include <algorithm>
#include <filesystem>
#include <map>
#include <memory>

#include "controller/owner/autopilot_record.h"
#include "controller/spec/cycle_file.h"
#include "controller/owner/lifecycle_events.h"
#include "controller/owner/owner_lease.h"
#include "controller/owner/owned_worker.h"
#include "controller/owner/stop_signals.h"
#include "worker/autopilot_cycle_handler.h"
#include "worker/exit_codes.h"
#include "worker/job_queue.h"

namespace lk {

namespace {

using namespace std::chrono_literals;

constexpr Millis kHeartbeat{2'000};
constexpr Millis kMaxRedisBackoff{5'000};
// Slack on top of the steps' own timeouts for the job as a whole (spawning, the repo check).
constexpr Millis kCycleJobSlack{60'000};
// How far back in each pending state the start-up scan looks for our last cycle.
constexpr int kPendingScanLimit = 1000;

class Autopilot {
 public:
  explicit Autopilot(AutopilotOptions o)
      : o_(std::move(o)), clock_(o_.clock ? *o_.clock : SystemClock()), holder_(ThisHolder()) {}

  int Run() {
    std::error_code ec;
    std::filesystem::path repo = std::filesystem::absolute(o_.repo, ec);
    if (ec) {
      spdlog::error("--repo {}: {}", o_.repo, ec.message());
      return kExitUsage;
    }
    // One spelling per directory: the slot's idempotency key holds the repo, so `--repo .`
    // and `--repo /srv/kb` must name it alike ("/srv/kb/." normalizes to "/srv/kb/").
    payload_.repo = repo.lexically_normal().string();
    while (payload_.repo.size() > 1 && payload_.repo.back() == '/') payload_.repo.pop_back();
    if (!std::filesystem::is_directory(payload_.repo, ec)) {
      // Not fatal: the worker that runs the cycle may see another filesystem; the job
      // reports the repo as missing there if it is.
      spdlog::warn("repo {} is not a directory here; cycles will fail until it is",
                   payload_.repo);
    }
    if (!o_.cycle_file.empty()) {
      auto steps = LoadCycleSpec(o_.cycle_file);
      if (!steps.ok()) {
        spdlog::error("{}", steps.status().message());
        return kExitUsage;
      }
      payload_.steps = std::move(steps).value();
    }
    auto ep = ParseRedisUrl(o_.redis_url);
    if (!ep.ok()) {
      spdlog::error("{}", ep.status().message());
      return kExitUsage;
    }
    if (!stop_.Install()) return kExitFailure;
    auto conn = ConnectUntilStopped(*ep, stop_);
    if (!conn) return kExitOk;  // stopped by a signal while Redis was down
    QueueOptions queue_options;
    queue_options.replicas = o_.redis_replicas;
    queue_ = std::make_unique<JobQueue>(std::move(conn), o_.queue, queue_options);
    lease_ = std::make_unique<OwnerLease>(queue_->connection(), o_.queue, OwnerRole::kAutopilot,
                                          holder_, o_.concurrency, o_.max_rss_mb, o_.lease_ttl);
    lease_->RequireReplicas(o_.redis_replicas, queue_options.replica_timeout);
    events_ = std::make_unique<LifecycleEvents>(queue_->connection(), o_.queue, "autopilot",
                                                holder_);
    if (!o_.no_worker) worker_ = std::make_unique<OwnedWorker>(WorkerOptions(), *lease_, *events_);
    spdlog::info("autopilot for repo {} on queue {}: a cycle of {} step(s) every {}, {}",
                 payload_.repo, o_.queue, payload_.steps.size(), FormatDuration(o_.interval),
                 o_.no_worker ? "dispatch-only (--no-worker)"
                              : "with its own worker while nobody else owns the queue");
    Emit("started", {{"pid", std::to_string(getpid())},
                     {"repo", payload_.repo},
                     {"interval_ms", std::to_string(o_.interval.count())},
                     {"no_worker", o_.no_worker ? "true" : "false"}});
    Loop();
    Shutdown();
    return kExitOk;
  }

 private:
  OwnedWorkerOptions WorkerOptions() {
    OwnedWorkerOptions w = OwnedWorkerOptionsOf(o_, o_.owner_poll);
    w.clock = &clock_;
    return w;
  }

  void Emit(const std::string& type, const std::map<std::string, std::string>& fields = {}) {
    Status s = events_->Emit(type, fields);
    if (!s.ok()) spdlog::debug("event {} not recorded: {}", type, s.message());
  }

  void Loop() {
    // Act first, then wait. A stop that came while starting up is seen before anything
    // starts.
    if (stop_.Wait(0ms)) return;
    do {
      auto now = clock_.Now();
      bool usable = RedisUsable(now);
      // The worker's exits are noticed with Redis down too; the lease only with it up.
      if (worker_) React(worker_->Tend(/*take_lease=*/usable), now);
      if (!usable || redis_down_) continue;
      if (now >= next_dispatch_) Dispatch(now);
      if (!redis_down_ && now >= next_publish_) Publish(now);
    } while (!stop_.Wait(kOwnerTick, worker_ ? worker_->wait_fd() : -1));
  }

  // --- Ownership (only without --no-worker): the OwnedWorker loop's news ---

  void React(const OwnedWorkerPass& pass, Clock::TimePoint now) {
    if (!pass.redis.ok()) RedisTrouble(pass.redis, now);
    // Lost and taken again in one pass: Redis lost writes and the lease was taken under a
    // new epoch (owned_worker.h); the news is that we own it.
    if (pass.lost) {
      Emit("dispatch_only", {{"reason", "lease lost"}});
      Publish(now);
    }
    if (pass.acquired) {
      yielded_to_.clear();
      Publish(now);
    }
    if (pass.held_by && yielded_to_ != pass.held_by->holder) {
      yielded_to_ = pass.held_by->holder;
      spdlog::info("queue {} is owned by {} {} (epoch {}); running dispatch-only", o_.queue,
                   pass.held_by->role, pass.held_by->holder, pass.held_by->epoch);
      Emit("dispatch_only", {{"owner_role", pass.held_by->role}, {"owner", pass.held_by->holder},
                             {"owner_epoch", std::to_string(pass.held_by->epoch)}});
      Publish(now);
    }
  }

  // --- Redis trouble: one log line per change of state, reconnects with backoff. ---

  // False while Redis is down and the next reconnect attempt is not yet due.
  bool RedisUsable(Clock::TimePoint now) {
    if (!redis_down_) return true;
    if (now < next_reconnect_) return false;
    if (!queue_->connection().Reconnect().ok()) {
      redis_backoff_ = std::min<Millis>(redis_backoff_ * 2, kMaxRedisBackoff);
      next_reconnect_ = now + redis_backoff_;
      return false;
    }
    spdlog::info("Redis is back");
    redis_down_ = false;
    next_dispatch_ = now;  // a slot that failed during the outage need not wait its backoff
    return true;
  }

  void RedisTrouble(const Status& s, Clock::TimePoint now) {
    if (!s.IsUnavailable()) {
      spdlog::warn("Redis answered unexpectedly: {}", s.message());
      return;
    }
    if (!redis_down_) {
      spdlog::warn("Redis trouble: {}; retrying", s.message());
      redis_down_ = true;
      redis_backoff_ = 100ms;
    }
    next_reconnect_ = now + redis_backoff_;
  }

  // --- Dispatch ---

  void Dispatch(Clock::TimePoint now) {
    int64_t now_ms = clock_.WallMs();
    int64_t slot = now_ms / o_.interval.count();
    if (slot <= handled_slot_) {
      ScheduleNextSlot(now, now_ms);
      return;
    }
    if (!scanned_for_pending_) {
      Status s = FindPendingCycle();
      if (!s.ok()) return RetryDispatch(s, now);
      scanned_for_pending_ = true;
    }
    if (!last_job_id_.empty()) {
      auto job = queue_->Get(last_job_id_);
      if (!job.ok() && !job.status().IsNotFound()) return RetryDispatch(job.status(), now);
      if (job.ok() && Pending(job->state)) {
        spdlog::debug("autopilot-cycle job {} is still {}: skipping slot {}", last_job_id_,
                      JobStateName(job->state), slot);
        handled_slot_ = slot;
        ScheduleNextSlot(now, now_ms);
        return;
      }
    }
    JobSpec spec;
    spec.name = kAutopilotCycleJob;
    spec.payload = EncodeCyclePayload(payload_);
    spec.max_attempts = 1;
    spec.timeout = kCycleJobSlack;
    for (const auto& step : payload_.steps) spec.timeout += step.timeout;
    spec.idempotency_key = std::string(kAutopilotCycleJob) + ":" + payload_.repo + ":" +
                           std::to_string(slot);
    auto r = queue_->Enqueue(spec);
    if (!r.ok()) return RetryDispatch(r.status(), now);
    dispatch_backoff_ = 0ms;
    handled_slot_ = slot;
    last_job_id_ = r->id;
    last_dispatch_ms_ = now_ms;
    if (r->created) {
      Emit("dispatch", {{"job_id", r->id}, {"slot", std::to_string(slot)}});
    } else {
      spdlog::debug("slot {} was already dispatched as autopilot-cycle job {}", slot, r->id);
    }
    Publish(now);
    ScheduleNextSlot(now, now_ms);
  }

  static bool Pending(JobState s) {
    return s == JobState::kWaiting || s == JobState::kDelayed || s == JobState::kActive;
  }

  // Our last cycle may predate this process (a restart removes the record on the way out),
  // so the first dispatch looks for a pending cycle of this repo in the queue itself.
  Status FindPendingCycle() {
    for (JobState state : {JobState::kActive, JobState::kDelayed, JobState::kWaiting}) {
      auto jobs = queue_->List(state, kPendingScanLimit);
      if (!jobs.ok()) return jobs.status();
      for (const Job& job : *jobs) {
        if (job.name != kAutopilotCycleJob) continue;
        auto p = DecodeCyclePayload(job.payload);
        if (p.ok() && p->repo == payload_.repo) {
          last_job_id_ = job.id;
          return Status::OK();
        }
      }
    }
    return Status::OK();
  }

  void ScheduleNextSlot(Clock::TimePoint now, int64_t now_ms) {
    int64_t next_slot_ms = (now_ms / o_.interval.count() + 1) * o_.interval.count();
    next_dispatch_ = now + Millis(next_slot_ms - now_ms);
  }

  void RetryDispatch(const Status& s, Clock::TimePoint now) {
    RedisTrouble(s, now);
    dispatch_backoff_ = std::clamp<Millis>(dispatch_backoff_ * 2, 1000ms, 30'000ms);
    next_dispatch_ = now + dispatch_backoff_;
  }

  // --- Record ---

  void Publish(Clock::TimePoint now) {
    next_publish_ = now + kHeartbeat;
    bool owns = worker_ && worker_->held();
    AutopilotRecord r;
    r.holder = holder_;
    r.repo = payload_.repo;
    r.mode = owns ? "managed-worker" : "dispatch-only";
    r.interval_ms = o_.interval.count();
    r.last_dispatch_ms = last_dispatch_ms_;
    r.last_job_id = last_job_id_;
    r.worker_pid = worker_ ? worker_->worker_pid() : 0;
    r.epoch = owns ? worker_->epoch() : 0;
    r.updated_ms = clock_.WallMs();
    Status s = PublishAutopilotRecord(queue_->connection(), o_.queue, r);
    if (!s.ok()) RedisTrouble(s, now);
  }

  void Shutdown() {
    if (redis_down_) (void)queue_->connection().Reconnect();
    if (worker_) worker_->Shutdown();
    Status s = RemoveAutopilotRecord(queue_->connection(), o_.queue, holder_);
    if (!s.ok()) spdlog::warn("could not remove the autopilot record: {}", s.message());
    Emit("stopped", {});
  }

  AutopilotOptions o_;
  const Clock& clock_;
  std::string holder_;
  CyclePayload payload_;
  StopSignals stop_;
  std::unique_ptr<JobQueue> queue_;  // owns the one Redis connection the others share
  std::unique_ptr<OwnerLease> lease_;
  std::unique_ptr<LifecycleEvents> events_;
  std::unique_ptr<OwnedWorker> worker_;  // null with --no-worker
  std::string yielded_to_;  // the holder we last said we yield to; empty when not yielding
  int64_t handled_slot_ = -1;
  bool scanned_for_pending_ = false;
  std::string last_job_id_;
  int64_t last_dispatch_ms_ = 0;
  Millis dispatch_backoff_{0};
  bool redis_down_ = false;
  Millis redis_backoff_{100};
  Clock::TimePoint next_dispatch_{}, next_publish_{}, next_reconnect_{};
};

}  // namespace

int RunAutopilot(const AutopilotOptions& options) {
  Autopilot a(options);
  return a.Run();
}

}  // namespace lk
