#include "worker/job_runner.h"

#include <signal.h>
#include <spdlog/spdlog.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <condition_variable>
#include <deque>
#include <mutex>
#include <optional>
#include <random>
#include <set>
#include <thread>
#include <utility>
#include <vector>

#include "worker/exit_codes.h"
#include "worker/process_tree.h"
#include "worker/stop_watcher.h"
#include "worker/worker_registry.h"

namespace lk {

namespace {

using SteadyClock = std::chrono::steady_clock;

// Prefetch: with fast handlers a Redis round trip costs more than many jobs, so the
// dispatcher keeps up to kMaxPrefetch claimed-but-unstarted jobs buffered (two claims of
// kMaxClaim: room for the pump's claim beside the dispatcher's) and refills as soon as an
// eighth of them is gone: a round trip is then nearly always in flight, and Redis (the
// bottleneck for fast jobs) never waits for the worker. With slow handlers it
// claims only free slots, so no job waits claimed behind a slow one while another worker
// could have run it. "Fast" is an EWMA of handler durations under kFastJobMs; it starts
// slow, so a worker never hoards jobs before it has seen how long they take.
constexpr int kMaxPrefetch = 512;
constexpr int kMaxClaim = 256;
// The pump (a second connection) sends a round trip of its own while the dispatcher's is
// in flight, so that Redis, the bottleneck for fast jobs, always has the next request
// queued instead of idling while the worker reads a reply and writes the next request.
// It goes only for at least this many outcomes or jobs to claim: each script call costs
// a fixed share besides its jobs.
constexpr int kPumpMin = 64;
constexpr double kFastJobMs = 1.0;
constexpr double kEwmaWeight = 0.2;
constexpr double kInitialEwmaMs = 100.0;

// How often the claims of running jobs are read back (one MGET): a job cancelled while it
// runs has its handler stopped within twice this, plus a round trip, instead of at its
// next lease renewal (a third of its lease: 10 s by default).
constexpr Millis kClaimCheckEvery{250};

constexpr Millis kMinBackoff{100};
constexpr Millis kMaxBackoff{5'000};
constexpr Millis kMinWait{10};  // shortest block for work, so "due now" never spins
constexpr int64_t kMiB = 1024 * 1024;

// A claimed job this worker holds, buffered or running, with the lease it believes it has.
struct HeldJob {
  ClaimedJob job;
  const HandlerEntry* entry = nullptr;
  SteadyClock::time_point lease_from;  // when the current lease began (when its request was sent)
  Millis lease{0};

  Millis RenewalLease() const { return entry->lease.count() > 0 ? entry->lease : job.lease; }
  // Renew once a third of the lease is spent: two more chances before it runs out.
  bool RenewalDue(SteadyClock::time_point now) const { return now - lease_from >= lease / 3; }
  // Whether a buffered job may start without asking Redis: while at least half its lease
  // is left by the local clock (counted from when the claim or renewal was sent, so never
  // longer than Redis counts it). A job that waited longer — the worker was paused
  // (SIGSTOP, a frozen VM) past its lease, or read the claim's reply late — may have been
  // reclaimed and run by another worker meanwhile: it is renewed first (one RenewBatch for
  // all such jobs; Redis's clock decides, and a job that starts late starts with a whole
  // lease), and dropped if its claim is gone. A fast drain's jobs wait milliseconds and a
  // buffered job is renewed at a third of its lease (RenewalDue): neither ever asks.
  bool Confirmed(SteadyClock::time_point now) const { return now - lease_from < lease / 2; }
};

struct Executor {
  std::thread thread;
  StopToken stop;
  std::optional<HeldJob> current;  // guarded by the runner's mutex
  SteadyClock::time_point started;       // when current started; guarded by the runner's mutex
  std::mt19937 rng{std::random_device{}()};
};

}  // namespace

// Threads: one dispatcher (the thread in Run), `concurrency` executors, one pump (a second
// round trip in flight while the dispatcher's is, with fast jobs), one waker (blocks in
// Redis for new work while the queue is empty) and one stop watcher (turns the
// signal-safe eventfd write of RequestStop into a condition-variable notification).
// Everything shared is guarded by mu_; Redis calls are made without it.
class JobRunner::Impl {
 public:
  explicit Impl(JobRunnerOptions options);
  ~Impl();
  int Run();
  void RequestStop();

 private:
  enum class Phase { kRunning, kDraining };

  std::optional<int> Connect();
  int Dispatch();
  void RoundTrip();
  void HandleClaim(ClaimResult claim, int want, SteadyClock::time_point sent);
  void AcceptClaimLocked(ClaimResult& claim, int want, SteadyClock::time_point sent);
  void Fenced(const ClaimResult& claim);
  void Tick(SteadyClock::time_point now);
  void CheckRunningClaims();
  void ConfirmBufferedClaims();
  int RenewClaims(const std::vector<LeaseRenewal>& renewals);
  bool StartableLocked() const;
  void ClaimLostLocked(HeldJob& job, Executor* owner);
  void BeginDrain(int exit_code, const std::string& why);
  void StopRunningJobs();
  void RedisTrouble(const Status& s);
  void RetryRedis();
  void ShutDownThreads();

  void ExecutorLoop(Executor& ex);
  void FinishJob(Executor& ex, HandlerOutcome out, Millis timeout, double duration_ms);
  void WakerLoop();
  void PumpLoop();
  bool PumpWantedLocked() const;
  void StopWatcherLoop();

