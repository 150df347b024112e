// Fencing never goes backwards, even on a Redis that lost acknowledged writes: real
// redis-servers restarted without persistence or from an older snapshot, real supervisors
// paused with SIGSTOP, real workers. Who ran each job comes from tests/helpers/recorded_job.
#include <gtest/gtest.h>
#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <set>

#include "controller/owner/owner_lease.h"
#include "tests/support/child_process.h"
#include "tests/support/job_batches.h"
#include "tests/support/queue_records.h"
#include "tests/support/redis_server.h"
#include "tests/support/run_log.h"
#include "tests/support/temp_dir.h"
#include "worker/job_queue.h"

namespace lk {
namespace fencing_test {

using namespace std::chrono_literals;
using testing::ChildProcess;
using testing::Eventually;

constexpr char kQueue[] = "fenced";
constexpr auto kSlack = std::chrono::seconds(20);

class Fencing : public ::testing::Test {
 protected:
  void SetUp() override {
    auto server = testing::RedisServer::Start();
    ASSERT_TRUE(server.ok()) << server.status().message();
    redis_ = std::move(server).value();
    queue_ = Open();
    ASSERT_TRUE(queue_);
    records_ = std::make_unique<testing::QueueRecords>(*queue_);
    ASSERT_TRUE(temp_.ok());
    dir_ = temp_.path();
    std::ofstream(dir_ + "/handlers.yaml")
        << "handlers:\n  rec:\n    command: [" << testing::TestHelperBinary("recorded_job")
        << ", " << dir_ << "/runs]\n";
  }
  void TearDown() override { testing::KillProcessesOfThisTest(); }

  std::unique_ptr<JobQueue> Open() {
    auto q = OpenJobQueue(redis_->url(), kQueue);
    EXPECT_TRUE(q.ok()) << q.status().message();
    return q.ok() ? std::move(q).value() : nullptr;
  }
  // Restarts the server and reconnects the test's own connection.
  void RestartRedis() {
    ASSERT_TRUE(redis_->Restart().ok());
    ASSERT_TRUE(queue_->connection().Reconnect().ok());
  }
  std::string Get(const std::string& key) {
    auto r = queue_->connection().Command({"GET", JobQueue::KeyPrefix(kQueue) + key});
    return r.ok() ? r->str : "";
  }

  std::unique_ptr<ChildProcess> StartSupervisor(const std::string& name) {
    return std::make_unique<ChildProcess>(std::vector<std::string>{
        testing::LanekeeperBinary(), "jobs", "supervisor", "--redis", redis_->url(), "--queue",
        kQueue, "--concurrency", "1", "--max-rss", "0", "--handlers", dir_ + "/handlers.yaml",
        "--pid-file", dir_ + "/" + name + ".pid", "--lease-ttl", "2s", "--lease-renew",
        "500ms"});
  }
  bool OwnedBy(pid_t pid) { return testing::OwnedBy(*records_, pid, kSlack); }
  std::vector<std::string> SubmitMany(JobQueue& q, int n) {
    return testing::SubmitMany(q, "rec", n);
  }
  bool AllCompleted(const std::vector<std::string>& ids) {
    return testing::AllCompleted(*records_, ids, kSlack);
  }
  std::set<int> RanBy(const std::vector<std::string>& ids) {
    return testing::RanBy(testing::RunLog(dir_ + "/runs"), ids);
  }
  // The worker pid the holder with this pid started last.
  int WorkerOf(pid_t owner) {
    int pid = 0;
    for (auto& e : records_->Events("worker_started")) {
      if (e.holder.ends_with(":" + std::to_string(owner))) pid = std::stoi(e.fields["worker_pid"]);
    }
    return pid;
  }

