// ReconcileLoop: the work queue and the reconciler put together — controller-runtime's
// processNextWorkItem, for one thread:
//
//   key = queue.Pop()                    a due key, or stop
//   result = reconciler.Reconcile(key)
//   error?        queue.AddRateLimited(key)       5 ms doubling to 1000 s per key
//   else          queue.Forget(key); requeue_after? queue.AddAfter(key, requeue_after)
//
// and the counters /metrics shows: reconciles, failed ones, and their durations.
// Owns: the work queue. Does not own: the reconciler, time (a Clock), waiting (the
// caller polls until NextDue()). Not thread-safe.
#pragma once

#include <cstdint>
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
                WorkQueue::RateLimit limit = WorkQueue::RateLimit{});

  WorkQueue& queue() { return queue_; }
  // Reconciles every key that is due now; returns the keys reconciled, in order (a key
  // once even if it ran twice).
  std::vector<LaneKey> ProcessDue();
  const ReconcileCounters& counters() const { return counters_; }

 private:
  Reconciler& reconciler_;
  WorkQueue queue_;
  ReconcileCounters counters_;
};

}  // namespace lk
