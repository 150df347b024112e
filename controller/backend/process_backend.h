// ProcessBackend: runs a lane's roles as child processes of the controller — the
// RoleBackend of `lanekeeper controller --specs DIR` and of `lanekeeper up`.
//
// A planned role becomes `lanekeeper [logging] ARGS [--handlers F] [--cycle F]
// [--pid-file F] [extra flags]`, with the Redis URL in its environment (argv is public).
// Files are written content-addressed into STATE/lanes/LANE/ (handlers-<hash>.yaml), so a
// role's command line changes exactly when what it reads changes. Each role runs in a
// process group of its own and is NOT tied to the controller's life: a controller that is
// SIGKILLed leaves its roles running, and the next one adopts them.
//
//   adoption      STATE/lanes/LANE/state.json (0600: it holds the lane's Redis URL) keeps
//                 each role's pid, start time, plan hash and generation; Start() adopts
//                 every role whose pid still names the process it started
//   drift         a role that dies unasked is started again after RestartBackoff: 1 s
//                 doubling to 60 s while it keeps dying within a minute of its start
//   stopping      SIGTERM (a supervisor drains its worker and releases its lease); SIGKILL
//                 to its group once it overruns its worker's drain timeout + stop_grace
// Owns: the role processes and STATE/lanes/. Does not own: deciding what runs (the
// reconciler) or spawning itself (a ProcessSpawner: tests pass a fake). Not thread-safe.
#pragma once

#include <map>
#include <memory>
#include <string>
#include <vector>

#include "controller/backend/role_backend.h"
#include "controller/process/process_spawner.h"
#include "controller/process/restart_backoff.h"
#include "worker/duration.h"

namespace lk {

struct ProcessBackendOptions {
  std::string state_dir;          // roles' state and files go to state_dir/lanes/
  std::string binary;             // the lanekeeper binary roles run; empty: this one
  std::string log_format = "text";
  std::string log_level = "info";
  // Added to every supervisor's / autopilot's flags (tests shorten lease TTLs with it).
  std::vector<std::string> supervisor_args;
  std::vector<std::string> autopilot_args;
  Millis stop_grace{15'000};  // beyond the worker's drain timeout, before SIGKILL
  RestartBackoff::Options restart{Millis(1'000), Millis(60'000), 0.1, Millis(60'000)};
  const Clock* clock = nullptr;         // nullptr: SystemClock()
  ProcessSpawner* spawner = nullptr;    // nullptr: PosixProcessSpawner()
};

class ProcessBackend final : public RoleBackend {
 public:
  explicit ProcessBackend(ProcessBackendOptions options);
  ~ProcessBackend() override;

  // Creates state_dir/lanes (0700) and adopts what an earlier controller left running.
  Status Start() override;
  std::vector<LaneKey> Lanes() const override;
  ObservedLane Observe(const LaneKey& lane) override;
  StatusOr<EnsureResult> Ensure(const LaneMeta& lane, const RolePlan& plan,
                                const PlannedRole& role) override;
  StatusOr<bool> Stop(const LaneKey& lane, const std::string& role,
                      const std::string& why) override;
  bool QueueServed(const std::string& queue_identity, const LaneKey& except) const override;
  Status Record(const LaneMeta& lane) override;
  Status Forget(const LaneKey& lane) override;
  void KillAll() override;
  std::vector<int> wake_fds() const override;
  Clock::TimePoint NextPoll() const override;
  std::vector<LaneKey> Poll() override;

  // The directory of lane's files and state.json.
  std::string LaneDir(const LaneKey& lane) const;

 private:
  struct Role;
  struct Lane;

  // Notices the exits of lane's roles; true when any role exited.
  bool Reap(const LaneKey& key, Lane& lane);
  void Save(const LaneKey& key, const Lane& lane);
  // What a role's command line adds beyond its plan (binary, logging, extra flags): a
  // role started with other extras is outdated even at the same plan hash.
  std::string ExtrasHash(RoleKind kind) const;

  ProcessBackendOptions o_;
  const Clock& clock_;
  ProcessSpawner& spawner_;
  std::map<LaneKey, std::unique_ptr<Lane>> lanes_;
};

}  // namespace lk
