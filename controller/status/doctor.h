// Doctor: health checks of one queue's lane, read from Redis alone — who owns the worker,
// whether the supervisor is healthy, whether jobs move, whether the autopilot dispatches,
// whether Redis keeps jobs across a restart.
//
// Owns: the checks and their wording (every message is listed in docs/production.md, with
// what it means and what to run). Does not own: printing or exit codes (cmd/doctor_command.cc
// and the controller's /doctor endpoint render the same DoctorReport). Read-only: it never
// changes the queue. Not thread-safe: one JobQueue (and its connection) per thread.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "controller/status/queue_snapshot.h"
#include "worker/duration.h"
#include "worker/job_queue.h"

namespace lk {

// Ordered by severity. info never makes a report worse than ok: it says what doctor saw
// where nothing needs doing (e.g. no autopilot runs on this queue).
enum class CheckLevel { kOk, kInfo, kWarn, kFail };
const char* CheckLevelName(CheckLevel level);  // "ok" | "info" | "warn" | "fail"

struct DoctorCheck {
  std::string name;     // redis, worker_owner, supervisor, queue_health, autopilot, wedged_queue
  CheckLevel level = CheckLevel::kOk;
  std::string message;  // one line, for people
  std::map<std::string, std::string> details;  // the facts behind it, for machines
};

struct DoctorOptions {
  // queue_health warns when more jobs than this wait. A backlog this deep usually means the
  // lane needs more concurrency; raise it for lanes that batch-submit on purpose.
  int64_t waiting_threshold = 1000;
  // wedged_queue fails when work has waited this long with nothing active and nothing
  // finished. The supervisor's own wedge watchdog defaults to the same 15 m.
  Millis wedge_time{15 * 60'000};
  // A worker counts as live when its last heartbeat in the workers registry is at most
  // this old (status/queue_snapshot.h).
  Millis worker_live_within = kWorkerLiveWithin;
};

struct DoctorReport {
  std::string queue;
  std::vector<DoctorCheck> checks;

  // The worst level among the checks, info counting as ok: kOk, kWarn or kFail.
  CheckLevel Worst() const;
  // {"queue": Q, "status": "ok|warn|fail", "checks": [{"name", "status", "message",
  //  "details": {...}}]}
  std::string ToJson() const;
};

// Runs every check against queue's Redis. A Redis failure in the middle fails the check
// that met it and the others still run.
DoctorReport RunDoctor(JobQueue& queue, const DoctorOptions& options);

// Connects first. When Redis cannot be reached (or refuses the password) the report holds
// one failing redis check whose message says the other checks were skipped. A malformed
// URL is the caller's to reject (ParseRedisUrl) and also fails the redis check here.
DoctorReport RunDoctor(const std::string& redis_url, const std::string& queue,
                       const DoctorOptions& options);

}  // namespace lk
