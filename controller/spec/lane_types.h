// LaneSpec: the declarative `Lane` (apiVersion lanekeeper.dev/v1alpha1, kind Lane) — one
// queue with its autopilot, supervisor and handlers. The model; spec/lane_parser.h reads
// it from YAML, spec/lane_set.h holds the rules across lanes.
//
//   apiVersion: lanekeeper.dev/v1alpha1
//   kind: Lane
//   metadata: {name: knowledge}
//   spec:
//     queue: default
//     redis: {url: redis://127.0.0.1:6379/0}    # or, in a cluster, from a Secret:
//            # {urlFrom: {secretKeyRef: {name: redis, key: url}}}
//            # or with the password in a file: {url: ..., passwordFile: /etc/lk/redis.pw}
//     autopilot: {mode: dispatch-only, repo: /srv/brain/knowledge, interval: 300s,
//                 cycle: [{name: sync, command: [git, pull, --ff-only], timeout: 120s}]}
//     supervisor: {enabled: true, concurrency: 2, maxRSS: 2048Mi, maxCrashes: 10,
//                  drainTimeout: 30s}
//     handlers: {embed: {command: [gbrain, embed, --stale], timeout: 10m, lease: 300s,
//                        maxAttempts: 3}}
//
// Owns: the types, their canonical JSON (what the controller compares) and the names of
// their enums. Every field, default and message is in docs/lanes.md; crds/lane.yaml states
// the same rules for the Kubernetes API server. Does not own: parsing, watching a
// directory or the Kubernetes API, acting on a spec. Value types, thread-safe.
#pragma once

#include <compare>
#include <cstdint>
#include <map>
#include <string>
#include <string_view>
#include <vector>

#include "worker/autopilot_cycle_handler.h"
#include "worker/duration.h"
#include "worker/handler_config.h"
#include "worker/status.h"
#include "worker/yaml_checker.h"

namespace lk {

inline constexpr std::string_view kLaneApiVersion = "lanekeeper.dev/v1alpha1";
inline constexpr std::string_view kLaneKind = "Lane";

// dispatch-only: enqueue cycles, never run a worker. managed-worker: also own the queue's
// worker (a laptop lane without a supervisor). off: no autopilot.
enum class AutopilotMode { kDispatchOnly, kManagedWorker, kOff };
const char* AutopilotModeName(AutopilotMode m);

// A lane's identity: namespace/name, as Kubernetes names objects. Lanes from files have no
// namespace. What the controller's work queue holds and every reconcile is about.
struct LaneKey {
  std::string ns;
  std::string name;
  std::string ToString() const { return ns.empty() ? name : ns + "/" + name; }
  auto operator<=>(const LaneKey&) const = default;
};

// Where something was written (worker/yaml_checker.h).
using SpecMark = ConfigMark;

// A key of a Secret in the lane's namespace (Kubernetes' secretKeyRef): where a lane in a
// cluster keeps its Redis URL, password included, instead of writing it inline.
struct SecretKeyRef {
  std::string name;  // a Secret name: DNS subdomain, at most 253
  std::string key;   // a Secret key: letters, digits, '-', '_', '.', at most 253
  bool empty() const { return name.empty(); }
  auto operator<=>(const SecretKeyRef&) const = default;
};

// The worker that a lane's owner runs: the supervisor's, or in managed-worker mode the
// autopilot's own.
struct WorkerSettings {
  int concurrency = 1;
  int64_t max_rss_mb = 0;  // 0: no limit; else 256 MB to 1 TiB
  Millis drain_timeout{30'000};
};

struct LaneSpec {
  // metadata
  std::string name;            // DNS label: [a-z0-9]([-a-z0-9]*[a-z0-9])?, at most 63
  std::string namespace_name;  // empty unless written (Kubernetes objects carry one)
  int64_t generation = 0;      // metadata.generation, set by Kubernetes; 0 in files
  SpecMark name_mark;          // where metadata.name is, for errors across lanes

  // spec
  std::string queue = "default";
  SpecMark queue_mark;    // spec.queue, or spec itself when the default is used
  // spec.redis: at most one of the two is set. Neither: the controller's default Redis.
  std::string redis_url;  // spec.redis.url. May carry a password: never log it
                          // (RedisEndpoint::Redacted)
  SecretKeyRef redis_url_from;  // spec.redis.urlFrom.secretKeyRef: the URL is in a Secret,
                                // which only the Kubernetes backend can read
  // spec.redis.passwordFile: the absolute path of a file whose first line is url's password
  // (spec/redis_password.h). LoadLaneSpecs reads it into redis_url; files only.
  std::string redis_password_file;
  SpecMark redis_password_file_mark;

  struct Autopilot {
    // A lane without an autopilot section has none; a section without a mode dispatches.
    AutopilotMode mode = AutopilotMode::kOff;
    std::string repo;  // absolute path; required unless mode is off
    Millis interval{300'000};
    std::vector<CycleStep> cycle;  // step timeouts default to kDefaultCycleStepTimeout
    WorkerSettings worker;         // its own worker; may be set only in managed-worker mode
  } autopilot;

  struct Supervisor {
    bool enabled = true;
    WorkerSettings worker;  // may be set only while enabled
    int max_crashes = 10;   // crashes within 10 minutes before it reports degraded
  } supervisor;

  std::vector<HandlerSpec> handlers;  // in file order; names unique

  std::string source;  // the file (or "namespace/name" for Kubernetes)

  LaneKey Key() const { return {namespace_name, name}; }

  // The settings of the worker this lane runs: the supervisor's, or the autopilot's in
  // managed-worker mode.
  const WorkerSettings& Worker() const;

  // Canonical JSON of the spec part, which the controller compares to detect a change.
  // Carries the Redis URL as written (password included): compare it, never show it; and
  // the Secret a URL comes from (name and key, not the Secret's content).
  std::string SpecJson() const;
};

// A problem in a spec, located (worker/yaml_checker.h: every config file shares it).
using SpecError = ConfigError;

// "2048Mi", "2Gi" or a plain number of MB ("2048"): up to 9 digits. Returns MB.
StatusOr<int64_t> ParseMegabytes(std::string_view text);

}  // namespace lk
