#include "tests/kube_e2e/cuttable_proxy.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

namespace lk::kube_e2e {

namespace {

sockaddr_in Loopback(int port) {
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(static_cast<uint16_t>(port));
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  return a;
}

}  // namespace

StatusOr<std::unique_ptr<CuttableProxy>> CuttableProxy::Start(int target_port) {
  std::unique_ptr<CuttableProxy> p(new CuttableProxy());
  p->target_port_ = target_port;
  p->listen_fd_ = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in a = Loopback(0);
  socklen_t len = sizeof(a);
  if (p->listen_fd_ < 0 || bind(p->listen_fd_, reinterpret_cast<sockaddr*>(&a), sizeof(a)) != 0 ||
      listen(p->listen_fd_, 64) != 0 ||
      getsockname(p->listen_fd_, reinterpret_cast<sockaddr*>(&a), &len) != 0) {
    return Status::Internal(std::string("proxy: cannot listen on 127.0.0.1: ") + std::strerror(errno));
  }
  p->port_ = ntohs(a.sin_port);
  p->acceptor_ = std::thread([raw = p.get()] { raw->AcceptLoop(); });
  return p;
}

CuttableProxy::~CuttableProxy() {
  stopping_ = true;
  shutdown(listen_fd_, SHUT_RDWR);
  if (acceptor_.joinable()) acceptor_.join();
  Cut();
  for (auto& t : pumps_) t.join();
  close(listen_fd_);
}

void CuttableProxy::AcceptLoop() {
  while (!stopping_) {
    pollfd pfd{listen_fd_, POLLIN, 0};
    if (poll(&pfd, 1, 100) <= 0) continue;
    int client = accept4(listen_fd_, nullptr, nullptr, SOCK_CLOEXEC);
    if (client < 0) continue;
    if (blocked_ || stopping_) {
      close(client);
      continue;
    }
    int upstream = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in a = Loopback(target_port_);
    if (upstream < 0 || connect(upstream, reinterpret_cast<sockaddr*>(&a), sizeof(a)) != 0) {
      close(client);
      if (upstream >= 0) close(upstream);
      continue;
    }
    std::lock_guard<std::mutex> lock(mu_);
    open_.insert(client);
    open_.insert(upstream);
    pumps_.emplace_back([this, client, upstream] { Pump(client, upstream); });
  }
}

void CuttableProxy::Pump(int client, int upstream) {
  char buf[65536];
  pollfd fds[2] = {{client, POLLIN, 0}, {upstream, POLLIN, 0}};
  while (true) {
    if (poll(fds, 2, 200) < 0 && errno != EINTR) break;
    bool closed = false;
    for (int i = 0; i < 2 && !closed; ++i) {
      if (!(fds[i].revents & (POLLIN | POLLHUP | POLLERR))) continue;
      ssize_t n = read(fds[i].fd, buf, sizeof(buf));
      if (n <= 0) {
        closed = true;
        break;
      }
      for (ssize_t off = 0; off < n;) {
        // MSG_NOSIGNAL: a peer that closed gets no SIGPIPE sent to the test process.
        ssize_t w = send(fds[1 - i].fd, buf + off, static_cast<size_t>(n - off), MSG_NOSIGNAL);
        if (w <= 0) {
          closed = true;
          break;
        }
        off += w;
      }
    }
    if (closed) break;
  }
  std::lock_guard<std::mutex> lock(mu_);
  open_.erase(client);
  open_.erase(upstream);
  close(client);
  close(upstream);
}

int CuttableProxy::Cut() {
  std::lock_guard<std::mutex> lock(mu_);
  for (int fd : open_) shutdown(fd, SHUT_RDWR);
  return static_cast<int>(open_.size() / 2);
}

}  // namespace lk::kube_e2e
