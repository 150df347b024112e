// ControllerState: what the Lane controller knows about its lanes — the desired spec, the
// role processes it runs, generations, spec errors, reconcile counters — published by the
// reconcile loop (controller/lane_controller.h) and read by the status server
// (controller/status/status_server.h) as an immutable snapshot.
//
// Owns: the snapshot types and the store that swaps them. Does not own: anything read from
// Redis (owner, workers, queue counts: controller/status/lane_observer.h reads those on demand).
// ControllerStateStore is thread-safe; snapshots are values.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "controller/spec/lane_types.h"

namespace lk {

// One role process of a lane, as the controller sees it.
struct RoleState {
  std::string role;  // "supervisor" | "autopilot"
  int pid = 0;       // 0 while not running
  int64_t started_ms = 0;  // when the controller started (or adopted) it, wall clock
  // running | stopping | stopped | failed (could not start: message in last_exit)
  std::string state;
  bool adopted = false;     // started by an earlier controller process
  int64_t generation = 0;   // the lane generation its flags were derived from
  int restarts = 0;         // times the controller started it again after it died (drift)
  std::string last_exit;    // "exit code 1", "killed by signal 9", or a start error
};

// A Kubernetes-style condition.
struct LaneCondition {
  std::string type;    // Ready | SpecValid | OwnerElected | Degraded
  std::string status;  // "True" | "False" | "Unknown"
  std::string reason;  // CamelCase, e.g. RolesRunning, InvalidSpec, NoOwner
  std::string message;
};

struct LaneState {
  std::string name;
  std::string source;  // the file the lane came from
  LaneSpec spec;       // the last good spec (the one running)
  std::string redis_url;           // the effective URL (spec's or the default); may carry a
                                   // password: connect with it, never render it
  std::string redis_url_redacted;  // for people
  // Bumped each time the lane's spec changes; observed_generation is the generation the
  // running roles were started from.
  int64_t generation = 0;
  int64_t observed_generation = 0;
  // Errors of the lane's current text: non-empty means an invalid edit (the last good spec
  // keeps running) — SpecValid=False with these.
  std::vector<SpecError> spec_errors;
  std::vector<RoleState> roles;
  int64_t last_reconcile_ms = 0;
  std::string last_reconcile_error;  // empty when the last reconcile of this lane worked
};

struct ControllerSnapshot {
  int64_t started_ms = 0;
  bool ready = false;  // set after the first full reconcile
  std::string specs_dir;
  std::string state_dir;
  std::string default_redis_url;  // may carry a password: never render it
  std::vector<LaneState> lanes;   // by name
  // Errors not tied to a running lane: files that do not parse, lanes rejected on their
  // first appearance, conflicts across lanes.
  std::vector<SpecError> errors;

  // Counters since the controller started, for /metrics.
  uint64_t reconcile_total = 0;
  uint64_t reconcile_errors_total = 0;
  // Reconcile duration histogram: bucket upper bounds in seconds, cumulative counts.
  std::vector<double> reconcile_buckets;  // e.g. 0.001 .. 10
  std::vector<uint64_t> reconcile_bucket_counts;  // same size; cumulative
  double reconcile_seconds_sum = 0;
  // Role processes the controller restarted, by lane and reason (drift | spec_change).
  std::map<std::pair<std::string, std::string>, uint64_t> role_restarts;

  const LaneState* Find(const std::string& name) const;
};

class ControllerStateStore {
 public:
  std::shared_ptr<const ControllerSnapshot> Get() const {
    std::lock_guard<std::mutex> lock(mu_);
    return snapshot_;
  }
  void Set(ControllerSnapshot s) {
    auto next = std::make_shared<const ControllerSnapshot>(std::move(s));
    std::lock_guard<std::mutex> lock(mu_);
    snapshot_ = std::move(next);
  }

 private:
  mutable std::mutex mu_;
  std::shared_ptr<const ControllerSnapshot> snapshot_ = std::make_shared<ControllerSnapshot>();
};

inline const LaneState* ControllerSnapshot::Find(const std::string& name) const {
  for (const auto& l : lanes) {
    if (l.name == name) return &l;
  }
  return nullptr;
}

}  // namespace lk
