#include "controller/reconcile/work_queue.h"

#include <algorithm>

namespace lk {

namespace {
constexpr Clock::TimePoint kReady = Clock::TimePoint::min();
}  // namespace

WorkQueue::WorkQueue(const Clock& clock, RateLimit limit) : clock_(clock), limit_(limit) {}

void WorkQueue::Add(const LaneKey& key) { AddAfter(key, Millis(0)); }

void WorkQueue::AddAfter(const LaneKey& key, Millis delay) {
  std::lock_guard<std::mutex> lock(mu_);
  AddAfterLocked(key, delay);
}

void WorkQueue::AddAfterLocked(const LaneKey& key, Millis delay) {
  Clock::TimePoint at = delay.count() <= 0 ? kReady : clock_.Now() + delay;
  auto it = due_at_.find(key);
  if (it != due_at_.end()) {
    if (it->second <= at) return;  // already due as soon or sooner
    waiting_.erase({it->second, key});
    it->second = at;
  } else {
    due_at_.emplace(key, at);
  }
  if (at == kReady) {
    ready_.push_back(key);
  } else {
    waiting_.insert({at, key});
  }
}

Millis WorkQueue::Backoff(int failures) const {
  // base * 2^(failures-1), capped; the shift is bounded long before it could overflow.
  int64_t ms = limit_.base.count() << std::min(failures - 1, 40);
  return Millis(std::min<int64_t>(ms, limit_.max.count()));
}

void WorkQueue::AddRateLimited(const LaneKey& key) {
  std::lock_guard<std::mutex> lock(mu_);
  int failures = ++failures_[key];
  AddAfterLocked(key, Backoff(failures));
}

void WorkQueue::Forget(const LaneKey& key) {
  std::lock_guard<std::mutex> lock(mu_);
  failures_.erase(key);
}

int WorkQueue::Failures(const LaneKey& key) const {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = failures_.find(key);
  return it == failures_.end() ? 0 : it->second;
}

void WorkQueue::Promote() {
  auto now = clock_.Now();
  while (!waiting_.empty() && waiting_.begin()->first <= now) {
    LaneKey key = waiting_.begin()->second;
    waiting_.erase(waiting_.begin());
    due_at_[key] = kReady;
    ready_.push_back(std::move(key));
  }
}

std::optional<LaneKey> WorkQueue::Pop() { return Pop({}); }

std::optional<LaneKey> WorkQueue::Pop(const std::set<LaneKey>& busy) {
  std::lock_guard<std::mutex> lock(mu_);
  Promote();
  // Busy keys are few (one per worker): passing over them keeps the scan short.
  auto it = std::find_if(ready_.begin(), ready_.end(),
                         [&](const LaneKey& k) { return !busy.count(k); });
  if (it == ready_.end()) return std::nullopt;
  LaneKey key = std::move(*it);
  ready_.erase(it);
  due_at_.erase(key);
  return key;
}

size_t WorkQueue::size() const {
  std::lock_guard<std::mutex> lock(mu_);
  return due_at_.size();
}

Clock::TimePoint WorkQueue::NextDue() const {
  std::lock_guard<std::mutex> lock(mu_);
  if (!ready_.empty()) return kReady;
  if (waiting_.empty()) return Clock::TimePoint::max();
  return waiting_.begin()->first;
}

}  // namespace lk
