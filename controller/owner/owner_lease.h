// OwnerLease: who owns a queue's worker — one lease per queue in Redis, with fencing.
//
// Owns: the keys lk:{Q}:owner (hash, TTL) and lk:{Q}:epoch (a new one on every
// acquisition), and the highest epoch this process has seen on the queue: acquisitions
// take an epoch above it, so an epoch is never handed out twice, even by a Redis that lost
// writes (acquire_owner.lua). A lease that finds Redis behind what it saw reports it
// (regression()) and raises the fence. Does not own: the worker process; the caller
// passes epoch() to the worker, whose every claim checks it (worker/lua/claim_batch.lua),
// so a stale owner's worker is fenced even when the stale owner itself has not noticed.
// Not thread-safe.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <utility>

#include "worker/duration.h"
#include "worker/redis_connection.h"
#include "worker/status.h"

namespace lk {

// kWorker: a `jobs work` started by hand, which owns the queue itself (cmd/leased_worker.h).
enum class OwnerRole { kSupervisor, kAutopilot, kWorker };
const char* OwnerRoleName(OwnerRole r);

// The lease as stored.
struct OwnerRecord {
  std::string role;    // "supervisor" | "autopilot" | "worker"
  std::string holder;  // "host:pid"
  int64_t epoch = 0;
  int64_t since_ms = 0;  // when this holder took it
  int concurrency = 0;
  int max_rss_mb = 0;
  int64_t ttl_ms = -1;   // time left on the lease
};

inline constexpr Millis kDefaultOwnerTtl{15'000};
inline constexpr Millis kDefaultOwnerRenewEvery{5'000};

// "host:pid" for this process; host is $POD_NAME when set (in a pod), else the hostname.
std::string ThisHolder();

// Reads the current owner; nullopt when nobody holds the lease.
StatusOr<std::optional<OwnerRecord>> ReadOwner(RedisConnection& conn, const std::string& queue);

class OwnerLease {
 public:
  OwnerLease(RedisConnection& conn, std::string queue, OwnerRole role, std::string holder,
             int concurrency, int max_rss_mb, Millis ttl = kDefaultOwnerTtl);

  struct AcquireResult {
    bool acquired = false;
    OwnerRecord owner;  // acquired: ours; else the current holder's
  };
  // One attempt. On success epoch() is the new epoch, above every epoch seen so far.
  StatusOr<AcquireResult> TryAcquire();
  // true: still ours; false: lost (the epoch moved on or another holder has it), or Redis
  // lost writes: then regression() says what, and the caller takes the lease again
  // (TryAcquire) under a new epoch.
  StatusOr<bool> Renew();

  // Set when TryAcquire or Renew found the queue's epoch below one this process had seen:
  // Redis lost acknowledged writes. Cleared by TakeRegression().
  struct Regression {
    int64_t seen_epoch = 0;
    int64_t found_epoch = 0;  // 0 when unknown (a worker's claim noticed it first)
  };
  std::optional<Regression> TakeRegression() { return std::exchange(regression_, std::nullopt); }
  // The highest epoch seen on this queue: ours, a holder's, the one a renew found.
  int64_t highest_epoch_seen() const { return highest_seen_; }

  // The replication history of the Redis the lease talks to (INFO replication), read at
  // every acquisition and renewal; empty replid when INFO is not allowed.
  struct Replication {
    std::string replid, replid2;  // master_replid, master_replid2
    int64_t offset = 0;           // master_repl_offset
    int64_t second_offset = -1;   // second_repl_offset: up to where replid2's history holds
  };
  // Set when the replication id changed since the last reading (a failover or a restart):
  // what it was and what it is. A failover to a replica behind what this process saw is a
  // regression as well (regression(), and the renewal raises the fence). Cleared by
  // TakeHistoryChange().
  struct HistoryChange {
    Replication before, after;
    bool promoted_replica = false;  // after.replid2 == before.replid: a failover
    bool behind = false;            // ... to a replica that lacked writes this process saw
  };
  std::optional<HistoryChange> TakeHistoryChange() {
    return std::exchange(history_change_, std::nullopt);
  }
  // Compare-and-delete; a no-op when no longer ours.
  Status Release();

  // Synchronous replication (job_queue.h QueueOptions::replicas): an acquisition counts
  // only once n replicas have it (WAIT, up to timeout); with fewer the lease is released
  // again and TryAcquire fails naming n and how many acknowledged. 0 (the default): off.
  void RequireReplicas(int n, Millis timeout) {
    replicas_ = n;
    replica_timeout_ = timeout;
  }

  bool held() const { return held_; }
  RedisConnection& connection() { return conn_; }
  int64_t epoch() const { return epoch_; }
  const std::string& holder() const { return holder_; }

 private:
  RedisConnection& conn_;
  std::string queue_;
  OwnerRole role_;
  std::string holder_;
  int concurrency_;
  int max_rss_mb_;
  Millis ttl_;
  bool held_ = false;
  int64_t epoch_ = 0;
  int64_t since_ms_ = 0;
  // Reads INFO replication and compares it with replication_; true when Redis is behind
  // what this process saw (see the why-block in owner_lease.cc).
  StatusOr<bool> CheckReplication();

  int replicas_ = 0;
  Millis replica_timeout_{2'000};
  int64_t highest_seen_ = 0;
  std::optional<Regression> regression_;
  Replication replication_;
  std::optional<HistoryChange> history_change_;
};

}  // namespace lk
