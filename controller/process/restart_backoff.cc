#include "controller/process/restart_backoff.h"

#include <algorithm>

namespace lk {

RestartBackoff::RestartBackoff(Options options) : o_(options) {}

Millis RestartBackoff::OnDeath(Millis ran) {
  streak_ = ran >= o_.healthy_run ? 1 : streak_ + 1;
  // initial << (streak - 1), without overflowing the shift: past 2^20 the cap holds anyway.
  int64_t delay = o_.initial.count() << std::min(streak_ - 1, 20);
  delay = std::min<int64_t>(delay, o_.max.count());
  if (o_.jitter > 0) {
    std::uniform_real_distribution<double> factor(1 - o_.jitter, 1 + o_.jitter);
    delay = static_cast<int64_t>(static_cast<double>(delay) * factor(rng_));
  }
  return Millis(delay);
}

}  // namespace lk
