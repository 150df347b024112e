#include "controller/owner/supervisor.h"

#include <poll.h>
#include <signal.h>
#include <sys/signalfd.h>
#include <unistd.h>

#include <spdlog/spdlog.h>

#include <algorithm>
#include <cstdlib>
#include <deque>
#include <memory>
#include <random>
#include <thread>

#include "controller/owner/lifecycle_events.h"
#include "controller/owner/owner_lease.h"
#include "controller/owner/pid_file.h"
#include "controller/owner/supervisor_status.h"
#include "controller/owner/worker_process.h"
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

using Clock = std::chrono::steady_clock;
using namespace std::chrono_literals;

constexpr auto kTick = 250ms;
constexpr auto kCrashWindow = std::chrono::minutes(10);
constexpr auto kHealthyReset = std::chrono::minutes(5);
constexpr auto kMaxBackoff = 60s;
constexpr auto kRssLoopWindow = std::chrono::minutes(10);
constexpr int kRssLoopCount = 3;
constexpr auto kWedgeRestartWindow = std::chrono::minutes(30);
constexpr int kMaxWedgeRestarts = 3;
constexpr int kWedgeChecks = 3;

// Drops entries older than window from the front of times.
void Trim(std::deque<Clock::time_point>& times, Clock::duration window, Clock::time_point now) {
  while (!times.empty() && now - times.front() > window) times.pop_front();
}

class Supervisor {
 public:
  explicit Supervisor(SupervisorOptions o) : o_(std::move(o)), holder_(ThisHolder()) {
    if (o_.pid_file.empty()) o_.pid_file = DefaultSupervisorPidFile(o_.queue);
    if (o_.worker_binary.empty()) o_.worker_binary = SelfExecutable();
  }

