// Process trees: running a command in a process group of its own, and measuring the
// memory of a process and all its descendants.
//
// Owns: the child it spawns, from spawn to reap — its pipes, its pidfd, and every process
// left in its group when it ends (killed, so no stray survives a job). Does not own: the
// decision to stop (a caller's stop fd and deadline) or what the output means (handler.h).
// Thread-safe: any number of threads may run commands at once; each call owns its child.
// Linux only (pidfd_open, /proc).
#pragma once

#include <sys/types.h>

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "worker/status.h"

namespace lk {

struct GroupCommand {
  std::vector<std::string> argv;   // argv[0] is looked up in PATH unless it has a '/'; no shell
  std::vector<std::string> env;    // "K=V" entries added to (and overriding) our environment
  std::string stdin_data;          // written to the child's stdin, which is then closed
  std::string cwd;                 // non-empty: the child's working directory (ours stays)
  // The command is stopped (SIGTERM to its group, SIGKILL after kill_grace) when the
  // deadline passes or stop_fd becomes readable. time_point::max() = no deadline;
  // stop_fd -1 = no stop fd.
  std::chrono::steady_clock::time_point deadline = std::chrono::steady_clock::time_point::max();
  int stop_fd = -1;
  std::chrono::milliseconds kill_grace{2000};
  size_t stdout_limit = 64 * 1024;  // keep the last this many bytes of stdout
  size_t stderr_limit = 4 * 1024;   // and of stderr
};

struct GroupCommandResult {
  int exit_code = -1;     // the exit status, or -1 when killed by a signal
  int term_signal = 0;    // the signal that ended it, or 0
  bool timed_out = false;  // stopped because the deadline passed
  bool stopped = false;    // stopped because stop_fd became readable
  std::string stdout_tail;
  std::string stderr_tail;
};

// Spawns argv in a new process group (no shell), feeds stdin_data, collects the output
// tails and waits for it to exit, stopping it at the deadline or on stop_fd. When the
// command's own process has exited, whatever is left of its group is SIGKILLed.
// InvalidArgument when the command cannot be started (not found, not executable).
StatusOr<GroupCommandResult> RunInProcessGroup(const GroupCommand& command);

// An output tail without its trailing newlines and spaces: how it reads in an error.
std::string TrimOutputTail(std::string tail);

// How RssOfProcessTree finds descendants: down the /proc/<pid>/task/*/children lists
// (a few reads), or from every process's parent in /proc/*/stat (one read per process on
// the host). kAuto walks the lists when the kernel has them (CONFIG_PROC_CHILDREN).
enum class ProcessWalk { kAuto, kChildrenLists, kScanProc };

// The fields of /proc/<pid>/stat that lanekeeper reads. The one parser of that file: the
// command name (field 2) may hold spaces and ')', so fields resume after the last ')'.
struct ProcStat {
  char state = '?';          // field 3: R, S, D, Z (zombie), X (dead), ...
  pid_t ppid = 0;            // field 4
  uint64_t start_ticks = 0;  // field 22: clock ticks after boot; with the pid, an identity
};
// nullopt when pid does not exist (or its stat cannot be read).
std::optional<ProcStat> ReadProcStat(pid_t pid);

// Resident memory, in bytes, of pid and all of its live descendants (/proc/<pid>/statm of
// each). 0 when pid does not exist.
int64_t RssOfProcessTree(pid_t pid, ProcessWalk walk = ProcessWalk::kAuto);

}  // namespace lk
