#include "controller/backend/role_process.h"

#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <fstream>
#include <sstream>

extern char** environ;

namespace lk {

std::optional<uint64_t> ProcessStartTicks(pid_t pid) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/stat");
  std::string line;
  if (!std::getline(in, line)) return std::nullopt;
  // comm (field 2) is in parentheses and may hold spaces or ')': fields resume after the
  // last ')'.
  size_t close = line.rfind(')');
  if (close == std::string::npos) return std::nullopt;
  std::istringstream rest(line.substr(close + 1));
  std::string field;
  // Fields 3..22: state is field 3, starttime field 22.
  for (int i = 3; i <= 22; ++i) {
    if (!(rest >> field)) return std::nullopt;
  }
  // A zombie still has its stat file; it is as good as gone.
  std::istringstream again(line.substr(close + 1));
  std::string state;
  again >> state;
  if (state == "Z" || state == "X") return std::nullopt;
  try {
    return std::stoull(field);
  } catch (...) {
    return std::nullopt;
  }
}

std::vector<std::pair<pid_t, int>> ReapChildren() {
  std::vector<std::pair<pid_t, int>> out;
  for (;;) {
    int status;
    pid_t pid = waitpid(-1, &status, WNOHANG);
    if (pid <= 0) break;
    out.emplace_back(pid, status);
  }
  return out;
}

StatusOr<pid_t> SpawnInOwnProcessGroup(const std::vector<std::string>& argv,
                                       const std::map<std::string, std::string>& env) {
  std::vector<std::string> env_strings;
  for (char** e = environ; *e; ++e) {
    std::string_view kv(*e);
    std::string key(kv.substr(0, kv.find('=')));
    if (!env.count(key)) env_strings.emplace_back(kv);
  }
  for (const auto& [k, v] : env) env_strings.push_back(k + "=" + v);
  std::vector<char*> envp;
  for (auto& s : env_strings) envp.push_back(s.data());
  envp.push_back(nullptr);
  std::vector<char*> av;
  for (const auto& a : argv) av.push_back(const_cast<char*>(a.c_str()));
  av.push_back(nullptr);

  posix_spawnattr_t attr;
  posix_spawnattr_init(&attr);
  posix_spawnattr_setpgroup(&attr, 0);
  // Our callers block the signals they read from a signalfd; the child must not inherit
  // that mask or it could never be told to stop.
  sigset_t none;
  sigemptyset(&none);
  posix_spawnattr_setsigmask(&attr, &none);
  sigset_t defaults;
  sigemptyset(&defaults);
  sigaddset(&defaults, SIGTERM);
  sigaddset(&defaults, SIGINT);
  sigaddset(&defaults, SIGHUP);
  sigaddset(&defaults, SIGPIPE);
  posix_spawnattr_setsigdefault(&attr, &defaults);
  posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETPGROUP | POSIX_SPAWN_SETSIGMASK |
                                      POSIX_SPAWN_SETSIGDEF);
  // Nothing of ours but stdin/out/err: an inherited listening socket (the status server's)
  // would keep its port bound for as long as any role or worker lives.
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_addclosefrom_np(&actions, 3);
  pid_t pid;
  int rc = posix_spawn(&pid, av[0], &actions, &attr, av.data(), envp.data());
  posix_spawn_file_actions_destroy(&actions);
  posix_spawnattr_destroy(&attr);
  if (rc != 0) return Status::Internal("cannot start " + argv[0] + ": " + std::strerror(rc));
  return pid;
}

StatusOr<std::unique_ptr<RoleProcess>> RoleProcess::Start(
    const std::vector<std::string>& argv, const std::map<std::string, std::string>& env) {
  auto pid = SpawnInOwnProcessGroup(argv, env);
  if (!pid.ok()) return pid.status();
  std::unique_ptr<RoleProcess> p(new RoleProcess());
  p->pid_ = *pid;
  p->pidfd_ = static_cast<int>(syscall(SYS_pidfd_open, *pid, 0));
  // The child exists until we reap it (at worst a zombie, which ProcessStartTicks reads
  // as gone: then 0, and adoption of this record fails safe).
  p->start_ticks_ = ProcessStartTicks(*pid).value_or(0);
  return p;
}

StatusOr<std::unique_ptr<RoleProcess>> RoleProcess::Adopt(pid_t pid, uint64_t start_ticks) {
  if (pid <= 1) return Status::NotFound("no process " + std::to_string(pid));
  int fd = static_cast<int>(syscall(SYS_pidfd_open, pid, 0));
  if (fd < 0) return Status::NotFound("process " + std::to_string(pid) + " is gone");
  // Checked after pidfd_open: the pidfd then refers to the process whose start time we saw.
  auto ticks = ProcessStartTicks(pid);
  if (!ticks || *ticks != start_ticks) {
    close(fd);
    return Status::NotFound("process " + std::to_string(pid) +
                            " is gone (the pid now belongs to another process)");
  }
  std::unique_ptr<RoleProcess> p(new RoleProcess());
  p->pid_ = pid;
  p->pidfd_ = fd;
  p->start_ticks_ = start_ticks;
  p->adopted_ = true;
  return p;
}

RoleProcess::~RoleProcess() {
  if (pidfd_ >= 0) close(pidfd_);
}

bool RoleProcess::Exited() {
  if (exited_) return true;
  if (!adopted_) return false;  // a child is gone once reaped (OnReaped)
  bool gone = false;
  if (pidfd_ >= 0) {
    pollfd p{pidfd_, POLLIN, 0};
    gone = poll(&p, 1, 0) > 0;
  } else {
    auto ticks = ProcessStartTicks(pid_);
    gone = !ticks || *ticks != start_ticks_;
  }
  if (gone) {
    exited_ = true;
    exit_ = "exited (status unknown: adopted)";
    // Anything it left in its group goes with it.
    kill(-pid_, SIGKILL);
  }
  return exited_;
}

void RoleProcess::OnReaped(int status) {
  exited_ = true;
  if (WIFSIGNALED(status)) {
    exit_ = "killed by signal " + std::to_string(WTERMSIG(status));
  } else {
    exit_ = "exit code " + std::to_string(WEXITSTATUS(status));
  }
  kill(-pid_, SIGKILL);
}

void RoleProcess::Terminate() {
  if (exited_) return;
  if (!terminating_) {
    terminating_ = true;
    terminate_sent_ = std::chrono::steady_clock::now();
  }
  kill(pid_, SIGTERM);
}

void RoleProcess::Kill() {
  if (exited_) return;
  kill(-pid_, SIGKILL);
  kill(pid_, SIGKILL);
}

}  // namespace lk
