// StopSignals: how a role process (supervisor, autopilot) learns it must stop — SIGTERM
// and SIGINT read from a signalfd, so that its one thread waits for a signal, its worker's
// exit and its next tick in one poll() (the controller polls fd() among its own). And ConnectUntilStopped: Redis, retried until it
// answers or a stop signal comes first.
//
// Owns: the signalfd. Install() before any thread starts, so threads inherit the mask.
// Not thread-safe: the role's one thread.
#pragma once

#include <chrono>
#include <memory>

#include "worker/redis_connection.h"

namespace lk {

class StopSignals {
 public:
  ~StopSignals();
  // Blocks SIGTERM and SIGINT and opens the signalfd; false (logged) when it cannot.
  bool Install();
  // Waits up to timeout for a stop signal, or for fd (-1: none) to become readable.
  // True once a stop signal has arrived (this time or before).
  bool Wait(std::chrono::milliseconds timeout, int fd = -1);
  bool stopping() const { return stopping_; }
  // For a caller that polls it among other descriptors: readable when a signal is pending.
  int fd() const { return fd_; }
  // Reads the pending signals; true when any arrived.
  bool Drain();

 private:
  int fd_ = -1;
  bool stopping_ = false;
};

// Connects to ep, retrying every 100 ms doubling to 5 s, logging once while it fails and
// once when it answers; nullptr when a stop signal arrived first.
std::unique_ptr<RedisConnection> ConnectUntilStopped(const RedisEndpoint& ep, StopSignals& stop);

}  // namespace lk
