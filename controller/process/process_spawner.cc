#include "controller/process/process_spawner.h"

#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "worker/exit_codes.h"
#include "worker/process_tree.h"

extern char** environ;

namespace lk {

namespace {

// Every signal we send goes through here. A pid of 0, -1 or 1 would reach our own group,
// every process we may signal, or init: refuse, loudly, instead.
void SendSignal(pid_t pid, int sig, bool group) {
  if (pid <= 1) {
    fprintf(stderr, "lanekeeper: refusing to signal pid %d: a broken process handle\n", pid);
    return;
  }
  kill(group ? -pid : pid, sig);
}

ProcessExit FromWaitStatus(int status) {
  ProcessExit e;
  if (WIFSIGNALED(status)) {
    e.signaled = true;
    e.signal = WTERMSIG(status);
    e.code = 128 + e.signal;
  } else {
    e.code = WEXITSTATUS(status);
  }
  return e;
}

class PosixProcess final : public ProcessHandle {
 public:
  PosixProcess(pid_t pid, int pidfd, uint64_t start_ticks, bool adopted)
      : pid_(pid), pidfd_(pidfd), start_ticks_(start_ticks), adopted_(adopted) {}
  ~PosixProcess() override {
    if (pidfd_ >= 0) close(pidfd_);
  }

  pid_t pid() const override { return pid_; }
  uint64_t start_ticks() const override { return start_ticks_; }
  bool adopted() const override { return adopted_; }
  int wait_fd() const override { return pidfd_; }

  std::optional<ProcessExit> Poll() override {
    if (exit_) return exit_;
    if (!adopted_) {
      // Noticed without reaping (WNOWAIT): while the zombie stands its pid cannot be
      // reused, so killing its group below cannot reach an unrelated process group.
      siginfo_t info{};
      if (waitid(P_PID, static_cast<id_t>(pid_), &info, WEXITED | WNOHANG | WNOWAIT) != 0 ||
          info.si_pid != pid_) {
        return std::nullopt;
      }
      SendSignal(pid_, SIGKILL, /*group=*/true);
      int status;
      waitpid(pid_, &status, 0);
      exit_ = FromWaitStatus(status);
      return exit_;
    } else {
      // Not our child: gone when its pidfd is readable, or its pid names another process.
      bool gone;
      if (pidfd_ >= 0) {
        pollfd p{pidfd_, POLLIN, 0};
        gone = poll(&p, 1, 0) > 0;
      } else {
        auto ticks = ProcessStartTicks(pid_);
        gone = !ticks || *ticks != start_ticks_;
      }
      if (!gone) return std::nullopt;
      exit_ = ProcessExit::Unknown();
    }
    // Anything it left in its group goes with it.
    SendSignal(pid_, SIGKILL, /*group=*/true);
    return exit_;
  }

  void Signal(int sig) override {
    if (!exit_) SendSignal(pid_, sig, /*group=*/false);
  }

  void KillGroup() override {
    if (exit_) return;
    SendSignal(pid_, SIGKILL, /*group=*/true);
    SendSignal(pid_, SIGKILL, /*group=*/false);
  }

 private:
  pid_t pid_;
  int pidfd_;
  uint64_t start_ticks_;
  bool adopted_;
  std::optional<ProcessExit> exit_;
};

int PidfdOpen(pid_t pid) { return static_cast<int>(syscall(SYS_pidfd_open, pid, 0)); }

class PosixSpawner final : public ProcessSpawner {
 public:
  StatusOr<std::unique_ptr<ProcessHandle>> Spawn(
      const std::vector<std::string>& argv,
      const std::map<std::string, std::string>& env) override {
    if (argv.empty()) return Status::InvalidArgument("cannot start a process: no argv");
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
    for (int sig : {SIGTERM, SIGINT, SIGHUP, SIGPIPE}) sigaddset(&defaults, sig);
    posix_spawnattr_setsigdefault(&attr, &defaults);
    posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETPGROUP | POSIX_SPAWN_SETSIGMASK |
                                        POSIX_SPAWN_SETSIGDEF);
    // Nothing of ours but stdin/out/err: an inherited listening socket (the status
    // server's) would keep its port bound for as long as any role or worker lives.
    posix_spawn_file_actions_t actions;
    posix_spawn_file_actions_init(&actions);
    posix_spawn_file_actions_addclosefrom_np(&actions, 3);
    pid_t pid = 0;
    int rc = posix_spawn(&pid, av[0], &actions, &attr, av.data(), envp.data());
    posix_spawn_file_actions_destroy(&actions);
    posix_spawnattr_destroy(&attr);
    if (rc != 0) return Status::Internal("cannot start " + argv[0] + ": " + std::strerror(rc));
    if (pid <= 1) return Status::Internal("cannot start " + argv[0] + ": posix_spawn gave no pid");
    // The child exists until it is reaped (at worst a zombie, which ProcessStartTicks
    // reads as gone: then 0, and adopting this record later fails safe).
    return std::unique_ptr<ProcessHandle>(
        new PosixProcess(pid, PidfdOpen(pid), ProcessStartTicks(pid).value_or(0), false));
  }

  StatusOr<std::unique_ptr<ProcessHandle>> Adopt(pid_t pid, uint64_t start_ticks) override {
    if (pid <= 1) return Status::NotFound("no process " + std::to_string(pid));
    int fd = PidfdOpen(pid);
    if (fd < 0) return Status::NotFound("process " + std::to_string(pid) + " is gone");
    // Checked after pidfd_open: the pidfd then refers to the process whose start time we saw.
    auto ticks = ProcessStartTicks(pid);
    if (!ticks || *ticks != start_ticks) {
      close(fd);
      return Status::NotFound("process " + std::to_string(pid) +
                              " is gone (the pid now belongs to another process)");
    }
    return std::unique_ptr<ProcessHandle>(new PosixProcess(pid, fd, start_ticks, true));
  }
};

}  // namespace

std::string ProcessExit::Describe() const {
  if (!known) return "exited (status unknown: adopted)";
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

ProcessSpawner& PosixProcessSpawner() {
  static PosixSpawner spawner;
  return spawner;
}

std::optional<uint64_t> ProcessStartTicks(pid_t pid) {
  auto stat = ReadProcStat(pid);
  // A zombie still has its stat file; it is as good as gone.
  if (!stat || stat->state == 'Z' || stat->state == 'X') return std::nullopt;
  return stat->start_ticks;
}

std::string SelfExecutable() {
  char buf[4096];
  ssize_t n = readlink("/proc/self/exe", buf, sizeof(buf) - 1);
  return n > 0 ? std::string(buf, n) : "lanekeeper";
}

}  // namespace lk
