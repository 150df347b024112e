#include "tests/chaos/chaos_redis.h"

#include <thread>

#include "worker/redis_connection.h"

namespace lk::chaos {

namespace redis_detail {

using std::chrono::milliseconds;

StatusOr<RedisReply> Ask(const testing::RedisServer& server, std::vector<std::string> argv) {
  auto endpoint = ParseRedisUrl(server.url());
  if (!endpoint.ok()) return endpoint.status();
  auto conn = RedisConnection::Connect(*endpoint, milliseconds(2000));
  if (!conn.ok()) return conn.status();
  auto reply = (*conn)->Command(argv);
  if (!reply.ok()) return reply.status();
  if (reply->is_error()) return Status::Internal(argv[0] + " on port " +
                                                 std::to_string(server.port()) + ": " + reply->str);
  return reply;
}

// A field of INFO replication ("key:value" lines); -1 when absent or unreadable.
int64_t ReplicationField(const testing::RedisServer& server, const std::string& field) {
  auto info = Ask(server, {"INFO", "replication"});
  if (!info.ok()) return -1;
  auto at = info->str.find("\r\n" + field + ":");
  if (at == std::string::npos) return -1;
  return std::strtoll(info->str.c_str() + at + field.size() + 3, nullptr, 10);
}

bool LinkUp(const testing::RedisServer& replica) {
  auto info = Ask(replica, {"INFO", "replication"});
  return info.ok() && info->str.find("master_link_status:up") != std::string::npos;
}

// Until the replica has applied everything the primary wrote (offsets equal).
Status WaitCaughtUp(const testing::RedisServer& primary, const testing::RedisServer& replica,
                    milliseconds timeout) {
  auto deadline = std::chrono::steady_clock::now() + timeout;
  int64_t want = -1, have = -1;
  while (std::chrono::steady_clock::now() < deadline) {
    want = ReplicationField(primary, "master_repl_offset");
    have = LinkUp(replica) ? ReplicationField(replica, "slave_repl_offset") : -1;
    if (want >= 0 && have >= want) return Status::OK();
    std::this_thread::sleep_for(milliseconds(5));
  }
  return Status::Unavailable("replica on port " + std::to_string(replica.port()) +
                             " did not catch up within " + std::to_string(timeout.count()) +
                             " ms: offset " + std::to_string(have) + " of " +
                             std::to_string(want));
}

testing::RedisServerOptions Durable() {
  testing::RedisServerOptions o;
  o.appendonly = true;
  o.extra_args = "--appendfsync always";
  return o;
}

}  // namespace redis_detail

StatusOr<std::unique_ptr<ChaosRedis>> ChaosRedis::Start(bool with_replica) {
  std::unique_ptr<ChaosRedis> r(new ChaosRedis());
  auto primary = testing::RedisServer::Start(redis_detail::Durable());
  if (!primary.ok()) return primary.status();
  r->primary_ = std::move(primary).value();
  if (with_replica) LK_RETURN_IF_ERROR(r->StartReplica());
  auto proxy = SwitchingProxy::Start(r->primary_->port());
  if (!proxy.ok()) return proxy.status();
  r->proxy_ = std::move(proxy).value();
  return r;
}

std::string ChaosRedis::url() const {
  return "redis://127.0.0.1:" + std::to_string(proxy_->port()) + "/0";
}

// A fresh redis-server following the primary, started plain and then told REPLICAOF: its
// command line carries no --replicaof, so once promoted a restart keeps it a primary.
Status ChaosRedis::StartReplica() {
  auto replica = testing::RedisServer::Start(redis_detail::Durable());
  if (!replica.ok()) return replica.status();
  replica_ = std::move(replica).value();
  auto ok = redis_detail::Ask(*replica_, {"REPLICAOF", "127.0.0.1",
                                          std::to_string(primary_->port())});
  if (!ok.ok()) return ok.status();
  return redis_detail::WaitCaughtUp(*primary_, *replica_, std::chrono::seconds(30));
}

Status ChaosRedis::RestartPrimary() { return primary_->Restart(); }

Status ChaosRedis::Failover(FailoverKind kind, std::chrono::milliseconds lag) {
  if (!replica_) return Status::FailedPrecondition("no replica to fail over to");
  if (kind == FailoverKind::kSynced) {
    // Writers wait (their commands queue up) while the replica catches up; the pause ends
    // with the primary's death.
    auto paused = redis_detail::Ask(*primary_, {"CLIENT", "PAUSE", "10000", "WRITE"});
    if (!paused.ok()) return paused.status();
    LK_RETURN_IF_ERROR(redis_detail::WaitCaughtUp(*primary_, *replica_, std::chrono::seconds(8)));
  } else {
    // Cut off from the primary (not SIGSTOPped: the kernel would still buffer the stream
    // for it), the replica keeps the data it has while the primary takes writes for lag.
    auto detached = redis_detail::Ask(*replica_, {"REPLICAOF", "NO", "ONE"});
    if (!detached.ok()) return detached.status();
    std::this_thread::sleep_for(lag);
  }
  primary_->Kill();
  auto promoted = redis_detail::Ask(*replica_, {"REPLICAOF", "NO", "ONE"});
  if (!promoted.ok()) return promoted.status();
  proxy_->SwitchTo(replica_->port());
  primary_ = std::move(replica_);
  return StartReplica();
}

}  // namespace lk::chaos
