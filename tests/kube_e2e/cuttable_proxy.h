// CuttableProxy: a TCP proxy on a loopback port in front of another (the fake API server),
// which a test uses to take the network away from a client in another process: Cut()
// closes every connection through it at once (a dropped watch), and while Block(true) holds,
// new connections are accepted and closed at once (the server is unreachable: the client
// backs off and retries). Bytes are copied unchanged both ways, one thread per connection.
// Thread-safe.
#pragma once

#include <atomic>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "worker/status.h"

namespace lk::kube_e2e {

class CuttableProxy {
 public:
  // Listens on 127.0.0.1, port 0; forwards to 127.0.0.1:target_port.
  static StatusOr<std::unique_ptr<CuttableProxy>> Start(int target_port);
  ~CuttableProxy();
  CuttableProxy(const CuttableProxy&) = delete;
  CuttableProxy& operator=(const CuttableProxy&) = delete;

  int port() const { return port_; }
  std::string url() const { return "http://127.0.0.1:" + std::to_string(port_); }
  // Closes every open connection; returns how many.
  int Cut();
  void Block(bool blocked) { blocked_ = blocked; }

 private:
  CuttableProxy() = default;
  void AcceptLoop();
  void Pump(int client, int upstream);

  int listen_fd_ = -1;
  int port_ = 0;
  int target_port_ = 0;
  std::atomic<bool> stopping_{false};
  std::atomic<bool> blocked_{false};
  std::mutex mu_;
  std::set<int> open_;  // client and upstream fds of live connections
  std::thread acceptor_;
  std::vector<std::thread> pumps_;
};

}  // namespace lk::kube_e2e
