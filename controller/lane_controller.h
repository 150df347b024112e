// LaneController: `lanekeeper controller` — the loop that drives the reconciler, in the
// manner of controller-runtime's manager:
//
//   LaneSource (spec files; Kubernetes Lanes) ──┐
//   RoleBackend (a role exited)               ──┼─> WorkQueue of lane keys ─> Reconciler
//   periodic resync, stop deadlines           ──┘     (`workers` keys at once) │
//                                                                              v
//                               PlanRoles(spec) ─> RoleBackend (processes; Deployments)
//
// One thread waits on every event source at once (poll over a signalfd, the source's and
// the backend's descriptors, and the earliest due key), turns events into keys, and
// reconciles the due keys in a round, `workers` at a time (ReconcileLoop; never one key
// twice at once): failures are retried with the queue's per-key backoff, and every
// `resync_every` each lane is reconciled again whatever happened. After each round it
// publishes a ControllerSnapshot for the status server. A backend that is not ThreadSafe()
// is called one call at a time (SerialRoleBackend).
//
// On SIGTERM/SIGINT it stops every lane (each role drains) unless leave_running, and
// returns; a second signal kills what still runs. A SIGKILLed controller leaves its roles
// running for the next one to adopt (the backend's state).
//
// Owns: the loop, the work queue and the reconciler; the default source and backend (a
// SpecDirSource and a ProcessBackend) unless options pass others. Does not own: Redis
// (roles talk to it; the status server reads it) or the status server. Run() runs on one
// thread; RequestStop() may be called from any thread.
#pragma once

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "controller/backend/role_backend.h"
#include "controller/source/lane_source.h"
#include "controller/status/controller_state.h"
#include "worker/clock.h"
#include "worker/duration.h"
#include "worker/status.h"

namespace lk {

struct LaneControllerOptions {
  std::string specs_dir;
  std::string state_dir;
  std::string default_redis_url;  // for lanes without spec.redis.url
  Millis rescan_every{15'000};    // the spec directory's safety net under inotify
  Millis debounce{50};            // editors write a file in several steps
  Millis resync_every{15'000};    // every lane reconciled again, whatever happened
  int workers = 1;                // lanes reconciled at once (controller-runtime's
                                  // MaxConcurrentReconciles)
  std::string binary;             // the lanekeeper binary roles run; empty: this one
  std::string log_format = "text";
  std::string log_level = "info";
  bool leave_running = false;  // on SIGTERM: stop the lanes (false) or leave them to adopt
  // The cap of the backoff before a role that died unasked is started again (local
  // processes; 1 s doubling up to it).
  Millis restart_backoff_max{60'000};
  // Added to every supervisor's / autopilot's flags (tests shorten lease TTLs with it).
  std::vector<std::string> supervisor_args;
  std::vector<std::string> autopilot_args;
  // Leader election: while may_act() is false the controller reconciles nothing (it keeps
  // collecting what changed, and acts on it once it leads); leadership_fd is readable when
  // leadership may have changed. Empty / -1: it always acts.
  std::function<bool()> may_act;
  int leadership_fd = -1;
  // Seams; nullptr: a SpecDirSource over specs_dir, a ProcessBackend in state_dir, the
  // system clock.
  LaneSource* source = nullptr;
  RoleBackend* backend = nullptr;
  const Clock* clock = nullptr;
};

// ${LANEKEEPER_STATE_DIR}, else $XDG_STATE_HOME/lanekeeper, else ~/.local/state/lanekeeper;
// /var/lib/lanekeeper for root.
std::string DefaultStateDir();
// ${LANEKEEPER_SPECS_DIR}, else /etc/lanekeeper/lanes for root, else
// $XDG_CONFIG_HOME/lanekeeper/lanes (~/.config/lanekeeper/lanes).
std::string DefaultSpecsDir();

class LaneController {
 public:
  LaneController(LaneControllerOptions options, ControllerStateStore& store);
  ~LaneController();

  // Blocks SIGTERM/SIGINT in the calling thread (call it before starting any thread, so
  // that they inherit the mask), starts the backend (adopting what an earlier controller
  // left running) and the source (the first read).
  Status Init();
  // Reconciles until SIGTERM/SIGINT or RequestStop(); returns the exit code.
  int Run();
  void RequestStop();

 private:
  class Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace lk
