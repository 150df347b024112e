// LoopbackPort: a TCP port on 127.0.0.1 that the kernel chose (bind to port 0) and that this
// object holds until it is destroyed, so that no other test can take it meanwhile — unlike
// "find a free port, release it, hope": under `ctest -j2` another test's server or an
// outgoing connection can take a released port before the server meant for it binds.
//
//   Refusing()  bound, never listening, not shared: nothing ever listens there and nobody
//               else can bind it, so a connection is refused (ECONNREFUSED) for as long as
//               the object lives. For "nothing listens here" tests.
//   ForServer() bound with SO_REUSEADDR, never listening: a server the test starts on this
//               port that sets SO_REUSEADDR itself (redis-server, lanekeeper's status server
//               through cpprestsdk — both do) binds and listens on it, because Linux lets
//               sockets that all set SO_REUSEADDR share a port while at most one listens.
//               Anyone else's bind fails, and the kernel picks it for no ephemeral port.
//               Held across a server restart, the port stays the test's.
//   Listening() bound and listening, never accepting: "address already in use" tests.
//
// For a controller test: hold a ForServer port for each controller it starts, pass
// --status-addr port->address(), and ask port->CanListen() where it now asks whether a
// probed "free" port can be bound (which another test may have taken meanwhile).
//
// Errors (socket, bind, listen, getsockname) are Unavailable with their errno text.
// Not thread-safe.
#pragma once

#include <memory>
#include <string>

#include "worker/status.h"

namespace lk::testing {

class LoopbackPort {
 public:
  static StatusOr<std::unique_ptr<LoopbackPort>> Refusing();
  static StatusOr<std::unique_ptr<LoopbackPort>> ForServer();
  static StatusOr<std::unique_ptr<LoopbackPort>> Listening();
  ~LoopbackPort();
  LoopbackPort(const LoopbackPort&) = delete;
  LoopbackPort& operator=(const LoopbackPort&) = delete;

  int port() const { return port_; }
  // "127.0.0.1:PORT".
  std::string address() const;
  // Whether a server could listen on this port right now, i.e. nothing listens on it: a
  // ForServer port is the test's alone, so this asks only about the servers it started
  // there (e.g. a killed server's children that inherited its listening socket).
  bool CanListen() const;

 private:
  enum class Kind { kRefusing, kForServer, kListening };
  static StatusOr<std::unique_ptr<LoopbackPort>> Bind(Kind kind);
  LoopbackPort(int fd, int port) : fd_(fd), port_(port) {}
  int fd_;
  int port_;
};

// For tests that have not moved to LoopbackPort yet: a port that was free an instant ago.
// Racy by nature (see above); -1 and a test failure when no socket can be bound.
int FreeLoopbackPort();

}  // namespace lk::testing