  int Run() {
    if (auto ep = ParseRedisUrl(o_.redis_url); !ep.ok()) {
      spdlog::error("{}", ep.status().message());
      return kExitUsage;
    }
    auto pid_file = PidFile::Acquire(o_.pid_file);
    if (!pid_file.ok()) {
      spdlog::error("{}", pid_file.status().message());
      return pid_file.status().code() == Status::Code::kConflict ? kExitUsage : kExitFailure;
    }
    pid_file_ = std::move(pid_file).value();
    if (!BlockSignals()) return kExitFailure;
    if (!ConnectRedis()) return kExitOk;  // stopped by a signal while Redis was down
    started_ms_ = NowUnixMillis();
    Emit("started", {{"pid", std::to_string(getpid())},
                     {"concurrency", std::to_string(o_.concurrency)},
                     {"max_rss_mb", std::to_string(o_.max_rss_mb)}});
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

  // Retries with backoff until Redis answers; false if a stop signal arrived first.
  bool ConnectRedis() {
    auto ep = ParseRedisUrl(o_.redis_url);
    if (!ep.ok()) {
      spdlog::error("{}", ep.status().message());
      return false;
    }
    auto delay = 100ms;
    bool logged = false;
    while (true) {
      auto c1 = RedisConnection::Connect(*ep, 2000ms);
      Status failure = c1.status();
      if (c1.ok()) {
        auto c2 = RedisConnection::Connect(*ep, 2000ms);
        if (c2.ok()) {
          conn_ = std::move(c1).value();
          queue_ = std::make_unique<JobQueue>(std::move(c2).value(), o_.queue);
          if (logged) spdlog::info("Redis at {} is back", ep->Redacted());
          break;
        }
        failure = c2.status();
      }
      if (!logged) spdlog::warn("{}; retrying", failure.message());
      logged = true;
      if (WaitSignal(delay)) return false;
      delay = std::min<std::chrono::milliseconds>(delay * 2, 5000ms);
    }
    lease_ = std::make_unique<OwnerLease>(*conn_, o_.queue, OwnerRole::kSupervisor, holder_,
                                          o_.concurrency, o_.max_rss_mb, o_.lease_ttl);
    events_ = std::make_unique<LifecycleEvents>(*conn_, o_.queue, "supervisor", holder_);
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
    if (events_) {
      Status s = events_->Emit(type, fields);
      if (!s.ok()) spdlog::debug("event {} not recorded: {}", type, s.message());
    }
  }

  void Loop() {
    // Act first, then wait: a new supervisor takes a free lease and starts its worker in
    // its first pass instead of a tick later each (what `apply` waits for).
    // A stop that came while starting up is seen before anything starts.
    if (WaitSignal(Clock::duration::zero())) return;
    do {
      auto now = Clock::now();
      if (!lease_->held() && now >= next_acquire_) {
        TryAcquire(now);
      } else if (lease_->held() && now >= next_renew_) {
        RenewLease(now);
      }
      if (lease_->held()) TendWorker(now);
      if (now >= next_publish_) Publish(now);
    } while (!WaitSignal(kTick));
  }

  void TryAcquire(Clock::time_point now) {
    next_acquire_ = now + o_.standby_poll;
    auto r = lease_->TryAcquire();
    if (!r.ok()) {
      LogRedisTrouble(r.status());
      return;
    }
    RedisOk();
    if (r->acquired) {
      Emit("lease_acquired", {{"epoch", std::to_string(lease_->epoch())}});
      next_renew_ = now + o_.lease_renew_every;
      next_start_ = now;
      standby_holder_.clear();
      state_ = "starting";
      return;
    }
    if (standby_holder_ != r->owner.holder) {
      standby_holder_ = r->owner.holder;
      spdlog::info("standby: queue {} is owned by {} {} (epoch {}); taking over when its lease "
                   "expires", o_.queue, r->owner.role, r->owner.holder, r->owner.epoch);
      Emit("standby", {{"owner_role", r->owner.role}, {"owner", r->owner.holder},
                       {"owner_epoch", std::to_string(r->owner.epoch)}});
    }
    state_ = "standby";
  }

  void RenewLease(Clock::time_point now) {
    auto r = lease_->Renew();
    if (!r.ok()) {
      // Keep the worker: if Redis stays away past the TTL, a new owner's epoch fences it.
      LogRedisTrouble(r.status());
      next_renew_ = now + 1s;
      return;
    }
    RedisOk();
    next_renew_ = now + o_.lease_renew_every;
    if (*r) return;
    spdlog::warn("lost the owner lease of queue {} (epoch {} is no longer current)", o_.queue,
                 lease_->epoch());
    Emit("lease_lost", {{"epoch", std::to_string(lease_->epoch())}});
    if (worker_) {
      worker_->Signal(SIGTERM);
      FinishWorker(worker_->Stop(o_.drain_timeout), "lease lost");
      ++worker_restarts_["lease_lost"];
    }
    state_ = "standby";
    next_acquire_ = now;
  }

  void TendWorker(Clock::time_point now) {
    if (!worker_) {
      if (now >= next_start_) StartWorker(now);
      return;
    }
    if (auto exit = worker_->Poll()) {
      HandleExit(*exit, now);
      return;
    }
    if (draining_) {
      if (now >= drain_deadline_) {
        spdlog::warn("worker {} did not drain within {}; killing it", worker_->pid(),
                     FormatDuration(o_.drain_timeout));
        worker_->Stop(0ms);
      }
      return;
    }
    rss_bytes_ = RssOfProcessTree(worker_->pid());
    if (o_.max_rss_mb > 0 && rss_bytes_ > int64_t{o_.max_rss_mb} * 1024 * 1024) {
      int64_t mb = rss_bytes_ / (1024 * 1024);
      spdlog::warn("worker {} uses {} MB, over --max-rss {} MB: draining and restarting",
                   worker_->pid(), mb, o_.max_rss_mb);
      Emit("rss_restart", {{"rss_mb", std::to_string(mb)},
                           {"max_rss_mb", std::to_string(o_.max_rss_mb)},
                           {"worker_pid", std::to_string(worker_->pid())}});
      CountRssRestart(now);
      BeginDrain(now, "max_rss");
      return;
    }
    if (now >= next_wedge_check_) CheckWedge(now);
    if (degraded_ && now - worker_->started() >= kHealthyReset) {
      degraded_ = false;
      Emit("recovered", {});
    }
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
      RecordCrash(now, WorkerExit{127, false, 0});
      return;
    }
    worker_ = std::move(w).value();
    draining_ = false;
    state_ = degraded_ ? "degraded" : "running";
    next_wedge_check_ = now + o_.wedge_check_every;
    wedge_strikes_ = 0;
    Emit("worker_started", {{"worker_pid", std::to_string(worker_->pid())},
                            {"epoch", std::to_string(lease_->epoch())}});
  }

  void BeginDrain(Clock::time_point now, const std::string& reason) {
    worker_->Signal(SIGTERM);
    draining_ = true;
    drain_reason_ = reason;
    drain_deadline_ = now + o_.drain_timeout;
    state_ = "draining";
  }

