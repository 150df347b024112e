// The soak's Redis faults do what they claim: the proxy moves clients, a synced failover
// keeps every acknowledged write, a stale one really loses what the replica had not seen,
// and a restart under AOF keeps everything.
#include "tests/chaos/chaos_redis.h"

#include <gtest/gtest.h>

#include <thread>

#include "worker/redis_connection.h"

namespace lk::chaos {
namespace redis_test {

using std::chrono::milliseconds;

std::unique_ptr<RedisConnection> Connect(const std::string& url) {
  auto conn = RedisConnection::Connect(*ParseRedisUrl(url), milliseconds(2000));
  EXPECT_TRUE(conn.ok()) << conn.status().message();
  return conn.ok() ? std::move(conn).value() : nullptr;
}

// Acknowledged INCRs of key through url until n succeeded; returns the last value acked.
long long IncrTimes(const std::string& url, const std::string& key, int n) {
  auto conn = Connect(url);
  long long last = 0;
  for (int i = 0; i < n && conn; ++i) {
    auto reply = conn->Command({"INCR", key});
    if (reply.ok() && !reply->is_error()) last = reply->AsInt();
  }
  return last;
}

long long Value(const std::string& url, const std::string& key) {
  auto conn = Connect(url);
  if (!conn) return -1;
  auto reply = conn->Command({"GET", key});
  return reply.ok() ? reply->AsInt() : -1;
}

TEST(ChaosRedis, ASyncedFailoverMovesClientsAndKeepsEveryAcknowledgedWrite) {
  auto redis = ChaosRedis::Start(/*with_replica=*/true);
  ASSERT_TRUE(redis.ok()) << redis.status().message();
  const std::string url = (*redis)->url(), old_primary = (*redis)->primary_url();
  auto before = Connect(url);
  ASSERT_TRUE(before);
  long long acked = IncrTimes(url, "n", 500);
  ASSERT_EQ(acked, 500);
  ASSERT_TRUE((*redis)->Failover(FailoverKind::kSynced, milliseconds(0)).ok());
  EXPECT_NE((*redis)->primary_url(), old_primary);
  // The open connection was reset; a new one reaches the promoted replica, which has it all.
  EXPECT_FALSE(before->Command({"PING"}).ok());
  EXPECT_EQ(Value(url, "n"), 500);
  auto role = Connect(url)->Command({"ROLE"});
  ASSERT_TRUE(role.ok());
  ASSERT_FALSE(role->elements.empty());
  EXPECT_EQ(role->elements[0].str, "master");
  // And the new replica behind it follows: a second failover still keeps everything.
  IncrTimes(url, "n", 10);
  ASSERT_TRUE((*redis)->Failover(FailoverKind::kSynced, milliseconds(0)).ok());
  EXPECT_EQ(Value(url, "n"), 510);
}

TEST(ChaosRedis, AStaleFailoverLosesWhatTheLaggingReplicaNeverSaw) {
  auto redis = ChaosRedis::Start(/*with_replica=*/true);
  ASSERT_TRUE(redis.ok()) << redis.status().message();
  const std::string url = (*redis)->url();
  IncrTimes(url, "n", 100);
  // A client writes, each write acknowledged, until the failover resets its connection;
  // those acknowledged while the replica was stopped for the lag never reached it.
  auto writer_conn = Connect(url);
  ASSERT_TRUE(writer_conn);
  long long last_acked = 0;
  std::thread writer([&] {
    while (true) {
      auto reply = writer_conn->Command({"INCR", "n"});
      if (!reply.ok() || reply->is_error()) return;
      last_acked = reply->AsInt();
    }
  });
  Status s = (*redis)->Failover(FailoverKind::kStale, milliseconds(1000));
  writer.join();
  ASSERT_TRUE(s.ok()) << s.message();
  long long after = Value(url, "n");
  EXPECT_GE(after, 100);
  EXPECT_LT(after, last_acked) << "the stale failover lost nothing";
}

TEST(ChaosRedis, ARestartUnderAofKeepsEveryAcknowledgedWrite) {
  auto redis = ChaosRedis::Start(/*with_replica=*/false);
  ASSERT_TRUE(redis.ok()) << redis.status().message();
  ASSERT_EQ(IncrTimes((*redis)->url(), "n", 300), 300);
  ASSERT_TRUE((*redis)->RestartPrimary().ok());
  EXPECT_EQ(Value((*redis)->url(), "n"), 300);
}

}  // namespace redis_test
}  // namespace lk::chaos
