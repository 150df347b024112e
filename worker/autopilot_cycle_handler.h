// The `autopilot-cycle` job: a repository's maintenance steps, run in order by a worker.
//
// Owns: the job's payload format (written by the autopilot, controller/owner/autopilot.h) and the
// handler that runs it. Each step is a program (no shell) run in the repo directory in its
// own process group with its own timeout; the first failing step ends the job. The steps
// come from the payload alone, so the worker needs no cycle file and knows nothing of the
// controller. Does not own: when cycles are dispatched, retries, leases.
// Thread-safe: AutopilotCycleHandler::Run is reentrant (each call spawns its own children).
//
// Payload: {"repo": "/abs/path", "steps": [{"name": "sync", "command": ["git", "pull"],
//           "timeout_ms": 120000}, ...]}
// Result:  {"repo": "/abs/path", "steps": [{"name": "sync", "exit_code": 0, "ok": true,
//           "duration_ms": 812, "output_tail": "Already up to date.\n"}, ...]}
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "worker/duration.h"
#include "worker/handler.h"
#include "worker/status.h"

namespace lk {

inline constexpr char kAutopilotCycleJob[] = "autopilot-cycle";

struct CycleStep {
  std::string name;
  std::vector<std::string> command;  // argv, argv[0] looked up in PATH; no shell
  Millis timeout{0};                 // 0: only the job's own deadline bounds it
};

struct CyclePayload {
  std::string repo;
  std::vector<CycleStep> steps;
};

std::string EncodeCyclePayload(const CyclePayload& payload);
// InvalidArgument naming the first malformed field.
StatusOr<CyclePayload> DecodeCyclePayload(std::string_view json);

// Fails the job with:
//   "repo 'R' is missing or unreadable: <strerror>"      before any step runs
//   "step 'NAME' failed: exit code N: <stderr tail>"      (or "killed by signal N",
//   "timed out after D", "cannot run 'git': ...")         at the first failing step
// A failed outcome also carries the steps run so far in its result, but the queue keeps
// only the error of a failed job: the error is what must say which step broke and why.
class AutopilotCycleHandler : public Handler {
 public:
  HandlerOutcome Run(const JobContext& ctx) override;
};

}  // namespace lk