  int WantLocked() const;
  int LowWaterLocked() const;
  bool FastLocked() const { return ewma_ms_ < kFastJobMs; }

  const JobRunnerOptions options_;
  const std::string redis_url_;
  std::string redis_redacted_;
  const int stop_fd_;
  std::atomic<bool> run_finished_{false};

  // Dispatcher thread only.
  std::unique_ptr<JobQueue> queue_;
  std::unique_ptr<WorkerRegistry> registry_;
  bool redis_ok_ = true;
  Millis backoff_{kMinBackoff};
  SteadyClock::time_point retry_at_;
  int exit_code_ = kExitOk;
  SteadyClock::time_point drain_deadline_;
  bool shutdown_sent_ = false;
  bool claimed_since_tick_ = false;
  std::set<std::string> missing_handlers_logged_;

  std::mutex mu_;
  // Guarded by mu_, and read by the dispatcher, the executors (FinishJob, through
  // PumpWantedLocked) and the pump. Only the dispatcher writes it (BeginDrain, under mu_),
  // so the dispatcher alone may also read it without the lock.
  Phase phase_ = Phase::kRunning;
  std::condition_variable cv_dispatch_;  // the dispatcher waits here
  std::condition_variable cv_exec_;      // idle executors wait here
  std::condition_variable cv_waker_;     // the waker waits here to be armed
  std::condition_variable cv_pump_;      // the pump waits here for work
  std::deque<HeldJob> ready_;            // claimed, not started
  std::vector<JobOutcome> done_;         // finished, not yet recorded in Redis
  std::vector<std::unique_ptr<Executor>> executors_;
  int running_ = 0;
  int idle_ = 0;
  double ewma_ms_ = kInitialEwmaMs;
  bool dispatch_wanted_ = false;  // an executor asked for a round trip
  // An executor found the next buffered job unconfirmed (HeldJob::Confirmed): the
  // dispatcher renews the buffered claims, then clears it and wakes the executors.
  bool confirm_wanted_ = false;
  int claiming_ = 0;              // jobs asked for by claims in flight (dispatcher and pump)
  bool dispatcher_busy_ = false;  // the dispatcher's round trip is in flight
  bool pump_busy_ = false;        // the pump's round trip is in flight
  bool pump_exit_ = false;
  SteadyClock::time_point pump_retry_at_;         // after a failure of its own the pump waits
  std::optional<ClaimResult> pump_fenced_;  // the pump's claim was refused: drain
  int64_t round_trips_ = 0;       // the dispatcher's, for the log
  int64_t pump_round_trips_ = 0;  // guarded by mu_
  bool work_arrived_ = false;     // the waker returned: claim again
  bool starved_ = false;          // the last claim got fewer jobs than asked
  bool stop_pending_ = false;
  bool exiting_ = false;
  bool waker_armed_ = false;
  bool waker_waiting_ = false;  // the waker is in WaitForWork (BRPOP) right now
  bool waker_exit_ = false;
  Millis waker_timeout_{1'000};
  int64_t succeeded_ = 0;
  int64_t failed_ = 0;
};

JobRunner::Impl::Impl(JobRunnerOptions options)
    : options_(std::move(options)),
      redis_url_(options_.redis_url.empty() ? DefaultRedisUrl() : options_.redis_url),
      stop_fd_(::eventfd(0, EFD_CLOEXEC)) {
  if (stop_fd_ < 0) std::abort();  // out of fds at startup
}

JobRunner::Impl::~Impl() { ::close(stop_fd_); }

void JobRunner::Impl::RequestStop() {
  uint64_t one = 1;
  // write(2) on an eventfd is async-signal-safe; the watcher thread does the rest.
  [[maybe_unused]] ssize_t n = ::write(stop_fd_, &one, sizeof one);
}

void JobRunner::Impl::StopWatcherLoop() {
  WatchStopRequests(
      stop_fd_, [this] { return run_finished_.load(); },
      [this] {
        std::lock_guard lk(mu_);
        stop_pending_ = true;
        cv_dispatch_.notify_one();
      });
}

int JobRunner::Impl::Run() {
  ::signal(SIGPIPE, SIG_IGN);
  auto endpoint = ParseRedisUrl(redis_url_);
  if (!endpoint.ok()) {
    spdlog::error("{}", endpoint.status().message());
    return kExitUsage;
  }
  redis_redacted_ = endpoint->Redacted();
  std::thread watcher([this] { StopWatcherLoop(); });

  std::optional<int> gave_up = Connect();
  int code = gave_up.value_or(kExitOk);
  if (!gave_up) {
    WorkerInfo self;
    self.epoch = options_.epoch;
    self.concurrency = options_.concurrency;
    self.max_rss_mb = options_.max_rss_mb;
    self.rss_mb = RssOfProcessTree(::getpid()) / kMiB;
    registry_ = std::make_unique<WorkerRegistry>(options_.queue, self);
    if (Status s = registry_->Register(queue_->connection()); !s.ok()) RedisTrouble(s);

    for (int i = 0; i < options_.concurrency; ++i) {
      executors_.push_back(std::make_unique<Executor>());
      Executor& ex = *executors_.back();
      ex.thread = std::thread([this, &ex] { ExecutorLoop(ex); });
    }
    std::thread waker([this] { WakerLoop(); });
    std::thread pump([this] { PumpLoop(); });

    std::string names;
    for (const auto& [name, entry] : options_.handlers) names += (names.empty() ? "" : ", ") + name;
    spdlog::info("worker {} started: queue '{}' at {}, concurrency {}, epoch {}, max-rss {}, "
                 "handlers: {}",
                 registry_->self().id, options_.queue, redis_redacted_, options_.concurrency,
                 options_.epoch,
                 options_.max_rss_mb > 0 ? std::to_string(options_.max_rss_mb) + " MB" : "off",
                 names.empty() ? "(none)" : names);

    code = Dispatch();
    ShutDownThreads();
    waker.join();
    pump.join();
    if (redis_ok_) {
      if (Status s = registry_->Remove(queue_->connection()); !s.ok()) {
        spdlog::warn("could not remove worker {} from the registry: {}", registry_->self().id,
                     s.message());
      }
    }
    spdlog::info("worker {} stopped (exit code {}): {} jobs succeeded, {} failed",
                 registry_->self().id, code, succeeded_, failed_);
    spdlog::debug("worker {}: {} round trips by the dispatcher, {} by the pump",
                  registry_->self().id, round_trips_, pump_round_trips_);
  }

  run_finished_.store(true);
  RequestStop();
  watcher.join();
  return code;
}

// Connects the dispatch connection, retrying with backoff while Redis is unreachable.
// Returns nullopt once connected, or the exit code when it gives up: a stop request
// (0), or a refusal retrying cannot fix, such as a wrong password (1).
std::optional<int> JobRunner::Impl::Connect() {
  Millis backoff = kMinBackoff;
  bool logged = false;
  for (;;) {
    auto q = OpenJobQueue(redis_url_, options_.queue, options_.queue_options);
    if (q.ok()) {
      queue_ = std::move(q).value();
      if (logged) spdlog::info("Redis at {} is back", redis_redacted_);
      return std::nullopt;
    }
    if (!q.status().IsUnavailable()) {
      spdlog::error("{}", q.status().message());
      return kExitFailure;
    }
    if (!logged) {
      spdlog::warn("cannot reach Redis at {}: {}; retrying", redis_redacted_, q.status().message());
      logged = true;
    }
    std::unique_lock lk(mu_);
    if (cv_dispatch_.wait_for(lk, backoff, [&] { return stop_pending_; })) return kExitOk;
    backoff = std::min(backoff * 2, kMaxBackoff);
  }
}

int JobRunner::Impl::WantLocked() const {
  int held = running_ + static_cast<int>(ready_.size()) + claiming_;
  int target = options_.concurrency + (FastLocked() ? kMaxPrefetch : 0);
  return std::clamp(target - held, 0, kMaxClaim);
}

int JobRunner::Impl::LowWaterLocked() const { return FastLocked() ? kMaxPrefetch - kMaxPrefetch / 8 : 0; }

// The dispatcher: waits for something to do, then does at most one Redis round trip
// (record finished jobs and claim more, pipelined) and, once per heartbeat, the tick.
// Nothing starves: executors and the waker wake it through cv_dispatch_, the tick and
// retries through the wait's deadline, and stop requests through the watcher.
int JobRunner::Impl::Dispatch() {
  SteadyClock::time_point next_tick = SteadyClock::now();
  SteadyClock::time_point next_claim_check = next_tick + kClaimCheckEvery;
  for (;;) {
    bool stop_now, confirm_wanted;
    bool check_claims, check_claims_running = false;
    std::optional<ClaimResult> fenced;
    {
      std::unique_lock lk(mu_);
      SteadyClock::time_point wake = next_tick;
      // Buffered and claimed jobs count too: an executor that starts one does not wake us.
      if (redis_ok_ && (running_ > 0 || !ready_.empty() || claiming_ > 0)) {
        wake = std::min(wake, next_claim_check);
      }
      if (!redis_ok_) wake = std::min(wake, retry_at_);
      if (phase_ == Phase::kDraining && !shutdown_sent_) wake = std::min(wake, drain_deadline_);
      cv_dispatch_.wait_until(lk, wake, [&] {
        return (stop_pending_ && phase_ == Phase::kRunning) || pump_fenced_ ||
               (redis_ok_ && (dispatch_wanted_ || work_arrived_ || confirm_wanted_)) ||
               (phase_ == Phase::kDraining && running_ == 0 && ready_.empty() && done_.empty() &&
                !pump_busy_);
      });
      stop_now = stop_pending_ && phase_ == Phase::kRunning;
      confirm_wanted = confirm_wanted_;
      fenced = std::exchange(pump_fenced_, std::nullopt);
      // Due or not, the next check is a period away once this one is due: a deadline left
      // in the past while no job runs would turn the wait above into a spin.
      check_claims = SteadyClock::now() >= next_claim_check;
      if (check_claims) check_claims_running = running_ > 0;
    }
    if (fenced) Fenced(*fenced);
    if (stop_now) BeginDrain(kExitOk, "stop requested");
    SteadyClock::time_point now = SteadyClock::now();
    if (!redis_ok_ && now >= retry_at_) RetryRedis();

    if (phase_ == Phase::kDraining) {
      if (!shutdown_sent_ && now >= drain_deadline_) StopRunningJobs();
      std::lock_guard lk(mu_);
      bool idle = running_ == 0 && ready_.empty() && !pump_busy_;
      // Done once every outcome is recorded, or when Redis is away and the drain time is up
      // (the reaper will return those jobs).
      if (idle && (done_.empty() || (!redis_ok_ && shutdown_sent_))) break;
    }
    if (redis_ok_ && confirm_wanted) ConfirmBufferedClaims();
    if (redis_ok_) RoundTrip();
    if (now >= next_tick) {
      Tick(now);
      next_tick = now + options_.heartbeat;
    }
    if (check_claims) {
      if (redis_ok_ && check_claims_running) CheckRunningClaims();
      next_claim_check = SteadyClock::now() + kClaimCheckEvery;
    }
  }
  return exit_code_;
}

void JobRunner::Impl::RoundTrip() {
  std::vector<JobOutcome> outcomes;
  int want = 0;
  {
    std::lock_guard lk(mu_);
    outcomes.swap(done_);
    dispatch_wanted_ = false;
    if (std::exchange(work_arrived_, false)) starved_ = false;
    if (phase_ == Phase::kRunning) {
      want = WantLocked();
      // The queue had nothing last time: claiming again only rides along with a finish;
      // otherwise the waker says when to look.
      if (starved_ && outcomes.empty()) want = 0;
    }
    if (outcomes.empty() && want == 0) return;
    claiming_ += want;
    dispatcher_busy_ = true;
    ++round_trips_;
    // This round trip is about to be in flight: the moment a second one may go along.
    if (PumpWantedLocked()) cv_pump_.notify_one();
  }

  SteadyClock::time_point sent = SteadyClock::now();
  if (want > 0) claimed_since_tick_ = true;
  Status status;
  std::optional<FinishResult> finished;
  std::optional<ClaimResult> claimed;
  if (!outcomes.empty() && want > 0) {
    auto r = queue_->FinishAndClaim(outcomes, want, options_.epoch);
    if (r.ok()) {
      finished = std::move(r->first);
      claimed = std::move(r->second);
    } else {
      status = r.status();
    }
  } else if (want > 0) {
    auto r = queue_->ClaimBatch(want, options_.epoch);
    if (r.ok()) claimed = std::move(r).value(); else status = r.status();
  } else {
    auto r = queue_->FinishBatch(outcomes);
    if (r.ok()) finished = std::move(r).value(); else status = r.status();
  }
  if (!status.ok()) {
    // Keep the outcomes for when Redis is back. A finish that did land is refused the
    // second time (its token is spent), which is harmless.
    std::lock_guard lk(mu_);
    dispatcher_busy_ = false;
    claiming_ -= want;
    done_.insert(done_.begin(), std::make_move_iterator(outcomes.begin()),
                 std::make_move_iterator(outcomes.end()));
    RedisTrouble(status);
    return;
  }
  if (finished) {
    for (size_t i = 0; i < outcomes.size() && i < finished->accepted.size(); ++i) {
      if (!finished->accepted[i]) {
        spdlog::debug("job {}: outcome not recorded, its claim is no longer valid", outcomes[i].id);
      }
    }
  }
  if (claimed) {
    HandleClaim(std::move(*claimed), want, sent);
  } else {
    std::lock_guard lk(mu_);
    dispatcher_busy_ = false;
    claiming_ -= want;
  }
}

// The reply to the dispatcher's claim: jobs to buffer, or the fence.
void JobRunner::Impl::HandleClaim(ClaimResult claim, int want, SteadyClock::time_point sent) {
  std::unique_lock lk(mu_);
  dispatcher_busy_ = false;
  if (claim.outcome == ClaimResult::Outcome::kClaimed) {
    AcceptClaimLocked(claim, want, sent);
    return;
  }
  claiming_ -= want;
  lk.unlock();
  Fenced(claim);
}

// A claim was refused (the dispatcher's, the pump's or the tick's): drain, once.
void JobRunner::Impl::Fenced(const ClaimResult& claim) {
  if (phase_ == Phase::kDraining) return;
  if (claim.outcome == ClaimResult::Outcome::kRegressed) {
    spdlog::error("Redis at {} lost acknowledged writes of queue {} (failover to a stale replica, "
                  "or a restart without persistence): its epoch or job ids went below what "
                  "this worker (epoch {}) had seen; the fence is raised to epoch {} until an "
                  "owner takes a new epoch", redis_redacted_, options_.queue, options_.epoch,
                  claim.current_epoch);
    BeginDrain(kExitFenced, "fenced: Redis lost writes");
    return;
  }
  spdlog::error("queue {} is owned by epoch {}; this worker (epoch {}) is fenced", options_.queue,
                claim.current_epoch, options_.epoch);
  BeginDrain(kExitFenced, "fenced by a newer owner epoch");
}

// Buffers claimed jobs for the executors. Called with mu_ held, by the dispatcher or the
// pump, once per granted claim that asked for want jobs: they are no longer in flight.
void JobRunner::Impl::AcceptClaimLocked(ClaimResult& claim, int want, SteadyClock::time_point sent) {
  claiming_ -= want;
  int pushed = 0;
  for (ClaimedJob& job : claim.jobs) {
    auto it = options_.handlers.find(job.name);
    if (it == options_.handlers.end()) {
      // Retrying cannot help until someone deploys a handler: dead at once, with a message
      // that says where to look.
      if (missing_handlers_logged_.insert(job.name).second) {
        spdlog::warn("no handler '{}' on queue '{}': such jobs go dead", job.name, options_.queue);
      }
      JobOutcome o;
      o.id = std::move(job.id);
      o.token = std::move(job.token);
      o.success = false;
      o.retryable = false;
      o.error = "no handler '" + job.name + "' on queue '" + options_.queue + "'";
      done_.push_back(std::move(o));
      continue;
    }
    Millis lease = job.lease;
    ready_.push_back(HeldJob{std::move(job), &it->second, sent, lease});
    ++pushed;
  }
  starved_ = static_cast<int>(claim.jobs.size()) < want;
  if (starved_) {
    int64_t due = claim.next_due_in_ms < 0 ? options_.heartbeat.count() : claim.next_due_in_ms;
    waker_timeout_ = std::clamp(Millis(due), kMinWait, std::max(options_.heartbeat, kMinWait));
    waker_armed_ = true;
    cv_waker_.notify_one();
  }
  if (!done_.empty()) {
    dispatch_wanted_ = true;
    cv_dispatch_.notify_one();
  }
  for (int i = 0; i < std::min(pushed, idle_); ++i) cv_exec_.notify_one();
}

// Once per heartbeat: RSS against the limit, the epoch check of a worker too busy to
// claim, lease renewals, the registry heartbeat.
void JobRunner::Impl::Tick(SteadyClock::time_point now) {
  int64_t rss = RssOfProcessTree(::getpid());
  if (options_.max_rss_mb > 0 && rss > options_.max_rss_mb * kMiB && phase_ == Phase::kRunning) {
    spdlog::warn("RSS of the worker and its commands is {} MB, over --max-rss {} MB", rss / kMiB,
                 options_.max_rss_mb);
    BeginDrain(kExitMaxRss, "over --max-rss");
  }
  if (!redis_ok_) return;

  // Fencing is checked by claims; a worker whose slots stay full of long jobs makes none,
  // so it asks with a claim of zero jobs rather than run on for minutes after losing its
  // owner.
  if (phase_ == Phase::kRunning && !std::exchange(claimed_since_tick_, false)) {
    auto r = queue_->ClaimBatch(0, options_.epoch);
    if (!r.ok()) {
      RedisTrouble(r.status());
      return;
    }
    if (r->outcome != ClaimResult::Outcome::kClaimed) Fenced(*r);
  }

  std::vector<LeaseRenewal> renewals;
  int running;
  {
    std::lock_guard lk(mu_);
    running = running_;
    for (const auto& ex : executors_) {
      if (ex->current && ex->current->RenewalDue(now)) {
        renewals.push_back({ex->current->job.id, ex->current->job.token, ex->current->RenewalLease()});
      }
    }
    for (const HeldJob& h : ready_) {
      if (h.RenewalDue(now)) renewals.push_back({h.job.id, h.job.token, h.RenewalLease()});
    }
  }
  RenewClaims(renewals);
  if (!redis_ok_) return;
  if (Status s = registry_->Heartbeat(queue_->connection(), rss / kMiB, running); !s.ok()) {
    RedisTrouble(s);
  }
}

// Renews the leases of held jobs, running or buffered. One whose claim is gone is stopped
// (running) or dropped (buffered); the others' leases restart from when this was sent.
// Returns how many buffered jobs it dropped.
int JobRunner::Impl::RenewClaims(const std::vector<LeaseRenewal>& renewals) {
  if (renewals.empty()) return 0;
  SteadyClock::time_point sent = SteadyClock::now();
  auto r = queue_->RenewBatch(renewals);
  if (!r.ok()) {
    RedisTrouble(r.status());
    return 0;
  }
  int dropped = 0;
  std::lock_guard lk(mu_);
  for (size_t i = 0; i < renewals.size() && i < r->still_held.size(); ++i) {
    const LeaseRenewal& renewal = renewals[i];
    HeldJob* job = nullptr;
    Executor* owner = nullptr;
    for (auto& ex : executors_) {
      if (ex->current && ex->current->job.token == renewal.token) {
        job = &*ex->current;
        owner = ex.get();
      }
    }
    auto buffered = std::find_if(ready_.begin(), ready_.end(),
                                 [&](const HeldJob& h) { return h.job.token == renewal.token; });
    if (!owner && buffered != ready_.end()) job = &*buffered;
    if (!job) continue;  // finished meanwhile
    if (r->still_held[i]) {
      job->lease_from = sent;
      job->lease = renewal.lease;
    } else {
      if (!owner) ++dropped;
      ClaimLostLocked(*job, owner);
    }
  }
  return dropped;
}

// An executor found the next buffered job past half its lease (HeldJob::Confirmed):
// renews every buffered job in that state, so that none starts on a claim another worker
// may have taken back meanwhile; those whose claim is gone are dropped without running.
void JobRunner::Impl::ConfirmBufferedClaims() {
  std::vector<LeaseRenewal> renewals;
  {
    std::lock_guard lk(mu_);
    const SteadyClock::time_point now = SteadyClock::now();
    for (const HeldJob& h : ready_) {
      if (!h.Confirmed(now)) renewals.push_back({h.job.id, h.job.token, h.RenewalLease()});
    }
  }
  const int dropped = RenewClaims(renewals);
  if (dropped > 0) {
    spdlog::debug("{} of {} buffered jobs dropped without running: their claims were taken "
                  "back while they waited", dropped, renewals.size());
  }
  std::lock_guard lk(mu_);
  if (!redis_ok_) return;  // confirm_wanted_ stays: asked again once Redis is back
  confirm_wanted_ = false;
  cv_exec_.notify_all();
}

// Every kClaimCheckEvery while jobs run: are their claims still ours? A cancel marks the
// claim (cancel.lua); the sooner the handler stops, the sooner the job has really finished
// and its idempotency key is free. Read-only, one MGET of at most concurrency keys, and
// only of jobs running for kClaimCheckEvery already: a job that ends sooner learns of a
// cancel from its refused outcome, so a drain of fast jobs makes no such call at all.
void JobRunner::Impl::CheckRunningClaims() {
  std::vector<std::pair<std::string, std::string>> running;
  {
    std::lock_guard lk(mu_);
    const SteadyClock::time_point started_before = SteadyClock::now() - kClaimCheckEvery;
    for (const auto& ex : executors_) {
      if (ex->current && !ex->stop.stop_requested() && ex->started <= started_before) {
        running.emplace_back(ex->current->job.id, ex->current->job.token);
      }
    }
  }
  if (running.empty()) return;
  auto held = queue_->CheckClaims(running);
  if (!held.ok()) {
    RedisTrouble(held.status());
    return;
  }
  std::lock_guard lk(mu_);
  for (size_t i = 0; i < running.size(); ++i) {
    if ((*held)[i]) continue;
    for (auto& ex : executors_) {
      if (ex->current && ex->current->job.token == running[i].second) {
        ClaimLostLocked(*ex->current, ex.get());
      }
    }
  }
}

// The claim of job is no longer ours: cancelled, or taken back after a stall. A running
// handler (owner != nullptr) is stopped, and its outcome reported when it returns; a
// buffered job is dropped and reported at once. Either report is refused as an outcome,
// but it ends a cancelled claim (finish_batch.lua): the job has then really finished.
void JobRunner::Impl::ClaimLostLocked(HeldJob& job, Executor* owner) {
  if (owner) {
    spdlog::info("job {} was cancelled or reclaimed; stopping its handler", job.job.id);
    owner->stop.Request(StopReason::kLeaseLost);
    return;
  }
  JobOutcome o;
  o.id = job.job.id;
  o.token = job.job.token;
  o.success = false;
  o.error = "claim lost before the job started";
  auto it = std::find_if(ready_.begin(), ready_.end(),
                         [&](const HeldJob& h) { return h.job.token == o.token; });
  if (it != ready_.end()) ready_.erase(it);  // job refers to it: not used past here
  done_.push_back(std::move(o));
  dispatch_wanted_ = true;
  cv_dispatch_.notify_one();
}

void JobRunner::Impl::BeginDrain(int exit_code, const std::string& why) {
  if (phase_ == Phase::kDraining) return;
  std::vector<std::pair<std::string, std::string>> release;
  int running;
  {
    std::lock_guard lk(mu_);
    phase_ = Phase::kDraining;
    exit_code_ = exit_code;
    drain_deadline_ = SteadyClock::now() + options_.drain_timeout;
    waker_armed_ = false;
    for (const HeldJob& h : ready_) release.emplace_back(h.job.id, h.job.token);
    ready_.clear();
    running = running_;
  }
  spdlog::info("draining ({}): no more claims; {} running get up to {}; {} buffered go back to waiting",
               why, running, FormatDuration(options_.drain_timeout), release.size());
  if (release.empty()) return;
  if (!redis_ok_) {
    spdlog::warn("Redis is away: {} buffered jobs return to waiting when their leases expire",
                 release.size());
    return;
  }
  if (auto r = queue_->ReleaseBatch(release); !r.ok()) {
    spdlog::warn("could not release {} buffered jobs (they return when their leases expire): {}",
                 release.size(), r.status().message());
    RedisTrouble(r.status());
  }
}

void JobRunner::Impl::StopRunningJobs() {
  shutdown_sent_ = true;
  std::lock_guard lk(mu_);
  if (running_ == 0) return;
  spdlog::warn("drain timeout {} passed with {} jobs running; stopping them and leaving them to "
               "the reaper",
               FormatDuration(options_.drain_timeout), running_);
  for (auto& ex : executors_) {
    if (ex->current) ex->stop.Request(StopReason::kShutdown);
  }
}

// Any failed Redis call: log on the change of state only, then retry with backoff (the
// dispatcher never spins, and running jobs keep running meanwhile).
void JobRunner::Impl::RedisTrouble(const Status& s) {
  if (redis_ok_) {
    if (s.IsUnavailable()) {
      spdlog::warn("lost Redis at {}: {}", redis_redacted_, s.message());
    } else {
      spdlog::error("Redis at {} failed a request: {}", redis_redacted_, s.message());
    }
    redis_ok_ = false;
    backoff_ = kMinBackoff;
  }
  retry_at_ = SteadyClock::now() + backoff_;
  backoff_ = std::min(backoff_ * 2, kMaxBackoff);
}

void JobRunner::Impl::RetryRedis() {
  if (Status s = queue_->connection().Reconnect(); !s.ok()) {
    RedisTrouble(s);
    return;
  }
  redis_ok_ = true;
  spdlog::info("Redis at {} is back", redis_redacted_);
  std::lock_guard lk(mu_);
  // Flush what finished meanwhile and look for work again.
  dispatch_wanted_ = true;
  work_arrived_ = true;
}

void JobRunner::Impl::ShutDownThreads() {
  bool waker_blocked;
  {
    std::lock_guard lk(mu_);
    exiting_ = true;
    waker_exit_ = true;
    pump_exit_ = true;
    waker_blocked = waker_waiting_;
  }
  // A waker blocked in BRPOP would hold the exit up to its timeout (a heartbeat): wake it.
  // The queue has one owner's worker, so the only waiter woken is ours.
  if (waker_blocked && redis_ok_) (void)queue_->Wake();
  cv_exec_.notify_all();
  cv_waker_.notify_all();
  cv_pump_.notify_all();
  for (auto& ex : executors_) ex->thread.join();
}

void JobRunner::Impl::ExecutorLoop(Executor& ex) {
  std::unique_lock lk(mu_);
  for (;;) {
    if (!StartableLocked()) {
      if (exiting_) return;
      if (!ready_.empty() && !confirm_wanted_) {
        confirm_wanted_ = true;
        cv_dispatch_.notify_one();
      }
      ++idle_;
      // Woken by new jobs, by the dispatcher's confirmation, or to ask for another one.
      cv_exec_.wait(lk, [&] {
        return exiting_ || StartableLocked() || (!ready_.empty() && !confirm_wanted_);
      });
      --idle_;
      continue;
    }
    ex.current = std::move(ready_.front());
    ready_.pop_front();
    ++running_;
    const HeldJob& held = *ex.current;
    Millis timeout = held.job.timeout.count() > 0 ? held.job.timeout : held.entry->timeout;
    SteadyClock::time_point start = SteadyClock::now();
    ex.started = start;
    ex.stop.Reset(timeout.count() > 0 ? start + timeout : SteadyClock::time_point::max());
    lk.unlock();

    JobContext ctx{options_.queue, held.job.id,    held.job.name, held.job.payload,
                   held.job.attempt, timeout, ex.stop};
    HandlerOutcome out;
    try {
      out = held.entry->handler->Run(ctx);
    } catch (const std::exception& e) {
      out = {false, "", std::string("handler threw: ") + e.what()};
    }
    double ms = std::chrono::duration<double, std::milli>(SteadyClock::now() - start).count();

    lk.lock();
    FinishJob(ex, std::move(out), timeout, ms);
  }
}

// Whether an executor may start the next buffered job now (HeldJob::Confirmed).
bool JobRunner::Impl::StartableLocked() const {
  return !ready_.empty() && ready_.front().Confirmed(SteadyClock::now());
}

// Called with mu_ held, after ex's handler returned.
void JobRunner::Impl::FinishJob(Executor& ex, HandlerOutcome out, Millis timeout, double duration_ms) {
  HeldJob& held = *ex.current;
  ewma_ms_ = (1 - kEwmaWeight) * ewma_ms_ + kEwmaWeight * duration_ms;
  StopReason reason = ex.stop.reason();
  // A drain that ran out of time leaves the job to the reaper: only a success that beat the
  // stop is worth recording. A lost claim's outcome is reported all the same: it is refused
  // (the job was cancelled, or is someone else's now), but it tells Redis that this run
  // has stopped, which ends a cancelled job's claim (finish_batch.lua).
  const bool lost = reason == StopReason::kLeaseLost;
  if (lost || (reason == StopReason::kShutdown && !out.success)) {
    spdlog::info("job {} stopped before it finished; its outcome is not recorded", held.job.id);
  }
  if (!(reason == StopReason::kShutdown && !out.success)) {
    JobOutcome o;
    o.id = std::move(held.job.id);
    o.token = std::move(held.job.token);
    o.success = out.success && !lost;
    o.max_attempts_override = held.entry->max_attempts;
    if (lost) {
      o.error = "claim lost while running";
      dispatch_wanted_ = true;  // report now: the job finishes when this reaches Redis
      cv_dispatch_.notify_one();
    } else if (out.success) {
      o.result = std::move(out.result);
      ++succeeded_;
    } else {
      o.error = reason == StopReason::kTimeout ? "timed out after " + FormatDuration(timeout)
                                               : std::move(out.error);
      o.jitter = std::uniform_real_distribution<double>(0.8, 1.2)(ex.rng);
      ++failed_;
      spdlog::debug("job {} failed: {}", o.id, o.error);
    }
    done_.push_back(std::move(o));
  }
  ex.current.reset();
  --running_;
  // Wake the dispatcher only when the buffer is below its refill mark (or empty, as after the
  // last job of a drain), or a full batch of outcomes waits: fast jobs cost no context
  // switch each.
  if (!dispatch_wanted_ && (static_cast<int>(ready_.size()) <= LowWaterLocked() ||
                            static_cast<int>(done_.size()) >= kMaxClaim)) {
    dispatch_wanted_ = true;
    cv_dispatch_.notify_one();
  }
  // While the dispatcher waits for Redis, enough outcomes for a second round trip: the pump.
  if (static_cast<int>(done_.size()) == kPumpMin && PumpWantedLocked()) cv_pump_.notify_one();
}

// Whether the pump should send a round trip now: only while the dispatcher's is in flight
// (otherwise the dispatcher sends it), only with fast jobs and a worthwhile batch, never
// while draining, and not until its retry time after a failure of its own.
bool JobRunner::Impl::PumpWantedLocked() const {
  if (!dispatcher_busy_ || pump_busy_ || pump_exit_ || phase_ != Phase::kRunning) return false;
  if (!FastLocked() || SteadyClock::now() < pump_retry_at_) return false;
  if (static_cast<int>(done_.size()) >= kPumpMin) return true;
  return !starved_ && WantLocked() >= kPumpMin;
}

// The pump: the dispatcher's round trip (record outcomes, claim more) on a second
// connection, sent while the dispatcher's own is in flight. It never reports an outage:
// on a failure it hands its outcomes back and pauses; the dispatcher's next call finds
// out what is wrong and reports it.
void JobRunner::Impl::PumpLoop() {
  std::unique_ptr<JobQueue> pump_queue;
  std::unique_lock lk(mu_);
  for (;;) {
    cv_pump_.wait(lk, [&] { return pump_exit_ || PumpWantedLocked(); });
    if (pump_exit_) return;
    std::vector<JobOutcome> outcomes;
    outcomes.swap(done_);
    int want = WantLocked();
    if (starved_ && outcomes.empty()) want = 0;
    dispatch_wanted_ = false;
    claiming_ += want;
    pump_busy_ = true;
    ++pump_round_trips_;
    lk.unlock();

    SteadyClock::time_point sent = SteadyClock::now();
    Status status;
    std::optional<ClaimResult> claimed;
    if (!pump_queue) {
      auto q = OpenJobQueue(redis_url_, options_.queue, options_.queue_options);
      if (q.ok()) pump_queue = std::move(q).value(); else status = q.status();
    }
    if (pump_queue) {
      if (want > 0 && !outcomes.empty()) {
        auto r = pump_queue->FinishAndClaim(outcomes, want, options_.epoch);
        if (r.ok()) claimed = std::move(r->second); else status = r.status();
      } else if (want > 0) {
        auto r = pump_queue->ClaimBatch(want, options_.epoch);
        if (r.ok()) claimed = std::move(r).value(); else status = r.status();
      } else {
        auto r = pump_queue->FinishBatch(outcomes);
        if (!r.ok()) status = r.status();
      }
    }

    lk.lock();
    if (!status.ok()) {
      claiming_ -= want;
      done_.insert(done_.begin(), std::make_move_iterator(outcomes.begin()),
                   std::make_move_iterator(outcomes.end()));
      pump_queue.reset();
      pump_retry_at_ = SteadyClock::now() + kMaxBackoff;
      spdlog::debug("pump: {}", status.message());
      dispatch_wanted_ = true;
    } else if (claimed && claimed->outcome != ClaimResult::Outcome::kClaimed) {
      claiming_ -= want;
      pump_fenced_ = std::move(claimed);
    } else if (claimed && phase_ != Phase::kRunning) {
      // The drain began meanwhile: give these jobs back at once, like the buffered ones.
      claiming_ -= want;
      std::vector<std::pair<std::string, std::string>> release;
      for (const ClaimedJob& job : claimed->jobs) release.emplace_back(job.id, job.token);
      if (!release.empty()) {
        lk.unlock();
        if (auto r = pump_queue->ReleaseBatch(release); !r.ok()) {
          spdlog::warn("could not release {} claimed jobs (they return when their leases "
                       "expire): {}", release.size(), r.status().message());
        }
        lk.lock();
      }
    } else if (claimed) {
      AcceptClaimLocked(*claimed, want, sent);
    } else {
      claiming_ -= want;
    }
    pump_busy_ = false;
    cv_dispatch_.notify_one();
  }
}

// Blocks in Redis (its own connection) while the queue is empty, so an idle worker costs
// one BRPOP per heartbeat and wakes the moment a job is submitted.
void JobRunner::Impl::WakerLoop() {
  std::unique_ptr<JobQueue> wait_queue;
  Millis backoff = kMinBackoff;
  std::unique_lock lk(mu_);
  for (;;) {
    cv_waker_.wait(lk, [&] { return waker_armed_ || waker_exit_; });
    if (waker_exit_) return;
    Millis timeout = waker_timeout_;
    waker_waiting_ = true;
    lk.unlock();
    Status status;
    if (!wait_queue) {
      auto q = OpenJobQueue(redis_url_, options_.queue);
      if (q.ok()) wait_queue = std::move(q).value(); else status = q.status();
    }
    if (wait_queue) {
      auto r = wait_queue->WaitForWork(timeout);
      if (!r.ok()) {
        status = r.status();
        wait_queue.reset();
      }
    }
    lk.lock();
    waker_waiting_ = false;
    if (!status.ok()) {
      // The dispatcher reports outages; here we only avoid hammering a dead server.
      cv_waker_.wait_for(lk, backoff, [&] { return waker_exit_; });
      backoff = std::min(backoff * 2, kMaxBackoff);
      continue;
    }
    backoff = kMinBackoff;
    waker_armed_ = false;
    work_arrived_ = true;
    cv_dispatch_.notify_one();
  }
}

JobRunner::JobRunner(JobRunnerOptions options) : impl_(std::make_unique<Impl>(std::move(options))) {}
JobRunner::~JobRunner() = default;
int JobRunner::Run() { return impl_->Run(); }
void JobRunner::RequestStop() { impl_->RequestStop(); }

}  // namespace lk
