// RedisServer: a private redis-server for one test — a free loopback port, a temp dir,
// killed (and its dir removed) when the object is destroyed. Never the system instance.
#pragma once

#include <sys/types.h>

#include <memory>
#include <string>

#include "worker/status.h"

namespace lk::testing {

struct RedisServerOptions {
  bool appendonly = false;
  std::string password;    // non-empty: requirepass
  std::string extra_args;  // appended to the command line, space-separated
};

class RedisServer {
 public:
  static StatusOr<std::unique_ptr<RedisServer>> Start(const RedisServerOptions& options = {});
  ~RedisServer();

  int port() const { return port_; }
  pid_t pid() const { return pid_; }
  const std::string& dir() const { return dir_; }
  std::string url(int db = 0) const;

  // Stops the server (SIGKILL, like a crash) and starts it again on the same port and dir.
  Status Restart();
  void Kill();

 private:
  RedisServer() = default;
  Status Launch();
  RedisServerOptions options_;
  int port_ = 0;
  pid_t pid_ = -1;
  std::string dir_;
};

// A free TCP port on 127.0.0.1 (bound to port 0, read back, released).
int FreeLoopbackPort();

}  // namespace lk::testing
