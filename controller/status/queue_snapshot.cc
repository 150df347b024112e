#include "controller/status/queue_snapshot.h"

#include <algorithm>
#include <set>

namespace lk {

namespace {

// Top score of a sorted set (finished sets are scored by finish time); 0 when empty.
StatusOr<int64_t> TopScore(RedisConnection& conn, const std::string& key) {
  auto r = conn.Command({"ZREVRANGE", key, "0", "0", "WITHSCORES"});
  if (!r.ok()) return r.status();
  if (r->is_error()) return Status::Internal("ZREVRANGE " + key + ": " + r->str);
  return r->elements.size() == 2 ? r->elements[1].AsInt() : int64_t{0};
}

}  // namespace

int64_t QueueSnapshot::StuckMs(int64_t since_ms) const {
  if (counts.waiting == 0 || counts.active > 0) return 0;
  int64_t stuck = std::max<int64_t>(counts.oldest_waiting_age_ms, 0);
  int64_t from = std::max(last_finished_ms, since_ms);
  if (from > 0) stuck = std::min(stuck, read_ms - from);
  return std::max<int64_t>(stuck, 0);
}

bool QueueSnapshot::Wedged(Millis wedge_time, int64_t since_ms) const {
  return counts.waiting > 0 && counts.active == 0 && StuckMs(since_ms) >= wedge_time.count();
}

StatusOr<QueueSnapshot> ReadQueueSnapshot(JobQueue& queue, Millis worker_live_within,
                                          int64_t now_ms) {
  RedisConnection& conn = queue.connection();
  const std::string& q = queue.name();
  QueueSnapshot s;
  s.read_ms = now_ms;
  auto stats = queue.Stats();
  if (!stats.ok()) return stats.status();
  s.counts = *stats;
  auto owner = ReadOwner(conn, q);
  if (!owner.ok()) return owner.status();
  s.owner = *owner;
  auto workers = ListLiveWorkers(conn, q, worker_live_within);
  if (!workers.ok()) return workers.status();
  std::set<int64_t> epochs;
  for (auto& w : *workers) {  // most recent heartbeat first
    if (w.epoch > 0 && !epochs.insert(w.epoch).second) continue;
    s.workers.push_back(std::move(w));
  }
  auto supervisors = ReadLiveSupervisors(conn, q);
  if (!supervisors.ok()) return supervisors.status();
  s.supervisors = std::move(supervisors).value();
  const std::string prefix = JobQueue::KeyPrefix(q);
  auto completed = TopScore(conn, prefix + "completed");
  if (!completed.ok()) return completed.status();
  auto dead = TopScore(conn, prefix + "dead");
  if (!dead.ok()) return dead.status();
  s.last_finished_ms = std::max(*completed, *dead);
  return s;
}

}  // namespace lk
