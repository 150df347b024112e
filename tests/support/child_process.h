// ChildProcess: a real process started by a test (usually the lanekeeper binary), with its
// stdout and stderr captured to files, signals, and bounded waits. Killed on destruction.
#pragma once

#include <sys/types.h>
#include <unistd.h>

#include <chrono>
#include <optional>
#include <string>
#include <vector>

namespace lk::testing {

// The lanekeeper binary under test (set by CMake).
std::string LanekeeperBinary();
// A helper program of tests/helpers/ (hold_memory, spawn_grandchild...), by name.
std::string TestHelperBinary(const std::string& name);

// For a child the test process forks: SIGKILL it when the test process dies (a crash, or
// ctest's timeout), so nothing it started outlives it. PR_SET_PDEATHSIG fires when the
// forking *thread* ends, so a child forked by another thread than the main one is left to
// its owner's destructor. Take the origin before fork(); call Apply in the child.
struct ForkOrigin {
  bool main_thread;
  pid_t parent;
  static ForkOrigin Here();
  void ApplyInChild() const;
};

struct CommandResult {
  int exit_code = -1;  // -1: killed by a signal or timed out
  std::string out;
  std::string err;
};

class ChildProcess {
 public:
  // argv[0] is looked up in PATH unless it contains '/'. env entries "K=V" are added to
  // (and override) the test's environment.
  ChildProcess(std::vector<std::string> argv, std::vector<std::string> env = {});
  ~ChildProcess();
  ChildProcess(const ChildProcess&) = delete;
  ChildProcess& operator=(const ChildProcess&) = delete;

  pid_t pid() const { return pid_; }
  bool Signal(int sig);
  // Waits up to timeout for the exit. Returns the exit code (128+N for signal N), or
  // nullopt if still running.
  std::optional<int> Wait(std::chrono::milliseconds timeout);
  bool Running();
  std::string Stdout() const;
  std::string Stderr() const;
  // Waits until stdout+stderr contain text, up to timeout.
  bool WaitForOutput(const std::string& text, std::chrono::milliseconds timeout);

 private:
  pid_t pid_ = -1;
  std::optional<int> exit_code_;
  std::string dir_;
};

// Runs argv to completion (killed after timeout) and returns its output.
CommandResult Run(std::vector<std::string> argv, std::vector<std::string> env = {},
                  std::chrono::milliseconds timeout = std::chrono::seconds(60),
                  const std::string& stdin_text = "");

// Runs the lanekeeper binary with args.
CommandResult RunLanekeeper(std::vector<std::string> args, std::vector<std::string> env = {},
                            std::chrono::milliseconds timeout = std::chrono::seconds(60));

// Polls pred every 10 ms until it holds or timeout passes; returns the last value.
template <typename Pred>
bool Eventually(Pred pred, std::chrono::milliseconds timeout) {
  auto deadline = std::chrono::steady_clock::now() + timeout;
  while (true) {
    if (pred()) return true;
    if (std::chrono::steady_clock::now() >= deadline) return false;
    ::usleep(10'000);
  }
}

// Pids of the live processes whose parent is pid.
std::vector<pid_t> ChildPids(pid_t pid);
bool ProcessAlive(pid_t pid);

}  // namespace lk::testing
