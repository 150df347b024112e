// SwitchingProxy: a TCP proxy on 127.0.0.1 in front of the queue's Redis, which the chaos
// soak points at another backend to fail over — what a managed Redis's endpoint (a DNS name
// or a virtual IP) does when it promotes a replica.
//
// Why a proxy rather than restarting every role with the new port: a failover must reach
// the roles as it does in production, with their memory (the epochs they saw, their
// connections' state) intact; a restarted role would hide exactly what fencing must survive.
//
// Every role connects to port(). SwitchTo(backend) closes every open connection at once
// (clients see a reset and reconnect) and sends new ones to backend. A connection that the
// backend refuses (Redis restarting) is closed at once. One thread of its own, polling every
// socket; bytes are forwarded as they come, at most 64 KiB buffered per direction.
// Thread-safe: SwitchTo may be called from any thread.
#pragma once

#include <atomic>
#include <memory>
#include <thread>

#include "worker/status.h"

namespace lk::chaos {

class SwitchingProxy {
 public:
  static StatusOr<std::unique_ptr<SwitchingProxy>> Start(int backend_port);
  ~SwitchingProxy();
  SwitchingProxy(const SwitchingProxy&) = delete;
  SwitchingProxy& operator=(const SwitchingProxy&) = delete;

  int port() const { return port_; }
  int backend() const { return backend_.load(); }
  // New connections go to backend_port; every open one is closed before this returns.
  void SwitchTo(int backend_port);

 private:
  SwitchingProxy(int listen_fd, int wake_fd, int port, int backend);
  void Loop();

  const int listen_fd_;
  const int wake_fd_;  // an eventfd: SwitchTo and the destructor wake the loop
  const int port_;
  std::atomic<int> backend_;
  std::atomic<int> generation_{0};   // bumped by SwitchTo
  std::atomic<int> closed_generation_{0};  // the loop's answer: all older ones closed
  std::atomic<bool> stop_{false};
  std::thread thread_;
};

}  // namespace lk::chaos
