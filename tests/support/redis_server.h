// RedisServer: a private redis-server for one test — on a loopback port the kernel chose and
// the test holds for the server's whole life, restarts included (LoopbackPort::ForServer),
// in a temp dir of its own; killed (and its dir removed) when the object is destroyed.
// Never the system instance. Every failure to start says why: the socket or bind error
// with its errno text, or the end of redis-server's own log.
// Not thread-safe.
#pragma once

#include <sys/types.h>

#include <memory>
#include <string>

#include "tests/support/child_process.h"
#include "tests/support/loopback_port.h"
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

  int port() const { return port_->port(); }
  pid_t pid() const { return process_ ? process_->pid() : 0; }
  const std::string& dir() const { return dir_; }
  std::string url(int db = 0) const;

  // Stops the server (SIGKILL, like a crash) and starts it again on the same port and dir.
  Status Restart();
  void Kill();

 private:
  RedisServer() = default;
  Status Launch();
  RedisServerOptions options_;
  std::unique_ptr<LoopbackPort> port_;
  std::unique_ptr<ChildProcess> process_;
  std::string dir_;
};

}  // namespace lk::testing