  testing::TempDir temp_{"fencing"};
  std::string dir_;
  std::unique_ptr<testing::RedisServer> redis_;
  std::unique_ptr<JobQueue> queue_;
  std::unique_ptr<testing::QueueRecords> records_;
};

TEST_F(Fencing, AfterARestartWithoutPersistenceTheLeaseTakesAnEpochAboveEveryOneSeen) {
  OwnerLease lease(queue_->connection(), kQueue, OwnerRole::kSupervisor, "host:1", 1, 0);
  ASSERT_TRUE(lease.TryAcquire()->acquired);
  ASSERT_EQ(lease.epoch(), 1);
  RestartRedis();  // no AOF, no RDB: everything is gone, the epoch with it
  auto renewed = lease.Renew();
  ASSERT_TRUE(renewed.ok()) << renewed.status().message();
  EXPECT_FALSE(*renewed);
  auto regression = lease.TakeRegression();
  ASSERT_TRUE(regression.has_value());
  EXPECT_EQ(regression->seen_epoch, 1);
  EXPECT_EQ(Get("epoch"), "2") << "the fence is raised past the lost epoch at once";
  auto again = lease.TryAcquire();
  ASSERT_TRUE(again.ok() && again->acquired);
  EXPECT_EQ(lease.epoch(), 3);
  auto claim = queue_->ClaimBatch(1, 1);
  ASSERT_TRUE(claim.ok());
  EXPECT_EQ(claim->outcome, ClaimResult::Outcome::kStaleEpoch);
  auto record = queue_->Regression();
  ASSERT_TRUE(record.ok() && record->has_value());
  EXPECT_EQ((*record)->lost_epoch, 1);
  EXPECT_EQ((*record)->what, "the owner epoch was 0, below 1 already used");
}

TEST_F(Fencing, AFreshOwnerTakesMaxOfStoredAndItsFloorPlusOneAndSaysWhenRedisWasBehind) {
  OwnerLease a(queue_->connection(), kQueue, OwnerRole::kSupervisor, "host:1", 1, 0);
  OwnerLease b(queue_->connection(), kQueue, OwnerRole::kSupervisor, "host:2", 1, 0);
  ASSERT_TRUE(a.TryAcquire()->acquired);
  ASSERT_TRUE(a.Release().ok());
  ASSERT_TRUE(b.TryAcquire()->acquired);
  ASSERT_EQ(b.epoch(), 2);
  ASSERT_TRUE(a.TryAcquire().ok());  // a standby: sees epoch 2 held by b
  EXPECT_EQ(a.highest_epoch_seen(), 2);
  RestartRedis();
  auto taken = a.TryAcquire();
  ASSERT_TRUE(taken.ok() && taken->acquired);
  EXPECT_EQ(a.epoch(), 3) << "max(0 found, 2 seen) + 1";
  auto regression = a.TakeRegression();
  ASSERT_TRUE(regression.has_value());
  EXPECT_EQ(regression->seen_epoch, 2);
  EXPECT_EQ(regression->found_epoch, 0);
}

TEST_F(Fencing, AWorkerAboveTheQueuesEpochRaisesTheFenceAndJobIdsNeverRepeat) {
  ASSERT_TRUE(queue_->connection().Command({"SET", JobQueue::KeyPrefix(kQueue) + "epoch", "2"}).ok());
  auto before = SubmitMany(*queue_, 5);
  auto worker = Open();
  auto claimed = worker->ClaimBatch(5, 2);
  ASSERT_TRUE(claimed.ok());
  ASSERT_EQ(claimed->jobs.size(), 5u);
  EXPECT_EQ(worker->highest_id_seen(), 5);
  // Redis comes back from before any of it (epoch 1, no jobs).
  RestartRedis();
  ASSERT_TRUE(queue_->connection().Command({"SET", JobQueue::KeyPrefix(kQueue) + "epoch", "1"}).ok());
  ASSERT_TRUE(worker->connection().Reconnect().ok());
  auto fenced = worker->ClaimBatch(5, 2);
  ASSERT_TRUE(fenced.ok());
  EXPECT_EQ(fenced->outcome, ClaimResult::Outcome::kRegressed);
  EXPECT_EQ(fenced->current_epoch, 3);
  EXPECT_EQ(Get("epoch"), "3");
  EXPECT_EQ(Get("seq"), "5") << "the worker's floor puts the id sequence back";
  // A submitter that never saw those ids gets new ones, and an epoch-1 worker nothing.
  auto after = SubmitMany(*Open(), 1);
  EXPECT_EQ(after, std::vector<std::string>{"6"});
  auto stale = queue_->ClaimBatch(5, 1);
  ASSERT_TRUE(stale.ok());
  EXPECT_EQ(stale->outcome, ClaimResult::Outcome::kStaleEpoch);
  // A submitter that saw them puts the sequence back by itself.
  RestartRedis();
  EXPECT_EQ(SubmitMany(*queue_, 1), std::vector<std::string>{"6"});
  auto record = queue_->Regression();
  ASSERT_TRUE(record.ok() && record->has_value());
  EXPECT_EQ((*record)->by, "a submitter");
}

// A primary and its replica, each on a unix socket, and the path clients use pointing at
// the primary: "moving the clients" in a failover is re-pointing that path.
class FencingFailover : public Fencing {
 protected:
  void SetUp() override {
    Fencing::SetUp();
    // Writing to the killed primary's socket must be an error value, as in every role.
    ::signal(SIGPIPE, SIG_IGN);
    auto p = testing::RedisServer::Start({.extra_args = "--unixsocket " + dir_ + "/p.sock"});
    ASSERT_TRUE(p.ok()) << p.status().message();
    primary_ = std::move(p).value();
    auto r = testing::RedisServer::Start(
        {.extra_args = "--unixsocket " + dir_ + "/r.sock --replicaof 127.0.0.1 " +
                       std::to_string(primary_->port())});
    ASSERT_TRUE(r.ok()) << r.status().message();
    replica_ = std::move(r).value();
    ASSERT_EQ(::symlink((dir_ + "/p.sock").c_str(), Socket().c_str()), 0);
    RedisEndpoint ep;
    ep.unix_path = Socket();
    auto c = RedisConnection::Connect(ep, 2s);
    ASSERT_TRUE(c.ok()) << c.status().message();
    conn_ = std::move(c).value();
  }
  std::string Socket() const { return dir_ + "/redis.sock"; }

