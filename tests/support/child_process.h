// ChildProcess: a real process started by a test (usually the lanekeeper binary), with its
// stdout and stderr captured to files of its own, signals, and bounded waits.
//
// Nothing a test starts outlives it:
//   - each child leads a process group of its own. Once the child has exited, or when the
//     ChildProcess is destroyed, that group (whatever the child started in it) is SIGKILLed
//     and only then is the child reaped: until it is reaped its pid, and so its group id,
//     cannot belong to another process. A reaped child is never signalled again;
//   - each child, and through inheritance everything it starts, carries the running test's
//     marker in its environment (LK_TEST_MARKER). A supervisor's worker leads its own group
//     and is deliberately not tied to its parent's life, so group kills miss it; when the
//     test ends, every process that still carries its marker is SIGKILLed
//     (KillProcessesOfThisTest), and when a test starts, every process whose marker names a
//     test process that is gone (crashed, or killed by ctest's timeout) is SIGKILLed too;
//   - a child forked by the test's main thread also dies with the test process
//     (PR_SET_PDEATHSIG, which fires when the forking *thread* ends: a child forked by
//     another thread is left to its ChildProcess and the sweeps).
// A child that cannot be started (temp dir, fork, exec) is a test failure with the reason;
// it then has no pid and nothing is ever signalled on its behalf (tests/support/signal_guard.h).
// Not thread-safe; a ChildProcess may be created on any thread.
#pragma once

#include <sys/types.h>
#include <unistd.h>

#include <chrono>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "tests/support/signal_guard.h"
#include "worker/status.h"

namespace lk::testing {

// The lanekeeper binary under test (set by CMake).
std::string LanekeeperBinary();
// A helper program of tests/helpers/ (hold_memory, recorded_job...), by name.
std::string TestHelperBinary(const std::string& name);

// The running test's marker ("PID.START.N": this test process and the test's number in it),
// which every ChildProcess and its descendants carry as LK_TEST_MARKER in their environment.
const std::string& TestMarker();
// SIGKILLs every process that carries this test's marker; returns how many. Runs by itself
// when each test ends; call it earlier where a test must know they are gone.
int KillProcessesOfThisTest();
// SIGKILLs every process whose marker names a test process that is gone (it crashed, or
// ctest's timeout killed it); returns how many. Runs by itself when each test starts.
int KillProcessesOfGoneTests();

struct CommandResult {
  int exit_code = -1;  // -1: killed by a signal, timed out or could not start
  std::string out;
  std::string err;
};

class ChildProcess {
 public:
  // argv[0] is looked up in PATH unless it contains '/'. env entries "K=V" are added to
  // (and override) the test's environment. A start that fails is a test failure.
  ChildProcess(std::vector<std::string> argv, std::vector<std::string> env = {},
               ProcessCalls& calls = ProcessCalls::Real());
  // The same without the test failure, for callers that report the Status themselves.
  static StatusOr<std::unique_ptr<ChildProcess>> Start(std::vector<std::string> argv,
                                                       std::vector<std::string> env = {});
  ~ChildProcess();
  ChildProcess(const ChildProcess&) = delete;
  ChildProcess& operator=(const ChildProcess&) = delete;

  bool started() const { return pid_ > 0; }
  // The child's pid (also its process group id); 0 when it could not be started.
  pid_t pid() const { return pid_; }
  // To the child alone; false once it has exited or when it never started.
  bool Signal(int sig);
  // To the child's process group. false when it never started or has been reaped (then
  // what was left in its group is dead already).
  bool SignalGroup(int sig);
  // Waits up to timeout for the exit. Returns the exit code (128+N for signal N), or
  // nullopt if still running (or never started).
  std::optional<int> Wait(std::chrono::milliseconds timeout);
  bool Running();
  std::string Stdout() const;
  std::string Stderr() const;
  // Waits until stdout+stderr contain text, up to timeout.
  bool WaitForOutput(const std::string& text, std::chrono::milliseconds timeout);

 private:
  explicit ChildProcess(ProcessCalls& calls) : calls_(calls) {}
  Status Launch(std::vector<std::string> argv, const std::vector<std::string>& env);

  ProcessCalls& calls_;
  pid_t pid_ = 0;
  bool reaped_ = false;
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

// Polls pred every 10 ms until it holds or timeout passes; returns whether it held.
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
