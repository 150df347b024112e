#include "controller/source/kube_lane_status.h"

#include <ctime>

#include "controller/kube/kube_names.h"

namespace lk {

using kube::Json;

namespace {

// A condition's message may be long (every spec error); the CRD allows 32768 characters.
constexpr size_t kMaxMessage = 4096;

std::string TruncatedMessage(const std::string& s) {
  if (s.size() <= kMaxMessage) return s;
  size_t cut = kMaxMessage - 3;
  while (cut > 0 && (static_cast<unsigned char>(s[cut]) & 0xC0) == 0x80) --cut;  // UTF-8
  return s.substr(0, cut) + "...";
}

Json PreviousConditionOf(const Json& previous, const std::string& type) {
  if (!previous.is_object() || !previous.contains("conditions") || !previous["conditions"].is_array()) {
    return nullptr;
  }
  for (const auto& c : previous["conditions"]) {
    if (c.is_object() && c.value("type", "") == type) return c;
  }
  return nullptr;
}

Json WithoutNullFields(const Json& j) {
  if (!j.is_object()) return j;
  Json out = Json::object();
  for (auto it = j.begin(); it != j.end(); ++it) {
    if (!it->is_null()) out[it.key()] = WithoutNullFields(*it);
  }
  return out;
}

}  // namespace

std::string Rfc3339(int64_t unix_ms) {
  std::time_t t = static_cast<std::time_t>(unix_ms / 1000);
  std::tm tm{};
  gmtime_r(&t, &tm);
  char buf[32];
  std::strftime(buf, sizeof(buf), "%Y-%m-%dT%H:%M:%SZ", &tm);
  return buf;
}

Json RenderLaneStatus(const LaneState& lane, const QueueView& queue,
                      const std::vector<LaneCondition>& conditions, int64_t generation,
                      const Json& previous, int64_t now_ms) {
  Json s = Json::object();
  s["observedGeneration"] = generation;
  s["owner"] = "";
  s["ownerLease"] = nullptr;
  s["mode"] = nullptr;
  s["concurrency"] = nullptr;
  s["maxRSS"] = nullptr;
  s["workers"] = nullptr;
  s["queue"] = nullptr;
  const bool admitted = !lane.spec.name.empty() && lane.generation > 0;
  if (admitted) {
    s["mode"] = AutopilotModeName(lane.spec.autopilot.mode);
    s["concurrency"] = lane.spec.Worker().concurrency;
    s["maxRSS"] = lane.spec.Worker().max_rss_mb > 0 ? std::to_string(lane.spec.Worker().max_rss_mb) + "Mi" : "0";
  }
  if (queue.redis.ok()) {
    s["workers"] = static_cast<int64_t>(queue.workers.size());
    const QueueStats& c = queue.counts;
    s["queue"] = {{"waiting", c.waiting},     {"active", c.active}, {"delayed", c.delayed},
                  {"completed", c.completed}, {"dead", c.dead},     {"cancelled", c.cancelled}};
    if (queue.owner) {
      const OwnerRecord& o = *queue.owner;
      std::string pod = kube::PodOfHolder(o.holder, lane.name);
      Json lease = {{"role", o.role}, {"holder", o.holder}, {"epoch", o.epoch}};
      if (!pod.empty()) lease["pod"] = pod;
      s["ownerLease"] = lease;
      s["owner"] = o.role + " " + (pod.empty() ? o.holder : pod) + " epoch " + std::to_string(o.epoch);
      if (o.concurrency > 0) s["concurrency"] = o.concurrency;
      s["maxRSS"] = o.max_rss_mb > 0 ? std::to_string(o.max_rss_mb) + "Mi" : "0";
    }
  }
  Json conds = Json::array();
  for (const auto& c : conditions) {
    Json before = PreviousConditionOf(previous, c.type);
    std::string since = Rfc3339(now_ms);
    if (before.is_object() && before.value("status", "") == c.status &&
        before.contains("lastTransitionTime") && before["lastTransitionTime"].is_string()) {
      since = before["lastTransitionTime"].get<std::string>();
    }
    conds.push_back({{"type", c.type},
                     {"status", c.status},
                     {"reason", c.reason.empty() ? "Unknown" : c.reason},
                     {"message", TruncatedMessage(c.message)},
                     {"lastTransitionTime", since},
                     {"observedGeneration", generation}});
  }
  s["conditions"] = conds;
  return s;
}

bool SameLaneStatus(const Json& a, const Json& b) { return WithoutNullFields(a) == WithoutNullFields(b); }

std::vector<ConditionTransition> ConditionTransitions(const Json& previous, const Json& next) {
  std::vector<ConditionTransition> out;
  if (!next.is_object() || !next.contains("conditions")) return out;
  for (const auto& c : next["conditions"]) {
    std::string type = c.value("type", "");
    Json before = PreviousConditionOf(previous, type);
    std::string from = before.is_object() ? before.value("status", "") : "";
    std::string to = c.value("status", "");
    if (from == to) continue;
    out.push_back({type, from, to, c.value("reason", ""), c.value("message", "")});
  }
  return out;
}

}  // namespace lk
