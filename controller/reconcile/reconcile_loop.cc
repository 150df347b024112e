#include "controller/reconcile/reconcile_loop.h"

#include <algorithm>
#include <chrono>

namespace lk {

ReconcileLoop::ReconcileLoop(const Clock& clock, Reconciler& reconciler,
                             WorkQueue::RateLimit limit, int workers)
    : reconciler_(reconciler), queue_(clock, limit) {
  for (int i = 1; i < workers; ++i) pool_.emplace_back([this] { PoolThread(); });
}

ReconcileLoop::~ReconcileLoop() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stop_ = true;
  }
  cv_.notify_all();
  for (auto& t : pool_) t.join();
}

void ReconcileLoop::PoolThread() {
  uint64_t seen = 0;
  std::unique_lock<std::mutex> lock(mu_);
  for (;;) {
    cv_.wait(lock, [&] { return stop_ || (open_ && round_ != seen); });
    if (stop_) return;
    seen = round_;
    ++inside_;
    lock.unlock();
    WorkRound();
    lock.lock();
    --inside_;
    cv_.notify_all();
  }
}

std::vector<LaneKey> ReconcileLoop::ProcessDue() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    done_.clear();
    open_ = true;
    ++round_;
  }
  cv_.notify_all();
  WorkRound();
  std::unique_lock<std::mutex> lock(mu_);
  // A pool thread that has not joined yet will not: the round is over for everyone.
  open_ = false;
  cv_.wait(lock, [&] { return inside_ == 0; });
  return std::move(done_);
}

void ReconcileLoop::WorkRound() {
  for (;;) {
    std::optional<LaneKey> key;
    {
      std::unique_lock<std::mutex> lock(mu_);
      for (;;) {
        key = queue_.Pop(busy_);
        if (key) break;
        // Nothing due and nothing running that could queue a key (a wake, a requeue of a
        // passed-over key): the round is over.
        if (busy_.empty()) {
          cv_.notify_all();
          return;
        }
        cv_.wait(lock);
      }
      busy_.insert(*key);
      if (std::find(done_.begin(), done_.end(), *key) == done_.end()) done_.push_back(*key);
    }
    // Real time, whatever the clock: this measures our own work.
    auto t0 = std::chrono::steady_clock::now();
    auto result = reconciler_.Reconcile(*key);
    double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    if (!result.ok()) {
      queue_.AddRateLimited(*key);
    } else {
      queue_.Forget(*key);
      if (result->requeue_after) queue_.AddAfter(*key, *result->requeue_after);
    }
    {
      std::lock_guard<std::mutex> lock(mu_);
      Count(secs, result.ok());
      busy_.erase(*key);
    }
    cv_.notify_all();
  }
}

void ReconcileLoop::Count(double secs, bool ok) {
  counters_.total++;
  counters_.seconds_sum += secs;
  for (size_t i = 0; i < counters_.buckets.size(); ++i) {
    if (secs <= counters_.buckets[i]) counters_.bucket_counts[i]++;
  }
  if (!ok) counters_.errors++;
}

}  // namespace lk
