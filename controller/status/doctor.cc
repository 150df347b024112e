// Doctor's checks, in one file on purpose (about 600 lines): they read one snapshot of the
// lane (ReadLane), speak with one voice, and refer to each other by name ("see the
// supervisor check"), so they are read and changed side by side. Sections, in the order
// the report lists them: redis, worker_owner, supervisor, queue_health, autopilot,
// wedged_queue.
#include "controller/status/doctor.h"

#include <algorithm>
#include <nlohmann/json.hpp>
#include <optional>
#include <set>

#include "controller/owner/autopilot_record.h"
#include "controller/owner/lifecycle_events.h"
#include "controller/owner/owner_lease.h"
#include "controller/owner/supervisor_status.h"
#include "controller/status/queue_snapshot.h"

namespace lk {

namespace {

constexpr int64_t kDayMs = 24 * 3'600'000LL;
constexpr int64_t kLongRunningMs = 3'600'000;
// Active jobs examined for the long-running warning; a lane runs at most its concurrency.
constexpr int kActiveScanLimit = 10'000;

// "1 job", "3 jobs".
std::string Count(int64_t n, const std::string& noun) {
  return std::to_string(n) + " " + noun + (n == 1 ? "" : "s");
}

std::string Join(const std::vector<std::string>& parts, const std::string& sep) {
  std::string out;
  for (const auto& p : parts) out += (out.empty() ? "" : sep) + p;
  return out;
}

DoctorCheck Check(std::string name, CheckLevel level, std::string message,
                  std::map<std::string, std::string> details = {}) {
  return DoctorCheck{std::move(name), level, std::move(message), std::move(details)};
}

DoctorCheck CannotRead(const std::string& name, const std::string& what, const Status& s) {
  return Check(name, CheckLevel::kFail, "cannot read " + what + " from Redis: " + s.message());
}

// One string field of an INFO reply ("key:value" lines); empty when absent.
std::string InfoField(const std::string& info, const std::string& key) {
  const std::string line = "\n" + key + ":";
  auto at = ("\n" + info).find(line);  // the leading \n lets the first line match too
  if (at == std::string::npos) return "";
  size_t start = at + line.size() - 1;
  auto end = info.find_first_of("\r\n", start);
  return info.substr(start, end == std::string::npos ? end : end - start);
}

StatusOr<int64_t> CountByScore(RedisConnection& conn, const std::string& key,
                               const std::string& min, const std::string& max) {
  auto r = conn.Command({"ZCOUNT", key, min, max});
  if (!r.ok()) return r.status();
  if (r->is_error()) return Status::Internal("ZCOUNT " + key + ": " + r->str);
  return r->AsInt();
}

// --- redis ---------------------------------------------------------------------------

// Redis lost writes of this queue within a day (job_queue.h RedisRegression): the epoch
// or the job id sequence was found below what a role had already seen.
std::optional<DoctorCheck> CheckRegression(JobQueue& queue, const std::string& url) {
  auto regression = queue.Regression();
  if (!regression.ok()) return CannotRead("redis", "the regression record", regression.status());
  if (!*regression) return std::nullopt;
  const RedisRegression& r = **regression;
  return Check("redis", CheckLevel::kFail,
               "Redis at " + url + " lost acknowledged writes (failover to a stale replica, or "
               "a restart without persistence): " + r.what + ", noticed by " + r.by + " " +
               FormatAge(NowUnixMillis() - r.at_ms) + " ago; the fence was raised and no "
               "epoch or job id is reused, but jobs submitted or finished just before may be "
               "lost or run again — check Redis persistence (appendonly yes) and failover "
               "settings (spec.redis.replicas); this clears 24h after it was noticed",
               {{"url", url}, {"lost_epoch", std::to_string(r.lost_epoch)},
                {"found_epoch", std::to_string(r.found_epoch)},
                {"regressed_at_ms", std::to_string(r.at_ms)}});
}

DoctorCheck CheckRedis(JobQueue& queue) {
  RedisConnection& conn = queue.connection();
  const std::string url = conn.endpoint().Redacted();
  auto info = conn.Command({"INFO"});
  if (!info.ok()) return CannotRead("redis", "INFO", info.status());
  if (info->is_error()) return Check("redis", CheckLevel::kFail, "INFO refused: " + info->str);
  const std::string version = InfoField(info->str, "redis_version");
  const bool aof = InfoField(info->str, "aof_enabled") == "1";
  const std::string policy = InfoField(info->str, "maxmemory_policy");
  const std::string maxmemory = InfoField(info->str, "maxmemory_human");
  const std::string limit = InfoField(info->str, "maxmemory");
  const bool bounded = !limit.empty() && limit != "0";

  std::map<std::string, std::string> details = {{"version", version}, {"url", url},
                                                {"aof", aof ? "on" : "off"}};
  if (Status s = CheckRedisVersion(version, url); !s.ok()) {
    return Check("redis", CheckLevel::kFail, s.message(), details);
  }
  if (auto regressed = CheckRegression(queue, url)) return *regressed;
  // The RDB schedule is configuration, not state: only CONFIG GET says whether it is on.
  // Managed Redis services often refuse CONFIG; then AOF alone can vouch for durability.
  std::optional<bool> rdb;
  std::string config_error;
  auto save = conn.Command({"CONFIG", "GET", "save"});
  if (!save.ok()) return CannotRead("redis", "CONFIG GET save", save.status());
  if (save->is_error()) {
    config_error = save->str;
  } else if (save->elements.size() == 2) {
    rdb = !save->elements[1].str.empty();
    details["save"] = save->elements[1].str;
  }
  details["rdb"] = rdb ? (*rdb ? "on" : "off") : "unknown";
  if (!policy.empty()) details["maxmemory_policy"] = policy;

  std::vector<std::string> problems;
  if (!aof && rdb && !*rdb) {
    problems.push_back("neither AOF nor RDB persistence is on: jobs would be lost if Redis "
                       "restarts; set appendonly yes");
  } else if (!aof && !rdb) {
    problems.push_back("AOF is off and CONFIG GET save was refused (" + config_error +
                       "): cannot tell whether RDB snapshots are on; make sure jobs survive a "
                       "Redis restart (appendonly yes)");
  }
  // With a memory limit, any policy but noeviction lets Redis drop keys when full: job
  // hashes under allkeys-*, the owner lease (it has a TTL) under volatile-*.
  if (bounded && !policy.empty() && policy != "noeviction") {
    problems.push_back("maxmemory-policy is " + policy + " with maxmemory " + maxmemory +
                       ": Redis may evict job keys when full; set maxmemory-policy noeviction");
  }
  if (!problems.empty()) return Check("redis", CheckLevel::kWarn, Join(problems, "; "), details);
  std::vector<std::string> on;
  if (aof) on.push_back("AOF on");
  if (rdb && *rdb) on.push_back("RDB snapshots on");
  return Check("redis", CheckLevel::kOk,
               "Redis " + version + " at " + url + ", " + Join(on, ", "), details);
}

// --- what the lane looks like, read once and shared by the checks -------------------

struct Lane {
  std::string queue;
  int64_t now_ms = 0;
  Millis worker_live_within{0};
  // The same reading /status and the dashboard show (status/queue_snapshot.h).
  StatusOr<QueueSnapshot> snapshot;
  StatusOr<std::optional<AutopilotRecord>> autopilot;
  StatusOr<std::vector<LifecycleEvent>> events_24h;
};

Lane ReadLane(JobQueue& queue, const DoctorOptions& options) {
  RedisConnection& conn = queue.connection();
  const std::string& q = queue.name();
  int64_t now = NowUnixMillis();
  return Lane{q,
              now,
              options.worker_live_within,
              ReadQueueSnapshot(queue, options.worker_live_within, now),
              ReadAutopilotRecord(conn, q),
              // The stream is capped at kEventStreamMaxLen, so one read holds all of it.
              ReadEvents(conn, q, now - kDayMs, static_cast<int>(kEventStreamMaxLen))};
}

std::string WorkerName(const WorkerInfo& w) {
  return w.id + " (epoch " + std::to_string(w.epoch) + ")";
}

// --- worker_owner --------------------------------------------------------------------

DoctorCheck CheckWorkerOwner(const Lane& lane) {
  const std::string name = "worker_owner";
  if (!lane.snapshot.ok()) return CannotRead(name, "the queue", lane.snapshot.status());
  const auto& owner = lane.snapshot->owner;
  const auto& workers = lane.snapshot->workers;
  const std::string& q = lane.queue;
  const int64_t current_epoch = lane.snapshot->counts.current_epoch;

  std::map<std::string, std::string> details = {
      {"current_epoch", std::to_string(current_epoch)},
      {"live_workers", std::to_string(workers.size())}};
  std::vector<std::string> names;
  for (const auto& w : workers) names.push_back(WorkerName(w));
  if (!names.empty()) details["workers"] = Join(names, ", ");
  if (owner) {
    details["owner_role"] = owner->role;
    details["owner"] = owner->holder;
    details["owner_epoch"] = std::to_string(owner->epoch);
    details["owner_since_ms"] = std::to_string(owner->since_ms);
  }

  if (workers.size() > 1) {
    bool fenced = std::any_of(workers.begin(), workers.end(),
                              [](const WorkerInfo& w) { return w.epoch > 0; });
    return Check(name, CheckLevel::kFail,
                 std::to_string(workers.size()) + " live workers serve queue " + q + ": " +
                     Join(names, ", ") +
                     (fenced ? "; only the current epoch's may claim — stop the stale one"
                             : "; unmanaged workers are not fenced, so each claims — only "
                               "`jobs work` of a lanekeeper older than the worker's own owner "
                               "lease runs so: upgrade, stop all but one and run it under "
                               "`jobs supervisor`"),
                 details);
  }

  if (owner) {
    const WorkerInfo* current = nullptr;
    for (const auto& w : workers) {
      if (w.epoch == owner->epoch) current = &w;
    }
    if (owner->role == OwnerRoleName(OwnerRole::kAutopilot)) {
      std::string pid = "unknown";
      if (lane.autopilot.ok() && *lane.autopilot && (*lane.autopilot)->worker_pid > 0) {
        pid = std::to_string((*lane.autopilot)->worker_pid);
      } else if (current) {
        pid = std::to_string(current->pid);
      }
      details["worker_pid"] = pid;
      return Check(name, CheckLevel::kWarn,
                   "no supervisor: queue " + q + " is owned by autopilot's child worker (pid " +
                       pid + "); for production run `autopilot --no-worker` with `jobs supervisor`",
                   details);
    }
    std::string owned = "owned by " + owner->role + " " + owner->holder + " (epoch " +
                        std::to_string(owner->epoch) + ", up " +
                        FormatAge(lane.now_ms - owner->since_ms) + ")";
    if (owner->role == OwnerRoleName(OwnerRole::kWorker)) {
      if (current) details["worker_pid"] = std::to_string(current->pid);
      return Check(name, CheckLevel::kWarn,
                   "queue " + q + " is " + owned + ", a `jobs work` started by hand: it is "
                   "fenced, but nobody restarts it or watches its memory; for production run "
                   "`jobs supervisor` instead",
                   details);
    }
    // A new owner starts its worker within a second or two; past that grace, an owner
    // without a live worker is restarting it (see the supervisor check) or stuck.
    bool settled = lane.now_ms - owner->since_ms > 3 * lane.worker_live_within.count();
    if (!current && settled) {
      return Check(name, CheckLevel::kWarn,
                   owned + ", but no worker of epoch " + std::to_string(owner->epoch) +
                       " is live; see the supervisor check",
                   details);
    }
    if (current) details["worker_pid"] = std::to_string(current->pid);
    return Check(name, CheckLevel::kOk, owned, details);
  }

  // No lease. A lone worker may still serve the queue: unmanaged (epoch 0, allowed to
  // claim while nobody owns the queue), or orphaned (its owner died and the lease expired,
  // but its epoch is still current, so its claims still pass the fence).
  if (workers.size() == 1) {
    const WorkerInfo& w = workers.front();
    details["worker_pid"] = std::to_string(w.pid);
    if (w.epoch == 0) {
      return Check(name, CheckLevel::kWarn,
                   "queue " + q + " is served by an unmanaged worker " + w.id +
                       " (no owner lease): only `jobs work` of a lanekeeper older than the "
                       "worker's own owner lease runs so; upgrade it, or run it under "
                       "`jobs supervisor`",
                   details);
    }
    if (w.epoch == current_epoch) {
      return Check(name, CheckLevel::kWarn,
                   "queue " + q + " is served by worker " + w.id + " of epoch " +
                       std::to_string(w.epoch) +
                       ", whose owner's lease expired (was its supervisor killed?); start "
                       "`jobs supervisor`, which takes over and fences it",
                   details);
    }
  }
  const int64_t waiting = lane.snapshot->counts.waiting;
  if (waiting > 0) {
    return Check(name, CheckLevel::kFail,
                 "no worker owner for queue " + q + ": " + Count(waiting, "job") +
                     " waiting will not run",
                 details);
  }
  return Check(name, CheckLevel::kWarn, "no worker owner for queue " + q + " (nothing waiting)",
               details);
}

// --- supervisor ----------------------------------------------------------------------

DoctorCheck CheckSupervisor(const Lane& lane) {
  const std::string name = "supervisor";
  if (!lane.snapshot.ok()) return CannotRead(name, "the queue", lane.snapshot.status());
  if (!lane.events_24h.ok()) {
    return CannotRead(name, "the lifecycle events", lane.events_24h.status());
  }
  const auto& sups = lane.snapshot->supervisors;
  const auto& owner = lane.snapshot->owner;
  const std::string& q = lane.queue;

  if (sups.empty()) {
    if (owner && owner->role == OwnerRoleName(OwnerRole::kAutopilot)) {
      // Not a second problem: worker_owner already says autopilot owns the worker.
      return Check(name, CheckLevel::kInfo,
                   "not running; queue " + q +
                       " is owned by autopilot's child worker (see worker_owner)");
    }
    if (owner && owner->role == OwnerRoleName(OwnerRole::kWorker)) {
      return Check(name, CheckLevel::kInfo,
                   "not running; queue " + q +
                       " is owned by a `jobs work` started by hand (see worker_owner)");
    }
    return Check(name, CheckLevel::kFail, "supervisor not running");
  }

  // The supervisor that matters is the owner; the others wait in standby.
  const SupervisorStatus* main = nullptr;
  for (const auto& s : sups) {
    if (owner && s.holder == owner->holder) main = &s;
  }
  for (const auto& s : sups) {
    if (!main && s.state != "standby") main = &s;
  }
  if (!main) main = &sups.front();

  int crashes = 0, rss_restarts = 0, rss_loops = 0;
  for (const auto& e : *lane.events_24h) {
    if (e.role != "supervisor") continue;
    if (e.type == "crash") ++crashes;
    else if (e.type == "rss_restart") ++rss_restarts;
    else if (e.type == "rss_restart_loop") ++rss_loops;
  }
  std::map<std::string, std::string> details = {
      {"holder", main->holder},
      {"state", main->state},
      {"epoch", std::to_string(main->epoch)},
      {"worker_pid", std::to_string(main->worker_pid)},
      {"rss_mb", std::to_string(main->rss_mb)},
      {"max_rss_mb", std::to_string(main->max_rss_mb)},
      {"concurrency", std::to_string(main->concurrency)},
      {"crashes_10m", std::to_string(main->crashes_in_window)},
      {"rss_restart_loops_24h", std::to_string(rss_loops)},
      {"last_exit", main->last_exit}};
  std::vector<std::string> standby;
  for (const auto& s : sups) {
    if (&s != main) standby.push_back(s.holder + " (" + s.state + ")");
  }
  if (!standby.empty()) details["standby"] = Join(standby, ", ");

  const std::string base = "running=true pid=" + std::to_string(main->pid) +
                           " crashes_24h=" + std::to_string(crashes) +
                           " rss_restarts_24h=" + std::to_string(rss_restarts);
  if (main->degraded) {
    return Check(name, CheckLevel::kFail,
                 base + ": degraded: the worker crashed " +
                     Count(main->crashes_in_window, "time") +
                     " within 10m (more than --max-crashes)" +
                     (main->last_exit.empty() ? "" : ", last " + main->last_exit) +
                     "; see `lanekeeper jobs supervisor status` and the logs",
                 details);
  }
  if (main->state == "standby") {
    if (owner) {
      return Check(name, CheckLevel::kWarn,
                   base + " state=standby: queue " + q + " is owned by " + owner->role + " " +
                       owner->holder + " (epoch " + std::to_string(owner->epoch) +
                       "), so the supervisor waits; stop that owner" +
                       (owner->role == OwnerRoleName(OwnerRole::kWorker)
                            ? " (a `jobs work` started by hand)"
                            : " (an autopilot: restart it with --no-worker)") +
                       " and the supervisor takes over",
                   details);
    }
    return Check(name, CheckLevel::kWarn,
                 base + " state=standby: nobody owns queue " + q +
                     " yet; the supervisor should take the lease within a second — if this "
                     "persists, see its logs",
                 details);
  }
  if (crashes > 0) {
    return Check(name, CheckLevel::kWarn,
                 base + ": the worker crashed " + Count(crashes, "time") +
                     " in 24h; see `lanekeeper jobs supervisor status` and the logs",
                 details);
  }
  if (rss_loops > 0) {
    return Check(name, CheckLevel::kWarn,
                 base + ": the worker passed --max-rss more than 3 times within 10m "
                        "(rss_restart_loop); raise --max-rss or find what grows",
                 details);
  }
  return Check(name, CheckLevel::kOk, base, details);
}

// --- queue_health --------------------------------------------------------------------

DoctorCheck CheckQueueHealth(JobQueue& queue, const Lane& lane, const DoctorOptions& options) {
  const std::string name = "queue_health";
  if (!lane.snapshot.ok()) return CannotRead(name, "the queue", lane.snapshot.status());
  const QueueStats& s = lane.snapshot->counts;
  RedisConnection& conn = queue.connection();
  const std::string prefix = JobQueue::KeyPrefix(lane.queue);

  // dead is scored by when the job died, active by its lease deadline.
  auto dead_24h = CountByScore(conn, prefix + "dead", std::to_string(lane.now_ms - kDayMs), "+inf");
  if (!dead_24h.ok()) return CannotRead(name, "the dead jobs", dead_24h.status());
  auto overdue = CountByScore(conn, prefix + "active", "-inf", "(" + std::to_string(lane.now_ms));
  if (!overdue.ok()) return CannotRead(name, "the active jobs", overdue.status());
  auto active = queue.List(JobState::kActive, kActiveScanLimit);
  if (!active.ok()) return CannotRead(name, "the active jobs", active.status());
  int64_t long_running = 0;
  const Job* longest = nullptr;
  for (const auto& job : *active) {
    if (job.started_ms <= 0 || lane.now_ms - job.started_ms <= kLongRunningMs) continue;
    ++long_running;
    if (!longest || job.started_ms < longest->started_ms) longest = &job;
  }

  std::map<std::string, std::string> details = {
      {"waiting", std::to_string(s.waiting)},     {"active", std::to_string(s.active)},
      {"delayed", std::to_string(s.delayed)},     {"completed", std::to_string(s.completed)},
      {"dead", std::to_string(s.dead)},           {"dead_24h", std::to_string(*dead_24h)},
      {"cancelled", std::to_string(s.cancelled)}, {"overdue_active", std::to_string(*overdue)},
      {"long_running", std::to_string(long_running)},
      {"waiting_threshold", std::to_string(options.waiting_threshold)}};
  if (s.oldest_waiting_age_ms >= 0) {
    details["oldest_waiting_age_ms"] = std::to_string(s.oldest_waiting_age_ms);
  }

  std::vector<std::string> problems;
  if (s.waiting > options.waiting_threshold) {
    problems.push_back(Count(s.waiting, "job") + " waiting, more than " +
                       std::to_string(options.waiting_threshold) +
                       " (--waiting-threshold): the worker is not keeping up; raise "
                       "--concurrency or find what slows the jobs");
  }
  if (*overdue > 0) {
    problems.push_back(Count(*overdue, "active job") +
                       " past the lease deadline: the worker holding it stopped renewing "
                       "(crashed or hung); a live worker's next claim returns such jobs to "
                       "waiting");
  }
  if (long_running > 0) {
    problems.push_back(Count(long_running, "active job") + " running over 1h (job " +
                       longest->id + " for " + FormatAge(lane.now_ms - longest->started_ms) +
                       "); see `lanekeeper jobs get " + longest->id + "`");
  }
  if (*dead_24h > 0) {
    problems.push_back(Count(*dead_24h, "job") +
                       " went dead in the last 24h; see `lanekeeper jobs list --state dead`");
  }
  const std::string base = "waiting=" + std::to_string(s.waiting) +
                           " active=" + std::to_string(s.active) +
                           " delayed=" + std::to_string(s.delayed) +
                           " dead_24h=" + std::to_string(*dead_24h);
  if (problems.empty()) return Check(name, CheckLevel::kOk, base, details);
  return Check(name, CheckLevel::kWarn, base + ": " + Join(problems, "; "), details);
}

// --- autopilot -----------------------------------------------------------------------

DoctorCheck CheckAutopilot(const Lane& lane) {
  const std::string name = "autopilot";
  if (!lane.autopilot.ok()) {
    return CannotRead(name, "the autopilot record", lane.autopilot.status());
  }
  if (!*lane.autopilot) {
    return Check(name, CheckLevel::kInfo, "no autopilot runs on queue " + lane.queue);
  }
  const AutopilotRecord& a = **lane.autopilot;
  std::map<std::string, std::string> details = {
      {"holder", a.holder},
      {"repo", a.repo},
      {"mode", a.mode},
      {"interval_ms", std::to_string(a.interval_ms)},
      {"last_dispatch_ms", std::to_string(a.last_dispatch_ms)},
      {"last_job_id", a.last_job_id},
      {"updated_ms", std::to_string(a.updated_ms)}};
  const std::string interval = FormatDuration(Millis(a.interval_ms));
  // The record's own contract: a heartbeat older than 3 x max(interval, 5 s) is a dead
  // autopilot (it removes its record on a clean exit, so this one was killed).
  const int64_t stale_after = 3 * std::max<int64_t>(a.interval_ms, 5'000);
  if (lane.now_ms - a.updated_ms > stale_after) {
    return Check(name, CheckLevel::kWarn,
                 "autopilot " + a.holder + " (repo " + a.repo + ") stopped reporting " +
                     FormatAge(lane.now_ms - a.updated_ms) +
                     " ago: it is not running; start `lanekeeper autopilot --repo " + a.repo +
                     " --no-worker` (or its systemd unit)",
                 details);
  }
  if (a.last_dispatch_ms <= 0) {
    return Check(name, CheckLevel::kOk,
                 "no dispatch yet (interval " + interval + ", repo " + a.repo + ")", details);
  }
  const int64_t age = lane.now_ms - a.last_dispatch_ms;
  if (a.interval_ms > 0 && age > 3 * a.interval_ms) {
    return Check(name, CheckLevel::kWarn,
                 "last dispatch " + FormatAge(age) + " ago, more than 3 × its interval " + interval +
                     " (repo " + a.repo + "); see the autopilot's logs",
                 details);
  }
  return Check(name, CheckLevel::kOk,
               "last dispatch " + FormatAge(age) + " ago (interval " + interval + ", repo " + a.repo +
                   ")",
               details);
}

// --- wedged_queue --------------------------------------------------------------------

DoctorCheck CheckWedgedQueue(const Lane& lane, const DoctorOptions& options) {
  const std::string name = "wedged_queue";
  if (!lane.snapshot.ok()) return CannotRead(name, "the queue", lane.snapshot.status());
  const QueueStats& s = lane.snapshot->counts;
  const int64_t last_finished = lane.snapshot->last_finished_ms;

  std::map<std::string, std::string> details = {
      {"waiting", std::to_string(s.waiting)},
      {"active", std::to_string(s.active)},
      {"last_finished_ms", std::to_string(last_finished)},
      {"wedge_time_ms", std::to_string(options.wedge_time.count())}};
  const std::string finished =
      last_finished > 0 ? "last finished " + FormatAge(lane.now_ms - last_finished) + " ago"
                        : "nothing finished yet";
  if (s.waiting == 0) return Check(name, CheckLevel::kOk, "nothing waiting; " + finished, details);
  if (s.active > 0) {
    return Check(name, CheckLevel::kOk,
                 std::to_string(s.active) + " active, " + std::to_string(s.waiting) +
                     " waiting; " + finished,
                 details);
  }
  // queue_snapshot.h defines stuck and wedged, for the supervisor's watchdog too.
  int64_t stuck = lane.snapshot->StuckMs();
  details["stuck_ms"] = std::to_string(stuck);
  if (lane.snapshot->Wedged(options.wedge_time)) {
    return Check(name, CheckLevel::kFail,
                 "queue " + lane.queue + " is wedged: " + Count(s.waiting, "job") +
                     " waiting, none active, nothing finished for " + FormatAge(stuck) +
                     " (--wedge-time " + FormatDuration(options.wedge_time) +
                     "); see worker_owner and the worker's logs",
                 details);
  }
  return Check(name, CheckLevel::kOk,
               std::to_string(s.waiting) + " waiting, none active for " + FormatAge(stuck) +
                   ", under --wedge-time " + FormatDuration(options.wedge_time) + "; " + finished,
               details);
}

}  // namespace

const char* CheckLevelName(CheckLevel level) {
  switch (level) {
    case CheckLevel::kOk: return "ok";
    case CheckLevel::kInfo: return "info";
    case CheckLevel::kWarn: return "warn";
    case CheckLevel::kFail: return "fail";
  }
  return "fail";
}

CheckLevel DoctorReport::Worst() const {
  CheckLevel worst = CheckLevel::kOk;
  for (const auto& c : checks) {
    if (c.level != CheckLevel::kInfo) worst = std::max(worst, c.level);
  }
  return worst;
}

std::string DoctorReport::ToJson() const {
  // ordered_json: keys in the documented order, queue and status before the long list.
  nlohmann::ordered_json list = nlohmann::ordered_json::array();
  for (const auto& c : checks) {
    list.push_back({{"name", c.name},
                    {"status", CheckLevelName(c.level)},
                    {"message", c.message},
                    {"details", c.details}});
  }
  nlohmann::ordered_json j = {
      {"queue", queue}, {"status", CheckLevelName(Worst())}, {"checks", list}};
  // Messages quote what Redis said; replace rather than throw on invalid UTF-8.
  return j.dump(-1, ' ', false, nlohmann::ordered_json::error_handler_t::replace);
}

DoctorReport RunDoctor(JobQueue& queue, const DoctorOptions& options) {
  DoctorReport report{queue.name(), {}};
  report.checks.push_back(CheckRedis(queue));
  Lane lane = ReadLane(queue, options);
  report.checks.push_back(CheckWorkerOwner(lane));
  report.checks.push_back(CheckSupervisor(lane));
  report.checks.push_back(CheckQueueHealth(queue, lane, options));
  report.checks.push_back(CheckAutopilot(lane));
  report.checks.push_back(CheckWedgedQueue(lane, options));
  return report;
}

DoctorReport RunDoctor(const std::string& redis_url, const std::string& queue,
                       const DoctorOptions& options) {
  auto opened = OpenJobQueue(redis_url, queue);
  if (!opened.ok()) {
    return DoctorReport{queue,
                        {Check("redis", CheckLevel::kFail,
                               opened.status().message() +
                                   "; the other checks need Redis and were skipped")}};
  }
  return RunDoctor(**opened, options);
}

}  // namespace lk
