#include "controller/owner/autopilot.h"

#include <poll.h>
#include <signal.h>
#include <sys/signalfd.h>
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
#include "controller/owner/worker_process.h"
#include "worker/autopilot_cycle_handler.h"
#include "worker/exit_codes.h"
#include "worker/job_queue.h"

namespace lk {

namespace {

using Clock = std::chrono::steady_clock;
using namespace std::chrono_literals;

constexpr auto kAutopilotTick = 250ms;
constexpr auto kHeartbeat = 2s;
constexpr auto kMaxCrashBackoff = 60s;
constexpr auto kAutopilotHealthyReset = std::chrono::minutes(5);
constexpr auto kMaxRedisBackoff = 5s;
// Slack on top of the steps' own timeouts for the job as a whole (spawning, the repo check).
constexpr Millis kCycleJobSlack{60'000};
// How far back in each pending state the start-up scan looks for our last cycle.
constexpr int kPendingScanLimit = 1000;

class Autopilot {
 public:
  explicit Autopilot(AutopilotOptions o) : o_(std::move(o)), holder_(ThisHolder()) {
    if (o_.worker_binary.empty()) o_.worker_binary = SelfExecutable();
  }

  int Run() {
    std::error_code ec;
    std::filesystem::path repo = std::filesystem::absolute(o_.repo, ec);
    if (ec) {
      spdlog::error("--repo {}: {}", o_.repo, ec.message());
      return kExitUsage;
    }
    payload_.repo = repo.lexically_normal().string();
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
    if (!BlockSignals()) return kExitFailure;
    if (!ConnectRedis()) return stopping_ ? kExitOk : kExitUsage;
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
  bool BlockSignals() {
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGINT);
    sigprocmask(SIG_BLOCK, &set, nullptr);
    signal_fd_ = signalfd(-1, &set, SFD_CLOEXEC | SFD_NONBLOCK);
    if (signal_fd_ < 0) {
      spdlog::error("cannot create a signalfd");
      return false;
    }
    return true;
  }

  // Retries with backoff until Redis answers; false on a bad URL or a stop signal (then
  // stopping_ is set).
  bool ConnectRedis() {
    auto ep = ParseRedisUrl(o_.redis_url);
    if (!ep.ok()) {
      spdlog::error("{}", ep.status().message());
      return false;
    }
    auto delay = 100ms;
    bool logged = false;
    while (true) {
      auto conn = RedisConnection::Connect(*ep, 2000ms);
      if (conn.ok()) {
        queue_ = std::make_unique<JobQueue>(std::move(conn).value(), o_.queue);
        if (logged) spdlog::info("Redis at {} is back", ep->Redacted());
        break;
      }
      if (!logged) spdlog::warn("{}; retrying", conn.status().message());
      logged = true;
      if (WaitSignal(delay)) return false;
      delay = std::min<std::chrono::milliseconds>(delay * 2, kMaxRedisBackoff);
    }
    RedisConnection& conn = queue_->connection();
    lease_ = std::make_unique<OwnerLease>(conn, o_.queue, OwnerRole::kAutopilot, holder_,
                                          o_.concurrency, o_.max_rss_mb, o_.lease_ttl);
    events_ = std::make_unique<LifecycleEvents>(conn, o_.queue, "autopilot", holder_);
    return true;
  }

  // Waits up to timeout for a stop signal or the worker's exit; true when told to stop.
  bool WaitSignal(Clock::duration timeout) {
    pollfd fds[2] = {{signal_fd_, POLLIN, 0}, {worker_ ? worker_->wait_fd() : -1, POLLIN, 0}};
    int ms = static_cast<int>(std::chrono::duration_cast<std::chrono::milliseconds>(timeout).count());
    poll(fds, worker_ ? 2 : 1, std::max(ms, 1));
    if (fds[0].revents & POLLIN) {
      signalfd_siginfo info;
      while (read(signal_fd_, &info, sizeof(info)) == sizeof(info)) {
        spdlog::info("received signal {}: stopping", info.ssi_signo);
        stopping_ = true;
      }
    }
    return stopping_;
  }

  void Emit(const std::string& type, const std::map<std::string, std::string>& fields = {}) {
    Status s = events_->Emit(type, fields);
    if (!s.ok()) spdlog::debug("event {} not recorded: {}", type, s.message());
  }

  void Loop() {
    // Act first, then wait (a `continue` goes to the wait, as in a while loop).
    // A stop that came while starting up is seen before anything starts.
    if (WaitSignal(Clock::duration::zero())) return;
    do {
      auto now = Clock::now();
      if (worker_) WatchWorker(now);
      if (!RedisUsable(now)) continue;
      if (!o_.no_worker) TendOwnership(now);
      if (!redis_down_ && now >= next_dispatch_) Dispatch(now);
      if (!redis_down_ && now >= next_publish_) Publish(now);
    } while (!WaitSignal(kAutopilotTick));
  }

  // --- Redis trouble: one log line per change of state, reconnects with backoff. ---

  // False while Redis is down and the next reconnect attempt is not yet due.
  bool RedisUsable(Clock::time_point now) {
    if (!redis_down_) return true;
    if (now < next_reconnect_) return false;
    if (!queue_->connection().Reconnect().ok()) {
      redis_backoff_ = std::min<Clock::duration>(redis_backoff_ * 2, kMaxRedisBackoff);
      next_reconnect_ = now + redis_backoff_;
      return false;
    }
    spdlog::info("Redis is back");
    redis_down_ = false;
    next_dispatch_ = now;  // a slot that failed during the outage need not wait its backoff
    return true;
  }

  void RedisTrouble(const Status& s, Clock::time_point now) {
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

  void Dispatch(Clock::time_point now) {
    int64_t now_ms = NowUnixMillis();
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

  void ScheduleNextSlot(Clock::time_point now, int64_t now_ms) {
    int64_t next_slot_ms = (now_ms / o_.interval.count() + 1) * o_.interval.count();
    next_dispatch_ = now + Millis(next_slot_ms - now_ms);
  }

  void RetryDispatch(const Status& s, Clock::time_point now) {
    RedisTrouble(s, now);
    dispatch_backoff_ = std::clamp<Millis>(dispatch_backoff_ * 2, 1000ms, 30'000ms);
    next_dispatch_ = now + dispatch_backoff_;
  }

  // --- Ownership (only without --no-worker) ---

  void TendOwnership(Clock::time_point now) {
    if (lease_->held()) {
      if (now >= next_renew_) RenewLease(now);
      if (lease_->held() && !worker_ && now >= next_start_) StartWorker(now);
    } else if (!worker_ && now >= next_acquire_) {
      // A worker still draining from a lost lease must be gone before we take the lease
      // again: only then is a new worker never the second one.
      TryAcquire(now);
    }
  }

  void TryAcquire(Clock::time_point now) {
    next_acquire_ = now + o_.owner_poll;
    auto r = lease_->TryAcquire();
    if (!r.ok()) return RedisTrouble(r.status(), now);
    if (r->acquired) {
      yielded_to_.clear();
      consecutive_crashes_ = 0;
      Emit("lease_acquired", {{"epoch", std::to_string(lease_->epoch())}});
      next_renew_ = now + o_.lease_renew_every;
      StartWorker(now);
      Publish(now);
      return;
    }
    if (yielded_to_ == r->owner.holder) return;
    yielded_to_ = r->owner.holder;
    spdlog::info("queue {} is owned by {} {} (epoch {}); running dispatch-only", o_.queue,
                 r->owner.role, r->owner.holder, r->owner.epoch);
    Emit("dispatch_only", {{"owner_role", r->owner.role}, {"owner", r->owner.holder},
                           {"owner_epoch", std::to_string(r->owner.epoch)}});
    Publish(now);
  }

  void RenewLease(Clock::time_point now) {
    auto r = lease_->Renew();
    if (!r.ok()) {
      // Keep the worker: if Redis stays away past the TTL, a new owner's epoch fences it.
      next_renew_ = now + 1s;
      return RedisTrouble(r.status(), now);
    }
    next_renew_ = now + o_.lease_renew_every;
    if (*r) return;
    spdlog::warn("lost the owner lease of queue {} (epoch {} is no longer current)", o_.queue,
                 lease_->epoch());
    Emit("lease_lost", {{"epoch", std::to_string(lease_->epoch())}});
    if (worker_ && !draining_) BeginDrain(now);
    Emit("dispatch_only", {{"reason", "lease lost"}});
    next_acquire_ = now + o_.owner_poll;
    Publish(now);
  }

  void StartWorker(Clock::time_point now) {
    std::vector<std::string> argv = {o_.worker_binary, "jobs", "work",
                                     "--queue", o_.queue,
                                     "--concurrency", std::to_string(o_.concurrency),
                                     "--max-rss", std::to_string(o_.max_rss_mb),
                                     "--epoch", std::to_string(lease_->epoch()),
                                     "--drain-timeout", FormatDuration(o_.drain_timeout),
                                     "--log-format", o_.log_format,
                                     "--log-level", o_.log_level};
    if (!o_.handlers_file.empty()) {
      argv.push_back("--handlers");
      argv.push_back(o_.handlers_file);
    }
    // The URL in the environment, not on the command line: ps shows argv (and so a
    // password) to every user.
    auto w = WorkerProcess::Start(argv, {{"LANEKEEPER_REDIS_URL", o_.redis_url}});
    if (!w.ok()) {
      spdlog::error("{}", w.status().message());
      ScheduleRestart(now);
      return;
    }
    worker_ = std::move(w).value();
    draining_ = false;
    Emit("worker_started", {{"worker_pid", std::to_string(worker_->pid())},
                            {"epoch", std::to_string(lease_->epoch())}});
  }

  void BeginDrain(Clock::time_point now) {
    worker_->Signal(SIGTERM);
    draining_ = true;
    drain_deadline_ = now + o_.drain_timeout;
  }

  // Notices the worker's exit (and kills a drain that overran); runs with Redis down too.
  void WatchWorker(Clock::time_point now) {
    auto exit = worker_->Poll();
    if (!exit) {
      if (draining_ && now >= drain_deadline_) {
        spdlog::warn("worker {} did not drain within {}; killing it", worker_->pid(),
                     FormatDuration(o_.drain_timeout));
        worker_->Stop(0ms);
      }
      return;
    }
    bool asked = draining_;
    auto ran = now - worker_->started();
    std::string reason = asked ? "lease lost"
                         : (exit->code == kExitMaxRss && !exit->signaled) ? "max_rss"
                         : (exit->code == kExitFenced && !exit->signaled) ? "fenced"
                                                                           : "crash";
    FinishWorker(*exit, reason);
    if (asked) return;
    if (reason == "max_rss") {
      next_start_ = now;
    } else if (reason == "fenced") {
      next_renew_ = now;  // find out whether the lease is still ours before restarting
      next_start_ = now + 1s;
    } else {
      if (ran >= kAutopilotHealthyReset) consecutive_crashes_ = 0;
      ScheduleRestart(now);
    }
  }

  void ScheduleRestart(Clock::time_point now) {
    ++consecutive_crashes_;
    auto backoff = std::min<Clock::duration>(1s * (1LL << std::min(consecutive_crashes_ - 1, 10)),
                                             kMaxCrashBackoff);
    spdlog::warn("restarting the worker in {}",
                 FormatDuration(std::chrono::duration_cast<Millis>(backoff)));
    next_start_ = now + backoff;
  }

  // Emits worker_exited and forgets the process.
  void FinishWorker(const WorkerExit& exit, const std::string& reason) {
    Emit("worker_exited", {{"code", std::to_string(exit.code)},
                           {"reason", reason},
                           {"detail", exit.Describe()},
                           {"worker_pid", std::to_string(worker_->pid())}});
    worker_.reset();
    draining_ = false;
  }

  // --- Record ---

  void Publish(Clock::time_point now) {
    next_publish_ = now + kHeartbeat;
    AutopilotRecord r;
    r.holder = holder_;
    r.repo = payload_.repo;
    r.mode = lease_->held() ? "managed-worker" : "dispatch-only";
    r.interval_ms = o_.interval.count();
    r.last_dispatch_ms = last_dispatch_ms_;
    r.last_job_id = last_job_id_;
    r.worker_pid = worker_ ? worker_->pid() : 0;
    r.epoch = lease_->held() ? lease_->epoch() : 0;
    r.updated_ms = NowUnixMillis();
    Status s = PublishAutopilotRecord(queue_->connection(), o_.queue, r);
    if (!s.ok()) RedisTrouble(s, now);
  }

  void Shutdown() {
    if (worker_) {
      spdlog::info("draining worker {} (up to {})", worker_->pid(),
                   FormatDuration(o_.drain_timeout));
      // Keep the lease alive through a long drain so no standby starts a second worker
      // while ours still finishes its jobs.
      worker_->Signal(SIGTERM);
      auto deadline = Clock::now() + o_.drain_timeout;
      while (!worker_->Poll() && Clock::now() < deadline) {
        pollfd p{worker_->wait_fd(), POLLIN, 0};
        poll(&p, 1, 250);
        if (lease_->held() && Clock::now() >= next_renew_) {
          (void)lease_->Renew();
          next_renew_ = Clock::now() + o_.lease_renew_every;
        }
      }
      FinishWorker(worker_->Stop(0ms), "stopped");
    }
    if (redis_down_) (void)queue_->connection().Reconnect();
    if (lease_->held()) {
      Status s = lease_->Release();
      if (!s.ok()) spdlog::warn("could not release the owner lease: {}", s.message());
    }
    Status s = RemoveAutopilotRecord(queue_->connection(), o_.queue, holder_);
    if (!s.ok()) spdlog::warn("could not remove the autopilot record: {}", s.message());
    Emit("stopped", {});
  }

  AutopilotOptions o_;
  std::string holder_;
  CyclePayload payload_;
  int signal_fd_ = -1;
  bool stopping_ = false;
  std::unique_ptr<JobQueue> queue_;  // owns the one Redis connection the others share
  std::unique_ptr<OwnerLease> lease_;
  std::unique_ptr<LifecycleEvents> events_;
  std::unique_ptr<WorkerProcess> worker_;
  bool draining_ = false;
  Clock::time_point drain_deadline_{};
  std::string yielded_to_;  // the holder we last said we yield to; empty when not yielding
  int consecutive_crashes_ = 0;
  int64_t handled_slot_ = -1;
  bool scanned_for_pending_ = false;
  std::string last_job_id_;
  int64_t last_dispatch_ms_ = 0;
  Millis dispatch_backoff_{0};
  bool redis_down_ = false;
  Clock::duration redis_backoff_ = 100ms;
  Clock::time_point next_dispatch_{}, next_publish_{}, next_acquire_{}, next_renew_{},
      next_start_{}, next_reconnect_{};
};

}  // namespace

int RunAutopilot(const AutopilotOptions& options) {
  Autopilot a(options);
  return a.Run();
}

}  // namespace lk
