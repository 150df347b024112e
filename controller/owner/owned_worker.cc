#include "controller/owner/owned_worker.h"

#include <poll.h>
#include <signal.h>

#include <spdlog/spdlog.h>

#include <algorithm>

#include "controller/owner/lease_news.h"
#include "worker/exit_codes.h"

namespace lk {

namespace {
constexpr Millis kRenewRetry{1'000};
constexpr Millis kAfterFenced{1'000};
}  // namespace

OwnedWorker::OwnedWorker(OwnedWorkerOptions options, OwnerLease& lease, LifecycleEvents& events)
    : o_(std::move(options)),
      clock_(o_.clock ? *o_.clock : SystemClock()),
      spawner_(o_.spawner ? *o_.spawner : PosixProcessSpawner()),
      lease_(lease),
      events_(events),
      backoff_(o_.restart) {
  if (o_.worker_binary.empty()) o_.worker_binary = SelfExecutable();
}

OwnedWorker::~OwnedWorker() = default;

pid_t OwnedWorker::worker_pid() const { return worker_ ? worker_->pid() : 0; }
int OwnedWorker::wait_fd() const { return worker_ ? worker_->wait_fd() : -1; }

void OwnedWorker::Emit(const std::string& type, const std::map<std::string, std::string>& fields) {
  Status s = events_.Emit(type, fields);
  if (!s.ok()) spdlog::debug("event {} not recorded: {}", type, s.message());
}

OwnedWorkerPass OwnedWorker::Tend(bool take_lease) {
  OwnedWorkerPass pass;
  auto now = clock_.Now();
  if (worker_) {
    if (auto exit = worker_->Poll()) {
      pass.ended = Finish(*exit, now);
    } else if (draining_ && !killed_ && now >= drain_deadline_) {
      spdlog::warn("worker {} did not drain within {}; killing it", worker_->pid(),
                   FormatDuration(o_.drain_timeout));
      worker_->KillGroup();
      killed_ = true;
    }
  }
  if (!lease_.held()) {
    // A worker of ours that still drains must be gone before we take the lease again:
    // only then is a new worker never the second one.
    if (!take_lease || worker_ || now < next_acquire_) return pass;
    TryAcquire(now, pass);
    // Taken: its worker starts in this same pass, not a tick later.
  } else if (now >= next_renew_) {
    Renew(now, pass);
  }
  if (lease_.held() && !worker_ && now >= next_start_) StartWorker(now, pass);
  return pass;
}

void OwnedWorker::TryAcquire(Clock::TimePoint now, OwnedWorkerPass& pass) {
  next_acquire_ = now + o_.acquire_every;
  auto r = lease_.TryAcquire();
  ReportLeaseNews(lease_, events_, o_.queue);
  if (!r.ok()) {
    pass.redis = r.status();
    return;
  }
  if (!r->acquired) {
    pass.held_by = r->owner;
    return;
  }
  pass.acquired = true;
  backoff_.Reset();
  Emit("lease_acquired", {{"epoch", std::to_string(lease_.epoch())}});
  next_renew_ = now + o_.lease_renew_every;
  next_start_ = now;
}

void OwnedWorker::Renew(Clock::TimePoint now, OwnedWorkerPass& pass) {
  auto r = lease_.Renew();
  auto regression = ReportLeaseNews(lease_, events_, o_.queue);
  if (!r.ok()) {
    // Keep the worker: if Redis stays away past the TTL, a new owner's epoch fences it.
    pass.redis = r.status();
    next_renew_ = now + kRenewRetry;
    return;
  }
  next_renew_ = now + o_.lease_renew_every;
  if (*r) return;
  if (regression) {
    // Our epoch's history is gone, and the fence is raised past it: take a new epoch now,
    // while our worker drains (it is fenced already), so that the queue has an owner
    // again before anyone else's worker could claim; a new worker of ours starts once the
    // old one has exited.
    pass.lost = true;
    BeginDrain("Redis lost writes");
    TryAcquire(now, pass);
    return;
  }
  spdlog::warn("lost the owner lease of queue {} (epoch {} is no longer current)", o_.queue,
               lease_.epoch());
  Emit("lease_lost", {{"epoch", std::to_string(lease_.epoch())}});
  pass.lost = true;
  BeginDrain("lease lost");
  next_acquire_ = now;
}

void OwnedWorker::StartWorker(Clock::TimePoint now, OwnedWorkerPass& pass) {
  std::vector<std::string> argv = {o_.worker_binary, "jobs", "work",
                                   "--queue", o_.queue,
                                   "--concurrency", std::to_string(o_.concurrency),
                                   "--max-rss", std::to_string(o_.max_rss_mb),
                                   "--epoch", std::to_string(lease_.epoch()),
                                   "--drain-timeout", FormatDuration(o_.drain_timeout),
                                   "--log-format", o_.log_format,
                                   "--log-level", o_.log_level};
  if (!o_.handlers_file.empty()) {
    argv.push_back("--handlers");
    argv.push_back(o_.handlers_file);
  }
  if (o_.redis_replicas > 0) {
    argv.push_back("--redis-replicas");
    argv.push_back(std::to_string(o_.redis_replicas));
  }
  // The URL in the environment, not on the command line: ps shows argv (and so a
  // password) to every user.
  auto w = spawner_.Spawn(argv, {{"LANEKEEPER_REDIS_URL", o_.redis_url}});
  started_at_ = now;
  if (!w.ok()) {
    spdlog::error("{}", w.status().message());
    // As a worker that could not even start: a crash, with its backoff.
    pass.ended = Finish(ProcessExit{127, false, 0, true}, now);
    return;
  }
  worker_ = std::move(w).value();
  draining_ = false;
  killed_ = false;
  Emit("worker_started", {{"worker_pid", std::to_string(worker_->pid())},
                          {"epoch", std::to_string(lease_.epoch())}});
}

void OwnedWorker::BeginDrain(const std::string& reason) {
  if (!worker_ || draining_) return;
  worker_->Signal(SIGTERM);
  draining_ = true;
  drain_reason_ = reason;
  drain_deadline_ = clock_.Now() + o_.drain_timeout;
}

WorkerEnd OwnedWorker::Finish(const ProcessExit& exit, Clock::TimePoint now) {
  WorkerEnd end;
  end.exit = exit;
  end.asked = draining_;
  end.ran = std::chrono::duration_cast<Millis>(now - started_at_);
  if (end.asked) {
    end.reason = drain_reason_;
  } else if (exit.code == kExitMaxRss && !exit.signaled) {
    end.reason = "max_rss";
  } else if (exit.code == kExitFenced && !exit.signaled) {
    end.reason = "fenced";
  } else {
    end.reason = "crash";
  }
  last_exit_ = exit.Describe();
  std::map<std::string, std::string> fields = {
      {"code", std::to_string(exit.code)}, {"reason", end.reason}, {"detail", last_exit_}};
  if (worker_) fields["worker_pid"] = std::to_string(worker_->pid());
  Emit("worker_exited", fields);
  worker_.reset();
  draining_ = false;
  killed_ = false;

  if (end.reason == "fenced") {
    // Its epoch moved on: find out whether the lease is still ours before starting again.
    next_renew_ = now;
    next_start_ = now + kAfterFenced;
  } else if (end.reason == "crash") {
    Millis delay = backoff_.OnDeath(end.ran);
    if (o_.on_crash) delay = o_.on_crash(now, delay);
    Emit("crash", {{"code", std::to_string(exit.code)},
                   {"detail", last_exit_},
                   {"backoff_ms", std::to_string(delay.count())},
                   {"consecutive", std::to_string(backoff_.streak())}});
    spdlog::warn("restarting the worker in {}", FormatDuration(delay));
    next_start_ = now + delay;
  } else {
    // Drained on purpose (max RSS, a wedge) or by itself for max RSS: start again at once
    // if the lease is still ours.
    next_start_ = now;
  }
  return end;
}

void OwnedWorker::Shutdown() {
  if (worker_) {
    spdlog::info("draining worker {} (up to {})", worker_->pid(), FormatDuration(o_.drain_timeout));
    if (!draining_) {
      worker_->Signal(SIGTERM);
      draining_ = true;
      drain_deadline_ = clock_.Now() + o_.drain_timeout;
    }
    drain_reason_ = "stopped";
    std::optional<ProcessExit> exit;
    while (!(exit = worker_->Poll())) {
      auto now = clock_.Now();
      if (!killed_ && now >= drain_deadline_) {
        spdlog::warn("worker {} did not drain within {}; killing it", worker_->pid(),
                     FormatDuration(o_.drain_timeout));
        worker_->KillGroup();
        killed_ = true;
      }
      // Keep the lease alive through a long drain so no standby starts a second worker
      // while ours still finishes its jobs.
      if (lease_.held() && now >= next_renew_) {
        (void)lease_.Renew();
        next_renew_ = now + o_.lease_renew_every;
      }
      pollfd p{worker_->wait_fd(), POLLIN, 0};
      poll(&p, p.fd >= 0 ? 1 : 0, 250);
    }
    Finish(*exit, clock_.Now());
  }
  if (lease_.held()) {
    Status s = lease_.Release();
    if (!s.ok()) spdlog::warn("could not release the owner lease: {}", s.message());
  }
}

}  // namespace lk
