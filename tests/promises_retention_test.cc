// Retention as docs/queue.md promises it to a user of the command line: `jobs work
// --keep-completed N` and `--keep-dead N` (dead and cancelled jobs), and the age bounds a
// worker applies by default (completed 24 h, dead and cancelled 7 days), through the real
// binary. The queue's own retention rules are unit-tested in job_queue_test.cc.
#include <gtest/gtest.h>
#include <signal.h>

#include <string>
#include <vector>

#include "tests/support/child_process.h"
#include "tests/support/queue_under_test.h"
#include "worker/exit_codes.h"
#include "worker/job_queue.h"

namespace lk {
namespace promises_retention_test {

using namespace std::chrono_literals;
using testing::ChildProcess;
using testing::Eventually;

constexpr auto kSlack = 10s;
constexpr int64_t kHourMs = 3'600'000;

class RetentionCli : public ::testing::Test {
 protected:
  void SetUp() override {
    lane_ = std::make_unique<testing::QueueUnderTest>();
    ASSERT_TRUE(lane_->ok());
    queue_ = &lane_->queue();
    records_ = &lane_->records();
    queue_name_ = lane_->name();
  }
  void TearDown() override {
    if (worker_ && worker_->Signal(SIGTERM)) {
      EXPECT_EQ(worker_->Wait(kSlack), kExitOk);
    }
    testing::KillProcessesOfThisTest();
  }

  void StartWorker(std::vector<std::string> flags) {
    std::vector<std::string> argv = {testing::LanekeeperBinary(), "jobs", "work", "--redis",
                                     lane_->redis().url(), "--queue", queue_name_, "--concurrency", "1",
                                     "--max-rss", "0"};
    argv.insert(argv.end(), flags.begin(), flags.end());
    worker_ = std::make_unique<ChildProcess>(argv);
  }
  std::string Submit(const std::string& name) {
    JobSpec spec;
    spec.name = name;
    spec.max_attempts = 1;
    auto r = queue_->Enqueue(spec);
    EXPECT_TRUE(r.ok()) << r.status().message();
    return r.ok() ? r->id : "";
  }
  bool Reaches(const std::string& id, JobState state) {
    return Eventually([&] { return records_->Get(id).state == state; }, kSlack);
  }
  bool Exists(const std::string& id) {
    auto j = queue_->Get(id);
    EXPECT_TRUE(j.ok() || j.status().IsNotFound()) << j.status().message();
    return j.ok();
  }
  // When a finished job finished (its score in a finished set): how the test makes time pass.
  void FinishedAgo(const std::string& set, const std::string& id, int64_t ago_ms) {
    auto r = queue_->connection().Command({"ZADD", JobQueue::KeyPrefix(queue_name_) + set, "XX",
                                           "CH", std::to_string(NowUnixMillis() - ago_ms), id});
    ASSERT_TRUE(r.ok() && r->AsInt() == 1) << set << " " << id;
  }

