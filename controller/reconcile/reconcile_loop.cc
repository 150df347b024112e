#include "controller/reconcile/reconcile_loop.h"

#include <algorithm>
#include <chrono>

namespace lk {

ReconcileLoop::ReconcileLoop(const Clock& clock, Reconciler& reconciler,
                             WorkQueue::RateLimit limit)
    : reconciler_(reconciler), queue_(clock, limit) {}

std::vector<LaneKey> ReconcileLoop::ProcessDue() {
  std::vector<LaneKey> done;
  while (auto key = queue_.Pop()) {
    if (std::find(done.begin(), done.end(), *key) == done.end()) done.push_back(*key);
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
  return done;
}

}  // namespace lk
