// LifecycleEvents: what happened to a queue's worker owner, in a capped Redis stream per
// queue (lk:{Q}:events, ~10 000 entries) and in the log.
//
// Owns: writing and reading that stream. Event types: started, standby, lease_acquired,
// lease_lost, worker_started, worker_exited, crash, rss_restart, rss_restart_loop,
// wedge_restart, degraded, recovered, stopped, redis_regressed (Redis lost writes: logged as
// an error) (and autopilot's own). Writes are best effort:
// an event that cannot reach Redis is still logged. Not thread-safe.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "worker/redis_connection.h"
#include "worker/status.h"

namespace lk {

struct LifecycleEvent {
  std::string id;    // stream id
  int64_t ts_ms = 0;
  std::string type;
  std::string role;
  std::string holder;
  std::map<std::string, std::string> fields;  // details: code, reason, pid, epoch, ...
};

inline constexpr int64_t kEventStreamMaxLen = 10'000;

class LifecycleEvents {
 public:
  LifecycleEvents(RedisConnection& conn, std::string queue, std::string role, std::string holder);
  // Logs and appends. Returns the Redis failure, if any, after logging anyway.
  Status Emit(const std::string& type, const std::map<std::string, std::string>& fields = {});

 private:
  RedisConnection& conn_;
  std::string queue_;
  std::string role_;
  std::string holder_;
};

// Events newer than since_ms, oldest first, at most limit.
StatusOr<std::vector<LifecycleEvent>> ReadEvents(RedisConnection& conn, const std::string& queue,
                                                 int64_t since_ms, int limit = 1000);

}  // namespace lk