  static std::string Info(testing::RedisServer& server, const std::string& key) {
    RedisEndpoint ep;
    ep.port = server.port();
    auto c = RedisConnection::Connect(ep, 2s);
    if (!c.ok()) return "";
    auto info = (*c)->Command({"INFO", "replication"});
    if (!info.ok()) return "";
    auto at = info->str.find(key + ":");
    if (at == std::string::npos) return "";
    at += key.size() + 1;
    return info->str.substr(at, info->str.find_first_of("\r\n", at) - at);
  }
  // Waits until the replica has copied everything the primary has.
  bool ReplicaCaughtUp() {
    return Eventually([&] {
      std::string done = Info(*replica_, "master_repl_offset");
      return Info(*replica_, "master_link_status") == "up" && !done.empty() &&
             done == Info(*primary_, "master_repl_offset");
    }, kSlack);
  }
  bool Promote(testing::RedisServer& server) {
    RedisEndpoint ep;
    ep.port = server.port();
    auto c = RedisConnection::Connect(ep, 2s);
    if (!c.ok()) return false;
    auto r = (*c)->Command({"REPLICAOF", "NO", "ONE"});
    return r.ok() && !r->is_error();
  }
  // Clients reconnecting from now on reach the replica; the primary dies.
  void MoveClientsToReplica() {
    ASSERT_EQ(::symlink((dir_ + "/r.sock").c_str(), (dir_ + "/next.sock").c_str()), 0);
    ASSERT_EQ(::rename((dir_ + "/next.sock").c_str(), Socket().c_str()), 0);
    primary_->Kill();
  }