  std::unique_ptr<testing::QueueUnderTest> lane_;
  JobQueue* queue_ = nullptr;
  testing::QueueRecords* records_ = nullptr;
  std::string queue_name_;
  std::unique_ptr<ChildProcess> worker_;
};

TEST_F(RetentionCli, KeepCompletedKeepsTheNewestCompletedJobsAndDeletesTheRest) {
  StartWorker({"--keep-completed", "2"});
  std::vector<std::string> ids;
  for (int i = 0; i < 5; ++i) {
    ids.push_back(Submit("noop"));
    ASSERT_TRUE(Reaches(ids.back(), JobState::kCompleted)) << worker_->Stderr();
  }
  EXPECT_EQ(records_->Stats().completed, 2);
  for (int i = 0; i < 3; ++i) EXPECT_FALSE(Exists(ids[i])) << ids[i];
  EXPECT_TRUE(Exists(ids[3]));
  EXPECT_TRUE(Exists(ids[4]));
}

TEST_F(RetentionCli, KeepDeadKeepsTheNewestDeadAndCancelledJobsAndDeletesTheRest) {
  std::vector<std::string> cancelled;
  for (int i = 0; i < 3; ++i) {
    cancelled.push_back(Submit("noop"));
    auto r = testing::RunLanekeeper({"--redis", lane_->redis().url(), "--queue", queue_name_, "jobs",
                                     "cancel", cancelled.back()});
    ASSERT_EQ(r.exit_code, 0) << r.err;
  }
  std::vector<std::string> dead;
  for (int i = 0; i < 3; ++i) dead.push_back(Submit("fail"));
  // Nobody works on the queue yet: it keeps what it has.
  EXPECT_EQ(records_->Stats().cancelled, 3);
  StartWorker({"--keep-dead", "2"});
  // The first to die is gone by the time the third does: wait for the queue to be done.
  QueueStats stats;
  ASSERT_TRUE(Eventually([&] {
    stats = records_->Stats();
    return stats.waiting == 0 && stats.active == 0 && stats.delayed == 0;
  }, kSlack)) << worker_->Stderr();
  EXPECT_EQ(stats.dead, 2);
  EXPECT_EQ(stats.cancelled, 2);
  EXPECT_FALSE(Exists(dead[0]));
  EXPECT_TRUE(Exists(dead[1]) && Exists(dead[2]));
  EXPECT_FALSE(Exists(cancelled[0]));
  EXPECT_TRUE(Exists(cancelled[1]) && Exists(cancelled[2]));
}

TEST_F(RetentionCli, ByDefaultCompletedJobsLiveADayAndDeadAndCancelledOnesAWeek) {
  std::string completed_old = Submit("noop"), completed_new = Submit("noop");
  testing::RunNextJobByHand(*queue_, true);
  testing::RunNextJobByHand(*queue_, true);
  std::string dead_old = Submit("fail"), dead_new = Submit("fail");
  testing::RunNextJobByHand(*queue_, false);
  testing::RunNextJobByHand(*queue_, false);
  std::string cancelled_old = Submit("noop"), cancelled_new = Submit("noop");
  ASSERT_TRUE(queue_->Cancel(cancelled_old).ok());
  ASSERT_TRUE(queue_->Cancel(cancelled_new).ok());
  FinishedAgo("completed", completed_old, 25 * kHourMs);
  FinishedAgo("completed", completed_new, 23 * kHourMs);
  FinishedAgo("dead", dead_old, 8 * 24 * kHourMs);
  FinishedAgo("dead", dead_new, 6 * 24 * kHourMs);
  FinishedAgo("cancelled", cancelled_old, 8 * 24 * kHourMs);
  FinishedAgo("cancelled", cancelled_new, 6 * 24 * kHourMs);

  // Trimming happens when a job finishes: one more, run by a worker with default flags.
  StartWorker({});
  std::string trigger = Submit("noop");
  ASSERT_TRUE(Reaches(trigger, JobState::kCompleted)) << worker_->Stderr();
  EXPECT_FALSE(Exists(completed_old));
  EXPECT_TRUE(Exists(completed_new));
  EXPECT_FALSE(Exists(dead_old));
  EXPECT_TRUE(Exists(dead_new));
  EXPECT_FALSE(Exists(cancelled_old));
  EXPECT_TRUE(Exists(cancelled_new));
}

TEST(RetentionDefaults, AreThoseDocsQueueMdNamesAndJobsWorkHelpShowsThem) {
  QueueOptions r;
  EXPECT_EQ(r.keep_completed, 1000);
  EXPECT_EQ(r.completed_max_age, Millis(24 * kHourMs));
  EXPECT_EQ(r.keep_dead, 10000);
  EXPECT_EQ(r.dead_max_age, Millis(7 * 24 * kHourMs));
  auto help = testing::RunLanekeeper({"jobs", "work", "--help"});
  ASSERT_EQ(help.exit_code, 0) << help.err;
  EXPECT_NE(help.out.find("--keep-completed INT=1000 "), std::string::npos) << help.out;
  EXPECT_NE(help.out.find("--keep-dead INT=10000 "), std::string::npos) << help.out;
}

}  // namespace promises_retention_test
}  // namespace lk
