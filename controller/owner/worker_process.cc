#include "controller/owner/worker_process.h"

#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <memory>

#include "controller/backend/role_process.h"
#include "worker/exit_codes.h"

namespace lk {

std::string WorkerExit::Describe() const {
  if (signaled) return "killed by signal " + std::to_string(signal);
  std::string why;
  switch (code) {
    case kExitOk: why = " (clean exit)"; break;
    case kExitMaxRss: why = " (max RSS: drained)"; break;
    case kExitFenced: why = " (fenced: epoch no longer current)"; break;
    case kExitUsage: why = " (usage error)"; break;
    default: break;
  }
  return "exit code " + std::to_string(code) + why;
}

std::string SelfExecutable() {
  char buf[4096];
  ssize_t n = readlink("/proc/self/exe", buf, sizeof(buf) - 1);
  return n > 0 ? std::string(buf, n) : "lanekeeper";
}

StatusOr<std::unique_ptr<WorkerProcess>> WorkerProcess::Start(
    const std::vector<std::string>& argv, const std::map<std::string, std::string>& env) {
  auto pid = SpawnInOwnProcessGroup(argv, env);
  if (!pid.ok()) return pid.status();
  std::unique_ptr<WorkerProcess> w(new WorkerProcess());
  w->pid_ = *pid;
  w->started_ = std::chrono::steady_clock::now();
  w->pidfd_ = static_cast<int>(syscall(SYS_pidfd_open, *pid, 0));
  return w;
}

WorkerProcess::~WorkerProcess() {
  if (pidfd_ >= 0) close(pidfd_);
}

std::optional<WorkerExit> WorkerProcess::Poll() {
  if (exit_) return exit_;
  int status;
  pid_t r = waitpid(pid_, &status, WNOHANG);
  if (r != pid_) return std::nullopt;
  WorkerExit e;
  if (WIFSIGNALED(status)) {
    e.signaled = true;
    e.signal = WTERMSIG(status);
    e.code = 128 + e.signal;
  } else {
    e.code = WEXITSTATUS(status);
  }
  // Anything the worker left in its group (a handler's children) goes with it.
  kill(-pid_, SIGKILL);
  exit_ = e;
  return exit_;
}

void WorkerProcess::Signal(int sig) {
  if (!exit_) kill(pid_, sig);
}

WorkerExit WorkerProcess::Stop(std::chrono::milliseconds drain_timeout) {
  if (auto e = Poll()) return *e;
  Signal(SIGTERM);
  auto deadline = std::chrono::steady_clock::now() + drain_timeout;
  while (std::chrono::steady_clock::now() < deadline) {
    if (auto e = Poll()) return *e;
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
        deadline - std::chrono::steady_clock::now());
    pollfd p{pidfd_, POLLIN, 0};
    poll(&p, 1, static_cast<int>(std::max<int64_t>(1, std::min<int64_t>(left.count(), 200))));
  }
  kill(-pid_, SIGKILL);
  kill(pid_, SIGKILL);
  int status;
  waitpid(pid_, &status, 0);
  exit_ = WorkerExit{128 + SIGKILL, true, SIGKILL};
  return *exit_;
}

}  // namespace lk
