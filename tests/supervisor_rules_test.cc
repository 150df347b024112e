// The supervisor's rules over time, on a fake clock: the crash backoff, degraded and
// recovered, the RSS restart loop, the wedge watchdog and its budget.
#include <gtest/gtest.h>

#include "controller/owner/supervisor_rules.h"
#include "controller/process/restart_backoff.h"
#include "controller/status/queue_snapshot.h"
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
  WedgeWatchdog w;
  EXPECT_FALSE(w.Check(clock.Now(), true));
  EXPECT_FALSE(w.Check(clock.Now(), true));
  EXPECT_FALSE(w.Check(clock.Now(), false)) << "a check that is not wedged starts over";
  EXPECT_FALSE(w.Check(clock.Now(), true));
  int restarts = 0;
  for (int i = 0; i < 30; ++i) {
    restarts += w.Check(clock.Now(), true);
    clock.Advance(Millis(60'000));
  }
  EXPECT_EQ(restarts, 3) << "the budget: 3 in 30 minutes";
  for (int i = 0; i < 5; ++i) {
    restarts += w.Check(clock.Now(), true);
    clock.Advance(Millis(60'000));
  }
  EXPECT_EQ(restarts, 4) << "the first restart left the window";
}

// What "wedged" means, for doctor and the watchdog alike.
TEST(SupervisorRules, AQueueIsWedgedWhenWorkWaitsNothingRunsAndNothingFinishedForTheWedgeTime) {
  const Millis wedge(15 * 60'000);
  QueueSnapshot s;
  s.read_ms = 100 * 60'000;
  s.counts.waiting = 5;
  s.counts.oldest_waiting_age_ms = 20 * 60'000;
  EXPECT_TRUE(s.Wedged(wedge)) << "waiting 20 minutes, nothing ever finished";
  EXPECT_FALSE(s.Wedged(wedge, s.read_ms - 60'000)) << "watched for a minute only";
  s.last_finished_ms = s.read_ms - 60'000;
  EXPECT_FALSE(s.Wedged(wedge)) << "something finished a minute ago";
  EXPECT_EQ(s.StuckMs(), 60'000);
  s.last_finished_ms = s.read_ms - 16 * 60'000;
  EXPECT_TRUE(s.Wedged(wedge));
  s.counts.active = 1;
  EXPECT_FALSE(s.Wedged(wedge)) << "a job runs";
  s.counts.active = 0;
  s.counts.waiting = 0;
  EXPECT_FALSE(s.Wedged(wedge)) << "nothing waits";
}

}  // namespace supervisor_rules_test
}  // namespace lk
