#include "controller/owner/supervisor_status.h"

#include <nlohmann/json.hpp>

#include "worker/job_queue.h"

namespace lk {

namespace {
std::string SupervisorsKey(const std::string& queue) { return JobQueue::KeyPrefix(queue) + "supervisors"; }
}  // namespace

std::string SupervisorStatus::ToJson() const {
  nlohmann::json j = {{"holder", holder},       {"host", host},
                      {"pid", pid},             {"state", state},
                      {"epoch", epoch},         {"worker_pid", worker_pid},
                      {"concurrency", concurrency}, {"max_rss_mb", max_rss_mb},
                      {"rss_mb", rss_mb},       {"started_ms", started_ms},
                      {"updated_ms", updated_ms}, {"crashes_in_window", crashes_in_window},
                      {"degraded", degraded},   {"last_exit", last_exit},
                      {"pid_file", pid_file},   {"worker_restarts", worker_restarts}};
  return j.dump();
}

StatusOr<SupervisorStatus> SupervisorStatus::FromJson(const std::string& text) {
  auto j = nlohmann::json::parse(text, nullptr, false);
  if (j.is_discarded() || !j.is_object()) {
    return Status::Internal("malformed supervisor status: " + text);
  }
  SupervisorStatus s;
  s.holder = j.value("holder", "");
  s.host = j.value("host", "");
  s.pid = j.value("pid", 0);
  s.state = j.value("state", "");
  s.epoch = j.value("epoch", int64_t{0});
  s.worker_pid = j.value("worker_pid", 0);
  s.concurrency = j.value("concurrency", 0);
  s.max_rss_mb = j.value("max_rss_mb", 0);
  s.rss_mb = j.value("rss_mb", int64_t{0});
  s.started_ms = j.value("started_ms", int64_t{0});
  s.updated_ms = j.value("updated_ms", int64_t{0});
  s.crashes_in_window = j.value("crashes_in_window", 0);
  s.degraded = j.value("degraded", false);
  s.last_exit = j.value("last_exit", "");
  s.pid_file = j.value("pid_file", "");
  if (auto it = j.find("worker_restarts"); it != j.end() && it->is_object()) {
    for (const auto& [reason, n] : it->items()) {
      if (n.is_number_integer()) s.worker_restarts[reason] = n.get<int64_t>();
    }
  }
  return s;
}

Status PublishSupervisorStatus(RedisConnection& conn, const std::string& queue,
                               const SupervisorStatus& status) {
  auto r = conn.Command({"HSET", SupervisorsKey(queue), status.holder, status.ToJson()});
  if (!r.ok()) return r.status();
  return r->is_error() ? Status::Internal(r->str) : Status::OK();
}

Status RemoveSupervisorStatus(RedisConnection& conn, const std::string& queue,
                              const std::string& holder) {
  auto r = conn.Command({"HDEL", SupervisorsKey(queue), holder});
  if (!r.ok()) return r.status();
  return r->is_error() ? Status::Internal(r->str) : Status::OK();
}

StatusOr<std::vector<SupervisorStatus>> ReadLiveSupervisors(RedisConnection& conn,
                                                            const std::string& queue) {
  auto r = conn.Command({"HGETALL", SupervisorsKey(queue)});
  if (!r.ok()) return r.status();
  if (r->is_error()) return Status::Internal(r->str);
  std::vector<SupervisorStatus> out;
  int64_t now = NowUnixMillis();
  for (size_t i = 0; i + 1 < r->elements.size(); i += 2) {
    auto s = SupervisorStatus::FromJson(r->elements[i + 1].str);
    if (!s.ok()) continue;
    if (now - s->updated_ms <= kSupervisorStaleAfter.count()) out.push_back(*s);
  }
  return out;
}

}  // namespace lk
