// WorkQueue: the lane keys waiting to be reconciled — controller-runtime's rate-limited
// work queue, for one thread.
//
//   Add(key)             due now; a key already queued is not queued twice
//   AddAfter(key, d)     due in d (a key queued for sooner keeps the sooner time)
//   AddRateLimited(key)  due after the key's failure backoff: 5 ms doubling per failure
//                        to 1000 s (controller-runtime's default per-item limiter)
//   Forget(key)          the key reconciled fine: its backoff starts over
//   Pop()                the due key that waited longest
//   Pop(busy)            the same, passing over keys in busy (being reconciled): they
//                        stay queued, and are popped once their reconcile is done
//
// Keys, not events: whatever woke a key (a file changed, a process died, a resync), the
// reconcile reads the world afresh, so many wake-ups before a Pop are one reconcile.
// Owns: the keys, their due times and failure counts. Does not own: time (a Clock) or
// waiting (the controller's loop polls until NextDue()). Thread-safe: every call takes
// the queue's lock, so a reconcile on a worker thread may Add a key (a wake) while
// another worker pops.
#pragma once

#include <cstdint>
#include <deque>
#include <map>
#include <mutex>
#include <optional>
#include <set>

#include "controller/spec/lane_types.h"
#include "worker/clock.h"
#include "worker/duration.h"

namespace lk {

class WorkQueue {
 public:
  struct RateLimit {
    Millis base{5};
    Millis max{1'000'000};
  };

  WorkQueue(const Clock& clock, RateLimit limit);
  explicit WorkQueue(const Clock& clock) : WorkQueue(clock, RateLimit{}) {}

  void Add(const LaneKey& key);
  void AddAfter(const LaneKey& key, Millis delay);
  void AddRateLimited(const LaneKey& key);
  void Forget(const LaneKey& key);
  // Failures of key since it last reconciled fine.
  int Failures(const LaneKey& key) const;

  // The key due longest, or nullopt when none is due yet.
  std::optional<LaneKey> Pop();
  std::optional<LaneKey> Pop(const std::set<LaneKey>& busy);
  // When the next key falls due; TimePoint::max() when none is queued.
  Clock::TimePoint NextDue() const;
  // Keys queued, due or not.
  size_t size() const;

 private:
  // Moves keys whose time came into ready_. The lock is held.
  void Promote();
  void AddAfterLocked(const LaneKey& key, Millis delay);
  Millis Backoff(int failures) const;

  mutable std::mutex mu_;

  const Clock& clock_;
  RateLimit limit_;
  std::deque<LaneKey> ready_;                 // due, in the order they fell due
  std::set<std::pair<Clock::TimePoint, LaneKey>> waiting_;  // not yet due
  std::map<LaneKey, Clock::TimePoint> due_at_;  // every queued key; ready ones at min()
  std::map<LaneKey, int> failures_;
};

}  // namespace lk
