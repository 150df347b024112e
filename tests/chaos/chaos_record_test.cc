// The chaos soak's verdict (chaos_record.h) on records written by hand: what counts as
// lost, which duplicates a disruption explains, and when fencing went backwards.
#include "tests/chaos/chaos_record.h"

#include <gtest/gtest.h>

#include <fstream>

#include "tests/support/temp_dir.h"

namespace lk::chaos {
namespace record_test {

ChaosRun Claimed(int64_t seq, int64_t epoch, int64_t claimed_ms, pid_t worker, pid_t owner = 1000) {
  ChaosRun r;
  r.seq = seq;
  r.id = std::to_string(seq);
  r.attempt = 1;
  r.epoch = epoch;
  r.worker = worker;
  r.owner = owner;
  r.claimed_ms = claimed_ms;
  r.claimseq = claimed_ms;
  r.token = "1:" + std::to_string(claimed_ms) + ":" + std::to_string(claimed_ms) + "." + r.id;
  r.start_ms = claimed_ms + 5;
  r.end_ms = claimed_ms + 30;
  return r;
}

TEST(ChaosRecord, AnAcknowledgedJobThatNeverRanIsLostUnlessTheQueueStillHoldsIt) {
  Verdict v = Judge({Claimed(1, 1, 100, 50)}, {1, 2, 3}, {}, {3});
  EXPECT_EQ(v.acked, 3);
  EXPECT_EQ(v.completed, 1);
  EXPECT_EQ(v.lost, 1);
  EXPECT_EQ(v.unfinished, 1);
}

TEST(ChaosRecord, ADuplicateIsExplainedOnlyByADisruptionOfAProcessThatRanItInBetween) {
  std::vector<ChaosRun> runs = {Claimed(1, 1, 1'000, 50), Claimed(1, 1, 9'000, 60)};
  EXPECT_EQ(Judge(runs, {1}, {{5'000, "kill-worker", 50}}).unexplained, 0);
  EXPECT_EQ(Judge(runs, {1}, {{5'000, "kill-supervisor", 1000}}).unexplained, 0);
  EXPECT_EQ(Judge(runs, {1}, {{5'000, "redis-restart", 0}}).unexplained, 0);
  // Another process, or a kill after the later run started: not an explanation.
  Verdict other = Judge(runs, {1}, {{5'000, "kill-worker", 70}, {9'500, "kill-worker", 50}});
  EXPECT_EQ(other.duplicates, 1);
  EXPECT_EQ(other.unexplained, 1);
  ASSERT_FALSE(other.examples.empty());
  EXPECT_NE(other.examples[0].find("unexplained duplicate of seq 1"), std::string::npos);
}

TEST(ChaosRecord, AStoppedWorkerThatWakesAndRunsAJobTakenBackMeanwhileExplainsTheDuplicate) {
  // Worker 50 was stopped at 1 000 holding job 1 claimed but not started; worker 60 ran it
  // at 7 000 once the lease ran out; worker 50 woke at 10 000 and started it anyway (its
  // claim gone, so its token unknown).
  ChaosRun woke = Claimed(1, 1, 500, 50);
  woke.claimed_ms = -1;
  woke.token = "-";
  woke.start_ms = 10'000;
  EXPECT_EQ(Judge({Claimed(1, 2, 7'000, 60), woke}, {1}, {{1'000, "stop", 50}}).unexplained, 0);
}

TEST(ChaosRecord, ARunWhoseWorkerWasKilledBeforeItStartedIsExplainedByAnyKillInBetween) {
  ChaosRun orphan = Claimed(1, 0, 1'000, /*worker=*/1, /*owner=*/0);
  std::vector<ChaosRun> runs = {orphan, Claimed(1, 2, 7'000, 60)};
  EXPECT_EQ(Judge(runs, {1}, {{1'002, "kill-worker", 55}}).unexplained, 0);
  EXPECT_EQ(Judge(runs, {1}, {}).unexplained, 1);
}

TEST(ChaosRecord, FencingIsJudgedByWhenRedisAcceptedTheClaimNotWhenTheHandlerStarted) {
  // Epoch 1 claimed at 100 but its handler started late; epoch 2 claimed at 102: fine.
  ChaosRun late = Claimed(1, 1, 100, 50);
  late.start_ms = 200;
  EXPECT_EQ(Judge({late, Claimed(2, 2, 102, 60)}, {1, 2}, {}).violations, 0);
  // Epoch 1 accepted after epoch 2 was: fencing went backwards.
  Verdict back = Judge({Claimed(1, 2, 100, 60), Claimed(2, 1, 150, 50)}, {1, 2}, {});
  EXPECT_EQ(back.violations, 1);
  EXPECT_EQ(back.fenced_claims, 2);
}

TEST(ChaosRecord, ClaimsWithoutAnEpochOrATokenAreCountedAndLeftOutOfTheFencingCheck) {
  ChaosRun unfenced = Claimed(1, 0, 500, 70);
  ChaosRun unknown = Claimed(2, 1, 600, 50);
  unknown.claimed_ms = -1;
  Verdict v = Judge({Claimed(3, 2, 100, 60), unfenced, unknown}, {1, 2, 3}, {});
  EXPECT_EQ(v.unfenced_claims, 1);
  EXPECT_EQ(v.unknown_tokens, 1);
  EXPECT_EQ(v.violations, 0);
}

TEST(ChaosRecord, TheRecordFileIsReadLineByLineAndMalformedLinesAreCounted) {
  testing::TempDir dir("chaos-record");
  std::ofstream(dir / "record.log")
      << "done 7 12 2 2:1700:33.12 4 100 90 80 1750 1790\n"
      << "done 8 13 1 - 0 101 91 1 1760 1800\n"
      << "garbage\n";
  int malformed = 0;
  auto runs = ReadChaosRecord(dir / "record.log", &malformed);
  EXPECT_EQ(malformed, 1);
  ASSERT_EQ(runs.size(), 2u);
  EXPECT_EQ(runs[0].seq, 7);
  EXPECT_EQ(runs[0].claimed_ms, 1700);
  EXPECT_EQ(runs[0].claimseq, 33);
  EXPECT_EQ(runs[0].epoch, 4);
  EXPECT_EQ(runs[0].worker, 90);
  EXPECT_EQ(runs[1].claimed_ms, -1);
  EXPECT_EQ(runs[1].ClaimTime(), 1760);
}

}  // namespace record_test
}  // namespace lk::chaos
