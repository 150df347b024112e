#include <gtest/gtest.h>
#include <unistd.h>

#include <fstream>

#include "controller/owner/lifecycle_events.h"
#include "controller/owner/owner_lease.h"
#include "controller/owner/pid_file.h"
#include "tests/support/child_process.h"
#include "tests/support/redis_server.h"
#include "tests/support/temp_dir.h"
#include "worker/job_queue.h"

namespace lk {
namespace {

class OwnerLeaseTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto server = testing::RedisServer::Start();
    ASSERT_TRUE(server.ok()) << server.status().message();
    server_ = std::move(server).value();
    auto ep = ParseRedisUrl(server_->url());
    auto conn = RedisConnection::Connect(*ep, Millis(2000));
    ASSERT_TRUE(conn.ok());
    conn_ = std::move(conn).value();
  }
  std::unique_ptr<testing::RedisServer> server_;
  std::unique_ptr<RedisConnection> conn_;
};

TEST_F(OwnerLeaseTest, OnlyOneOfTwoContendersAcquiresAndTheOtherSeesTheHolder) {
  OwnerLease a(*conn_, "q", OwnerRole::kSupervisor, "host:1", 4, 2048);
  OwnerLease b(*conn_, "q", OwnerRole::kAutopilot, "host:2", 1, 0);
  auto ra = a.TryAcquire();
  auto rb = b.TryAcquire();
  ASSERT_TRUE(ra.ok() && rb.ok());
  EXPECT_TRUE(ra->acquired);
  EXPECT_FALSE(rb->acquired);
  EXPECT_EQ(rb->owner.holder, "host:1");
  EXPECT_EQ(rb->owner.role, "supervisor");
  EXPECT_EQ(rb->owner.epoch, 1);
  auto owner = ReadOwner(*conn_, "q");
  ASSERT_TRUE(owner.ok() && owner->has_value());
  EXPECT_EQ((*owner)->concurrency, 4);
  EXPECT_EQ((*owner)->max_rss_mb, 2048);
  EXPECT_GT((*owner)->ttl_ms, 0);
}

TEST_F(OwnerLeaseTest, EveryAcquisitionIncrementsTheEpoch) {
  OwnerLease a(*conn_, "q", OwnerRole::kSupervisor, "host:1", 1, 0);
  ASSERT_TRUE(a.TryAcquire()->acquired);
  EXPECT_EQ(a.epoch(), 1);
  ASSERT_TRUE(a.Release().ok());
  OwnerLease b(*conn_, "q", OwnerRole::kSupervisor, "host:2", 1, 0);
  ASSERT_TRUE(b.TryAcquire()->acquired);
  EXPECT_EQ(b.epoch(), 2);
}

TEST_F(OwnerLeaseTest, AnExpiredLeaseIsTakenByTheNextContenderAndTheOldHolderLosesIt) {
  OwnerLease a(*conn_, "q", OwnerRole::kSupervisor, "host:1", 1, 0, Millis(200));
  ASSERT_TRUE(a.TryAcquire()->acquired);
  OwnerLease b(*conn_, "q", OwnerRole::kSupervisor, "host:2", 1, 0, Millis(200));
  bool taken = false;
  for (int i = 0; i < 100 && !taken; ++i) {
    taken = b.TryAcquire()->acquired;
    if (!taken) usleep(20'000);
  }
  ASSERT_TRUE(taken);
  EXPECT_EQ(b.epoch(), 2);
  auto renewed = a.Renew();
  ASSERT_TRUE(renewed.ok());
  EXPECT_FALSE(*renewed);
  // The loser's release must not delete the winner's lease.
  ASSERT_TRUE(a.Release().ok());
  auto owner = ReadOwner(*conn_, "q");
  ASSERT_TRUE(owner.ok() && owner->has_value());
  EXPECT_EQ((*owner)->holder, "host:2");
}

TEST_F(OwnerLeaseTest, AHolderWhoseKeyExpiredUnclaimedKeepsItsEpochOnRenew) {
  OwnerLease a(*conn_, "q", OwnerRole::kSupervisor, "host:1", 1, 0);
  ASSERT_TRUE(a.TryAcquire()->acquired);
  ASSERT_TRUE(conn_->Command({"DEL", JobQueue::KeyPrefix("q") + "owner"}).ok());
  auto renewed = a.Renew();
  ASSERT_TRUE(renewed.ok());
  EXPECT_TRUE(*renewed);
  auto owner = ReadOwner(*conn_, "q");
  ASSERT_TRUE(owner->has_value());
  EXPECT_EQ((*owner)->epoch, 1);
  EXPECT_EQ((*owner)->holder, "host:1");
}

TEST_F(OwnerLeaseTest, ReleaseDeletesOnlyOurOwnLease) {
  OwnerLease a(*conn_, "q", OwnerRole::kSupervisor, "host:1", 1, 0);
  ASSERT_TRUE(a.TryAcquire()->acquired);
  ASSERT_TRUE(a.Release().ok());
  auto owner = ReadOwner(*conn_, "q");
  ASSERT_TRUE(owner.ok());
  EXPECT_FALSE(owner->has_value());
}

TEST_F(OwnerLeaseTest, LifecycleEventsAreReadBackInOrderWithTheirDetails) {
  LifecycleEvents events(*conn_, "q", "supervisor", "host:1");
  ASSERT_TRUE(events.Emit("started").ok());
  ASSERT_TRUE(events.Emit("worker_exited", {{"code", "12"}, {"reason", "max_rss"}}).ok());
  auto read = ReadEvents(*conn_, "q", 0);
  ASSERT_TRUE(read.ok());
  ASSERT_EQ(read->size(), 2u);
  EXPECT_EQ((*read)[0].type, "started");
  EXPECT_EQ((*read)[1].type, "worker_exited");
  EXPECT_EQ((*read)[1].fields.at("code"), "12");
  EXPECT_EQ((*read)[1].fields.at("reason"), "max_rss");
  EXPECT_EQ((*read)[1].holder, "host:1");
}

TEST(PidFile, ALivePidFileIsAConflictNamingItsHolder) {
  testing::TempDir dir("pidfile");
  ASSERT_TRUE(dir.ok());
  std::string path = dir / "sup.pid";
  auto first = PidFile::Acquire(path);
  ASSERT_TRUE(first.ok());
  auto second = PidFile::Acquire(path);
  ASSERT_FALSE(second.ok());
  EXPECT_EQ(second.status().code(), Status::Code::kConflict);
  EXPECT_NE(second.status().message().find(std::to_string(getpid())), std::string::npos);
  (*first)->Release();
  EXPECT_NE(access(path.c_str(), F_OK), 0);
}

TEST(PidFile, AStalePidFileOfADeadProcessIsTakenOver) {
  testing::TempDir dir("pidfile");
  ASSERT_TRUE(dir.ok());
  std::string path = dir / "sup.pid";
  pid_t gone = 0;
  {
    testing::ChildProcess child({"true"});
    ASSERT_TRUE(child.Wait(std::chrono::seconds(10)).has_value());  // exited and reaped
    gone = child.pid();
  }
  std::ofstream(path) << gone << "\n";
  auto taken = PidFile::Acquire(path);
  ASSERT_TRUE(taken.ok()) << taken.status().message();
  std::ifstream in(path);
  long pid = 0;
  in >> pid;
  EXPECT_EQ(pid, getpid());
}

}  // namespace
}  // namespace lk
