#include "tests/support/signal_guard.h"

#include <gtest/gtest.h>
#include <signal.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

namespace lk::testing {

namespace {

class RealProcessCalls : public ProcessCalls {
 public:
  pid_t Fork() override { return ::fork(); }
  int Kill(pid_t target, int sig) override { return ::kill(target, sig); }
};

// The only call of ProcessCalls::Kill: target is pid for a process, -pid for a group.
bool Send(pid_t id, bool group, int sig, ProcessCalls& calls) {
  const char* what = group ? "process group" : "process";
  if (id <= 1 || id == getpid() || (group && id == getpgrp())) {
    ADD_FAILURE() << "refusing to send signal " << sig << " to " << what << " " << id
                  << ": not a process the test started (a failed fork or an unset pid?)";
    return false;
  }
  if (calls.Kill(group ? -id : id, sig) == 0) return true;
  if (errno != ESRCH) {
    ADD_FAILURE() << "kill " << what << " " << id << " with signal " << sig << ": "
                  << std::strerror(errno);
  }
  return false;
}

}  // namespace

ProcessCalls& ProcessCalls::Real() {
  static RealProcessCalls real;
  return real;
}

bool SignalProcess(pid_t pid, int sig, ProcessCalls& calls) {
  return Send(pid, /*group=*/false, sig, calls);
}

bool SignalProcessGroup(pid_t pgid, int sig, ProcessCalls& calls) {
  return Send(pgid, /*group=*/true, sig, calls);
}

}  // namespace lk::testing
