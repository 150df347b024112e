#include "worker/process_tree.h"

#include <dirent.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <charconv>
#include <cstdlib>
#include <cstring>
#include <sstream>
#include <string>
#include <unordered_map>
#include <unordered_set>

extern char** environ;

namespace lk {

namespace {

using SteadyClock = std::chrono::steady_clock;

// Closes an fd once, and remembers that it did.
struct Fd {
  int fd = -1;
  Fd() = default;
  explicit Fd(int f) : fd(f) {}
  Fd(const Fd&) = delete;
  Fd& operator=(const Fd&) = delete;
  ~Fd() { Close(); }
  void Close() {
    if (fd >= 0) ::close(fd);
    fd = -1;
  }
  bool open() const { return fd >= 0; }
};

// Appends data to a tail buffer that keeps at most limit bytes (trimming lazily, so a
// chatty command costs amortized O(1) per byte).
void AppendTail(std::string& tail, const char* data, size_t n, size_t limit) {
  tail.append(data, n);
  if (tail.size() > 2 * limit) tail.erase(0, tail.size() - limit);
}

void TrimTail(std::string& tail, size_t limit) {
  if (tail.size() > limit) tail.erase(0, tail.size() - limit);
}

// Reads what is available; closes fd at EOF or on a hard error.
void ReadAvailable(Fd& fd, std::string& tail, size_t limit) {
  char buf[16 * 1024];
  while (fd.open()) {
    ssize_t n = ::read(fd.fd, buf, sizeof buf);
    if (n > 0) {
      AppendTail(tail, buf, static_cast<size_t>(n), limit);
    } else if (n < 0 && errno == EINTR) {
      continue;
    } else if (n < 0 && errno == EAGAIN) {
      return;
    } else {
      fd.Close();
    }
  }
}

std::vector<std::string> MergedEnvironment(const std::vector<std::string>& extra) {
  std::vector<std::string> out;
  for (char** e = environ; *e != nullptr; ++e) {
    std::string_view kv = *e;
    std::string_view key = kv.substr(0, kv.find('='));
    bool overridden = false;
    for (const auto& x : extra) {
      if (std::string_view(x).substr(0, x.find('=')) == key) overridden = true;
    }
    if (!overridden) out.emplace_back(kv);
  }
  out.insert(out.end(), extra.begin(), extra.end());
  return out;
}

int PollTimeoutMs(SteadyClock::time_point now, SteadyClock::time_point until) {
  if (until == SteadyClock::time_point::max()) return -1;
  if (until <= now) return 0;
  auto ms = std::chrono::ceil<std::chrono::milliseconds>(until - now).count();
  return ms > 60'000 ? 60'000 : static_cast<int>(ms);
}

std::string ReadSmallFile(const std::string& path) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return {};
  std::string out;
  char buf[1024];
  ssize_t n;
  while ((n = ::read(fd, buf, sizeof buf)) > 0) out.append(buf, static_cast<size_t>(n));
  ::close(fd);
  return out;
}

}  // namespace

