// WorkerRegistry: a running worker announces itself next to its queue, so `doctor` can
// say who really works a queue (and how big it is) from Redis alone.
//
//   lk:{Q}:workers       sorted set: worker id -> last heartbeat (unix ms)
//   lk:{Q}:workers:info  hash: worker id -> JSON {host, pid, epoch, concurrency,
//                        max_rss_mb, started_ms, rss_mb, running}
//
// The id is "host:pid". A worker that dies without Remove() stays listed with an old
// heartbeat; readers judge liveness by age (ListLiveWorkers), and Register() prunes entries
// silent for an hour. Owns: those two keys' entries for this worker. Does not own: the
// connection (the caller's, so heartbeats share the runner's dispatch connection).
// Not thread-safe: use from the thread that owns the connection.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "worker/duration.h"
#include "worker/redis_connection.h"
#include "worker/status.h"

namespace lk {

struct WorkerInfo {
  std::string id;  // host:pid
  std::string host;
  int64_t pid = 0;
  int64_t epoch = 0;
  int concurrency = 0;
  int64_t max_rss_mb = 0;
  int64_t started_ms = 0;
  int64_t rss_mb = 0;          // the whole process tree, at the last heartbeat
  int running = 0;             // jobs running at the last heartbeat
  int64_t last_seen_ms = 0;    // the last heartbeat
};

class WorkerRegistry {
 public:
  // self.id, host, pid and started_ms are filled in when empty.
  WorkerRegistry(std::string queue, WorkerInfo self);

  const WorkerInfo& self() const { return self_; }

  // First announcement; also drops entries of workers silent for more than an hour.
  Status Register(RedisConnection& conn);
  // Refreshes the heartbeat and the live numbers.
  Status Heartbeat(RedisConnection& conn, int64_t rss_mb, int running);
  // Removes this worker (on clean exit).
  Status Remove(RedisConnection& conn);

 private:
  std::string workers_key_;
  std::string info_key_;
  WorkerInfo self_;
};

// Workers whose last heartbeat is at most max_age old, most recent first.
StatusOr<std::vector<WorkerInfo>> ListLiveWorkers(RedisConnection& conn, const std::string& queue,
                                                  Millis max_age);

}  // namespace lk
