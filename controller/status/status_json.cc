#include "controller/status/status_views.h"

#include <algorithm>
#include <nlohmann/json.hpp>

#include "worker/redis_connection.h"

namespace lk {

namespace {

using Json = nlohmann::ordered_json;

Json ConditionJson(const LaneCondition& c) {
  return Json{{"type", c.type}, {"status", c.status}, {"reason", c.reason}, {"message", c.message}};
}

Json LaneJson(const LaneState& lane, const LaneObservation& obs) {
  const QueueView& q = obs.queue;
  Json conditions = Json::array();
  for (const auto& c : obs.conditions) conditions.push_back(ConditionJson(c));
  Json owner = nullptr;
  if (q.owner) {
    owner = Json{{"holder", q.owner->holder},   {"role", q.owner->role},
                 {"epoch", q.owner->epoch},     {"sinceMs", q.owner->since_ms},
                 {"ttlMs", q.owner->ttl_ms}};
  }
  Json workers = Json::array();
  for (const auto& w : q.workers) {
    workers.push_back(Json{{"id", w.id},
                           {"host", w.host},
                           {"pid", w.pid},
                           {"epoch", w.epoch},
                           {"concurrency", w.concurrency},
                           {"running", w.running},
                           {"rssMb", w.rss_mb},
                           {"maxRssMb", w.max_rss_mb},
                           {"startedMs", w.started_ms},
                           {"lastSeenMs", w.last_seen_ms}});
  }
  Json supervisors = Json::array();
  for (const auto& s : q.supervisors) {
    supervisors.push_back(Json{{"holder", s.holder},
                               {"pid", s.pid},
                               {"state", s.state},
                               {"epoch", s.epoch},
                               {"workerPid", s.worker_pid},
                               {"degraded", s.degraded},
                               {"crashesInWindow", s.crashes_in_window},
                               {"workerRestarts", s.worker_restarts},
                               {"lastExit", s.last_exit},
                               {"updatedMs", s.updated_ms}});
  }
  Json roles = Json::array();
  for (const auto& r : lane.roles) {
    roles.push_back(Json{{"role", r.role},
                         {"pid", r.pid},
                         {"state", r.state},
                         {"adopted", r.adopted},
                         {"restarts", r.restarts},
                         {"lastExit", r.last_exit},
                         {"generation", r.generation},
                         {"startedMs", r.started_ms}});
  }
  Json counts = nullptr;
  Json oldest = nullptr;
  if (q.redis.ok()) {
    counts = Json{{"waiting", q.counts.waiting},     {"delayed", q.counts.delayed},
                  {"active", q.counts.active},       {"completed", q.counts.completed},
                  {"dead", q.counts.dead},           {"cancelled", q.counts.cancelled}};
    if (q.counts.oldest_waiting_age_ms >= 0) oldest = q.counts.oldest_waiting_age_ms / 1000.0;
  }
  return Json{{"name", lane.name},
              {"source", lane.source},
              {"queue", lane.spec.queue},
              {"redis", RedactedUrl(lane)},
              {"generation", lane.generation},
              {"observedGeneration", lane.observed_generation},
              {"ready", obs.ready()},
              {"conditions", conditions},
              {"owner", owner},
              {"epoch", q.redis.ok() ? Json(q.counts.current_epoch) : Json(nullptr)},
              {"workers", workers},
              {"supervisors", supervisors},
              {"roles", roles},
              {"counts", counts},
              {"oldestWaitingSeconds", oldest},
              {"redisError", q.redis.ok() ? Json(nullptr) : Json(q.redis.message())},
              {"observedMs", q.read_ms}};
}

}  // namespace

std::string RedactedUrl(const LaneState& lane) {
  if (!lane.redis_url_redacted.empty()) return lane.redis_url_redacted;
  auto ep = ParseRedisUrl(lane.redis_url);
  return ep.ok() ? ep->Redacted() : "(a Redis URL that does not parse)";
}


std::string StatusJson(const ControllerSnapshot& snap, const std::vector<LaneObservation>& obs) {
  Json lanes = Json::array();
  for (size_t i = 0; i < snap.lanes.size(); ++i) lanes.push_back(LaneJson(snap.lanes[i], obs[i]));
  Json errors = Json::array();
  for (const auto& e : snap.errors) errors.push_back(e.ToString());
  Json out{{"ready", snap.ready},
           {"specsDir", snap.specs_dir},
           {"startedMs", snap.started_ms},
           {"lanes", lanes},
           {"errors", errors}};
  return out.dump(2) + "\n";
}

bool LaneNamed(const LaneState& lane, const std::string& name) {
  return name == lane.spec.Key().ToString() || (name == lane.name && lane.spec.namespace_name.empty());
}

std::string DoctorJson(const ControllerSnapshot& snap, LaneObserver& observer,
                       const DoctorOptions& options, const LaneDoctorChecks& more_checks,
                       const std::string& only) {
  CheckLevel worst = CheckLevel::kOk;
  Json lanes = Json::array();
  for (const auto& lane : snap.lanes) {
    if (!only.empty() && !LaneNamed(lane, only)) continue;
    DoctorReport report = observer.Doctor(lane, options);
    if (more_checks) more_checks(lane, report);
    worst = std::max(worst, report.Worst());
    Json entry{{"lane", lane.spec.namespace_name.empty() ? lane.name : lane.spec.Key().ToString()}};
    // The same object `lanekeeper doctor --json` prints, after the lane's name.
    Json checks = Json::parse(report.ToJson());
    for (auto& [key, value] : checks.items()) entry[key] = value;
    lanes.push_back(std::move(entry));
  }
  return Json{{"status", CheckLevelName(worst)}, {"lanes", lanes}}.dump(2) + "\n";
}

}  // namespace lk