StatusOr<GroupCommandResult> RunInProcessGroup(const GroupCommand& command) {
  if (command.argv.empty()) return Status::InvalidArgument("empty command");
  int in[2], out[2], err[2];
  if (pipe2(in, O_CLOEXEC) != 0) return Status::Internal(std::string("pipe: ") + strerror(errno));
  Fd in_r(in[0]), in_w(in[1]);
  if (pipe2(out, O_CLOEXEC) != 0) return Status::Internal(std::string("pipe: ") + strerror(errno));
  Fd out_r(out[0]), out_w(out[1]);
  if (pipe2(err, O_CLOEXEC) != 0) return Status::Internal(std::string("pipe: ") + strerror(errno));
  Fd err_r(err[0]), err_w(err[1]);

  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_adddup2(&actions, in_r.fd, 0);
  posix_spawn_file_actions_adddup2(&actions, out_w.fd, 1);
  posix_spawn_file_actions_adddup2(&actions, err_w.fd, 2);
  // chdir in the child only: the worker runs many commands at once from many threads, and
  // the working directory is per process.
  if (!command.cwd.empty()) posix_spawn_file_actions_addchdir_np(&actions, command.cwd.c_str());

  // A new process group (pgid = the child's pid) so a stop reaches the command's own
  // children too. Signal dispositions and the mask are reset: the worker ignores SIGPIPE
  // and its threads may block signals, and a command must not inherit either.
  posix_spawnattr_t attr;
  posix_spawnattr_init(&attr);
  sigset_t all, none;
  sigfillset(&all);
  sigdelset(&all, SIGKILL);
  sigdelset(&all, SIGSTOP);
  sigemptyset(&none);
  posix_spawnattr_setpgroup(&attr, 0);
  posix_spawnattr_setsigdefault(&attr, &all);
  posix_spawnattr_setsigmask(&attr, &none);
  posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETPGROUP | POSIX_SPAWN_SETSIGDEF |
                                      POSIX_SPAWN_SETSIGMASK);

  std::vector<std::string> argv_copy = command.argv;
  std::vector<std::string> env = MergedEnvironment(command.env);
  std::vector<char*> av, ev;
  for (auto& a : argv_copy) av.push_back(a.data());
  av.push_back(nullptr);
  for (auto& e : env) ev.push_back(e.data());
  ev.push_back(nullptr);

  pid_t pid = -1;
  int rc = posix_spawnp(&pid, av[0], &actions, &attr, av.data(), ev.data());
  posix_spawn_file_actions_destroy(&actions);
  posix_spawnattr_destroy(&attr);
  if (rc != 0) {
    return Status::InvalidArgument("cannot run '" + command.argv[0] + "': " + strerror(rc));
  }
  in_r.Close();
  out_w.Close();
  err_w.Close();

  Fd pidfd(static_cast<int>(::syscall(SYS_pidfd_open, pid, 0)));
  if (!pidfd.open()) {
    int e = errno;
    ::kill(-pid, SIGKILL);
    ::waitpid(pid, nullptr, 0);
    return Status::Internal(std::string("pidfd_open: ") + strerror(e));
  }
  for (int fd : {in_w.fd, out_r.fd, err_r.fd}) fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);

  GroupCommandResult result;
  size_t stdin_off = 0;
  if (command.stdin_data.empty()) in_w.Close();
  bool stopping = false;
  bool killed = false;
  SteadyClock::time_point kill_at = SteadyClock::time_point::max();
  auto begin_stop = [&](SteadyClock::time_point now) {
    stopping = true;
    ::kill(-pid, SIGTERM);
    kill_at = now + command.kill_grace;
  };

  bool exited = false;
  while (!exited) {
    SteadyClock::time_point now = SteadyClock::now();
    if (!stopping && now >= command.deadline) {
      result.timed_out = true;
      begin_stop(now);
    }
    if (stopping && !killed && now >= kill_at) {
      ::kill(-pid, SIGKILL);
      killed = true;
    }
    pollfd fds[5];
    int n = 0;
    fds[n++] = {pidfd.fd, POLLIN, 0};
    int out_i = -1, err_i = -1, in_i = -1, stop_i = -1;
    if (out_r.open()) { out_i = n; fds[n++] = {out_r.fd, POLLIN, 0}; }
    if (err_r.open()) { err_i = n; fds[n++] = {err_r.fd, POLLIN, 0}; }
    if (in_w.open()) { in_i = n; fds[n++] = {in_w.fd, POLLOUT, 0}; }
    // The stop fd stays readable once signalled, so it is watched only until we act on it.
    if (command.stop_fd >= 0 && !stopping) { stop_i = n; fds[n++] = {command.stop_fd, POLLIN, 0}; }
    SteadyClock::time_point wake = stopping ? (killed ? SteadyClock::time_point::max() : kill_at)
                                      : command.deadline;
    int ready = ::poll(fds, static_cast<nfds_t>(n), PollTimeoutMs(now, wake));
    if (ready < 0) {
      if (errno == EINTR) continue;
      ::kill(-pid, SIGKILL);
      killed = true;
      continue;
    }
    if (stop_i >= 0 && (fds[stop_i].revents & POLLIN)) {
      result.stopped = true;
      begin_stop(SteadyClock::now());
    }
    if (out_i >= 0 && fds[out_i].revents) ReadAvailable(out_r, result.stdout_tail, command.stdout_limit);
    if (err_i >= 0 && fds[err_i].revents) ReadAvailable(err_r, result.stderr_tail, command.stderr_limit);
    if (in_i >= 0 && fds[in_i].revents) {
      // A command that does not read its stdin is fine: EPIPE (SIGPIPE is ignored by the
      // worker) or POLLERR just ends the writing.
      ssize_t w = ::write(in_w.fd, command.stdin_data.data() + stdin_off,
                          command.stdin_data.size() - stdin_off);
      if (w > 0) stdin_off += static_cast<size_t>(w);
      if ((w < 0 && errno != EAGAIN && errno != EINTR) || stdin_off == command.stdin_data.size()) {
        in_w.Close();
      }
    }
    if (fds[0].revents & POLLIN) exited = true;
  }

  // The command's own process has exited but is not reaped yet, so its pid (= the group id)
  // cannot be reused: killing the group now reaches only its leftovers.
  ::kill(-pid, SIGKILL);
  siginfo_t info{};
  while (::waitid(P_PIDFD, static_cast<id_t>(pidfd.fd), &info, WEXITED) != 0 && errno == EINTR) {
  }
  if (info.si_code == CLD_EXITED) {
    result.exit_code = info.si_status;
  } else {
    result.term_signal = info.si_status;
  }

  // Collect what is still in the pipes. The killed leftovers close their ends as they die;
  // one that left the group (setsid) could hold them open forever, hence the bound.
  in_w.Close();
  SteadyClock::time_point drain_until = SteadyClock::now() + std::chrono::milliseconds(500);
  while (out_r.open() || err_r.open()) {
    SteadyClock::time_point now = SteadyClock::now();
    if (now >= drain_until) break;
    pollfd fds[2];
    int n = 0;
    if (out_r.open()) fds[n++] = {out_r.fd, POLLIN, 0};
    if (err_r.open()) fds[n++] = {err_r.fd, POLLIN, 0};
    if (::poll(fds, static_cast<nfds_t>(n), PollTimeoutMs(now, drain_until)) < 0 && errno != EINTR) break;
    ReadAvailable(out_r, result.stdout_tail, command.stdout_limit);
    ReadAvailable(err_r, result.stderr_tail, command.stderr_limit);
  }
  TrimTail(result.stdout_tail, command.stdout_limit);
  TrimTail(result.stderr_tail, command.stderr_limit);
  return result;
}

