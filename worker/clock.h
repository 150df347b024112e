// Clock: the time that roles and the controller act on — a steady clock for intervals,
// deadlines and backoff, and the wall clock for what is stored in Redis or shown.
//
// Owns nothing; it is a seam (as envoy's TimeSource). SystemClock() is the one real
// implementation; tests step a FakeClock (tests/support/fake_clock.h) so that backoff,
// degraded and wedge rules, the controller's work queue and its reconciles run in
// milliseconds without sleeping. Waiting itself stays with the callers (poll() with a
// timeout computed from Now()). Thread-safe.
#pragma once

#include <chrono>
#include <cstdint>

namespace lk {

class Clock {
 public:
  using TimePoint = std::chrono::steady_clock::time_point;
  virtual ~Clock() = default;
  // Monotonic: for intervals and deadlines.
  virtual TimePoint Now() const = 0;
  // Milliseconds since the Unix epoch: for what is stored or shown.
  virtual int64_t WallMs() const = 0;
};

// The process-wide real clock.
const Clock& SystemClock();

}  // namespace lk
