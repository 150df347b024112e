// ProcessSpawner: the one way lanekeeper starts the long-lived processes of a lane — the
// controller's roles (`jobs supervisor`, `autopilot`) and the workers they own
// (`jobs work`) — and adopts roles an earlier controller left running.
//
// Owns: spawning (posix_spawn, a process group of its own, a clean signal mask, no
// inherited descriptors), the identity of a process (its start time in clock ticks since
// boot, /proc/PID/stat field 22, which tells the process we started from an unrelated one
// that reuses its pid), waiting (a pidfd per process, readable once it exits) and reaping
// (each handle reaps its own pid: never waitpid(-1), which would steal the exit status of
// a child someone else waits for, as `up`'s private redis-server). Every signal goes
// through one guarded place that refuses a pid <= 1: kill(-1, ...) would reach every
// process of the user. Does not own: restart policy (process/restart_backoff.h) or what a
// process means (owner/, backend/).
//
// ProcessSpawner is a seam: PosixProcessSpawner() is the one real implementation; tests
// of the process backend use a fake that starts nothing. Not thread-safe: a handle
// belongs to the thread that loops over it.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "worker/status.h"

namespace lk {

// How a process ended.
struct ProcessExit {
  int code = 0;  // the exit code, or 128 + the signal
  bool signaled = false;
  int signal = 0;
  bool known = true;  // false for an adopted process: not our child, its status is lost

  static ProcessExit Unknown() { return ProcessExit{0, false, 0, false}; }
  // "exit code 12 (max RSS: drained)", "killed by signal 9",
  // "exited (status unknown: adopted)".
  std::string Describe() const;
};

// One process we started or adopted.
class ProcessHandle {
 public:
  virtual ~ProcessHandle() = default;
  virtual pid_t pid() const = 0;
  // Its identity beside the pid (0 when it could not be read).
  virtual uint64_t start_ticks() const = 0;
  // Started by an earlier controller, not by us.
  virtual bool adopted() const = 0;
  // Readable once the process has exited, for poll(); -1 when the kernel has no pidfds.
  virtual int wait_fd() const = 0;
  // Non-blocking: the exit once the process is gone (reaped, if it is our child). Whatever
  // it left in its process group (a handler's children) is SIGKILLed with it.
  virtual std::optional<ProcessExit> Poll() = 0;
  // sig to the process alone (it stops its own children: a worker drains).
  virtual void Signal(int sig) = 0;
  // SIGKILL to the process and its whole process group.
  virtual void KillGroup() = 0;
};

class ProcessSpawner {
 public:
  virtual ~ProcessSpawner() = default;
  // Starts argv (argv[0] an absolute path) with env added to ours (env wins), in a new
  // process group, with an empty signal mask and default SIGTERM/SIGINT/SIGHUP/SIGPIPE.
  virtual StatusOr<std::unique_ptr<ProcessHandle>> Spawn(
      const std::vector<std::string>& argv, const std::map<std::string, std::string>& env) = 0;
  // The process pid if it is alive and started at start_ticks; NotFound otherwise.
  virtual StatusOr<std::unique_ptr<ProcessHandle>> Adopt(pid_t pid, uint64_t start_ticks) = 0;
};

// The real spawner (posix_spawn and pidfds).
ProcessSpawner& PosixProcessSpawner();

// Field 22 of /proc/PID/stat; nullopt when the process does not exist or is a zombie.
std::optional<uint64_t> ProcessStartTicks(pid_t pid);

// The path of the running lanekeeper binary (/proc/self/exe).
std::string SelfExecutable();

}  // namespace lk
