// LaneController: `lanekeeper controller --specs DIR` — converges local processes to the
// Lane specs in a directory.
//
// For each valid Lane it runs the lane's roles as child processes of this one: a
// `jobs supervisor` when spec.supervisor.enabled, an `autopilot` unless its mode is off,
// with flags derived from the spec (handlers and cycle go into content-addressed files in
// the state dir). Reconcile is level-triggered: one function compares what the specs ask
// for with what runs and acts, whatever woke it — a file created, changed or deleted
// (inotify, debounced, with a periodic rescan as a safety net), a role process that died
// or was killed by hand (pidfd), a stop deadline.
//
// Rules it keeps:
//   - Never two worker owners on a queue: a role whose flags changed is stopped (SIGTERM:
//     the supervisor drains its worker and releases the owner lease) and the new one is
//     started only once the old process is gone. The same holds across lanes that hand a
//     queue from one to the other. The owner lease and epoch fencing back this up.
//   - An invalid edit keeps the last good lane running; its errors go to the lane's
//     status (SpecValid=False). A lane that conflicts with a running one is not started.
//   - A role that dies is started again (drift), after a backoff from 1 s doubling to 60 s
//     while it keeps dying within a minute of its start.
//   - Adoption: every role's pid and start time are kept in STATE/lanes/NAME/state.json; a
//     restarted controller adopts live ones instead of starting them twice.
//   - On SIGTERM/SIGINT it stops every lane (each role drains) unless leave_running, and
//     returns; a SIGKILLed controller leaves its roles running for the next one to adopt.
//
// Owns: the state dir's lanes/ tree and the role processes. Does not own: parsing
// (lane_spec.h), Redis (the roles talk to Redis; the status server reads it), the status
// server. Publishes a ControllerSnapshot after each reconcile. Run() is single-threaded;
// RequestStop() may be called from any thread.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "controller/status/controller_state.h"
#include "worker/duration.h"
#include "worker/status.h"

namespace lk {

struct LaneControllerOptions {
  std::string specs_dir;
  std::string state_dir;
  std::string default_redis_url;  // for lanes without spec.redis.url
  Millis rescan_every{15'000};    // the safety net under inotify
  Millis debounce{50};            // editors write a file in several steps
  std::string binary;             // the lanekeeper binary roles run; empty: this one
  std::string log_format = "text";
  std::string log_level = "info";
  bool leave_running = false;  // on SIGTERM: stop the lanes (false) or leave them to adopt
  // Added to every supervisor's / autopilot's flags (tests shorten lease TTLs with it).
  std::vector<std::string> supervisor_args;
  std::vector<std::string> autopilot_args;
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

  // Creates the state dir, blocks SIGTERM/SIGINT/SIGCHLD in the calling thread (call it
  // before starting any thread, so that they inherit the mask), opens the watches and
  // adopts the roles an earlier controller left running.
  Status Init();
  // Reconciles until SIGTERM/SIGINT or RequestStop(); returns the exit code.
  int Run();
  void RequestStop();

 private:
  class Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace lk
