// FakeClock: a Clock (worker/clock.h) that moves only when the test says so. Starts at an
// arbitrary steady time and at 2026-01-01T00:00:00Z on the wall; both move together.
#pragma once

#include "worker/clock.h"
#include "worker/duration.h"

namespace lk::testing {

class FakeClock final : public Clock {
 public:
  TimePoint Now() const override { return now_; }
  int64_t WallMs() const override {
    return kWallStart + std::chrono::duration_cast<Millis>(now_ - kStart).count();
  }
  void Advance(Millis d) { now_ += d; }
  // Moves to t if t is later.
  void AdvanceTo(TimePoint t) {
    if (t > now_) now_ = t;
  }

 private:
  static constexpr TimePoint kStart = TimePoint(std::chrono::hours(24 * 365));
  static constexpr int64_t kWallStart = 1'767'225'600'000;  // 2026-01-01T00:00:00Z
  TimePoint now_ = kStart;
};

}  // namespace lk::testing
