// A `jobs work` started by hand owns its queue itself: exactly one worker claims whoever
// starts it. Real binary, real redis-server; who ran each job comes from
// tests/helpers/recorded_job (the parent pid of every run), who owned the queue from the
// lifecycle events.
#include <gtest/gtest.h>
#include <signal.h>

#include <fstream>
#include <set>

#include "tests/support/child_process.h"
#include "tests/support/job_batches.h"
#include "tests/support/queue_records.h"
#include "tests/support/redis_server.h"
#include "tests/support/run_log.h"
#include "tests/support/temp_dir.h"
#include "tests/support/worker_timeline.h"
#include "worker/exit_codes.h"
#include "worker/job_queue.h"

namespace lk {
namespace hand_started_test {

using namespace std::chrono_literals;
using testing::ChildProcess;
using testing::Eventually;

constexpr char kQueue[] = "hand";
constexpr auto kSlack = std::chrono::seconds(15);

class HandStartedWorker : public ::testing::Test {
 protected:
  void SetUp() override {
    auto server = testing::RedisServer::Start();
    ASSERT_TRUE(server.ok()) << server.status().message();
    redis_ = std::move(server).value();
    auto queue = OpenJobQueue(redis_->url(), kQueue);
    ASSERT_TRUE(queue.ok()) << queue.status().message();
    queue_ = std::move(queue).value();
    records_ = std::make_unique<testing::QueueRecords>(*queue_);
    ASSERT_TRUE(temp_.ok());
    dir_ = temp_.path();
    std::ofstream(Handlers()) << "handlers:\n  rec:\n    command: ["
                              << testing::TestHelperBinary("recorded_job") << ", " << dir_
                              << "/runs]\n";
  }
  void TearDown() override { testing::KillProcessesOfThisTest(); }

  std::string Handlers() const { return dir_ + "/handlers.yaml"; }
  testing::RunLog Runs() const { return testing::RunLog(dir_ + "/runs"); }

  std::unique_ptr<ChildProcess> StartWorker(std::vector<std::string> extra = {}) {
    std::vector<std::string> argv = {testing::LanekeeperBinary(), "jobs", "work", "--redis",
                                     redis_->url(), "--queue", kQueue, "--concurrency", "2",
                                     "--max-rss", "0", "--handlers", Handlers(),
                                     "--lease-ttl", "3s"};
    argv.insert(argv.end(), extra.begin(), extra.end());
    return std::make_unique<ChildProcess>(argv);
  }
  std::unique_ptr<ChildProcess> StartSupervisor() {
    return std::make_unique<ChildProcess>(std::vector<std::string>{
        testing::LanekeeperBinary(), "jobs", "supervisor", "--redis", redis_->url(), "--queue",
        kQueue, "--concurrency", "2", "--max-rss", "0", "--handlers", Handlers(), "--pid-file",
        dir_ + "/sup.pid", "--lease-ttl", "3s", "--lease-renew", "1s"});
  }

  bool OwnedBy(const std::string& role, pid_t pid) {
    return testing::OwnedBy(*records_, pid, kSlack, role);
  }
  std::vector<std::string> SubmitMany(int n) { return testing::SubmitMany(*queue_, "rec", n); }
  bool AllCompleted(const std::vector<std::string>& ids) {
    return testing::AllCompleted(*records_, ids, kSlack);
  }
  std::set<int> RanBy(const std::vector<std::string>& ids) { return testing::RanBy(Runs(), ids); }

