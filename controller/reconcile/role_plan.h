// RolePlan: which roles a lane needs and with which flags, computed from its spec alone.
//
//   supervisor  when spec.supervisor.enabled: `jobs supervisor` with the worker's
//               concurrency, max RSS, drain timeout and max crashes; owns the worker
//   autopilot   unless its mode is off: `autopilot` with repo, interval and cycle;
//               `--no-worker` in dispatch-only mode, else its own worker's settings (it
//               then owns the worker)
//   files       the handlers file (both roles that run workers read it) and the cycle
//               file, as content; the role gets `--handlers PATH` / `--cycle PATH`
//
// Pure: a plan holds no process, pid, path or pod. A backend turns it into something that
// runs — the process backend into argv, an environment and content-addressed files in
// its state dir; a Kubernetes backend into a Deployment and a ConfigMap. Each role carries
// a hash of everything that defines it, so "does what runs match the spec?" is one
// comparison, and a role whose hash did not change is never restarted (an edit of the
// autopilot's interval leaves the supervisor and its worker alone). Thread-safe.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "controller/spec/lane_types.h"
#include "worker/duration.h"

namespace lk {

enum class RoleKind { kSupervisor, kAutopilot };

// A file a role reads, passed to it as `flag PATH`; where PATH is, is the backend's call.
struct RoleFile {
  std::string flag;  // "--handlers" | "--cycle"
  std::string name;  // "handlers.yaml" | "cycle.yaml": the file's name in a mounted dir
  std::string content;
};

struct PlannedRole {
  RoleKind kind = RoleKind::kSupervisor;
  std::string name;  // "supervisor" | "autopilot": unique within a lane
  // The lanekeeper command line after the binary: `--queue Q` and the subcommand with its
  // flags. Without the Redis URL (backends pass it in the environment: argv is public),
  // files, logging, or anything about where the role runs.
  std::vector<std::string> args;
  std::vector<RoleFile> files;
  // Runs the queue's worker. Two such roles on one queue never overlap: a successor starts
  // only once its predecessor is gone, whichever lane either belongs to.
  bool owns_worker = false;
  int64_t max_rss_mb = 0;     // the worker's RSS limit (0: none)
  Millis drain_timeout{0};    // how long its worker may take to drain when stopped
  std::string hash;           // of all of the above, the queue and the Redis URL
};

struct RolePlan {
  std::string queue;
  std::string redis_url;  // as the spec states it (the reconciler fills in its default)
  std::vector<PlannedRole> roles;  // supervisor first

  // nullptr when the lane has no such role.
  const PlannedRole* Find(std::string_view name) const;
};

RolePlan PlanRoles(const LaneSpec& spec);

// 16 hex digits of FNV-1a 64 over data: names content-addressed files and compares specs.
// Not a security hash.
std::string ContentHash(std::string_view data);

}  // namespace lk
