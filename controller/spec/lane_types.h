// LaneSpec: the declarative `Lane` (apiVersion lanekeeper.dev/v1alpha1, kind Lane) — one
// queue with its autopilot, supervisor and handlers — parsed and validated strictly.
//
//   apiVersion: lanekeeper.dev/v1alpha1
//   kind: Lane
//   metadata: {name: knowledge}
//   spec:
//     queue: default
//     redis: {url: redis://127.0.0.1:6379/0}
//     autopilot: {mode: dispatch-only, repo: /srv/brain/knowledge, interval: 300s,
//                 cycle: [{name: sync, command: [git, pull, --ff-only], timeout: 120s}]}
//     supervisor: {enabled: true, concurrency: 2, maxRSS: 2048Mi, maxCrashes: 10,
//                  drainTimeout: 30s}
//     handlers: {embed: {command: [gbrain, embed, --stale], timeout: 10m, lease: 300s,
//                        maxAttempts: 3}}
//
// Owns: the model; parsing every YAML document of a file (yaml-cpp throws: every
// YAML::Exception is caught here and becomes a SpecError); validation that reports every
// error at once, each with file:line:column and the field path; the rules across lanes
// (ValidateLaneSet). The ownership rule — exactly one worker owner per lane — is
// validation. Every field, default and message is in docs/lanes.md; crds/lane.yaml states
// the same rules for the Kubernetes API server. Does not own: watching a directory or the
// Kubernetes API, acting on a spec. Pure functions (LoadLaneSpecs reads files), thread-safe.
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

// Where something was written, 1-based; 0 when unknown.
struct SpecMark {
  int line = 0;
  int column = 0;
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
  std::string redis_url;  // empty: the controller's default. May carry a password: never
                          // log it (RedisEndpoint::Redacted)

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
  // Carries the Redis URL as written (password included): compare it, never show it.
  std::string SpecJson() const;
};

// One problem in a spec, located.
struct SpecError {
  std::string file;
  int line = 0;       // 1-based; 0 when unknown (a file that cannot be read)
  int column = 0;     // 1-based
  std::string field;  // path, e.g. spec.supervisor.maxRSS; empty for YAML syntax errors
  std::string message;

  // "file:line:column: field: message", leaving out what is unknown.
  std::string ToString() const;
};

struct ParsedLanes {
  std::vector<LaneSpec> lanes;    // the documents without errors
  std::vector<SpecError> errors;  // every error of every document, in file order
};

// Parses every YAML document of text (--- separated). An error in one document does not
// hide the others, nor the lanes they define. Empty documents are skipped. file names the
// source in errors and in LaneSpec::source. Texts over 1 MiB are rejected whole.
ParsedLanes ParseLaneSpecs(std::string_view text, const std::string& file);

// Reads a file, or every *.yaml / *.yml file of a directory (sorted by name, not
// recursive, dot-files skipped: editors keep swap and lock files there).
ParsedLanes LoadLaneSpecs(const std::string& path);

// The files LoadLaneSpecs reads in a directory, in that order. A directory that cannot be
// read adds an error (when errors is given) and lists nothing.
std::vector<std::string> ListLaneSpecFiles(const std::string& dir,
                                           std::vector<SpecError>* errors = nullptr);

// Where two lanes meet: one queue of one Redis. server is the Redis without credentials,
// localhost spelled 127.0.0.1 ("redis://127.0.0.1:6379/0", "unix:///run/redis.sock?db=0"),
// so that two spellings of one server meet. The one definition, for the rules across lanes
// and for the controller's "is this queue still served?" guard alike.
struct QueueIdentity {
  std::string server;
  std::string queue;
  std::string Key() const { return server + " " + queue; }
};
QueueIdentity IdentifyQueue(const std::string& redis_url, const std::string& queue);

// "file:line:column" of mark in lane's file, or the file alone when mark is unknown.
std::string WhereWritten(const LaneSpec& lane, SpecMark mark);
// The error of a lane whose queue an earlier lane already uses, at its spec.queue:
// "lane 'kb' (kb.yaml:5:10) already uses queue 'q' on redis://...: a queue has exactly
// one lane".
SpecError QueueTakenError(const LaneSpec& later, const std::string& earlier_name,
                          const std::string& earlier_where, const QueueIdentity& id);

// The rules across lanes: names unique (per namespace); no two lanes on one queue of one
// Redis (same host, port and db, or socket and db). A lane without a URL is on
// default_redis_url. Each error points at the later lane's metadata.name or spec.queue
// and names where the earlier one is.
std::vector<SpecError> ValidateLaneSet(const std::vector<LaneSpec>& lanes,
                                       const std::string& default_redis_url);

// The same rules, one lane at a time, for a caller that decides lane by lane which to keep
// (the controller): Check a lane against those added so far, Add the ones kept. Linear in
// the lanes, where validating the growing set again for each would be quadratic.
class LaneSetChecker {
 public:
  explicit LaneSetChecker(std::string default_redis_url)
      : default_redis_url_(std::move(default_redis_url)) {}

  // What lane would break; empty when it fits beside the lanes added so far.
  std::vector<SpecError> Check(const LaneSpec& lane) const;
  // Adds lane. Where it conflicts, the lane added first stays the one errors point at.
  void Add(const LaneSpec& lane);

 private:
  struct Earlier {
    std::string name;
    std::string where;  // file:line:column of its metadata.name or spec.queue
  };
  QueueIdentity Identify(const LaneSpec& lane) const;

  std::string default_redis_url_;
  std::map<std::string, Earlier> by_name_, by_queue_;
};

// "2048Mi", "2Gi" or a plain number of MB ("2048"): up to 9 digits. Returns MB.
StatusOr<int64_t> ParseMegabytes(std::string_view text);

}  // namespace lk
