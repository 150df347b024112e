// WorkerProcess: one `lanekeeper jobs work` child of a supervisor or autopilot.
//
// Owns: the child's pid and a pidfd to wait on it. Does not own: restart policy (the
// Supervisor's) or the lease. The child is NOT tied to our lifetime (no PDEATHSIG): if we
// are SIGKILLed, the worker drains on its own when its epoch is fenced by the next owner.
// Not thread-safe.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "worker/status.h"

namespace lk {

// How a worker process ended, as the supervisor sees it.
struct WorkerExit {
  int code = 0;        // exit code, or 128+signal
  bool signaled = false;
  int signal = 0;
  std::string Describe() const;  // "exit code 12 (max RSS)", "killed by signal 9", ...
};

class WorkerProcess {
 public:
  // Starts argv (argv[0] an absolute path) with env added to ours. The child gets its own
  // process group so a terminal's Ctrl-C reaches it only through us.
  static StatusOr<std::unique_ptr<WorkerProcess>> Start(
      const std::vector<std::string>& argv, const std::map<std::string, std::string>& env = {});
  ~WorkerProcess();

  pid_t pid() const { return pid_; }
  // A file descriptor that becomes readable when the child exits (for poll()).
  int wait_fd() const { return pidfd_; }
  std::chrono::steady_clock::time_point started() const { return started_; }

  // Non-blocking; the exit once the child is gone (reaped).
  std::optional<WorkerExit> Poll();
  void Signal(int sig);
  // SIGTERM, wait up to drain_timeout, then SIGKILL the child's whole group and reap it.
  WorkerExit Stop(std::chrono::milliseconds drain_timeout);

 private:
  WorkerProcess() = default;
  pid_t pid_ = -1;
  int pidfd_ = -1;
  std::optional<WorkerExit> exit_;
  std::chrono::steady_clock::time_point started_;
};

// The path of the running lanekeeper binary (/proc/self/exe).
std::string SelfExecutable();

}  // namespace lk
