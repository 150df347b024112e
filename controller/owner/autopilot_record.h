// AutopilotRecord: what a running autopilot publishes about itself in the hash
// lk:{Q}:autopilot (one autopilot per queue and repo is the intended shape), for doctor.
// Written by the autopilot every few seconds and on every dispatch.
// Not thread-safe (one connection per thread).
#pragma once

#include <cstdint>
#include <optional>
#include <string>

#include "worker/redis_connection.h"
#include "worker/status.h"

namespace lk {

struct AutopilotRecord {
  std::string holder;        // "host:pid"
  std::string repo;
  std::string mode;          // "dispatch-only" | "managed-worker" (owns its child worker)
  int64_t interval_ms = 0;
  int64_t last_dispatch_ms = 0;  // 0: never dispatched
  std::string last_job_id;
  int worker_pid = 0;        // its child worker, when it owns the queue
  int64_t epoch = 0;         // its owner epoch, when it owns the queue
  int64_t updated_ms = 0;    // heartbeat; stale after 3 x max(interval, 5 s)
};

Status PublishAutopilotRecord(RedisConnection& conn, const std::string& queue,
                              const AutopilotRecord& record);
// nullopt when no autopilot ever ran on this queue.
StatusOr<std::optional<AutopilotRecord>> ReadAutopilotRecord(RedisConnection& conn,
                                                             const std::string& queue);
// Removes the record if holder still matches (on clean exit).
Status RemoveAutopilotRecord(RedisConnection& conn, const std::string& queue,
                             const std::string& holder);

}  // namespace lk
