#include "controller/owner/autopilot_record.h"

#include <cstdlib>
#include <map>

#include "worker/job_queue.h"

namespace lk {

namespace {

std::string AutopilotKey(const std::string& queue) { return JobQueue::KeyPrefix(queue) + "autopilot"; }

int64_t ToInt(const std::string& s) { return std::strtoll(s.c_str(), nullptr, 10); }

}  // namespace

Status PublishAutopilotRecord(RedisConnection& conn, const std::string& queue,
                              const AutopilotRecord& r) {
  // HSET of every field: the record is one writer's whole state, never a partial update.
  auto reply = conn.Command({"HSET", AutopilotKey(queue),
                             "holder", r.holder,
                             "repo", r.repo,
                             "mode", r.mode,
                             "interval_ms", std::to_string(r.interval_ms),
                             "last_dispatch_ms", std::to_string(r.last_dispatch_ms),
                             "last_job_id", r.last_job_id,
                             "worker_pid", std::to_string(r.worker_pid),
                             "epoch", std::to_string(r.epoch),
                             "updated_ms", std::to_string(r.updated_ms)});
  if (!reply.ok()) return reply.status();
  if (reply->is_error()) return Status::Internal("HSET " + AutopilotKey(queue) + ": " + reply->str);
  return Status::OK();
}

StatusOr<std::optional<AutopilotRecord>> ReadAutopilotRecord(RedisConnection& conn,
                                                             const std::string& queue) {
  auto reply = conn.Command({"HGETALL", AutopilotKey(queue)});
  if (!reply.ok()) return reply.status();
  if (reply->is_error()) return Status::Internal("HGETALL " + AutopilotKey(queue) + ": " + reply->str);
  if (reply->elements.empty()) return std::optional<AutopilotRecord>();
  std::map<std::string, std::string> f;
  for (size_t i = 0; i + 1 < reply->elements.size(); i += 2) {
    f[reply->elements[i].str] = reply->elements[i + 1].str;
  }
  AutopilotRecord r;
  r.holder = f["holder"];
  r.repo = f["repo"];
  r.mode = f["mode"];
  r.interval_ms = ToInt(f["interval_ms"]);
  r.last_dispatch_ms = ToInt(f["last_dispatch_ms"]);
  r.last_job_id = f["last_job_id"];
  r.worker_pid = static_cast<int>(ToInt(f["worker_pid"]));
  r.epoch = ToInt(f["epoch"]);
  r.updated_ms = ToInt(f["updated_ms"]);
  return std::optional<AutopilotRecord>(std::move(r));
}

Status RemoveAutopilotRecord(RedisConnection& conn, const std::string& queue,
                             const std::string& holder) {
  // Compare-and-delete by optimistic transaction: a newer autopilot that replaced the record
  // between our HGET and DEL makes EXEC return nil, and its record stays.
  const std::string key = AutopilotKey(queue);
  auto watch = conn.Command({"WATCH", key});
  if (!watch.ok()) return watch.status();
  auto current = conn.Command({"HGET", key, "holder"});
  if (!current.ok()) return current.status();
  if (current->is_nil() || current->str != holder) {
    auto unwatch = conn.Command({"UNWATCH"});
    return unwatch.ok() ? Status::OK() : unwatch.status();
  }
  conn.Append({"MULTI"});
  conn.Append({"DEL", key});
  conn.Append({"EXEC"});
  for (int i = 0; i < 3; ++i) {
    auto r = conn.GetReply();
    if (!r.ok()) return r.status();
    if (r->is_error()) return Status::Internal("removing " + key + ": " + r->str);
  }
  return Status::OK();
}

}  // namespace lk
