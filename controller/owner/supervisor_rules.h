// The supervisor's rules over time, apart from its loop so that tests run them on a
// FakeClock in microseconds:
//
//   EventWindow     events within a trailing window (crashes and RSS restarts in 10
//                   minutes, wedge restarts in 30)
//   DegradedRule    more than max_crashes crashes within 10 minutes -> degraded: restarts
//                   held at the backoff's maximum (60 s); recovered once a worker has run 5
//                   minutes
//   RssRestartLoop  more than 3 RSS restarts within 10 minutes: a restart loop, worth an
//                   event (the restarts themselves go on: each drains cleanly)
//   WedgeWatchdog   a queue wedged (status/queue_snapshot.h: waiting jobs, none active and
//                   nothing finished for wedge_time) over 3 consecutive checks -> restart the
//                   worker; at most 3 such restarts in 30 minutes (a queue that stays wedged
//                   is not fixed by restarting)
// Not thread-safe; pure functions of the times they are given.
#pragma once

#include <cstdint>
#include <deque>

#include "worker/clock.h"
#include "worker/duration.h"

namespace lk {

class EventWindow {
 public:
  explicit EventWindow(Millis window) : window_(window) {}
  void Add(Clock::TimePoint now);
  // Events within the window before now.
  int Count(Clock::TimePoint now);

 private:
  Millis window_;
  std::deque<Clock::TimePoint> times_;
};

class DegradedRule {
 public:
  static constexpr Millis kWindow{10 * 60'000};
  static constexpr Millis kRecoverAfter{5 * 60'000};
  static constexpr Millis kHeldDelay{60'000};

  explicit DegradedRule(int max_crashes) : max_crashes_(max_crashes) {}
  // A crash at now, with the backoff's delay: the delay to use. *entered is set when the
  // supervisor just became degraded.
  Millis OnCrash(Clock::TimePoint now, Millis backoff, bool* entered);
  // The running worker started at started: true when this recovers the supervisor now.
  bool OnRunning(Clock::TimePoint now, Clock::TimePoint started);
  bool degraded() const { return degraded_; }
  int crashes(Clock::TimePoint now) { return crashes_.Count(now); }

 private:
  int max_crashes_;
  bool degraded_ = false;
  EventWindow crashes_{kWindow};
};

class RssRestartLoop {
 public:
  static constexpr Millis kWindow{10 * 60'000};
  static constexpr int kMoreThan = 3;
  // An RSS restart at now: true when it makes a loop (more than 3 within the window).
  bool OnRestart(Clock::TimePoint now);
  int restarts(Clock::TimePoint now) { return restarts_.Count(now); }

 private:
  EventWindow restarts_{kWindow};
};

class WedgeWatchdog {
 public:
  static constexpr int kChecks = 3;
  static constexpr int kMaxRestarts = 3;
  static constexpr Millis kRestartWindow{30 * 60'000};

  WedgeWatchdog() = default;
  // One check: whether the queue looks wedged now (QueueSnapshot::Wedged, the definition
  // doctor uses). True: restart the worker now.
  bool Check(Clock::TimePoint now, bool wedged);
  // A new worker starts with a clean record.
  void Reset() { strikes_ = 0; }

 private:
  int strikes_ = 0;
  EventWindow restarts_{kRestartWindow};
};

}  // namespace lk
