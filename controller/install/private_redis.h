// PrivateRedis: a redis-server that belongs to one directory — the Redis `lanekeeper up`
// brings for lanes that name none.
//
// It listens only on DIR/redis.sock (mode 700; `port 0`, so no TCP: nothing else on the
// host reaches it), keeps an append-only file in DIR/appendonlydir (appendfsync everysec:
// a crash loses at most the last second of jobs, a clean stop nothing, since SIGTERM makes
// Redis fsync before it exits) and logs to DIR/redis.log. It runs in a process group of
// its own, so a Ctrl-C at the terminal reaches only its owner, who stops it last, after
// the lanes that use it.
//
// Owns: the redis-server process — started, or adopted when an earlier owner that was
// killed left one running in DIR (it still answers on DIR/redis.sock and is named by
// DIR/redis.pid) — and a pidfd on it. Does not own: reaping. The Lane controller reaps
// every child with waitpid(-1), this one included, so liveness comes from the pidfd, never
// from waitpid. Not thread-safe; wait_fd() may be polled from another thread.
#pragma once

#include <sys/types.h>

#include <memory>
#include <string>

#include "worker/duration.h"
#include "worker/status.h"

namespace lk {

struct PrivateRedisOptions {
  std::string dir;                      // absolute; created (mode 700) if missing
  std::string binary = "redis-server";  // looked up in PATH unless it contains '/'
  // Until it answers PING. Replaying a large AOF takes time; a quick-start queue is small.
  Millis start_timeout{20'000};
  // After SIGTERM (Redis fsyncs the AOF and exits), before SIGKILL to its process group.
  Millis stop_timeout{10'000};
};

class PrivateRedis {
 public:
  // Starts redis-server in options.dir, or adopts the one already running there, and
  // returns once it answers PING. NotFound when the binary is not in PATH (the message
  // names the Debian package); Unavailable, with the tail of its log, when it exits or
  // does not answer in time (then nothing is left running); InvalidArgument for a
  // directory whose socket path is too long for a unix socket.
  static StatusOr<std::unique_ptr<PrivateRedis>> Start(const PrivateRedisOptions& options);
  ~PrivateRedis();  // Stop()
  PrivateRedis(const PrivateRedis&) = delete;
  PrivateRedis& operator=(const PrivateRedis&) = delete;

  // unix://DIR/redis.sock, for a directory whether or not a server runs there.
  static std::string UrlFor(const std::string& dir);
  // InvalidArgument naming the socket path, its length and the limit when dir's socket
  // path is over kMaxUnixSocketPath (Start checks it first; up checks it before it starts
  // anything).
  static Status CheckSocketPath(const std::string& dir);

  const std::string& url() const { return url_; }
  pid_t pid() const { return pid_; }
  // True when Start found a live server left by an earlier owner and took it over.
  bool adopted() const { return adopted_; }
  // Readable once the process has exited.
  int wait_fd() const { return pidfd_; }

  // SIGTERM, then up to stop_timeout for it to exit, then SIGKILL to its process group.
  // Returns once it is gone. OK when it stopped on SIGTERM or had already exited; Internal
  // when it had to be killed (the AOF may then miss its last second). Idempotent.
  Status Stop();

 private:
  explicit PrivateRedis(PrivateRedisOptions options);
  Status Launch();
  Status Adopt(pid_t pid);
  Status WaitUntilReady(bool own_child, off_t log_offset);
  void Reap();

  PrivateRedisOptions options_;
  std::string url_;
  pid_t pid_ = -1;
  int pidfd_ = -1;
  bool adopted_ = false;
  bool stopped_ = false;
};

}  // namespace lk
