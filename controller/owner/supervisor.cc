#include "controller/owner/supervisor.h"

#include <unistd.h>

#include <spdlog/spdlog.h>

#include <algorithm>
#include <cstdlib>
#include <memory>

#include "controller/owner/lifecycle_events.h"
#include "controller/owner/owned_worker.h"
#include "controller/owner/owner_lease.h"
#include "controller/owner/pid_file.h"
#include "controller/owner/stop_signals.h"
#include "controller/owner/supervisor_rules.h"
#include "controller/owner/supervisor_status.h"
#include "controller/status/queue_snapshot.h"
#include "worker/exit_codes.h"
#include "worker/job_queue.h"
#include "worker/process_tree.h"

namespace lk {

std::string DefaultSupervisorPidFile(const std::string& queue) {
  const char* dir = std::getenv("LANEKEEPER_RUN_DIR");
  if (!dir || !*dir) dir = std::getenv("XDG_RUNTIME_DIR");
  if (!dir || !*dir) dir = "/tmp";
  return std::string(dir) + "/lanekeeper-supervisor-" + queue + ".pid";
}

namespace {

using namespace std::chrono_literals;

constexpr Millis kPublishEvery{1'000};

class Supervisor {
 public:
  explicit Supervisor(SupervisorOptions o)
      : o_(std::move(o)),
        clock_(o_.clock ? *o_.clock : SystemClock()),
        holder_(ThisHolder()),
        degraded_(o_.max_crashes),
        wedge_() {
    if (o_.pid_file.empty()) o_.pid_file = DefaultSupervisorPidFile(o_.queue);
  }

  int Run() {
    auto ep = ParseRedisUrl(o_.redis_url);
    if (!ep.ok()) {
      spdlog::error("{}", ep.status().message());
      return kExitUsage;
    }
    auto pid_file = PidFile::Acquire(o_.pid_file);
    if (!pid_file.ok()) {
      spdlog::error("{}", pid_file.status().message());
      return pid_file.status().code() == Status::Code::kConflict ? kExitUsage : kExitFailure;
    }
    pid_file_ = std::move(pid_file).value();
    if (!stop_.Install()) return kExitFailure;
    // One connection for the lease, events, status and the wedge watchdog's reads: one
    // thing to reconnect after a Redis restart.
    auto conn = ConnectUntilStopped(*ep, stop_);
    if (!conn) return kExitOk;  // stopped by a signal while Redis was down
    queue_ = std::make_unique<JobQueue>(std::move(conn), o_.queue);
    lease_ = std::make_unique<OwnerLease>(conn_(), o_.queue, OwnerRole::kSupervisor, holder_,
                                          o_.concurrency, o_.max_rss_mb, o_.lease_ttl);
    lease_->RequireReplicas(o_.redis_replicas, QueueOptions{}.replica_timeout);
    events_ = std::make_unique<LifecycleEvents>(conn_(), o_.queue, "supervisor", holder_);
    worker_ = std::make_unique<OwnedWorker>(WorkerOptions(), *lease_, *events_);
    started_ms_ = clock_.WallMs();
    Emit("started", {{"pid", std::to_string(getpid())},
                     {"concurrency", std::to_string(o_.concurrency)},
                     {"max_rss_mb", std::to_string(o_.max_rss_mb)}});
    Loop();
    Shutdown();
    return kExitOk;
  }

 private:
  RedisConnection& conn_() { return queue_->connection(); }

  OwnedWorkerOptions WorkerOptions() {
    OwnedWorkerOptions w = OwnedWorkerOptionsOf(o_, o_.standby_poll);
    w.restart.max = o_.restart_backoff_max;
    w.clock = &clock_;
    w.on_crash = [this](Clock::TimePoint now, Millis backoff) {
      ++worker_restarts_["crash"];
      bool entered = false;
      Millis delay = degraded_.OnCrash(now, backoff, &entered);
      if (entered) {
        int crashes = degraded_.crashes(now);
        spdlog::error("queue {}: {} worker crashes within {} (more than --max-crashes {}): "
                      "degraded, retrying every {}", o_.queue, crashes,
                      FormatDuration(DegradedRule::kWindow), o_.max_crashes,
                      FormatDuration(DegradedRule::kHeldDelay));
        Emit("degraded", {{"crashes", std::to_string(crashes)},
                          {"max_crashes", std::to_string(o_.max_crashes)}});
      }
      return delay;
    };
    return w;
  }

  void Emit(const std::string& type, const std::map<std::string, std::string>& fields = {}) {
    if (!events_) return;
    Status s = events_->Emit(type, fields);
    if (!s.ok()) spdlog::debug("event {} not recorded: {}", type, s.message());
  }

  void Loop() {
    // Act first, then wait: a new supervisor takes a free lease and starts its worker in
    // its first pass instead of a tick later each (what `apply` waits for). A stop that
    // came while starting up is seen before anything starts.
    if (stop_.Wait(0ms)) return;
    do {
      OwnedWorkerPass pass = worker_->Tend();
      React(pass);
      if (worker_->running() && !worker_->draining()) Watch();
      if (clock_.Now() >= next_publish_) Publish();
    } while (!stop_.Wait(kOwnerTick, worker_->wait_fd()));
  }

  // What the owned worker's pass means for a supervisor.
  void React(const OwnedWorkerPass& pass) {
    if (!pass.redis.ok()) {
      RedisTrouble(pass.redis);
    } else if (redis_down_) {
      spdlog::info("Redis is back");
      redis_down_ = false;
    }
    if (pass.acquired) standby_holder_.clear();
    if (pass.held_by && standby_holder_ != pass.held_by->holder) {
      standby_holder_ = pass.held_by->holder;
      spdlog::info("standby: queue {} is owned by {} {} (epoch {}); taking over when its lease "
                   "expires", o_.queue, pass.held_by->role, pass.held_by->holder,
                   pass.held_by->epoch);
      Emit("standby", {{"owner_role", pass.held_by->role}, {"owner", pass.held_by->holder},
                       {"owner_epoch", std::to_string(pass.held_by->epoch)}});
    }
    if (!pass.ended) return;
    const WorkerEnd& end = *pass.ended;
    rss_bytes_ = 0;
    waiting_after_crash_ = end.reason == "crash";
    if (end.reason == "max_rss") {
      ++worker_restarts_["rss"];
      if (!end.asked) {
        // The worker saw it first and drained itself (exit 12).
        Emit("rss_restart", {{"max_rss_mb", std::to_string(o_.max_rss_mb)}, {"by", "worker"}});
        CountRssRestart();
      }
    } else if (end.reason == "wedged") {
      ++worker_restarts_["wedge"];
    } else if (end.reason == "fenced" || end.reason == "lease lost") {
      ++worker_restarts_["lease_lost"];
    }
  }

  // The watchdogs over a running worker.
  void Watch() {
    auto now = clock_.Now();
    pid_t pid = worker_->worker_pid();
    rss_bytes_ = RssOfProcessTree(pid);
    if (o_.max_rss_mb > 0 && rss_bytes_ > int64_t{o_.max_rss_mb} * 1024 * 1024) {
      int64_t mb = rss_bytes_ / (1024 * 1024);
      spdlog::warn("worker {} uses {} MB, over --max-rss {} MB: draining and restarting", pid,
                   mb, o_.max_rss_mb);
      Emit("rss_restart", {{"rss_mb", std::to_string(mb)},
                           {"max_rss_mb", std::to_string(o_.max_rss_mb)},
                           {"worker_pid", std::to_string(pid)}});
      CountRssRestart();
      worker_->BeginDrain("max_rss");
      return;
    }
    if (started_worker_ != pid) {
      started_worker_ = pid;
      wedge_.Reset();
      next_wedge_check_ = now + o_.wedge_check_every;
    }
    if (now >= next_wedge_check_) CheckWedge(now);
    if (degraded_.OnRunning(now, worker_->worker_started())) Emit("recovered", {});
  }

  void CountRssRestart() {
    if (rss_loop_.OnRestart(clock_.Now())) {
      Emit("rss_restart_loop", {{"restarts", std::to_string(rss_loop_.restarts(clock_.Now()))},
                                {"window", "10m"}});
    }
  }

  // The wedge watchdog: work waits, nothing runs, nothing finished for wedge_time — as
  // doctor's wedged_queue check reads it, but not counting time before we started.
  void CheckWedge(Clock::TimePoint now) {
    next_wedge_check_ = now + o_.wedge_check_every;
    auto snap = ReadQueueSnapshot(*queue_, kWorkerLiveWithin, clock_.WallMs());
    if (!snap.ok()) return RedisTrouble(snap.status());
    if (!wedge_.Check(now, snap->Wedged(o_.wedge_time, started_ms_))) return;
    spdlog::warn("queue {} looks wedged: {} waiting, none active, nothing finished for {}; "
                 "restarting worker {}", o_.queue, snap->counts.waiting,
                 FormatDuration(o_.wedge_time), worker_->worker_pid());
    Emit("wedge_restart", {{"waiting", std::to_string(snap->counts.waiting)},
                           {"worker_pid", std::to_string(worker_->worker_pid())}});
    worker_->BeginDrain("wedged");
  }

  std::string State() const {
    if (stop_.stopping()) return "stopping";
    if (!worker_->held()) return "standby";
    if (worker_->draining()) return "draining";
    if (degraded_.degraded()) return "degraded";
    if (worker_->running()) return "running";
    return waiting_after_crash_ ? "backoff" : "starting";
  }

  void Publish() {
    auto now = clock_.Now();
    next_publish_ = now + kPublishEvery;
    SupervisorStatus s;
    s.holder = holder_;
    char host[256] = {0};
    gethostname(host, sizeof(host) - 1);
    s.host = host;
    s.pid = getpid();
    s.state = State();
    s.epoch = worker_->held() ? worker_->epoch() : 0;
    s.worker_pid = worker_->worker_pid();
    s.concurrency = o_.concurrency;
    s.max_rss_mb = o_.max_rss_mb;
    s.rss_mb = rss_bytes_ / (1024 * 1024);
    s.started_ms = started_ms_;
    s.updated_ms = clock_.WallMs();
    s.crashes_in_window = degraded_.crashes(now);
    s.degraded = degraded_.degraded();
    s.last_exit = worker_->last_exit();
    s.pid_file = o_.pid_file;
    s.worker_restarts = worker_restarts_;
    Status st = PublishSupervisorStatus(conn_(), o_.queue, s);
    if (!st.ok()) RedisTrouble(st);
  }

  void RedisTrouble(const Status& s) {
    if (!redis_down_) spdlog::warn("Redis trouble: {}; retrying", s.message());
    redis_down_ = true;
    if (s.IsUnavailable()) (void)conn_().Reconnect();
  }

  void Shutdown() {
    Publish();
    worker_->Shutdown();
    (void)RemoveSupervisorStatus(conn_(), o_.queue, holder_);
    Emit("stopped", {});
    pid_file_->Release();
  }

  SupervisorOptions o_;
  const Clock& clock_;
  std::string holder_;
  std::unique_ptr<PidFile> pid_file_;
  StopSignals stop_;
  std::unique_ptr<JobQueue> queue_;  // owns the one Redis connection the others share
  std::unique_ptr<OwnerLease> lease_;
  std::unique_ptr<LifecycleEvents> events_;
  std::unique_ptr<OwnedWorker> worker_;
  DegradedRule degraded_;
  RssRestartLoop rss_loop_;
  WedgeWatchdog wedge_;
  std::string standby_holder_;
  pid_t started_worker_ = 0;  // the worker the watchdogs last saw
  Clock::TimePoint next_publish_{}, next_wedge_check_{};
  std::map<std::string, int64_t> worker_restarts_;  // by reason, for SupervisorStatus
  int64_t rss_bytes_ = 0;
  int64_t started_ms_ = 0;
  bool redis_down_ = false;
  bool waiting_after_crash_ = false;  // the last worker crashed: its successor waits
};

}  // namespace

int RunSupervisor(const SupervisorOptions& options) {
  Supervisor s(options);
  return s.Run();
}

}  // namespace lk
