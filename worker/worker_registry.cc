#include "worker/worker_registry.h"

#include <unistd.h>

#include <nlohmann/json.hpp>

#include "worker/job_queue.h"

namespace lk {

namespace {

constexpr int64_t kPruneAfterMs = 3'600'000;

std::string HostName() {
  char buf[256] = {};
  if (::gethostname(buf, sizeof buf - 1) != 0 || buf[0] == '\0') return "localhost";
  return buf;
}

std::string InfoJson(const WorkerInfo& w) {
  return nlohmann::json{{"host", w.host},
                        {"pid", w.pid},
                        {"epoch", w.epoch},
                        {"concurrency", w.concurrency},
                        {"max_rss_mb", w.max_rss_mb},
                        {"started_ms", w.started_ms},
                        {"rss_mb", w.rss_mb},
                        {"running", w.running}}
      .dump();
}

// Runs a pipelined batch and returns the first failure: a lost connection, or an error
// reply.
Status RunPipeline(RedisConnection& conn, const std::vector<std::vector<std::string>>& commands) {
  for (const auto& c : commands) conn.Append(c);
  Status first;
  for (size_t i = 0; i < commands.size(); ++i) {
    auto r = conn.GetReply();
    if (!r.ok()) return r.status();
    if (r->is_error() && first.ok()) {
      first = Status::Internal(commands[i][0] + " " + commands[i][1] + ": " + r->str);
    }
  }
  return first;
}

}  // namespace

WorkerRegistry::WorkerRegistry(std::string queue, WorkerInfo self)
    : workers_key_(JobQueue::KeyPrefix(queue) + "workers"),
      info_key_(JobQueue::KeyPrefix(queue) + "workers:info"),
      self_(std::move(self)) {
  if (self_.host.empty()) self_.host = HostName();
  if (self_.pid == 0) self_.pid = ::getpid();
  if (self_.id.empty()) self_.id = self_.host + ":" + std::to_string(self_.pid);
  if (self_.started_ms == 0) self_.started_ms = NowUnixMillis();
}

Status WorkerRegistry::Register(RedisConnection& conn) {
  int64_t cutoff = NowUnixMillis() - kPruneAfterMs;
  auto stale = conn.Command({"ZRANGEBYSCORE", workers_key_, "-inf", std::to_string(cutoff)});
  if (!stale.ok()) return stale.status();
  if (stale->is_array() && !stale->elements.empty()) {
    std::vector<std::string> zrem = {"ZREM", workers_key_}, hdel = {"HDEL", info_key_};
    for (const auto& e : stale->elements) {
      zrem.push_back(e.str);
      hdel.push_back(e.str);
    }
    LK_RETURN_IF_ERROR(RunPipeline(conn, {zrem, hdel}));
  }
  return Heartbeat(conn, self_.rss_mb, self_.running);
}

Status WorkerRegistry::Heartbeat(RedisConnection& conn, int64_t rss_mb, int running) {
  self_.rss_mb = rss_mb;
  self_.running = running;
  self_.last_seen_ms = NowUnixMillis();
  return RunPipeline(conn, {{"ZADD", workers_key_, std::to_string(self_.last_seen_ms), self_.id},
                            {"HSET", info_key_, self_.id, InfoJson(self_)}});
}

Status WorkerRegistry::Remove(RedisConnection& conn) {
  return RunPipeline(conn, {{"ZREM", workers_key_, self_.id}, {"HDEL", info_key_, self_.id}});
}

StatusOr<std::vector<WorkerInfo>> ListLiveWorkers(RedisConnection& conn, const std::string& queue,
                                                  Millis max_age) {
  std::string workers_key = JobQueue::KeyPrefix(queue) + "workers";
  std::string info_key = JobQueue::KeyPrefix(queue) + "workers:info";
  auto ids = conn.Command({"ZREVRANGEBYSCORE", workers_key, "+inf",
                           std::to_string(NowUnixMillis() - max_age.count()), "WITHSCORES"});
  if (!ids.ok()) return ids.status();
  if (ids->is_error()) return Status::Internal("ZREVRANGEBYSCORE " + workers_key + ": " + ids->str);
  std::vector<WorkerInfo> out;
  if (ids->elements.empty()) return out;
  std::vector<std::string> hmget = {"HMGET", info_key};
  for (size_t i = 0; i + 1 < ids->elements.size(); i += 2) {
    WorkerInfo w;
    w.id = ids->elements[i].str;
    w.last_seen_ms = ids->elements[i + 1].AsInt();
    out.push_back(std::move(w));
    hmget.push_back(out.back().id);
  }
  auto infos = conn.Command(hmget);
  if (!infos.ok()) return infos.status();
  if (infos->is_error()) return Status::Internal("HMGET " + info_key + ": " + infos->str);
  for (size_t i = 0; i < out.size() && i < infos->elements.size(); ++i) {
    auto j = nlohmann::json::parse(infos->elements[i].str, nullptr, /*allow_exceptions=*/false);
    if (!j.is_object()) continue;  // listed but its info is gone: keep what the set knows
    WorkerInfo& w = out[i];
    w.host = j.value("host", "");
    w.pid = j.value("pid", int64_t{0});
    w.epoch = j.value("epoch", int64_t{0});
    w.concurrency = j.value("concurrency", 0);
    w.max_rss_mb = j.value("max_rss_mb", int64_t{0});
    w.started_ms = j.value("started_ms", int64_t{0});
    w.rss_mb = j.value("rss_mb", int64_t{0});
    w.running = j.value("running", 0);
  }
  return out;
}

}  // namespace lk
