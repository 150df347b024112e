#include "controller/reconcile/reconcile_loop.h"

#include <chrono>

namespace lk {

ReconcileLoop::ReconcileLoop(const Clock& clock, Reconciler& reconciler,
                             WorkQueue::RateLimit limit)
    : reconciler_(reconciler), queue_(clock, limit) {}

int ReconcileLoop::ProcessDue() {
  int n = 0;
  while (auto key = queue_.Pop()) {
    ++n;
    // Real time, whatever the clock: this measures our own work.
    auto t0 = std::chrono::steady_clock::now();
    auto result = reconciler_.Reconcile(*key);
    double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    counters_.total++;
    counters_.seconds_sum += secs;
    for (size_t i = 0; i < counters_.buckets.size(); ++i) {
      if (secs <= counters_.buckets[i]) counters_.bucket_counts[i]++;
    }
    if (!result.ok()) {
      counters_.errors++;
      queue_.AddRateLimited(*key);
      continue;
    }
    queue_.Forget(*key);
    if (result->requeue_after) queue_.AddAfter(*key, *result->requeue_after);
  }
  return n;
}

}  // namespace lk
