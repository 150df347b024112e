// SupervisorStatus: what a running supervisor publishes about itself, once a second, in
// the hash lk:{Q}:supervisors (field = holder "host:pid", value = JSON), for doctor and
// `jobs supervisor status`. Entries not updated for kSupervisorStaleAfter are dead.
// Thread-safe as a value type; the functions are not (one connection per thread).
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "worker/duration.h"
#include "worker/redis_connection.h"
#include "worker/status.h"

namespace lk {

inline constexpr Millis kSupervisorStaleAfter{5'000};

struct SupervisorStatus {
  std::string holder;
  std::string host;
  int pid = 0;
  std::string state;  // standby | starting | running | backoff | draining | degraded | stopping
  int64_t epoch = 0;  // 0 while standby
  int worker_pid = 0;
  int concurrency = 0;
  int max_rss_mb = 0;
  int64_t rss_mb = 0;  // the worker's whole process tree
  int64_t started_ms = 0;
  int64_t updated_ms = 0;
  int crashes_in_window = 0;
  bool degraded = false;
  std::string last_exit;  // WorkerExit::Describe() of the last worker exit
  std::string pid_file;
  // Worker restarts since this supervisor started, by reason: crash, rss (over --max-rss or
  // exit 12), wedge (the wedge watchdog), lease_lost (the epoch moved on: the supervisor lost
  // the lease, or the worker found itself fenced and exited 13). Absent in JSON from older
  // supervisors: empty.
  std::map<std::string, int64_t> worker_restarts;

  std::string ToJson() const;
  static StatusOr<SupervisorStatus> FromJson(const std::string& json);
};

Status PublishSupervisorStatus(RedisConnection& conn, const std::string& queue,
                               const SupervisorStatus& status);
Status RemoveSupervisorStatus(RedisConnection& conn, const std::string& queue,
                              const std::string& holder);
// Entries updated within kSupervisorStaleAfter of now.
StatusOr<std::vector<SupervisorStatus>> ReadLiveSupervisors(RedisConnection& conn,
                                                            const std::string& queue);

}  // namespace lk
