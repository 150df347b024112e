#include "worker/clock.h"

#include "worker/duration.h"

namespace lk {

namespace {

class RealClock final : public Clock {
 public:
  TimePoint Now() const override { return std::chrono::steady_clock::now(); }
  int64_t WallMs() const override { return NowUnixMillis(); }
};

}  // namespace

const Clock& SystemClock() {
  static const RealClock clock;
  return clock;
}

}  // namespace lk
