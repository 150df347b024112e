#include "controller/owner/supervisor_rules.h"

#include <algorithm>

namespace lk {

void EventWindow::Add(Clock::TimePoint now) { times_.push_back(now); }

int EventWindow::Count(Clock::TimePoint now) {
  while (!times_.empty() && now - times_.front() > window_) times_.pop_front();
  return static_cast<int>(times_.size());
}

Millis DegradedRule::OnCrash(Clock::TimePoint now, Millis backoff, bool* entered) {
  crashes_.Add(now);
  *entered = false;
  if (crashes_.Count(now) <= max_crashes_) return backoff;
  if (!degraded_) *entered = true;
  degraded_ = true;
  return std::max(backoff, kHeldDelay);
}

bool DegradedRule::OnRunning(Clock::TimePoint now, Clock::TimePoint started) {
  if (!degraded_ || now - started < kRecoverAfter) return false;
  degraded_ = false;
  return true;
}

bool RssRestartLoop::OnRestart(Clock::TimePoint now) {
  restarts_.Add(now);
  return restarts_.Count(now) > kMoreThan;
}

bool WedgeWatchdog::Check(Clock::TimePoint now, bool wedged) {
  strikes_ = wedged ? strikes_ + 1 : 0;
  if (strikes_ < kChecks) return false;
  if (restarts_.Count(now) >= kMaxRestarts) return false;  // budget spent: leave it be
  restarts_.Add(now);
  strikes_ = 0;
  return true;
}

}  // namespace lk
