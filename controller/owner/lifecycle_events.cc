#include "controller/owner/lifecycle_events.h"

#include <spdlog/spdlog.h>

#include <cstdlib>

#include "worker/duration.h"
#include "worker/job_queue.h"

namespace lk {

namespace {
std::string StreamKey(const std::string& queue) { return JobQueue::KeyPrefix(queue) + "events"; }
}  // namespace

LifecycleEvents::LifecycleEvents(RedisConnection& conn, std::string queue, std::string role,
                                 std::string holder)
    : conn_(conn), queue_(std::move(queue)), role_(std::move(role)), holder_(std::move(holder)) {}

Status LifecycleEvents::Emit(const std::string& type,
                             const std::map<std::string, std::string>& fields) {
  std::string details;
  for (const auto& [k, v] : fields) details += " " + k + "=" + v;
  bool bad = type == "crash" || type == "degraded" || type == "rss_restart_loop" ||
             type == "lease_lost";
  const bool fail = type == "redis_regressed";
  spdlog::log(fail ? spdlog::level::err : bad ? spdlog::level::warn : spdlog::level::info, "event {} queue={} role={}{}", type,
              queue_, role_, details);
  std::vector<std::string> argv = {"XADD", StreamKey(queue_), "MAXLEN", "~",
                                   std::to_string(kEventStreamMaxLen), "*",
                                   "type", type, "role", role_, "holder", holder_,
                                   "ts_ms", std::to_string(NowUnixMillis())};
  for (const auto& [k, v] : fields) {
    argv.push_back(k);
    argv.push_back(v);
  }
  auto r = conn_.Command(argv);
  if (!r.ok()) return r.status();
  if (r->is_error()) return Status::Internal("XADD " + StreamKey(queue_) + ": " + r->str);
  return Status::OK();
}

StatusOr<std::vector<LifecycleEvent>> ReadEvents(RedisConnection& conn, const std::string& queue,
                                                 int64_t since_ms, int limit) {
  auto r = conn.Command({"XRANGE", StreamKey(queue), std::to_string(since_ms), "+", "COUNT",
                         std::to_string(limit)});
  if (!r.ok()) return r.status();
  if (r->is_error()) return Status::Internal("XRANGE " + StreamKey(queue) + ": " + r->str);
  std::vector<LifecycleEvent> out;
  for (const auto& entry : r->elements) {
    if (entry.elements.size() != 2) continue;
    LifecycleEvent ev;
    ev.id = entry.elements[0].str;
    const auto& kv = entry.elements[1].elements;
    for (size_t i = 0; i + 1 < kv.size(); i += 2) {
      const std::string& k = kv[i].str;
      const std::string& v = kv[i + 1].str;
      if (k == "type") ev.type = v;
      else if (k == "role") ev.role = v;
      else if (k == "holder") ev.holder = v;
      else if (k == "ts_ms") ev.ts_ms = std::strtoll(v.c_str(), nullptr, 10);
      else ev.fields[k] = v;
    }
    out.push_back(std::move(ev));
  }
  return out;
}

}  // namespace lk
