// The controller's work queue on a fake clock: keys, not events.
#include <gtest/gtest.h>

#include "controller/reconcile/work_queue.h"
#include "tests/support/fake_clock.h"

namespace lk {
// Named, not anonymous: the unity build compiles several test files as one.
namespace work_queue_test {

using testing::FakeClock;

const LaneKey kA{"", "a"}, kB{"", "b"}, kC{"ns", "c"};

TEST(ReconcileWorkQueue, AKeyAddedManyTimesBeforeItIsPoppedIsReconciledOnce) {
  FakeClock clock;
  WorkQueue q(clock);
  q.Add(kA);
  q.Add(kB);
  q.Add(kA);
  q.AddAfter(kA, Millis(100));
  EXPECT_EQ(q.size(), 2u);
  EXPECT_EQ(q.Pop(), kA);
  EXPECT_EQ(q.Pop(), kB);
  EXPECT_EQ(q.Pop(), std::nullopt);
}

TEST(ReconcileWorkQueue, AKeyIsDueAtTheSoonestOfItsTimes) {
  FakeClock clock;
  WorkQueue q(clock);
  q.AddAfter(kA, Millis(500));
  q.AddAfter(kA, Millis(100));
  q.AddAfter(kA, Millis(900));
  EXPECT_EQ(q.NextDue(), clock.Now() + Millis(100));
  clock.Advance(Millis(99));
  EXPECT_EQ(q.Pop(), std::nullopt);
  clock.Advance(Millis(1));
  EXPECT_EQ(q.Pop(), kA);
  EXPECT_EQ(q.NextDue(), Clock::TimePoint::max());
  // A delayed key added now is due now.
  q.AddAfter(kC, Millis(1000));
  q.Add(kC);
  EXPECT_EQ(q.Pop(), kC);
}

TEST(ReconcileWorkQueue, FailuresBackOff5MsDoublingTo1000SecondsPerKeyUntilForgotten) {
  FakeClock clock;
  WorkQueue q(clock);
  std::vector<int64_t> delays;
  for (int i = 0; i < 20; ++i) {
    q.AddRateLimited(kA);
    delays.push_back(std::chrono::duration_cast<Millis>(q.NextDue() - clock.Now()).count());
    clock.AdvanceTo(q.NextDue());
    ASSERT_EQ(q.Pop(), kA);
  }
  EXPECT_EQ(delays[0], 5);
  EXPECT_EQ(delays[1], 10);
  EXPECT_EQ(delays[2], 20);
  EXPECT_EQ(delays[17], 655'360);
  EXPECT_EQ(delays[18], 1'000'000) << "capped at 1000 s";
  EXPECT_EQ(delays[19], 1'000'000);
  EXPECT_EQ(q.Failures(kA), 20);
  q.AddRateLimited(kB);
  EXPECT_EQ(q.Failures(kB), 1) << "per key";
  q.Forget(kA);
  q.AddRateLimited(kA);
  EXPECT_EQ(q.Failures(kA), 1);
}

TEST(ReconcileWorkQueue, DueKeysComeOutInTheOrderTheyFellDue) {
  FakeClock clock;
  WorkQueue q(clock);
  q.AddAfter(kB, Millis(20));
  q.AddAfter(kA, Millis(10));
  q.Add(kC);
  clock.Advance(Millis(30));
  EXPECT_EQ(q.Pop(), kC);
  EXPECT_EQ(q.Pop(), kA);
  EXPECT_EQ(q.Pop(), kB);
}

}  // namespace work_queue_test
}  // namespace lk
