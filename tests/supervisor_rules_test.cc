// The supervisor's rules over time, on a fake clock: the crash backoff, degraded and
// recovered, the RSS restart loop, the wedge watchdog and its budget.
#include <gtest/gtest.h>

#include "controller/owner/supervisor_rules.h"
#include "controller/process/restart_backoff.h"
#include "tests/support/fake_clock.h"

namespace lk {
// Named, not anonymous: the unity build compiles several test files as one.
namespace supervisor_rules_test {

using testing::FakeClock;
using namespace std::chrono_literals;

TEST(SupervisorRules, ACrashBacksOff1SecondDoublingTo60AndAHealthyRunStartsOver) {
  RestartBackoff b({Millis(1'000), Millis(60'000), 0, Millis(300'000)});
  std::vector<int64_t> delays;
  for (int i = 0; i < 9; ++i) delays.push_back(b.OnDeath(Millis(10)).count());
  EXPECT_EQ(delays, (std::vector<int64_t>{1'000, 2'000, 4'000, 8'000, 16'000, 32'000, 60'000,
                                          60'000, 60'000}));
  EXPECT_EQ(b.streak(), 9);
  EXPECT_EQ(b.OnDeath(Millis(300'000)).count(), 1'000) << "5 minutes of running reset it";
  EXPECT_EQ(b.streak(), 1);
}

TEST(SupervisorRules, JitterStaysWithinTenPercent) {
  RestartBackoff b({Millis(1'000), Millis(60'000), 0.1, Millis(300'000)});
  for (int i = 0; i < 200; ++i) {
    b.Reset();
    int64_t d = b.OnDeath(Millis(0)).count();
    EXPECT_GE(d, 900);
    EXPECT_LE(d, 1'100);
  }
}

TEST(SupervisorRules, MoreThanMaxCrashesInTenMinutesIsDegradedUntilAWorkerRunsFiveMinutes) {
  FakeClock clock;
  DegradedRule rule(3);
  bool entered = false;
  for (int i = 0; i < 3; ++i) {
    EXPECT_EQ(rule.OnCrash(clock.Now(), Millis(2'000), &entered).count(), 2'000);
    EXPECT_FALSE(entered);
    clock.Advance(Millis(60'000));
  }
  EXPECT_EQ(rule.OnCrash(clock.Now(), Millis(2'000), &entered).count(), 60'000);
  EXPECT_TRUE(entered);
  EXPECT_TRUE(rule.degraded());
  EXPECT_FALSE(rule.OnCrash(clock.Now(), Millis(2'000), &entered).count() < 60'000);
  EXPECT_FALSE(entered) << "entered once";
  auto started = clock.Now();
  clock.Advance(Millis(299'999));
  EXPECT_FALSE(rule.OnRunning(clock.Now(), started));
  clock.Advance(Millis(1));
  EXPECT_TRUE(rule.OnRunning(clock.Now(), started));
  EXPECT_FALSE(rule.degraded());
}

TEST(SupervisorRules, CrashesOlderThanTenMinutesDoNotCount) {
  FakeClock clock;
  DegradedRule rule(2);
  bool entered = false;
  for (int i = 0; i < 10; ++i) {
    rule.OnCrash(clock.Now(), Millis(1'000), &entered);
    EXPECT_FALSE(entered) << "crash " << i;
    clock.Advance(Millis(301'000));  // two per ten minutes at most
  }
}

TEST(SupervisorRules, MoreThanThreeRssRestartsInTenMinutesIsALoop) {
  FakeClock clock;
  RssRestartLoop loop;
  EXPECT_FALSE(loop.OnRestart(clock.Now()));
  EXPECT_FALSE(loop.OnRestart(clock.Now()));
  EXPECT_FALSE(loop.OnRestart(clock.Now()));
  EXPECT_TRUE(loop.OnRestart(clock.Now()));
  clock.Advance(Millis(600'001));
  EXPECT_FALSE(loop.OnRestart(clock.Now()));
}

TEST(SupervisorRules, AWedgeIsThreeChecksInARowAndAtMostThreeRestartsInThirtyMinutes) {
  FakeClock clock;
  WedgeWatchdog w(Millis(15 * 60'000));
  const Millis idle(15 * 60'000);
  EXPECT_FALSE(w.Check(clock.Now(), 5, 0, idle));
  EXPECT_FALSE(w.Check(clock.Now(), 5, 0, idle));
  EXPECT_FALSE(w.Check(clock.Now(), 5, 1, idle)) << "a job ran: not wedged";
  EXPECT_FALSE(w.Check(clock.Now(), 5, 0, idle));
  EXPECT_FALSE(w.Check(clock.Now(), 5, 0, Millis(60'000))) << "something finished a minute ago";
  EXPECT_FALSE(w.Check(clock.Now(), 0, 0, idle)) << "nothing waits";
  int restarts = 0;
  for (int i = 0; i < 30; ++i) {
    restarts += w.Check(clock.Now(), 5, 0, idle);
    clock.Advance(Millis(60'000));
  }
  EXPECT_EQ(restarts, 3) << "the budget: 3 in 30 minutes";
  for (int i = 0; i < 5; ++i) {
    restarts += w.Check(clock.Now(), 5, 0, idle);
    clock.Advance(Millis(60'000));
  }
  EXPECT_EQ(restarts, 4) << "the first restart left the window";
}

}  // namespace supervisor_rules_test
}  // namespace lk
