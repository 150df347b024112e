// LeasedWorker: a `jobs work` started by hand (no --epoch), which owns its queue itself —
// so that a queue has exactly one worker whoever starts it.
//
//   lease    take the queue's owner lease as role "worker", like any owner: a new epoch
//            above every epoch seen (owner_lease.h), renewed every renew_every
//   held     someone else owns the queue: exit 2 with a message that names the owner
//            (role, holder, epoch) and what to run instead; with standby, wait and take
//            the lease when it is free
//   run      a JobRunner with the lease's epoch, so its every claim is fenced like any
//            owner's worker; the lease lost (the epoch moved on) -> its next claim is
//            refused, it drains and exits 13
//   again    after a fenced exit, the lease is tried once more: taken (it had lapsed, or
//            Redis lost writes and the fence was raised) -> a new runner under the new
//            epoch; held by another -> exit 13
// Events (role "worker"): standby, lease_acquired, worker_started and worker_exited (its
// own pid, as an owner's worker), lease_lost, redis_regressed, stopped.
// Owns: its Redis connection for the lease and the events, the runner, and a renewing
// thread while the runner runs. Thread-safety: Run() once; RequestStop() from any thread or
// a signal handler.
#pragma once

#include <atomic>
#include <string>

#include "controller/owner/lifecycle_events.h"
#include "controller/owner/owner_lease.h"
#include "worker/duration.h"
#include "worker/job_runner.h"

namespace lk {

struct LeasedWorkerOptions {
  JobRunnerOptions runner;  // its epoch is the lease's
  // false: exit 2 when another owner holds the queue; true: wait for the lease. Waiting
  // suits a hot spare; exiting suits a mistake (a second worker started by hand).
  bool standby = false;
  Millis lease_ttl = kDefaultOwnerTtl;
  Millis renew_every = kDefaultOwnerRenewEvery;
  Millis standby_poll{500};
};

class LeasedWorker {
 public:
  explicit LeasedWorker(LeasedWorkerOptions options);
  // Returns the exit code: the runner's (0, 12, 13), 2 when the queue is owned by another
  // (without standby), 1 when Redis refuses the credentials.
  int Run();
  // Asks Run() to stop: leaves standby, or drains the runner. Async-signal-safe.
  void RequestStop();

 private:
  // Runs JobRunners under the held lease until one ends other than fenced, or the lease
  // cannot be taken again; returns that exit code.
  int RunUnderLease(OwnerLease& lease, LifecycleEvents& events);
  // The renewing thread's loop, until done: renews, reports a lost lease or a regression.
  void RenewUntil(OwnerLease& lease, LifecycleEvents& events, const std::atomic<bool>& done);
  // Takes the lease, or (standby) waits for it. false: not taken (the message is printed,
  // *code is the exit code).
  bool Acquire(OwnerLease& lease, LifecycleEvents& events, int* code);
  // After a fenced exit: takes the lease again when it is free (retrying while Redis is
  // away). false: another owner holds it, or a stop was asked for.
  bool TakeBack(OwnerLease& lease, LifecycleEvents& events);
  bool SleepUnlessStopped(Millis d) const;

  LeasedWorkerOptions o_;
  std::atomic<bool> stop_{false};
  std::atomic<JobRunner*> runner_{nullptr};
};

// What `jobs work` prints when owner holds the queue: who, and what to run instead.
std::string OwnedElsewhereMessage(const std::string& queue, const OwnerRecord& owner);

}  // namespace lk
