// ReconcileLoop: the work queue and the reconciler put together — controller-runtime's
// processNextWorkItem, run by `workers` threads at once (its MaxConcurrentReconciles):
//
//   key = queue.Pop(busy)                a due key no worker is reconciling, or wait
//   result = reconciler.Reconcile(key)
//   error?        queue.AddRateLimited(key)       5 ms doubling to 1000 s per key
//   else          queue.Forget(key); requeue_after? queue.AddAfter(key, requeue_after)
//
// and the counters /metrics shows: reconciles, failed ones, and their durations.
//
// ProcessDue() is one round: the calling thread and workers-1 pool threads take due keys
// until none is due and none is being reconciled, then it returns — so the caller's own
// work between rounds (polling the source and the backend, publishing) never runs beside
// a reconcile. Within a round a key is never reconciled by two workers at once: a key
// re-added while it is reconciled (a wake, a requeue) stays queued, passed over, and runs
// again once that reconcile is done. With workers = 1 the caller's thread does it all.
// Owns: the work queue and the pool threads. Does not own: the reconciler (thread-safe
// when workers > 1), time (a Clock), waiting between rounds (the caller polls until
// NextDue()). ProcessDue() and counters() from one thread.
#pragma once

#include <condition_variable>
#include <cstdint>
#include <mutex>
#include <set>
#include <thread>
#include <vector>

#include "controller/reconcile/reconciler.h"
#include "controller/reconcile/work_queue.h"
#include "worker/clock.h"

namespace lk {

struct ReconcileCounters {
  uint64_t total = 0;
  uint64_t errors = 0;
  double seconds_sum = 0;
  // Duration histogram: upper bounds in seconds and cumulative counts, same size.
  std::vector<double> buckets{0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10};
  std::vector<uint64_t> bucket_counts = std::vector<uint64_t>(12, 0);
};

class ReconcileLoop {
 public:
  ReconcileLoop(const Clock& clock, Reconciler& reconciler,
                WorkQueue::RateLimit limit = WorkQueue::RateLimit{}, int workers = 1);
  ~ReconcileLoop();
  ReconcileLoop(const ReconcileLoop&) = delete;
  ReconcileLoop& operator=(const ReconcileLoop&) = delete;

  WorkQueue& queue() { return queue_; }
  // Reconciles every key that is due now, `workers` at a time; returns the keys
  // reconciled (a key once even if it ran twice).
  std::vector<LaneKey> ProcessDue();
  const ReconcileCounters& counters() const { return counters_; }

 private:
  // Takes due keys until none is due and no reconcile runs that could queue one.
  void WorkRound();
  void Count(double secs, bool ok);  // mu_ held
  void PoolThread();

  Reconciler& reconciler_;
  WorkQueue queue_;
  std::mutex mu_;
  std::condition_variable cv_;  // a reconcile ended, a round opened, or stop
  std::set<LaneKey> busy_;      // being reconciled
  std::vector<LaneKey> done_;   // this round's keys
  bool open_ = false;           // a round runs: pool threads may join it
  uint64_t round_ = 0;
  int inside_ = 0;              // pool threads in WorkRound
  bool stop_ = false;
  ReconcileCounters counters_;
  std::vector<std::thread> pool_;
};

}  // namespace lk
