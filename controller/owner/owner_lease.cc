#include "controller/owner/owner_lease.h"

#include <unistd.h>

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

}  // namespace

const char* OwnerRoleName(OwnerRole r) {
  return r == OwnerRole::kSupervisor ? "supervisor" : "autopilot";
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

StatusOr<OwnerLease::AcquireResult> OwnerLease::TryAcquire() {
  auto r = conn_.RunScript(AcquireScript(), {OwnerKey(queue_), EpochKey(queue_)},
                           {std::to_string(ttl_.count()), OwnerRoleName(role_), holder_,
                            std::to_string(concurrency_), std::to_string(max_rss_mb_)});
  if (!r.ok()) return r.status();
  AcquireResult out;
  const auto& e = r->elements;
  if (e.size() >= 2 && e[0].AsInt() == 1) {
    held_ = true;
    epoch_ = e[1].AsInt();
    since_ms_ = NowUnixMillis();
    out.acquired = true;
    out.owner = {OwnerRoleName(role_), holder_, epoch_, since_ms_, concurrency_, max_rss_mb_,
                 ttl_.count()};
    return out;
  }
  if (e.size() < 6) return Status::Internal("unexpected reply from acquire_owner");
  held_ = false;
  out.owner.role = e[1].str;
  out.owner.holder = e[2].str;
  out.owner.epoch = e[3].AsInt();
  out.owner.since_ms = e[4].AsInt();
  out.owner.ttl_ms = e[5].AsInt();
  return out;
}

StatusOr<bool> OwnerLease::Renew() {
  if (!held_) return false;
  auto r = conn_.RunScript(RenewScript(), {OwnerKey(queue_), EpochKey(queue_)},
                           {std::to_string(ttl_.count()), holder_, std::to_string(epoch_),
                            OwnerRoleName(role_), std::to_string(concurrency_),
                            std::to_string(max_rss_mb_), std::to_string(since_ms_)});
  if (!r.ok()) return r.status();
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