  void HandleExit(const WorkerExit& exit, Clock::time_point now) {
    bool asked = draining_;
    std::string reason = asked ? drain_reason_ : "";
    if (!asked) {
      if (exit.code == kExitMaxRss && !exit.signaled) reason = "max_rss";
      else if (exit.code == kExitFenced && !exit.signaled) reason = "fenced";
      else reason = "crash";
    }
    auto ran = now - worker_->started();
    FinishWorker(exit, reason);
    if (reason == "max_rss") {
      ++worker_restarts_["rss"];
      if (!asked) {
        Emit("rss_restart", {{"max_rss_mb", std::to_string(o_.max_rss_mb)},
                             {"by", "worker"}});
        CountRssRestart(now);
      }
      next_start_ = now;
    } else if (reason == "wedged") {
      ++worker_restarts_["wedge"];
      next_start_ = now;
    } else if (reason == "fenced") {
      ++worker_restarts_["lease_lost"];  // its epoch moved on: the lease is no longer ours
      next_renew_ = now;  // find out whether the lease is still ours before restarting
      next_start_ = now + 1s;
    } else {
      if (ran >= kHealthyReset) consecutive_crashes_ = 0;
      RecordCrash(now, exit);
    }
  }

  // Emits worker_exited and forgets the process.
  void FinishWorker(const WorkerExit& exit, const std::string& reason) {
    last_exit_ = exit.Describe();
    Emit("worker_exited", {{"code", std::to_string(exit.code)},
                           {"reason", reason},
                           {"detail", last_exit_},
                           {"worker_pid", std::to_string(worker_->pid())}});
    worker_.reset();
    draining_ = false;
    rss_bytes_ = 0;
  }

  void RecordCrash(Clock::time_point now, const WorkerExit& exit) {
    ++worker_restarts_["crash"];
    crashes_.push_back(now);
    Trim(crashes_, kCrashWindow, now);
    ++consecutive_crashes_;
    auto backoff = std::chrono::duration_cast<std::chrono::milliseconds>(
        std::min<Clock::duration>(1s * (1LL << std::min(consecutive_crashes_ - 1, 10)),
                                  kMaxBackoff));
    if (static_cast<int>(crashes_.size()) > o_.max_crashes) {
      backoff = std::chrono::duration_cast<std::chrono::milliseconds>(kMaxBackoff);
      if (!degraded_) {
        degraded_ = true;
        spdlog::error("queue {}: {} worker crashes within {} (more than --max-crashes {}): "
                      "degraded, retrying every {}", o_.queue, crashes_.size(),
                      FormatDuration(std::chrono::duration_cast<Millis>(kCrashWindow)),
                      o_.max_crashes, FormatDuration(std::chrono::duration_cast<Millis>(kMaxBackoff)));
        Emit("degraded", {{"crashes", std::to_string(crashes_.size())},
                          {"max_crashes", std::to_string(o_.max_crashes)}});
      }
    }
    std::uniform_real_distribution<double> jitter(0.9, 1.1);
    backoff = std::chrono::milliseconds(static_cast<int64_t>(backoff.count() * jitter(rng_)));
    Emit("crash", {{"code", std::to_string(exit.code)},
                   {"detail", exit.Describe()},
                   {"backoff_ms", std::to_string(backoff.count())},
                   {"consecutive", std::to_string(consecutive_crashes_)}});
    next_start_ = now + backoff;
    state_ = degraded_ ? "degraded" : "backoff";
  }

  void CountRssRestart(Clock::time_point now) {
    rss_restarts_.push_back(now);
    Trim(rss_restarts_, kRssLoopWindow, now);
    if (static_cast<int>(rss_restarts_.size()) > kRssLoopCount) {
      Emit("rss_restart_loop", {{"restarts", std::to_string(rss_restarts_.size())},
                                {"window", "10m"}});
    }
  }

