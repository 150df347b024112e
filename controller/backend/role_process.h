// RoleProcess: one role of a lane (a `jobs supervisor` or an `autopilot`) run by the Lane
// controller — started by this controller process, or adopted from an earlier one.
//
// Owns: the pid, a pidfd to wait on it, and the process's identity (its start time in
// clock ticks since boot, /proc/PID/stat field 22), which tells a process we started from
// an unrelated one that reuses the pid. The child runs in its own process group and is NOT
// tied to our lifetime (no PDEATHSIG): a controller that is SIGKILLed and restarted adopts
// its roles instead of starting them twice. Does not own: reaping. The controller reaps
// every child with waitpid(-1) in one place (ReapChildren) and hands each exit status to
// the matching RoleProcess; an adopted process is not our child, so its exit status is
// unknown. Not thread-safe.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "worker/status.h"

namespace lk {

class RoleProcess {
 public:
  // Starts argv (argv[0] an absolute path) with env added to ours (it overrides ours).
  static StatusOr<std::unique_ptr<RoleProcess>> Start(
      const std::vector<std::string>& argv, const std::map<std::string, std::string>& env);
  // Adopts pid if it is alive and its start time is start_ticks; NotFound otherwise.
  static StatusOr<std::unique_ptr<RoleProcess>> Adopt(pid_t pid, uint64_t start_ticks);
  ~RoleProcess();
  RoleProcess(const RoleProcess&) = delete;
  RoleProcess& operator=(const RoleProcess&) = delete;

  pid_t pid() const { return pid_; }
  uint64_t start_ticks() const { return start_ticks_; }
  bool adopted() const { return adopted_; }
  // Readable once the process has exited (for poll()); -1 if the kernel has no pidfds.
  int wait_fd() const { return pidfd_; }

  // Whether the process is gone. For a child this needs its status handed over first
  // (OnReaped); an adopted process is gone when its pidfd is readable or its pid is reused.
  bool Exited();
  // "exit code 1", "killed by signal 9", or "exited (status unknown: adopted)".
  const std::string& exit_description() const { return exit_; }
  void OnReaped(int wait_status);

  // SIGTERM to the process (it drains and stops its own children).
  void Terminate();
  // SIGKILL to its whole process group.
  void Kill();
  bool terminating() const { return terminating_; }
  std::chrono::steady_clock::time_point terminate_sent() const { return terminate_sent_; }

 private:
  RoleProcess() = default;
  pid_t pid_ = -1;
  int pidfd_ = -1;
  uint64_t start_ticks_ = 0;
  bool adopted_ = false;
  bool exited_ = false;
  std::string exit_;
  bool terminating_ = false;
  std::chrono::steady_clock::time_point terminate_sent_;
};

// posix_spawn of argv (argv[0] an absolute path) in a new process group of its own, with
// env added to (and overriding) our environment, an empty signal mask and default
// SIGTERM/SIGINT/SIGHUP/SIGPIPE handling. Roles and workers both start this way.
StatusOr<pid_t> SpawnInOwnProcessGroup(const std::vector<std::string>& argv,
                                       const std::map<std::string, std::string>& env = {});

// Field 22 of /proc/PID/stat; nullopt when the process does not exist.
std::optional<uint64_t> ProcessStartTicks(pid_t pid);

// Reaps every exited child without blocking: (pid, wait status) pairs.
std::vector<std::pair<pid_t, int>> ReapChildren();

}  // namespace lk
