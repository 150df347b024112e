// Handlers: the code that runs one job. The runner (worker/job_runner.h) looks a job's
// name up in a HandlerSet and calls Handler::Run on an executor thread.
//
// Owns: the Handler contract, the StopToken a handler watches, the built-in handlers
// (noop, sleep, fail) and CommandHandler (a program per job). Does not own: claiming,
// leases, retries or timeouts' bookkeeping — the runner decides what an outcome means.
// Thread-safety: Handler::Run is called from many threads at once and must be
// reentrant; a StopToken is signalled from one thread and watched from another.
#pragma once

#include <atomic>
#include <chrono>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "worker/duration.h"

namespace lk {

// Why a job is asked to stop.
enum class StopReason {
  kNone,
  kTimeout,    // its deadline passed: the job fails "timed out after D"
  kLeaseLost,  // cancelled, or reclaimed after a stall: its outcome is dropped
  kShutdown,   // the worker's drain ran out of time: the job is left to the reaper
};

// A stop request for the job running on one executor, visible both as a flag and as an
// fd that becomes readable (so a handler can poll it next to its own fds). The deadline
// counts as a stop: once it passes, reason() is kTimeout. Reused job after job: Reset
// re-arms it; Request and Reset must not race (the runner serializes them).
class StopToken {
 public:
  StopToken();
  ~StopToken();
  StopToken(const StopToken&) = delete;
  StopToken& operator=(const StopToken&) = delete;

  // Re-arms the token for the next job. deadline = time_point::max(): none.
  void Reset(std::chrono::steady_clock::time_point deadline);
  // The first reason wins; later requests are ignored.
  void Request(StopReason reason);

  StopReason reason() const;
  bool stop_requested() const { return reason() != StopReason::kNone; }
  std::chrono::steady_clock::time_point deadline() const { return deadline_; }
  // Readable once Request was called (not when the deadline passes: poll with a timeout).
  int fd() const { return fd_; }

  // Waits up to d, or less if stopped or past the deadline. Returns true if the full
  // duration passed without a stop.
  bool SleepFor(Millis d) const;

 private:
  int fd_;
  std::atomic<StopReason> requested_{StopReason::kNone};
  std::chrono::steady_clock::time_point deadline_ = std::chrono::steady_clock::time_point::max();
};

// What a handler sees of its job. The references live until Run returns.
struct JobContext {
  const std::string& queue;
  const std::string& id;
  const std::string& name;
  const std::string& payload;  // JSON text
  int attempt = 1;
  Millis timeout{0};           // 0: none; the StopToken's deadline already reflects it
  const StopToken& stop;
};

struct HandlerOutcome {
  bool success = true;
  std::string result;  // success: stored on the job
  std::string error;   // failure: the job's last error
};

class Handler {
 public:
  virtual ~Handler() = default;
  // Runs the job. Must return promptly once ctx.stop is signalled or its deadline passes;
  // what it returns then is overridden by the runner.
  virtual HandlerOutcome Run(const JobContext& ctx) = 0;
};

// A handler with its per-name settings (from the handlers file; 0 = use the job's own).
struct HandlerEntry {
  std::shared_ptr<Handler> handler;
  Millis timeout{0};
  Millis lease{0};
  int max_attempts = 0;
};
using HandlerSet = std::map<std::string, HandlerEntry>;

// noop: succeeds at once. sleep: payload {"ms": N}, succeeds after N ms unless stopped.
// fail: fails with the payload's "error", or "failed on purpose". autopilot-cycle: a
// repository's maintenance steps (worker/autopilot_cycle_handler.h).
HandlerSet BuiltinHandlers();

// Runs argv (no shell) in its own process group per job: the payload on stdin; the env
// gains LANEKEEPER_JOB_ID, LANEKEEPER_JOB_NAME, LANEKEEPER_JOB_ATTEMPT, LANEKEEPER_QUEUE.
// Exit 0: success with stdout (its last 64 KiB) as the result. Otherwise the error is
// "exit code N: <last 4 KiB of stderr>" (or "killed by signal N: ...").
class CommandHandler : public Handler {
 public:
  explicit CommandHandler(std::vector<std::string> argv) : argv_(std::move(argv)) {}
  HandlerOutcome Run(const JobContext& ctx) override;

 private:
  std::vector<std::string> argv_;
};

}  // namespace lk
