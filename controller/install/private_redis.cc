#include "controller/install/private_redis.h"

#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <deque>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <thread>

#include "controller/process/process_spawner.h"
#include "worker/redis_connection.h"

#ifndef P_PIDFD
#define P_PIDFD 3
#endif

namespace lk {

namespace fs = std::filesystem;
using SteadyClock = std::chrono::steady_clock;

namespace {

constexpr Millis kPollEvery{50};
constexpr Millis kKillWait{5'000};

std::string SocketPath(const std::string& dir) { return dir + "/redis.sock"; }
std::string LogPath(const std::string& dir) { return dir + "/redis.log"; }
std::string PidPath(const std::string& dir) { return dir + "/redis.pid"; }

int PidfdOpen(pid_t pid) { return static_cast<int>(syscall(SYS_pidfd_open, pid, 0)); }
int PidfdSignal(int pidfd, int sig) {
  return static_cast<int>(syscall(SYS_pidfd_send_signal, pidfd, sig, nullptr, 0));
}

// Whether the process behind pidfd has exited, waiting up to timeout for it.
bool WaitExited(int pidfd, Millis timeout) {
  pollfd p{pidfd, POLLIN, 0};
  return poll(&p, 1, static_cast<int>(timeout.count())) > 0;
}

// argv[0] as posix_spawn needs it: absolute, found in PATH like a shell would.
StatusOr<std::string> FindBinary(const std::string& name) {
  if (name.find('/') != std::string::npos) {
    if (access(name.c_str(), X_OK) == 0) return fs::absolute(name).string();
    return Status::NotFound(name + ": " + std::strerror(errno));
  }
  const char* path = std::getenv("PATH");
  std::stringstream dirs(path && *path ? path : "/usr/local/bin:/usr/bin:/bin");
  for (std::string dir; std::getline(dirs, dir, ':');) {
    std::string candidate = (dir.empty() ? "." : dir) + "/" + name;
    if (access(candidate.c_str(), X_OK) == 0) return fs::absolute(candidate).string();
  }
  return Status::NotFound(name + " is not installed (not found in PATH): install the Debian "
                                 "package redis-server (apt-get install redis-server)");
}

bool AnswersPing(const RedisEndpoint& endpoint) {
  auto conn = RedisConnection::Connect(endpoint, Millis(500));
  if (!conn.ok()) return false;
  auto reply = (*conn)->Command({"PING"});
  // A server still replaying its AOF answers -LOADING: not ready yet.
  return reply.ok() && !reply->is_error() && reply->str == "PONG";
}

// The last lines of the log written since offset, indented, for an error message.
std::string LogTail(const std::string& path, off_t offset) {
  std::ifstream in(path);
  if (!in) return "  (no log at " + path + ")";
  in.seekg(offset);
  std::deque<std::string> lines;
  for (std::string line; std::getline(in, line);) {
    lines.push_back(line);
    if (lines.size() > 15) lines.pop_front();
  }
  if (lines.empty()) return "  (" + path + " is empty)";
  std::string out;
  for (const auto& l : lines) out += "\n  " + l;
  return out;
}

// The raw /proc/PID/cmdline: redis-server rewrites it to "redis-server unixsocket:PATH".
std::string CommandLine(pid_t pid) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/cmdline", std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// The redis-server DIR/redis.pid names, if it is alive and serves DIR's socket.
pid_t LiveServerOf(const std::string& dir) {
  std::ifstream in(PidPath(dir));
  long pid = 0;
  if (!(in >> pid) || pid <= 1) return -1;
  std::string cmdline = CommandLine(static_cast<pid_t>(pid));
  if (cmdline.find("redis-server") == std::string::npos ||
      cmdline.find(SocketPath(dir)) == std::string::npos) {
    return -1;  // gone, or the pid now belongs to another process
  }
  return static_cast<pid_t>(pid);
}

}  // namespace

std::string PrivateRedis::UrlFor(const std::string& dir) { return "unix://" + SocketPath(dir); }

// 106 bytes (kMaxUnixSocketPath: a path of 107 connects to garbage under hiredis 0.14, seen
// under ASan), checked before the URL is so that the message names the directory.
Status PrivateRedis::CheckSocketPath(const std::string& dir) {
  if (SocketPath(dir).size() <= kMaxUnixSocketPath) return Status::OK();
  return Status::InvalidArgument(
      "the socket path " + SocketPath(dir) + " is " + std::to_string(SocketPath(dir).size()) +
      " bytes, over the " + std::to_string(kMaxUnixSocketPath) +
      " a unix socket allows (hiredis 0.14): choose a shorter state dir");
}

PrivateRedis::PrivateRedis(PrivateRedisOptions options)
    : options_(std::move(options)), url_(UrlFor(options_.dir)) {}

PrivateRedis::~PrivateRedis() { Stop(); }

StatusOr<std::unique_ptr<PrivateRedis>> PrivateRedis::Start(const PrivateRedisOptions& options) {
  std::unique_ptr<PrivateRedis> redis(new PrivateRedis(options));
  const std::string& dir = options.dir;
  LK_RETURN_IF_ERROR(CheckSocketPath(dir));
  auto endpoint = ParseRedisUrl(redis->url_);
  if (!endpoint.ok() || endpoint->unix_path != SocketPath(dir)) {
    return Status::InvalidArgument("the directory " + dir +
                                   " cannot be named in a unix:// Redis URL: choose one "
                                   "without '@' or '?'");
  }
  std::error_code ec;
  fs::create_directories(dir, ec);
  if (ec) return Status::InvalidArgument("cannot create " + dir + ": " + ec.message());
  // The AOF holds every job's payload and result: for its owner's eyes only.
  fs::permissions(dir, fs::perms::owner_all, ec);

  if (pid_t pid = LiveServerOf(dir); pid > 0) {
    if (Status s = redis->Adopt(pid); !s.ok()) return s;
    return redis;
  }
  // Something else on our socket (its pid file lost) would share the AOF directory with
  // the server we start: refuse rather than run two.
  if (AnswersPing(*endpoint)) {
    return Status::Conflict("a Redis already answers on " + SocketPath(dir) + " but " +
                            PidPath(dir) + " does not name it: stop it first");
  }
  if (Status s = redis->Launch(); !s.ok()) return s;
  return redis;
}

Status PrivateRedis::Adopt(pid_t pid) {
  pidfd_ = PidfdOpen(pid);
  if (pidfd_ < 0) {
    return Status::Internal("cannot watch redis-server pid " + std::to_string(pid) + ": " +
                            std::strerror(errno));
  }
  pid_ = pid;
  adopted_ = true;
  // Checked again now that the pidfd pins the process: the pid was not reused meanwhile.
  if (CommandLine(pid).find(SocketPath(options_.dir)) == std::string::npos) {
    close(pidfd_);
    pidfd_ = -1;
    pid_ = -1;
    adopted_ = false;
    return Launch();
  }
  struct stat st{};
  off_t log_offset = stat(LogPath(options_.dir).c_str(), &st) == 0 ? st.st_size : 0;
  Status s = WaitUntilReady(false, log_offset);
  if (!s.ok()) {
    stopped_ = true;  // not ours to stop: it ran before us, and may hold data being replayed
    return Status::Unavailable("redis-server pid " + std::to_string(pid) + " (from " +
                               PidPath(options_.dir) + ") runs but " + s.message() +
                               "; stop it (kill " + std::to_string(pid) + ") and start again");
  }
  return Status::OK();
}

Status PrivateRedis::Launch() {
  auto binary = FindBinary(options_.binary);
  if (!binary.ok()) return binary.status();
  const std::string& dir = options_.dir;
  struct stat st{};
  off_t log_offset = stat(LogPath(dir).c_str(), &st) == 0 ? st.st_size : 0;
  // `save ""`: no RDB snapshots; the AOF alone is the durable copy.
  std::vector<std::string> argv = {*binary,        "--port",          "0",
                                   "--unixsocket", SocketPath(dir),   "--unixsocketperm",
                                   "700",          "--dir",           dir,
                                   "--appendonly", "yes",             "--appendfsync",
                                   "everysec",     "--save",          "",
                                   "--daemonize",  "no",              "--logfile",
                                   LogPath(dir),   "--pidfile",       PidPath(dir)};
  auto proc = PosixProcessSpawner().Spawn(argv, {});
  if (!proc.ok()) return proc.status();
  // Its own pidfd below: the handle's goes with it (closing a pidfd stops nothing).
  pid_ = (*proc)->pid();
  pidfd_ = PidfdOpen(pid_);
  if (pidfd_ < 0) {
    Status s = Status::Internal("cannot watch redis-server pid " + std::to_string(pid_) +
                                " (pidfd_open needs Linux 5.3): " + std::strerror(errno));
    kill(-pid_, SIGKILL);
    waitpid(pid_, nullptr, 0);
    return s;
  }
  if (Status s = WaitUntilReady(true, log_offset); !s.ok()) {
    Stop();
    return Status::Unavailable("redis-server " + s.message() + "; its log (" + LogPath(dir) +
                               "):" + LogTail(LogPath(dir), log_offset));
  }
  return Status::OK();
}

Status PrivateRedis::WaitUntilReady(bool own_child, off_t log_offset) {
  auto endpoint = *ParseRedisUrl(url_);
  auto deadline = SteadyClock::now() + options_.start_timeout;
  while (!AnswersPing(endpoint)) {
    if (WaitExited(pidfd_, Millis(0))) {
      std::string how = "exited";
      siginfo_t info{};
      if (own_child && waitid(static_cast<idtype_t>(P_PIDFD), pidfd_, &info, WEXITED) == 0) {
        how = info.si_code == CLD_EXITED
                  ? "exited with code " + std::to_string(info.si_status)
                  : "was killed by signal " + std::to_string(info.si_status);
        stopped_ = true;  // reaped: nothing left to stop
      }
      return Status::Unavailable(how + " before it answered on " + SocketPath(options_.dir));
    }
    if (SteadyClock::now() >= deadline) {
      return Status::Unavailable("did not answer PING on " + SocketPath(options_.dir) +
                                 " within " + FormatDuration(options_.start_timeout));
    }
    std::this_thread::sleep_for(kPollEvery);
  }
  return Status::OK();
}

void PrivateRedis::Reap() {
  // Our child unless adopted; the controller may have reaped it already (ECHILD).
  siginfo_t info{};
  if (!adopted_) waitid(static_cast<idtype_t>(P_PIDFD), pidfd_, &info, WEXITED | WNOHANG);
}

Status PrivateRedis::Stop() {
  if (stopped_ || pidfd_ < 0) {
    if (pidfd_ >= 0) close(pidfd_);
    pidfd_ = -1;
    return Status::OK();
  }
  stopped_ = true;
  Status result = Status::OK();
  if (!WaitExited(pidfd_, Millis(0))) {
    PidfdSignal(pidfd_, SIGTERM);
    if (!WaitExited(pidfd_, options_.stop_timeout)) {
      // Alive, so its pid still names its process group: take a forked AOF rewrite too.
      kill(-pid_, SIGKILL);
      PidfdSignal(pidfd_, SIGKILL);
      WaitExited(pidfd_, kKillWait);
      result = Status::Internal("redis-server pid " + std::to_string(pid_) +
                                " did not stop within " +
                                FormatDuration(options_.stop_timeout) + " of SIGTERM; killed it");
    }
  }
  Reap();
  close(pidfd_);
  pidfd_ = -1;
  return result;
}

}  // namespace lk