  // The wedge watchdog: work waits, nothing runs, nothing finished for wedge_time.
  void CheckWedge(Clock::time_point now) {
    next_wedge_check_ = now + o_.wedge_check_every;
    auto stats = queue_->Stats();
    if (!stats.ok()) return;
    auto last = conn_->Command({"ZREVRANGE", JobQueue::KeyPrefix(o_.queue) + "completed", "0",
                                "0", "WITHSCORES"});
    int64_t last_done_ms = started_ms_;
    if (last.ok() && last->elements.size() == 2) {
      last_done_ms = std::max<int64_t>(last_done_ms, last->elements[1].AsInt());
    }
    bool wedged = stats->waiting > 0 && stats->active == 0 &&
                  NowUnixMillis() - last_done_ms >= o_.wedge_time.count();
    wedge_strikes_ = wedged ? wedge_strikes_ + 1 : 0;
    if (wedge_strikes_ < kWedgeChecks) return;
    Trim(wedge_restarts_, kWedgeRestartWindow, now);
    if (static_cast<int>(wedge_restarts_.size()) >= kMaxWedgeRestarts) return;
    wedge_restarts_.push_back(now);
    wedge_strikes_ = 0;
    spdlog::warn("queue {} looks wedged: {} waiting, none active, nothing finished for {}; "
                 "restarting worker {}", o_.queue, stats->waiting, FormatDuration(o_.wedge_time),
                 worker_->pid());
    Emit("wedge_restart", {{"waiting", std::to_string(stats->waiting)},
                           {"worker_pid", std::to_string(worker_->pid())}});
    BeginDrain(now, "wedged");
  }

  void Publish(Clock::time_point now) {
    next_publish_ = now + 1s;
    SupervisorStatus s;
    s.holder = holder_;
    char host[256] = {0};
    gethostname(host, sizeof(host) - 1);
    s.host = host;
    s.pid = getpid();
    s.state = state_;
    s.epoch = lease_->held() ? lease_->epoch() : 0;
    s.worker_pid = worker_ ? worker_->pid() : 0;
    s.concurrency = o_.concurrency;
    s.max_rss_mb = o_.max_rss_mb;
    s.rss_mb = rss_bytes_ / (1024 * 1024);
    s.started_ms = started_ms_;
    s.updated_ms = NowUnixMillis();
    Trim(crashes_, kCrashWindow, now);
    s.crashes_in_window = static_cast<int>(crashes_.size());
    s.degraded = degraded_;
    s.last_exit = last_exit_;
    s.pid_file = o_.pid_file;
    s.worker_restarts = worker_restarts_;
    Status st = PublishSupervisorStatus(*conn_, o_.queue, s);
    if (!st.ok()) LogRedisTrouble(st);
  }

  void LogRedisTrouble(const Status& s) {
    if (!redis_down_) spdlog::warn("Redis trouble: {}; retrying", s.message());
    redis_down_ = true;
    if (s.IsUnavailable()) conn_->Reconnect();
  }
  void RedisOk() {
    if (redis_down_) spdlog::info("Redis is back");
    redis_down_ = false;
  }

  void Shutdown() {
    state_ = "stopping";
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
    Status s = lease_->Release();
    if (!s.ok()) spdlog::warn("could not release the owner lease: {}", s.message());
    (void)RemoveSupervisorStatus(*conn_, o_.queue, holder_);
    Emit("stopped", {});
    pid_file_->Release();
  }

  SupervisorOptions o_;
  std::string holder_;
  std::unique_ptr<PidFile> pid_file_;
  int signal_fd_ = -1;
  bool stopping_ = false;
  std::unique_ptr<RedisConnection> conn_;
  std::unique_ptr<JobQueue> queue_;
  std::unique_ptr<OwnerLease> lease_;
  std::unique_ptr<LifecycleEvents> events_;
  std::unique_ptr<WorkerProcess> worker_;
  std::string state_ = "standby";
  std::string standby_holder_;
  std::string last_exit_;
  bool draining_ = false;
  std::string drain_reason_;
  Clock::time_point drain_deadline_{};
  Clock::time_point next_acquire_{}, next_renew_{}, next_start_{}, next_publish_{},
      next_wedge_check_{};
  std::deque<Clock::time_point> crashes_, rss_restarts_, wedge_restarts_;
  int consecutive_crashes_ = 0;
  std::map<std::string, int64_t> worker_restarts_;  // by reason, for SupervisorStatus
  bool degraded_ = false;
  int wedge_strikes_ = 0;
  int64_t rss_bytes_ = 0;
  int64_t started_ms_ = 0;
  bool redis_down_ = false;
  std::mt19937 rng_{std::random_device{}()};
};

}  // namespace

int RunSupervisor(const SupervisorOptions& options) {
  Supervisor s(options);
  return s.Run();
}

}  // namespace lk
