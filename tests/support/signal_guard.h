// The one place the test harness signals a process. kill(2) with a pid of 0 or below signals
// a process group, and -1 every process the caller may signal — all of them as root, which
// CI is. A harness bug that turns a failed fork's -1 (or an unset 0) into a target must fail
// the test, not take the machine down: every signal a test or the harness sends goes
// through SignalProcess or SignalProcessGroup, which refuse such targets.
//
// ProcessCalls is the seam for the system calls that start and signal processes, so that
// the harness's own tests can make fork fail and record every kill (tests/harness_test.cc).
// Thread-safe (kill(2) is).
#pragma once

#include <sys/types.h>

namespace lk::testing {

class ProcessCalls {
 public:
  virtual ~ProcessCalls() = default;
  virtual pid_t Fork() = 0;
  virtual int Kill(pid_t target, int sig) = 0;  // kill(2) exactly: target <= 0 means groups
  // fork(2) and kill(2).
  static ProcessCalls& Real();
};

// Sends sig to the process pid. A pid of 1 or below, or this test process itself, is
// refused: a test failure, and nothing is sent. Returns true when the signal was delivered,
// false when refused or the process is gone (ESRCH); any other error fails the test.
bool SignalProcess(pid_t pid, int sig, ProcessCalls& calls = ProcessCalls::Real());

// Sends sig to every process of the process group pgid. A pgid of 1 or below, or the test
// process's own group (which holds ctest's job, or the terminal's), is refused as above.
bool SignalProcessGroup(pid_t pgid, int sig, ProcessCalls& calls = ProcessCalls::Real());

}  // namespace lk::testing
