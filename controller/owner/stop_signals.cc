#include "controller/owner/stop_signals.h"

#include <poll.h>
#include <signal.h>
#include <sys/signalfd.h>
#include <unistd.h>

#include <spdlog/spdlog.h>

#include <algorithm>

namespace lk {

StopSignals::~StopSignals() {
  if (fd_ >= 0) close(fd_);
}

bool StopSignals::Install() {
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGTERM);
  sigaddset(&set, SIGINT);
  pthread_sigmask(SIG_BLOCK, &set, nullptr);
  fd_ = signalfd(-1, &set, SFD_CLOEXEC | SFD_NONBLOCK);
  if (fd_ < 0) spdlog::error("cannot create a signalfd");
  return fd_ >= 0;
}

bool StopSignals::Wait(std::chrono::milliseconds timeout, int fd) {
  pollfd fds[2] = {{fd_, POLLIN, 0}, {fd, POLLIN, 0}};
  int ms = static_cast<int>(std::max<int64_t>(timeout.count(), 0));
  poll(fds, fd >= 0 ? 2 : 1, ms);
  // Read whatever is there, whether poll said so or not: a signal that arrived just now
  // is not lost to the next wait.
  Drain();
  return stopping_;
}

bool StopSignals::Drain() {
  bool any = false;
  signalfd_siginfo info;
  while (fd_ >= 0 && read(fd_, &info, sizeof(info)) == sizeof(info)) {
    spdlog::info("received signal {}: stopping", info.ssi_signo);
    stopping_ = any = true;
  }
  return any;
}

std::unique_ptr<RedisConnection> ConnectUntilStopped(const RedisEndpoint& ep, StopSignals& stop) {
  using namespace std::chrono_literals;
  auto delay = 100ms;
  bool logged = false;
  while (true) {
    auto conn = RedisConnection::Connect(ep, 2000ms);
    if (conn.ok()) {
      if (logged) spdlog::info("Redis at {} is back", ep.Redacted());
      return std::move(conn).value();
    }
    if (!logged) spdlog::warn("{}; retrying", conn.status().message());
    logged = true;
    if (stop.Wait(delay)) return nullptr;
    delay = std::min<std::chrono::milliseconds>(delay * 2, 5000ms);
  }
}

}  // namespace lk
