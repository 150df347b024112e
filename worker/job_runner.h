// JobRunner: the worker behind `lanekeeper jobs work` — claims jobs from one queue and
// runs at most `concurrency` of them at once, until it is asked to stop, passes its RSS
// limit, or finds itself fenced by a newer owner epoch.
//
// Owns: its three Redis connections (dispatch; a second round trip in flight; blocking wait
// for work), its executor
// threads, the leases of the jobs it holds, and its entry in the worker registry. Does not
// own: the owner lease (controller/), the queue's scripts (job_queue.h), or what a handler
// does (handler.h). Thread-safety: Run() once, from one thread; RequestStop() from any
// thread or from a signal handler.
//
// Exit codes (worker/exit_codes.h): 0 after a stop request, 12 over max_rss_mb, 13 fenced
// — each after the same drain: stop claiming, release the buffered (unstarted) jobs back to
// waiting, let running jobs finish within drain_timeout, then stop those still running and
// leave them to the reaper. Before any job: 2 for a malformed Redis URL, 1 when Redis
// refuses the credentials (an unreachable Redis is retried, not an exit).
#pragma once

#include <memory>
#include <string>

#include "worker/duration.h"
#include "worker/handler.h"
#include "worker/job_queue.h"

namespace lk {

struct JobRunnerOptions {
  std::string redis_url;           // empty: DefaultRedisUrl()
  std::string queue = "default";
  int concurrency = 1;             // jobs running at once (one executor thread each)
  // Resident memory limit of the whole process tree (the worker and its commands), in MB,
  // sampled every heartbeat. 0 disables. Past it the worker drains and exits 12, so that a
  // supervisor restarts it with a fresh heap instead of the kernel OOM-killing a job.
  int64_t max_rss_mb = 0;
  // The owner epoch this worker runs under; every claim checks it. 0: unmanaged, refused
  // while an owner holds the queue.
  int64_t epoch = 0;
  // How long running jobs get to finish once draining starts. Longer avoids re-running
  // interrupted jobs; shorter makes restarts quicker.
  Millis drain_timeout{30'000};
  HandlerSet handlers = BuiltinHandlers();
  QueueOptions queue_options;  // retention and max backoff (job_queue.h)
  // Lease renewal, RSS sampling and the registry heartbeat run this often; an idle worker
  // also re-checks the queue this often (it is otherwise woken by submissions).
  Millis heartbeat{1'000};
};

class JobRunner {
 public:
  explicit JobRunner(JobRunnerOptions options);
  ~JobRunner();
  JobRunner(const JobRunner&) = delete;
  JobRunner& operator=(const JobRunner&) = delete;

  // Runs until stopped, over the RSS limit or fenced; returns the exit code. While Redis
  // is unreachable it retries with backoff and keeps running the jobs it holds.
  // Ignores SIGPIPE for the whole process (a closed socket or a command that exited early
  // must be an error value, not a dead worker).
  int Run();

  // Asks Run() to drain and return 0. Async-signal-safe; may be called before Run().
  void RequestStop();

 private:
  class Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace lk
