// The owned-worker loop the supervisor and the autopilot share, against a real Redis (the
// lease is Redis's) with a fake spawner and a fake clock: no process is started, nothing
// sleeps. What it promises: a new owner starts its worker in the pass it takes the lease;
// it never takes the lease while a worker of its own still runs; losing the lease drains
// without blocking; a drain that overruns is killed; crashes back off.
#include <gtest/gtest.h>
#include <signal.h>

#include "controller/owner/lifecycle_events.h"
#include "controller/owner/owned_worker.h"
#include "controller/owner/owner_lease.h"
#include "tests/support/fake_clock.h"
#include "tests/support/fake_spawner.h"
#include "tests/support/queue_records.h"
#include "tests/support/redis_server.h"
#include "worker/job_queue.h"

namespace lk {
namespace owned_worker_test {

using namespace std::chrono_literals;
using testing::FakeClock;
using testing::FakeSpawner;

class OwnedWorkerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto server = testing::RedisServer::Start();
    ASSERT_TRUE(server.ok()) << server.status().message();
    server_ = std::move(server).value();
    auto q = OpenJobQueue(server_->url(), "ow");
    ASSERT_TRUE(q.ok()) << q.status().message();
    queue_ = std::move(q).value();
    records_ = std::make_unique<testing::QueueRecords>(*queue_);
    lease_ = std::make_unique<OwnerLease>(queue_->connection(), "ow", OwnerRole::kSupervisor,
                                          "test:1", 2, 0, Millis(15'000));
    events_ = std::make_unique<LifecycleEvents>(queue_->connection(), "ow", "supervisor",
                                                "test:1");
    OwnedWorkerOptions o;
    o.queue = "ow";
    o.redis_url = server_->url();
    o.worker_binary = "/opt/lanekeeper/bin/lanekeeper";
    o.drain_timeout = Millis(5'000);
    o.restart.jitter = 0;
    o.clock = &clock_;
    o.spawner = &spawner_;
    worker_ = std::make_unique<OwnedWorker>(o, *lease_, *events_);
  }

  pid_t LastPid() { return spawner_.spawned.empty() ? 0 : spawner_.spawned.back().pid; }

  std::unique_ptr<testing::RedisServer> server_;
  std::unique_ptr<JobQueue> queue_;
  std::unique_ptr<testing::QueueRecords> records_;
  FakeClock clock_;
  FakeSpawner spawner_;
  std::unique_ptr<OwnerLease> lease_;
  std::unique_ptr<LifecycleEvents> events_;
  std::unique_ptr<OwnedWorker> worker_;
};

TEST_F(OwnedWorkerTest, ANewOwnerStartsItsWorkerInThePassItTakesTheLease) {
  OwnedWorkerPass pass = worker_->Tend();
  EXPECT_TRUE(pass.acquired);
  ASSERT_EQ(spawner_.spawned.size(), 1u);
  const auto& argv = spawner_.spawned[0].argv;
  std::string line;
  for (const auto& a : argv) line += a + " ";
  EXPECT_NE(line.find("jobs work --queue ow --concurrency 1 --max-rss 0 --epoch 1"),
            std::string::npos) << line;
  EXPECT_EQ(line.find(server_->url()), std::string::npos) << "the URL goes in the environment";
  EXPECT_EQ(spawner_.spawned[0].env.at("LANEKEEPER_REDIS_URL"), server_->url());
  EXPECT_EQ(records_->Events("worker_started").size(), 1u);
}

TEST_F(OwnedWorkerTest, LosingTheLeaseDrainsWithoutBlockingAndTakesItOnlyOnceTheWorkerIsGone) {
  worker_->Tend();
  pid_t first = LastPid();
  // Someone else takes over: the lease expires and another owner takes it (epoch 2).
  ASSERT_TRUE(queue_->connection().Command({"DEL", JobQueue::KeyPrefix("ow") + "owner"}).ok());
  OwnerLease other(queue_->connection(), "ow", OwnerRole::kSupervisor, "other:2", 1, 0);
  ASSERT_TRUE(other.TryAcquire().ok());
  clock_.Advance(Millis(5'000));  // renewal due
  OwnedWorkerPass pass = worker_->Tend();
  EXPECT_TRUE(pass.lost);
  EXPECT_TRUE(worker_->draining());
  EXPECT_EQ(spawner_.Signals(first), std::vector<int>{SIGTERM});
  // While it drains, passes return at once, and the lease (free again) is not taken.
  ASSERT_TRUE(other.Release().ok());
  for (int i = 0; i < 3; ++i) {
    clock_.Advance(Millis(600));
    worker_->Tend();
  }
  EXPECT_EQ(spawner_.spawned.size(), 1u);
  EXPECT_FALSE(worker_->held());
  // Gone: its end says why, and only now is the lease taken again (epoch 3).
  spawner_.Exit(first, ProcessExit{0, false, 0, true});
  clock_.Advance(Millis(600));
  pass = worker_->Tend();
  ASSERT_TRUE(pass.ended);
  EXPECT_EQ(pass.ended->reason, "lease lost");
  EXPECT_TRUE(pass.acquired);
  EXPECT_EQ(worker_->epoch(), 3);
  ASSERT_EQ(spawner_.spawned.size(), 2u);
}

TEST_F(OwnedWorkerTest, ADrainThatOverrunsItsTimeoutIsKilled) {
  worker_->Tend();
  pid_t pid = LastPid();
  worker_->BeginDrain("max_rss");
  clock_.Advance(Millis(4'999));
  worker_->Tend();
  EXPECT_EQ(spawner_.Signals(pid), std::vector<int>{SIGTERM});
  clock_.Advance(Millis(1));
  worker_->Tend();
  EXPECT_EQ(spawner_.Signals(pid), (std::vector<int>{SIGTERM, SIGKILL}));
  OwnedWorkerPass pass = worker_->Tend();
  ASSERT_TRUE(pass.ended);
  EXPECT_EQ(pass.ended->reason, "max_rss");
  EXPECT_TRUE(pass.ended->asked);
  EXPECT_EQ(spawner_.spawned.size(), 2u) << "drained on purpose: started again at once";
}

TEST_F(OwnedWorkerTest, CrashesBackOffAndFencedOrMaxRssExitsDoNot) {
  worker_->Tend();
  std::vector<int64_t> crash_delays;
  for (int i = 0; i < 3; ++i) {
    clock_.Advance(Millis(100));
    spawner_.Exit(LastPid(), ProcessExit{1, false, 0, true});
    size_t before = spawner_.spawned.size();
    OwnedWorkerPass pass = worker_->Tend();
    ASSERT_TRUE(pass.ended);
    EXPECT_EQ(pass.ended->reason, "crash");
    int64_t waited = 0;
    while (spawner_.spawned.size() == before && waited < 120'000) {
      clock_.Advance(Millis(250));
      waited += 250;
      worker_->Tend();
    }
    crash_delays.push_back(waited);
  }
  EXPECT_EQ(crash_delays, (std::vector<int64_t>{1'000, 2'000, 4'000}));
  auto crashes = records_->Events("crash");
  ASSERT_EQ(crashes.size(), 3u);
  EXPECT_EQ(crashes[2].fields["backoff_ms"], "4000");
  // Exit 12 (max RSS) starts again at once; exit 13 (fenced) after a second.
  spawner_.Exit(LastPid(), ProcessExit{12, false, 0, true});
  size_t before = spawner_.spawned.size();
  worker_->Tend();
  EXPECT_EQ(spawner_.spawned.size(), before + 1);
  spawner_.Exit(LastPid(), ProcessExit{13, false, 0, true});
  worker_->Tend();
  EXPECT_EQ(spawner_.spawned.size(), before + 1);
  clock_.Advance(Millis(1'000));
  worker_->Tend();
  EXPECT_EQ(spawner_.spawned.size(), before + 2);
  EXPECT_EQ(records_->Events("crash").size(), 3u);
}

TEST_F(OwnedWorkerTest, AWorkerThatCannotStartIsACrashWithItsBackoff) {
  spawner_.fail_spawn = Status::Internal("cannot start /opt/lanekeeper/bin/lanekeeper: No such file");
  OwnedWorkerPass pass = worker_->Tend();
  ASSERT_TRUE(pass.ended);
  EXPECT_EQ(pass.ended->reason, "crash");
  EXPECT_EQ(pass.ended->exit.code, 127);
  clock_.Advance(Millis(999));
  worker_->Tend();
  EXPECT_TRUE(spawner_.spawned.empty());
  clock_.Advance(Millis(1));
  worker_->Tend();
  EXPECT_EQ(spawner_.spawned.size(), 1u);
}

}  // namespace owned_worker_test
}  // namespace lk
