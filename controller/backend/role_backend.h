// RoleBackend: what makes a lane's planned roles run — child processes of the controller
// (ProcessBackend), or Deployments of a Kubernetes cluster.
//
// The reconciler asks four things of it, and knows nothing of processes or pods:
//   Observe(lane)          which of the lane's roles exist, at which plan hash, stopping
//                          or not, with their restart count and last exit
//   Ensure(lane, role)     make the role run at the plan's hash (start it; it must not be
//                          running at another hash: the reconciler stops that one first)
//   Stop(lane, role)       ask the role to stop (its worker drains); true once it is gone.
//                          Called again until then: idempotent
//   QueueServed(id, lane)  does a worker-owning role of another lane still run on queue id
//                          (IdentifyQueue)? A new owner waits until not.
// Ensure may defer: a role that keeps dying is started again only after a backoff, and the
// answer says when. Forget(lane) drops the records of a lane that runs nothing any more.
//
// Event plumbing for the controller's loop thread: wake_fds() become readable when a role
// changed (a process exited), NextPoll() is when the backend needs Poll() anyway (a stop
// that overran its deadline is killed), and Poll() returns the lanes whose roles changed.
// Threads: a backend whose ThreadSafe() is true takes Observe, Ensure, Stop, QueueServed,
// Record and Forget from several reconcile workers at once (different lanes); Poll never
// runs beside them. Any other is called from one thread at a time (the controller wraps it
// in a SerialRoleBackend when it runs several workers).
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "controller/reconcile/role_plan.h"
#include "controller/spec/lane_types.h"
#include "worker/clock.h"
#include "worker/status.h"

namespace lk {

struct ObservedRole {
  std::string name;       // "supervisor" | "autopilot"
  std::string plan_hash;  // of the plan it was started from; "" when unknown (outdated)
  bool running = false;   // false: not running now (it died and waits to be started again)
  bool stopping = false;  // asked to stop, not gone yet
  bool adopted = false;   // started by an earlier controller
  int64_t generation = 0;  // the lane generation it was started for
  std::string instance;   // "pid 4242", a pod's name: for people
  int pid = 0;            // 0 when not a local process, or not running
  int64_t started_ms = 0;  // wall clock
  int restarts = 0;       // times it was started again after it died unasked
  std::string last_exit;  // "exit code 1", "killed by signal 9", a start error
  bool failed = false;    // the last start failed (last_exit says why)
  bool owns_worker = false;  // the plan said it runs the queue's worker
};

struct ObservedLane {
  std::vector<ObservedRole> roles;
  // What the lane's roles were last started from, as recorded by the backend (kept across
  // a controller restart): the spec's hash and its generation. Empty/0 when unknown.
  std::string spec_hash;
  int64_t generation = 0;
  std::string queue;      // of that spec
  std::string redis_url;  // of that spec (may carry a password: never render it)

  const ObservedRole* Find(const std::string& name) const;
};

// What the reconciler tells a backend about the lane a role belongs to.
struct LaneMeta {
  LaneKey key;
  std::string spec_hash;
  int64_t generation = 0;
  std::string queue;
  std::string redis_url;       // the effective URL (may carry a password: never render it)
  std::string queue_identity;  // IdentifyQueue(redis_url, queue).Key()
  // Where the spec says the URL comes from (a Secret); empty for an inline or default URL.
  // A backend that runs roles elsewhere (pods) hands them this reference, not the URL.
  SecretKeyRef redis_url_from;
};

struct EnsureResult {
  bool started = false;  // started now (false: already running at that hash, or deferred)
  // Not started before this time (a restart backoff); nullopt when not deferred.
  std::optional<Clock::TimePoint> retry_at;
};

class RoleBackend {
 public:
  virtual ~RoleBackend() = default;

  // See "Threads" above.
  virtual bool ThreadSafe() const { return false; }
  // Picks up what an earlier controller left (adoption). Lanes() lists them afterwards.
  virtual Status Start() = 0;
  // Every lane the backend has anything for: running roles, or records.
  virtual std::vector<LaneKey> Lanes() const = 0;

  virtual ObservedLane Observe(const LaneKey& lane) = 0;
  virtual StatusOr<EnsureResult> Ensure(const LaneMeta& lane, const RolePlan& plan,
                                        const PlannedRole& role) = 0;
  // why: for the log ("its spec changed", "lane deleted").
  virtual StatusOr<bool> Stop(const LaneKey& lane, const std::string& role,
                              const std::string& why) = 0;
  virtual bool QueueServed(const std::string& queue_identity, const LaneKey& except) const = 0;
  // Records what the lane's roles now run from (kept for adoption); no role changes.
  virtual Status Record(const LaneMeta& lane) = 0;
  // Nothing runs for lane any more: forget it (its state files go).
  virtual Status Forget(const LaneKey& lane) = 0;
  // Kills every role at once (a second Ctrl-C): no drains.
  virtual void KillAll() = 0;

  virtual std::vector<int> wake_fds() const = 0;
  virtual Clock::TimePoint NextPoll() const = 0;
  virtual std::vector<LaneKey> Poll() = 0;
};

inline const ObservedRole* ObservedLane::Find(const std::string& name) const {
  for (const auto& r : roles) {
    if (r.name == name) return &r;
  }
  return nullptr;
}

}  // namespace lk
