// OwnerLease: who owns a queue's worker — one lease per queue in Redis, with fencing.
//
// Owns: the keys lk:{Q}:owner (hash, TTL) and lk:{Q}:epoch (incremented on every
// acquisition). Does not own: the worker process; the caller passes epoch() to the worker,
// whose every claim checks it (worker/lua/claim_batch.lua), so a stale owner's worker is
// fenced even when the stale owner itself has not noticed. Not thread-safe.
#pragma once

#include <cstdint>
#include <optional>
#include <string>

#include "worker/duration.h"
#include "worker/redis_connection.h"
#include "worker/status.h"

namespace lk {

enum class OwnerRole { kSupervisor, kAutopilot };
const char* OwnerRoleName(OwnerRole r);

// The lease as stored.
struct OwnerRecord {
  std::string role;    // "supervisor" | "autopilot"
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
  // One attempt. On success epoch() is the new epoch.
  StatusOr<AcquireResult> TryAcquire();
  // true: still ours; false: lost (the epoch moved on or another holder has it).
  StatusOr<bool> Renew();
  // Compare-and-delete; a no-op when no longer ours.
  Status Release();

  bool held() const { return held_; }
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
};

}  // namespace lk
