#include "controller/owner/owner_lease.h"

#include <unistd.h>

#include <algorithm>
#include <cstdlib>

#include "controller/owner/lua_scripts.h"
#include "worker/job_queue.h"

namespace lk {

namespace {

const LuaScript& AcquireScript() {
  static const LuaScript s("acquire_owner", lua::kAcquireOwner);
  return s;
}
const LuaScript& RenewScript() {
  static const LuaScript s("renew_owner", lua::kRenewOwner);
  return s;
}
const LuaScript& ReleaseScript() {
  static const LuaScript s("release_owner", lua::kReleaseOwner);
  return s;
}

std::string OwnerKey(const std::string& queue) { return JobQueue::KeyPrefix(queue) + "owner"; }
std::string EpochKey(const std::string& queue) { return JobQueue::KeyPrefix(queue) + "epoch"; }
std::string RegressedKey(const std::string& queue) {
  return JobQueue::KeyPrefix(queue) + "regressed";
}

}  // namespace

const char* OwnerRoleName(OwnerRole r) {
  switch (r) {
    case OwnerRole::kSupervisor: return "supervisor";
    case OwnerRole::kAutopilot: return "autopilot";
    case OwnerRole::kWorker: return "worker";
  }
  return "unknown";
}

std::string ThisHolder() {
  // In a pod, its name (the Downward API's POD_NAME, which the Kubernetes backend sets) is
  // its hostname anyway; taking it from the environment says so where the hostname is
  // another (a pod with spec.hostname, a test's fake kubelet on one machine).
  if (const char* pod = std::getenv("POD_NAME"); pod != nullptr && *pod != '\0') {
    return std::string(pod) + ":" + std::to_string(getpid());
  }
  char host[256] = {0};
  gethostname(host, sizeof(host) - 1);
  return std::string(host) + ":" + std::to_string(getpid());
}

StatusOr<std::optional<OwnerRecord>> ReadOwner(RedisConnection& conn, const std::string& queue) {
  conn.Append({"HMGET", OwnerKey(queue), "role", "holder", "epoch", "since_ms", "concurrency",
               "max_rss_mb"});
  conn.Append({"PTTL", OwnerKey(queue)});
  auto h = conn.GetReply();
  if (!h.ok()) return h.status();
  auto ttl = conn.GetReply();
  if (!ttl.ok()) return ttl.status();
  if (h->is_error()) return Status::Internal("reading the owner of '" + queue + "': " + h->str);
  if (h->elements.size() < 6 || h->elements[1].is_nil()) return std::optional<OwnerRecord>();
  OwnerRecord r;
  r.role = h->elements[0].str;
  r.holder = h->elements[1].str;
  r.epoch = h->elements[2].AsInt();
  r.since_ms = h->elements[3].AsInt();
  r.concurrency = static_cast<int>(h->elements[4].AsInt());
  r.max_rss_mb = static_cast<int>(h->elements[5].AsInt());
  r.ttl_ms = ttl->AsInt();
  return std::optional<OwnerRecord>(r);
}

OwnerLease::OwnerLease(RedisConnection& conn, std::string queue, OwnerRole role,
                       std::string holder, int concurrency, int max_rss_mb, Millis ttl)
    : conn_(conn),
      queue_(std::move(queue)),
      role_(role),
      holder_(std::move(holder)),
      concurrency_(concurrency),
      max_rss_mb_(max_rss_mb),
      ttl_(ttl) {}

// Why the replication id, and what it is compared with: epochs and job ids catch a Redis
// that lost writes only when the writes lost moved them, and only once a process that saw
// them calls. INFO replication says more: master_replid names the history a server's data
// belongs to, and it changes on every failover and on every restart (Redis 7 gives a
// restarted primary a new id even when AOF or RDB brought back all its data), so a change
// alone proves nothing lost and, on every restart, would cry wolf. What is compared:
//   - replid2 (the id a promoted replica inherited) == the id we knew: a failover, and
//     second_repl_offset (how far the replica had copied that history, + 1) says whether
//     it had everything up to master_repl_offset as we last read it: if not, writes we saw
//     acknowledged are gone — a regression, and the renewal raises the fence;
//   - any other new id: a restart or another server; the epoch and id floors decide
//     (acquire_owner.lua, renew_owner.lua, claim_batch.lua), so a restart that kept its
//     data is quiet and one that lost it is caught.
// run_id is not compared: it changes on every restart as replid does, and says nothing of
// the data. A Redis that refuses INFO (managed services may) is left to the floors.
StatusOr<bool> OwnerLease::CheckReplication() {
  auto info = conn_.Command({"INFO", "replication"});
  if (!info.ok()) return info.status();
  if (info->is_error()) return false;
  Replication now;
  auto field = [&](const std::string& key) {
    const std::string tag = "\n" + key + ":";
    const std::string text = "\n" + info->str;
    auto at = text.find(tag);
    if (at == std::string::npos) return std::string();
    at += tag.size();
    return text.substr(at, text.find_first_of("\r\n", at) - at);
  };
  now.replid = field("master_replid");
  now.replid2 = field("master_replid2");
  now.offset = std::atoll(field("master_repl_offset").c_str());
  now.second_offset = field("second_repl_offset").empty()
                          ? -1 : std::atoll(field("second_repl_offset").c_str());
  bool behind = false;
  if (!replication_.replid.empty() && !now.replid.empty() && now.replid != replication_.replid) {
    HistoryChange change{replication_, now};
    change.promoted_replica = now.replid2 == replication_.replid;
    change.behind = change.promoted_replica && now.second_offset <= replication_.offset;
    behind = change.behind;
    history_change_ = change;
  }
  if (!now.replid.empty()) replication_ = now;
  return behind;
}

StatusOr<OwnerLease::AcquireResult> OwnerLease::TryAcquire() {
  if (auto r = CheckReplication(); !r.ok()) return r.status();
  auto r = conn_.RunScript(AcquireScript(),
                           {OwnerKey(queue_), EpochKey(queue_), RegressedKey(queue_)},
                           {std::to_string(ttl_.count()), OwnerRoleName(role_), holder_,
                            std::to_string(concurrency_), std::to_string(max_rss_mb_),
                            std::to_string(highest_seen_)});
  if (!r.ok()) return r.status();
  AcquireResult out;
  const auto& e = r->elements;
  if (e.size() >= 4 && e[0].AsInt() == 1) {
    if (e[2].AsInt() == 1) regression_ = Regression{highest_seen_, e[3].AsInt()};
    held_ = true;
    epoch_ = e[1].AsInt();
    highest_seen_ = std::max(highest_seen_, epoch_);
    since_ms_ = NowUnixMillis();
    out.acquired = true;
    out.owner = {OwnerRoleName(role_), holder_, epoch_, since_ms_, concurrency_, max_rss_mb_,
                 ttl_.count()};
    if (Status s = WaitForReplicas(conn_, replicas_, replica_timeout_,
                                   "the owner lease of queue " + queue_ + " (epoch " +
                                       std::to_string(epoch_) + ")");
        !s.ok()) {
      // Not ours until the replicas have it: a failover could hand the queue to a second
      // owner under the same epoch. Given back, and tried again by the caller.
      (void)Release();
      return s;
    }
    return out;
  }
  if (e.size() < 6) return Status::Internal("unexpected reply from acquire_owner");
  held_ = false;
  out.owner.role = e[1].str;
  out.owner.holder = e[2].str;
  out.owner.epoch = e[3].AsInt();
  out.owner.since_ms = e[4].AsInt();
  out.owner.ttl_ms = e[5].AsInt();
  highest_seen_ = std::max(highest_seen_, out.owner.epoch);
  return out;
}

StatusOr<bool> OwnerLease::Renew() {
  if (!held_) return false;
  const Replication known = replication_;
  auto behind = CheckReplication();
  if (!behind.ok()) return behind.status();
  std::string what;
  if (*behind) {
    what = "a failover to a replica that had copied up to offset " +
           std::to_string(replication_.second_offset - 1) + " of the " +
           std::to_string(known.offset) + " this owner saw (replication id " + known.replid +
           " -> " + replication_.replid + ")";
  }
  auto r = conn_.RunScript(RenewScript(),
                           {OwnerKey(queue_), EpochKey(queue_), RegressedKey(queue_)},
                           {std::to_string(ttl_.count()), holder_, std::to_string(epoch_),
                            OwnerRoleName(role_), std::to_string(concurrency_),
                            std::to_string(max_rss_mb_), std::to_string(since_ms_),
                            *behind ? "1" : "0", what});
  if (!r.ok()) return r.status();
  if (r->AsInt() == -1) regression_ = Regression{epoch_, 0};
  held_ = r->AsInt() == 1;
  return held_;
}

Status OwnerLease::Release() {
  if (!held_) return Status::OK();
  auto r = conn_.RunScript(ReleaseScript(), {OwnerKey(queue_)}, {holder_, std::to_string(epoch_)});
  if (!r.ok()) return r.status();
  held_ = false;
  return Status::OK();
}

}  // namespace lk