  testing::TempDir temp_{"hand-started"};
  std::string dir_;
  std::unique_ptr<testing::RedisServer> redis_;
  std::unique_ptr<JobQueue> queue_;
  std::unique_ptr<testing::QueueRecords> records_;
};

TEST_F(HandStartedWorker, TwoOnOneQueueExactlyOneClaimsAndTheSecondExitsNamingTheOwner) {
  auto first = StartWorker();
  ASSERT_TRUE(OwnedBy("worker", first->pid())) << first->Stderr();
  auto second = StartWorker();
  EXPECT_EQ(second->Wait(kSlack), kExitUsage) << second->Stderr();
  const std::string holder = records_->Owner()->holder;
  EXPECT_NE(second->Stderr().find("lanekeeper: queue hand is owned by worker " + holder +
                                  " (epoch 1): a `jobs work` started by hand serves the queue"),
            std::string::npos)
      << second->Stderr();
  EXPECT_NE(second->Stderr().find("start this one with --standby"), std::string::npos);

  auto ids = SubmitMany(40);
  ASSERT_TRUE(AllCompleted(ids)) << first->Stderr();
  EXPECT_EQ(Runs().EachRanOnce(ids), "");
  EXPECT_EQ(RanBy(ids), std::set<int>{first->pid()});
  auto acquired = records_->Events("lease_acquired");
  ASSERT_EQ(acquired.size(), 1u);
  EXPECT_EQ(acquired[0].role, "worker");
  EXPECT_EQ(acquired[0].holder, holder);
  EXPECT_EQ(testing::FirstSecondWorker(records_->Events(), testing::OneAtATime::kStrict), "");
}

TEST_F(HandStartedWorker, AStandbyWaitsWhileTheFirstRunsAndTakesOverWhenItStops) {
  auto first = StartWorker();
  ASSERT_TRUE(OwnedBy("worker", first->pid())) << first->Stderr();
  auto second = StartWorker({"--standby"});
  ASSERT_TRUE(Eventually([&] { return !records_->Events("standby", "worker").empty(); }, kSlack))
      << second->Stderr();
  auto before = SubmitMany(20);
  ASSERT_TRUE(AllCompleted(before)) << first->Stderr();
  EXPECT_EQ(RanBy(before), std::set<int>{first->pid()});

  ASSERT_TRUE(first->Signal(SIGTERM));
  EXPECT_EQ(first->Wait(kSlack), kExitOk) << first->Stderr();
  ASSERT_TRUE(OwnedBy("worker", second->pid())) << second->Stderr();
  EXPECT_EQ(records_->Owner()->epoch, 2);
  auto after = SubmitMany(20);
  ASSERT_TRUE(AllCompleted(after)) << second->Stderr();
  EXPECT_EQ(RanBy(after), std::set<int>{second->pid()});
  EXPECT_EQ(Runs().EachRanOnce([&] {
              auto all = before;
              all.insert(all.end(), after.begin(), after.end());
              return all;
            }()),
            "");
  EXPECT_EQ(testing::FirstSecondWorker(records_->Events(), testing::OneAtATime::kStrict), "");
}

TEST_F(HandStartedWorker, ASupervisorStartedBesideItStandsByAndTakesOverWhenItStops) {
  auto worker = StartWorker();
  ASSERT_TRUE(OwnedBy("worker", worker->pid())) << worker->Stderr();
  auto sup = StartSupervisor();
  ASSERT_TRUE(Eventually([&] {
    auto standby = records_->Events("standby", "supervisor");
    return !standby.empty() && standby[0].fields["owner_role"] == "worker";
  }, kSlack)) << sup->Stderr();
  auto before = SubmitMany(20);
  ASSERT_TRUE(AllCompleted(before)) << worker->Stderr();
  EXPECT_EQ(RanBy(before), std::set<int>{worker->pid()});
  EXPECT_TRUE(records_->Events("worker_started", "supervisor").empty());
  auto doctor = testing::RunLanekeeper({"doctor", "--redis", redis_->url(), "--queue", kQueue});
  EXPECT_NE(doctor.out.find("a `jobs work` started by hand: it is fenced, but nobody restarts it"),
            std::string::npos)
      << doctor.out;

  ASSERT_TRUE(worker->Signal(SIGTERM));
  EXPECT_EQ(worker->Wait(kSlack), kExitOk) << worker->Stderr();
  ASSERT_TRUE(OwnedBy("supervisor", sup->pid())) << sup->Stderr();
  auto after = SubmitMany(5);
  ASSERT_TRUE(AllCompleted(after)) << sup->Stderr();
  EXPECT_EQ(RanBy(after).count(worker->pid()), 0u);
  EXPECT_EQ(testing::FirstSecondWorker(records_->Events(), testing::OneAtATime::kStrict), "");
  sup->Signal(SIGTERM);
  sup->Wait(kSlack);
}

// A worker paused (SIGSTOP) past its jobs' leases while it held claimed jobs it had not
// started: another worker takes the queue and runs those jobs; the paused one, woken,
// must not start them as well (it asks Redis first, finds the claims gone and drops them).
TEST_F(HandStartedWorker, AWorkerWokenFromSigstopRunsNoneOfItsBufferedJobsReclaimedMeanwhile) {
  std::vector<std::string> argv = {testing::LanekeeperBinary(), "jobs", "work", "--redis",
                                   redis_->url(), "--queue", kQueue, "--concurrency", "1",
                                   "--max-rss", "0", "--handlers", Handlers(),
                                   "--lease-ttl", "3s"};
  auto first = std::make_unique<ChildProcess>(argv);
  ASSERT_TRUE(OwnedBy("worker", first->pid())) << first->Stderr();
  // Fast jobs first: a worker that has seen them prefetches (buffers) claimed jobs.
  auto warm_up = testing::SubmitMany(*queue_, "noop", 40);
  ASSERT_TRUE(AllCompleted(warm_up)) << first->Stderr();

  // One claim: a sleep that holds the only executor, and behind it the recorded jobs,
  // buffered. Their 5 s leases run out while the worker is paused.
  std::vector<JobSpec> specs;
  JobSpec sleep;
  sleep.name = "sleep";
  sleep.payload = R"({"ms": 4000})";
  sleep.priority = -1;
  specs.push_back(sleep);
  for (int i = 0; i < 20; ++i) {
    JobSpec rec;
    rec.name = "rec";
    rec.lease = kMinLease;
    specs.push_back(rec);
  }
  auto submitted = queue_->EnqueueBatch(specs);
  ASSERT_TRUE(submitted.ok()) << submitted.status().message();
  std::vector<std::string> ids;
  for (size_t i = 1; i < submitted->size(); ++i) ids.push_back((*submitted)[i].id);
  ASSERT_TRUE(Eventually([&] { return records_->Stats().active == 21; }, kSlack))
      << first->Stderr();
  ASSERT_TRUE(first->Signal(SIGSTOP));
  ASSERT_FALSE(Runs().Started(ids.front())) << "a buffered job started before the pause";

  argv.push_back("--standby");
  auto second = std::make_unique<ChildProcess>(argv);
  ASSERT_TRUE(OwnedBy("worker", second->pid())) << second->Stderr();
  ASSERT_TRUE(AllCompleted(ids)) << second->Stderr();
  EXPECT_EQ(RanBy(ids), std::set<int>{second->pid()});

  ASSERT_TRUE(first->Signal(SIGCONT));
  EXPECT_EQ(first->Wait(kSlack), kExitFenced) << first->Stderr();
  EXPECT_EQ(RanBy(ids), std::set<int>{second->pid()}) << "the woken worker ran reclaimed jobs";
  EXPECT_EQ(Runs().EachRanOnce(ids), "");
  second->Signal(SIGTERM);
  second->Wait(kSlack);
}

}  // namespace hand_started_test
}  // namespace lk