std::string TrimOutputTail(std::string tail) {
  while (!tail.empty() && (tail.back() == '\n' || tail.back() == '\r' || tail.back() == ' ')) {
    tail.pop_back();
  }
  return tail;
}

namespace {

// Whether this kernel lists each task's children in /proc/PID/task/TID/children
// (CONFIG_PROC_CHILDREN, on in Debian's and most distributions' kernels).
bool KernelListsChildren() {
  static const bool listed =
      ::access(("/proc/self/task/" + std::to_string(::gettid()) + "/children").c_str(), R_OK) == 0;
  return listed;
}

// Appends the children of pid: each of its threads lists those it forked. A process
// forking while this reads may be missed once; the next sample sees it.
void AppendChildren(pid_t pid, std::vector<pid_t>& out) {
  std::string tasks = "/proc/" + std::to_string(pid) + "/task";
  DIR* d = ::opendir(tasks.c_str());
  if (!d) return;
  while (dirent* e = ::readdir(d)) {
    if (e->d_name[0] == '.') continue;
    std::string list = ReadSmallFile(tasks + "/" + e->d_name + "/children");
    const char* c = list.c_str();
    char* end;
    for (long child = std::strtol(c, &end, 10); end != c; child = std::strtol(c, &end, 10)) {
      out.push_back(static_cast<pid_t>(child));
      c = end;
    }
  }
  ::closedir(d);
}

// The children of every process, from each one's parent in /proc/*/stat: one read per
// process on the host, for kernels without the children lists.
std::unordered_multimap<pid_t, pid_t> ScanChildren() {
  std::unordered_multimap<pid_t, pid_t> children;
  DIR* d = ::opendir("/proc");
  if (!d) return children;
  while (dirent* e = ::readdir(d)) {
    pid_t p = static_cast<pid_t>(std::atoi(e->d_name));
    if (p <= 0) continue;
    if (auto stat = ReadProcStat(p)) children.emplace(stat->ppid, p);
  }
  ::closedir(d);
  return children;
}

}  // namespace

std::optional<ProcStat> ReadProcStat(pid_t pid) {
  if (pid <= 0) return std::nullopt;
  std::string stat = ReadSmallFile("/proc/" + std::to_string(pid) + "/stat");
  auto close_paren = stat.rfind(')');
  if (close_paren == std::string::npos) return std::nullopt;
  std::istringstream rest(stat.substr(close_paren + 1));
  ProcStat out;
  std::string field;
  if (!(rest >> out.state >> out.ppid)) return std::nullopt;
  for (int i = 5; i <= 22; ++i) {
    if (!(rest >> field)) return std::nullopt;
  }
  auto r = std::from_chars(field.data(), field.data() + field.size(), out.start_ticks);
  if (r.ec != std::errc()) return std::nullopt;
  return out;
}

int64_t RssOfProcessTree(pid_t root, ProcessWalk how) {
  // Supervisors sample every 250 ms and workers every heartbeat, one of each per lane:
  // walking down from root reads a few files, where scanning /proc reads one per process
  // on the host.
  const bool walk = how == ProcessWalk::kChildrenLists ||
                    (how == ProcessWalk::kAuto && KernelListsChildren());
  std::unordered_multimap<pid_t, pid_t> scanned;
  if (!walk) scanned = ScanChildren();
  static const int64_t page = ::sysconf(_SC_PAGESIZE);
  int64_t total = 0;
  std::vector<pid_t> todo = {root};
  std::unordered_set<pid_t> seen;
  while (!todo.empty()) {
    pid_t p = todo.back();
    todo.pop_back();
    if (!seen.insert(p).second) continue;  // a pid reused mid-walk must not loop
    std::string statm = ReadSmallFile("/proc/" + std::to_string(p) + "/statm");
    auto space = statm.find(' ');
    if (space != std::string::npos) total += std::atoll(statm.c_str() + space + 1) * page;
    if (walk) {
      AppendChildren(p, todo);
    } else {
      auto [b, e] = scanned.equal_range(p);
      for (auto it = b; it != e; ++it) todo.push_back(it->second);
    }
  }
  return total;
}

}  // namespace lk