  std::unique_ptr<testing::RedisServer> primary_, replica_;
  std::unique_ptr<RedisConnection> conn_;
};

TEST_F(FencingFailover, AFailoverToACaughtUpReplicaIsDetectedByReplicationIdAndKeepsTheLease) {
  OwnerLease lease(*conn_, kQueue, OwnerRole::kSupervisor, "host:1", 1, 0);
  ASSERT_TRUE(lease.TryAcquire()->acquired);
  ASSERT_TRUE(ReplicaCaughtUp());
  ASSERT_TRUE(*lease.Renew());
  ASSERT_TRUE(ReplicaCaughtUp());
  const std::string old_id = Info(*primary_, "master_replid");
  ASSERT_TRUE(Promote(*replica_));
  MoveClientsToReplica();
  EXPECT_FALSE(lease.Renew().ok()) << "the primary is gone";
  ASSERT_TRUE(conn_->Reconnect().ok());
  auto renewed = lease.Renew();
  ASSERT_TRUE(renewed.ok()) << renewed.status().message();
  EXPECT_TRUE(*renewed) << "the replica had every write: the lease and its epoch hold";
  auto change = lease.TakeHistoryChange();
  ASSERT_TRUE(change.has_value()) << "the failover is seen by its replication id";
  EXPECT_TRUE(change->promoted_replica);
  EXPECT_FALSE(change->behind);
  EXPECT_EQ(change->before.replid, old_id);
  EXPECT_EQ(change->after.replid2, old_id);
  EXPECT_FALSE(lease.TakeRegression().has_value());
}

TEST_F(FencingFailover, AFailoverToAReplicaBehindWhatTheOwnerSawRaisesTheFence) {
  OwnerLease lease(*conn_, kQueue, OwnerRole::kSupervisor, "host:1", 1, 0);
  ASSERT_TRUE(lease.TryAcquire()->acquired);
  ASSERT_TRUE(ReplicaCaughtUp());
  // The replica stops copying (promoted early, as a partitioned one would be); the primary
  // acknowledges more writes, and the owner sees them.
  ASSERT_TRUE(Promote(*replica_));
  for (int i = 0; i < 3; ++i) ASSERT_TRUE(*lease.Renew());
  MoveClientsToReplica();
  EXPECT_FALSE(lease.Renew().ok());
  ASSERT_TRUE(conn_->Reconnect().ok());
  auto renewed = lease.Renew();
  ASSERT_TRUE(renewed.ok()) << renewed.status().message();
  EXPECT_FALSE(*renewed);
  auto change = lease.TakeHistoryChange();
  ASSERT_TRUE(change.has_value());
  EXPECT_TRUE(change->behind);
  ASSERT_TRUE(lease.TakeRegression().has_value());
  auto again = lease.TryAcquire();
  ASSERT_TRUE(again.ok() && again->acquired);
  EXPECT_EQ(lease.epoch(), 3) << "raised past 1 by the renewal, then taken above it";
  auto record = conn_->Command({"HGET", JobQueue::KeyPrefix(kQueue) + "regressed", "what"});
  ASSERT_TRUE(record.ok());
  EXPECT_TRUE(record->str.starts_with("a failover to a replica that had copied up to offset "))
      << record->str;
}

TEST_F(FencingFailover, WaitForOneReplicaSucceedsWithAReplicaAndFailsClearlyWithout) {
  ASSERT_TRUE(ReplicaCaughtUp());
  QueueOptions options;
  options.replicas = 1;
  options.replica_timeout = Millis(500);
  auto synced = OpenJobQueue("unix://" + Socket(), kQueue, options);
  ASSERT_TRUE(synced.ok()) << synced.status().message();
  JobSpec spec;
  spec.name = "rec";
  auto id = (*synced)->Enqueue(spec);
  ASSERT_TRUE(id.ok()) << id.status().message();
  OwnerLease lease((*synced)->connection(), kQueue, OwnerRole::kSupervisor, "host:1", 1, 0);
  lease.RequireReplicas(1, Millis(500));
  auto taken = lease.TryAcquire();
  ASSERT_TRUE(taken.ok() && taken->acquired) << taken.status().message();

  replica_->Kill();  // no replica left to acknowledge
  auto lonely = (*synced)->Enqueue(spec);
  ASSERT_FALSE(lonely.ok());
  EXPECT_TRUE(lonely.status().message().starts_with(
      "only 0 of 1 replicas (--redis-replicas, spec.redis.replicas) acknowledged job 2 "
      "submitted within 500ms at unix://"))
      << lonely.status().message();
  EXPECT_NE(lonely.status().message().find("it is on the primary only, and a failover now could "
                                           "lose it; check that the replicas are connected"),
            std::string::npos);
  ASSERT_TRUE(lease.Release().ok());
  OwnerLease other((*synced)->connection(), kQueue, OwnerRole::kSupervisor, "host:2", 1, 0);
  other.RequireReplicas(1, Millis(500));
  auto refused = other.TryAcquire();
  ASSERT_FALSE(refused.ok());
  EXPECT_NE(refused.status().message().find("acknowledged the owner lease of queue fenced (epoch 2)"),
            std::string::npos)
      << refused.status().message();
  auto owner = (*synced)->connection().Command({"EXISTS", JobQueue::KeyPrefix(kQueue) + "owner"});
  ASSERT_TRUE(owner.ok());
  EXPECT_EQ(owner->integer, 0) << "an acquisition the replicas did not get is given back";
}

// The scenario: owner A at epoch 1 is paused; B takes over at epoch 2 and runs
// jobs; Redis is replaced by one restored from a snapshot taken before B; A wakes.
TEST_F(Fencing, AStaleSnapshotUnderAPausedOwnerNeverLetsAnOldEpochClaimOrAJobIdRepeat) {
  auto a = StartSupervisor("a");
  ASSERT_TRUE(OwnedBy(a->pid())) << a->Stderr();
  auto first = SubmitMany(*queue_, 4);
  ASSERT_TRUE(AllCompleted(first)) << a->Stderr();
  auto saved = queue_->connection().Command({"SAVE"});
  ASSERT_TRUE(saved.ok() && !saved->is_error());
  std::filesystem::copy_file(redis_->dir() + "/dump.rdb", dir_ + "/old.rdb");
  const int a_worker = WorkerOf(a->pid());
  ASSERT_GT(a_worker, 0);
  ASSERT_TRUE(a->Signal(SIGSTOP));
  ASSERT_TRUE(testing::SignalProcess(a_worker, SIGSTOP));

  auto b = StartSupervisor("b");
  ASSERT_TRUE(OwnedBy(b->pid())) << b->Stderr();
  ASSERT_EQ(records_->Owner()->epoch, 2);
  auto second = SubmitMany(*queue_, 16);
  ASSERT_TRUE(AllCompleted(second)) << b->Stderr();
  const int b_worker = WorkerOf(b->pid());
  EXPECT_EQ(RanBy(second), std::set<int>{b_worker});
  const int64_t last_id = std::stoll(second.back());

  // The primary is lost; what comes back is the snapshot from before B (epoch 1, ids 1-4).
  redis_->Kill();
  std::filesystem::copy_file(dir_ + "/old.rdb", redis_->dir() + "/dump.rdb",
                             std::filesystem::copy_options::overwrite_existing);
  RestartRedis();
  ASSERT_TRUE(Eventually([&] { return !records_->Events("redis_regressed").empty(); }, kSlack))
      << b->Stderr();
  ASSERT_TRUE(Eventually([&] {
    auto owner = records_->Owner();
    return owner && owner->epoch > 2;
  }, kSlack)) << b->Stderr();
  ASSERT_TRUE(a->Signal(SIGCONT));
  ASSERT_TRUE(testing::SignalProcess(a_worker, SIGCONT));

  auto third = SubmitMany(*Open(), 8);  // a submitter that saw none of the ids
  for (const auto& id : third) EXPECT_GT(std::stoll(id), last_id) << "job id reused";
  ASSERT_TRUE(AllCompleted(third)) << b->Stderr() << a->Stderr();
  std::set<int> ran = RanBy(third);
  EXPECT_EQ(ran.count(a_worker), 0u) << "the paused owner's worker (epoch 1) claimed";
  EXPECT_EQ(ran.count(b_worker), 0u) << "a worker of epoch 2 claimed after the regression";
  // Every worker that ran them started under an epoch above 2.
  std::map<int, int64_t> epoch_of;
  for (auto& e : records_->Events("worker_started")) {
    epoch_of[std::stoi(e.fields["worker_pid"])] = std::stoll(e.fields["epoch"]);
  }
  for (int pid : ran) EXPECT_GT(epoch_of[pid], 2) << "worker " << pid;
  EXPECT_TRUE(Eventually([&] { return !testing::ProcessAlive(a_worker); }, kSlack))
      << "the paused owner's worker is fenced and exits";

  auto doctor = testing::RunLanekeeper({"doctor", "--redis", redis_->url(), "--queue", kQueue});
  EXPECT_NE(doctor.out.find("redis: fail  Redis at redis://127.0.0.1:" + std::to_string(redis_->port()) +
                                "/0 lost acknowledged writes (failover to a stale "
                                "replica, or a restart without persistence): the owner epoch was 1, "
                                "below 2 already used"),
            std::string::npos)
      << doctor.out;
  a->Signal(SIGTERM);
  b->Signal(SIGTERM);
  a->Wait(kSlack);
  b->Wait(kSlack);
}

}  // namespace fencing_test
}  // namespace lk
