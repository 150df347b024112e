#include "controller/owner/leased_worker.h"

#include <spdlog/spdlog.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <iostream>
#include <thread>

#include "controller/owner/lease_news.h"
#include "worker/exit_codes.h"

namespace lk {

namespace leased_worker {

constexpr Millis kStep{50};  // how often a wait looks at a stop request
constexpr Millis kRedisRetry{1'000};
constexpr Millis kConnectTimeout{2'000};

void Emit(LifecycleEvents& events, const std::string& type,
          const std::map<std::string, std::string>& fields = {}) {
  Status s = events.Emit(type, fields);
  if (!s.ok()) spdlog::debug("event {} not recorded: {}", type, s.message());
}

}  // namespace leased_worker

std::string OwnedElsewhereMessage(const std::string& queue, const OwnerRecord& owner) {
  std::string who = "queue " + queue + " is owned by " + owner.role + " " + owner.holder +
                    " (epoch " + std::to_string(owner.epoch) + ")";
  std::string instead;
  if (owner.role == OwnerRoleName(OwnerRole::kSupervisor)) {
    instead = "its worker serves the queue, and a second one would never claim; to run more "
              "jobs at once raise that supervisor's --concurrency";
  } else if (owner.role == OwnerRoleName(OwnerRole::kAutopilot)) {
    instead = "autopilot's child worker serves the queue; for production restart it with "
              "--no-worker and run one `jobs supervisor`";
  } else {
    instead = "a `jobs work` started by hand serves the queue; run one worker per queue (raise "
              "its --concurrency for more jobs at once), ideally under `jobs supervisor`";
  }
  return who + ": " + instead + "; or start this one with --standby to take over when that "
         "owner stops";
}

LeasedWorker::LeasedWorker(LeasedWorkerOptions options) : o_(std::move(options)) {}

void LeasedWorker::RequestStop() {
  stop_.store(true);
  if (JobRunner* r = runner_.load()) r->RequestStop();
}

bool LeasedWorker::SleepUnlessStopped(Millis d) const {
  for (Millis slept{0}; slept < d; slept += leased_worker::kStep) {
    if (stop_.load()) return false;
    std::this_thread::sleep_for(std::min(leased_worker::kStep, d - slept));
  }
  return !stop_.load();
}

int LeasedWorker::Run() {
  const JobRunnerOptions& r = o_.runner;
  auto endpoint = ParseRedisUrl(r.redis_url.empty() ? DefaultRedisUrl() : r.redis_url);
  if (!endpoint.ok()) {
    spdlog::error("{}", endpoint.status().message());
    return kExitUsage;
  }
  std::unique_ptr<RedisConnection> conn;
  bool logged = false;
  while (!conn) {
    auto c = RedisConnection::Connect(*endpoint, leased_worker::kConnectTimeout);
    if (c.ok()) {
      conn = std::move(c).value();
      // As the worker itself says it (job_runner.cc): one line for the outage, one for its end.
      if (logged) spdlog::info("Redis at {} is back", endpoint->Redacted());
    } else if (!c.status().IsUnavailable()) {
      spdlog::error("{}", c.status().message());
      return kExitFailure;
    } else {
      if (!logged) spdlog::warn("cannot reach Redis at {}: {}; retrying", endpoint->Redacted(),
                                c.status().message());
      logged = true;
      if (!SleepUnlessStopped(leased_worker::kRedisRetry)) return kExitOk;
    }
  }
  const std::string holder = ThisHolder();
  OwnerLease lease(*conn, r.queue, OwnerRole::kWorker, holder, r.concurrency,
                   static_cast<int>(r.max_rss_mb), o_.lease_ttl);
  lease.RequireReplicas(r.queue_options.replicas, r.queue_options.replica_timeout);
  LifecycleEvents events(*conn, r.queue, OwnerRoleName(OwnerRole::kWorker), holder);
  int code = kExitOk;
  if (!Acquire(lease, events, &code)) return code;
  code = RunUnderLease(lease, events);
  if (Status s = lease.Release(); !s.ok()) {
    spdlog::warn("could not release the owner lease: {}", s.message());
  }
  leased_worker::Emit(events, "stopped", {{"code", std::to_string(code)}});
  return code;
}

bool LeasedWorker::Acquire(OwnerLease& lease, LifecycleEvents& events, int* code) {
  std::string waiting_for;  // the holder we last said we wait for
  bool redis_logged = false;
  for (;;) {
    if (stop_.load()) {
      *code = kExitOk;
      return false;
    }
    auto r = lease.TryAcquire();
    ReportLeaseNews(lease, events, o_.runner.queue);
    if (!r.ok()) {
      if (!redis_logged) spdlog::warn("cannot take the owner lease: {}; retrying", r.status().message());
      redis_logged = true;
      (void)lease.connection().Reconnect();
      SleepUnlessStopped(leased_worker::kRedisRetry);
      continue;
    }
    if (r->acquired) {
      leased_worker::Emit(events, "lease_acquired", {{"epoch", std::to_string(lease.epoch())}});
      return true;
    }
    if (!o_.standby) {
      std::cerr << "lanekeeper: " << OwnedElsewhereMessage(o_.runner.queue, r->owner) << "\n";
      *code = kExitUsage;
      return false;
    }
    if (waiting_for != r->owner.holder) {
      waiting_for = r->owner.holder;
      spdlog::info("standby: queue {} is owned by {} {} (epoch {}); taking over when its lease "
                   "ends", o_.runner.queue, r->owner.role, r->owner.holder, r->owner.epoch);
      leased_worker::Emit(events, "standby",
                          {{"owner_role", r->owner.role}, {"owner", r->owner.holder},
                           {"owner_epoch", std::to_string(r->owner.epoch)}});
    }
    SleepUnlessStopped(o_.standby_poll);
  }
}

int LeasedWorker::RunUnderLease(OwnerLease& lease, LifecycleEvents& events) {
  for (;;) {
    JobRunnerOptions options = o_.runner;
    options.epoch = lease.epoch();
    JobRunner runner(std::move(options));
    runner_.store(&runner);
    if (stop_.load()) runner.RequestStop();  // a stop that came before the store
    // The same record an owner's worker leaves (owned_worker.h), so that "one worker at a
    // time" reads from the events whoever started the worker.
    const std::string pid = std::to_string(::getpid());
    leased_worker::Emit(events, "worker_started",
                        {{"worker_pid", pid}, {"epoch", std::to_string(lease.epoch())}});
    std::atomic<bool> done{false};
    std::thread renewer([&] { RenewUntil(lease, events, done); });
    int code = runner.Run();
    done.store(true);
    renewer.join();
    runner_.store(nullptr);
    const char* reason = code == kExitFenced ? "fenced" : code == kExitMaxRss ? "max_rss"
                         : code == kExitOk   ? "stopped" : "crash";
    leased_worker::Emit(events, "worker_exited",
                        {{"worker_pid", pid}, {"code", std::to_string(code)}, {"reason", reason}});
    if (code != kExitFenced || stop_.load()) return code;
    // Fenced: the epoch moved on. Ours again if nobody else took it (it lapsed, or Redis
    // lost writes and the fence was raised past every history).
    if (!TakeBack(lease, events)) return code;
  }
}

bool LeasedWorker::TakeBack(OwnerLease& lease, LifecycleEvents& events) {
  // Redis may be what fenced us (a restart): retry a failed call until stopped.
  for (;;) {
    auto r = lease.TryAcquire();
    ReportLeaseNews(lease, events, o_.runner.queue);
    if (r.ok() && r->acquired) {
      leased_worker::Emit(events, "lease_acquired", {{"epoch", std::to_string(lease.epoch())}});
      return true;
    }
    if (r.ok()) {
      spdlog::info("{}", OwnedElsewhereMessage(o_.runner.queue, r->owner));
      return false;
    }
    (void)lease.connection().Reconnect();
    if (!SleepUnlessStopped(leased_worker::kRedisRetry)) return false;
  }
}

void LeasedWorker::RenewUntil(OwnerLease& lease, LifecycleEvents& events,
                              const std::atomic<bool>& done) {
  auto next = std::chrono::steady_clock::now() + o_.renew_every;
  while (!done.load() && lease.held()) {
    std::this_thread::sleep_for(leased_worker::kStep);
    if (std::chrono::steady_clock::now() < next) continue;
    auto r = lease.Renew();
    auto regression = ReportLeaseNews(lease, events, o_.runner.queue);
    if (!r.ok()) {
      // Keep running: if Redis stays away past the TTL, a new owner's epoch fences us.
      (void)lease.connection().Reconnect();
      next = std::chrono::steady_clock::now() + leased_worker::kRedisRetry;
      continue;
    }
    next = std::chrono::steady_clock::now() + o_.renew_every;
    if (*r) continue;
    if (!regression) {
      spdlog::warn("lost the owner lease of queue {} (epoch {} is no longer current); the "
                   "worker's next claim is refused and it drains", o_.runner.queue, lease.epoch());
      leased_worker::Emit(events, "lease_lost", {{"epoch", std::to_string(lease.epoch())}});
    }
  }
}

}  // namespace lk
