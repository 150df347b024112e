// RestartBackoff: how long to wait before starting a process again that died without being
// asked to — the one policy behind a supervisor's or an autopilot's worker and the
// controller's roles.
//
//   delay = initial * 2^(streak-1), capped at max, then multiplied by a jitter in
//           [1 - jitter, 1 + jitter] so that many lanes do not restart in lock step
//   streak: deaths in a row; a process that ran at least healthy_run before it died
//           starts a new streak (its death counts as the first again)
//
// Owns: the streak and the jitter's random source. Does not own: time (callers pass how
// long the process ran) or what counts as a crash (a worker that drained on purpose, was
// fenced or hit max RSS is not one: its owner decides). Not thread-safe.
#pragma once

#include <random>

#include "worker/duration.h"

namespace lk {

class RestartBackoff {
 public:
  struct Options {
    Millis initial{1'000};
    Millis max{60'000};
    double jitter = 0.1;         // 0: exact delays (tests)
    Millis healthy_run{300'000};  // a process up this long resets the streak
  };

  explicit RestartBackoff(Options options);
  RestartBackoff() : RestartBackoff(Options{}) {}

  // A process that ran for `ran` died unasked: the delay before starting it again.
  Millis OnDeath(Millis ran);
  // Deaths in a row, after the last OnDeath.
  int streak() const { return streak_; }
  void Reset() { streak_ = 0; }
  const Options& options() const { return o_; }

 private:
  Options o_;
  int streak_ = 0;
  std::mt19937 rng_{std::random_device{}()};
};

}  // namespace lk
