#include "tests/chaos/switching_proxy.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <list>
#include <string>
#include <vector>

namespace lk::chaos {

namespace proxy_detail {

constexpr size_t kBufferBytes = 64 * 1024;

// One client connection and its backend connection; each direction's bytes not yet written.
struct Link {
  int client = -1;
  int server = -1;
  std::string to_server, to_client;
  ~Link() {
    if (client >= 0) ::close(client);
    if (server >= 0) ::close(server);
  }
};

int ConnectBackend(int port) {
  int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return -1;
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<uint16_t>(port));
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  // Blocking: on loopback a connect is accepted or refused at once.
  if (::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0) {
    ::close(fd);
    return -1;
  }
  int one = 1;
  ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
  ::fcntl(fd, F_SETFL, ::fcntl(fd, F_GETFL) | O_NONBLOCK);
  return fd;
}

// Moves what from can give into buffer (when it has room) and buffer into to (both
// non-blocking). false: the link is over (EOF or an error on either side).
bool Pump(int from, int to, std::string& buffer, short from_events) {
  if ((from_events & (POLLIN | POLLHUP | POLLERR)) && buffer.size() < kBufferBytes) {
    char chunk[16 * 1024];
    ssize_t n = ::read(from, chunk, sizeof(chunk));
    if (n == 0) return false;
    if (n < 0 && errno != EAGAIN && errno != EINTR) return false;
    if (n > 0) buffer.append(chunk, static_cast<size_t>(n));
  }
  if (!buffer.empty()) {
    ssize_t n = ::write(to, buffer.data(), buffer.size());
    if (n < 0 && errno != EAGAIN && errno != EINTR) return false;
    if (n > 0) buffer.erase(0, static_cast<size_t>(n));
  }
  return true;
}

}  // namespace proxy_detail

StatusOr<std::unique_ptr<SwitchingProxy>> SwitchingProxy::Start(int backend_port) {
  int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
  if (fd < 0) return Status::Unavailable(std::string("proxy socket: ") + std::strerror(errno));
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof(addr);
  if (::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0 ||
      ::listen(fd, 512) != 0 ||
      ::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) != 0) {
    std::string error = std::strerror(errno);
    ::close(fd);
    return Status::Unavailable("proxy bind/listen on 127.0.0.1:0: " + error);
  }
  int wake = ::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  if (wake < 0) {
    ::close(fd);
    return Status::Unavailable(std::string("proxy eventfd: ") + std::strerror(errno));
  }
  return std::unique_ptr<SwitchingProxy>(
      new SwitchingProxy(fd, wake, ntohs(addr.sin_port), backend_port));
}

SwitchingProxy::SwitchingProxy(int listen_fd, int wake_fd, int port, int backend)
    : listen_fd_(listen_fd), wake_fd_(wake_fd), port_(port), backend_(backend) {
  thread_ = std::thread([this] { Loop(); });
}

SwitchingProxy::~SwitchingProxy() {
  stop_ = true;
  uint64_t one = 1;
  (void)!::write(wake_fd_, &one, sizeof(one));
  thread_.join();
  ::close(listen_fd_);
  ::close(wake_fd_);
}

void SwitchingProxy::SwitchTo(int backend_port) {
  backend_ = backend_port;
  int generation = ++generation_;
  uint64_t one = 1;
  (void)!::write(wake_fd_, &one, sizeof(one));
  while (closed_generation_.load() < generation && !stop_) ::usleep(1000);
}

void SwitchingProxy::Loop() {
  using proxy_detail::Link;
  std::list<Link> links;
  std::vector<pollfd> fds;
  while (!stop_) {
    if (int generation = generation_.load(); generation != closed_generation_.load()) {
      links.clear();  // closes both sides of every link
      closed_generation_ = generation;
    }
    fds.clear();
    fds.push_back({listen_fd_, POLLIN, 0});
    fds.push_back({wake_fd_, POLLIN, 0});
    for (const Link& l : links) {
      short c = static_cast<short>((l.to_server.size() < proxy_detail::kBufferBytes ? POLLIN : 0) |
                                   (l.to_client.empty() ? 0 : POLLOUT));
      short s = static_cast<short>((l.to_client.size() < proxy_detail::kBufferBytes ? POLLIN : 0) |
                                   (l.to_server.empty() ? 0 : POLLOUT));
      fds.push_back({l.client, c, 0});
      fds.push_back({l.server, s, 0});
    }
    if (::poll(fds.data(), fds.size(), 1000) < 0 && errno != EINTR) break;
    if (fds[1].revents & POLLIN) {
      uint64_t count;
      (void)!::read(wake_fd_, &count, sizeof(count));
    }
    size_t i = 2;
    for (auto it = links.begin(); it != links.end(); i += 2) {
      short c = fds[i].revents, s = fds[i + 1].revents;
      bool alive = proxy_detail::Pump(it->client, it->server, it->to_server, c) &&
                   proxy_detail::Pump(it->server, it->client, it->to_client, s);
      it = alive ? std::next(it) : links.erase(it);
    }
    if (fds[0].revents & POLLIN) {
      while (true) {
        int client = ::accept4(listen_fd_, nullptr, nullptr, SOCK_CLOEXEC | SOCK_NONBLOCK);
        if (client < 0) break;
        int server = proxy_detail::ConnectBackend(backend_.load());
        if (server < 0) {
          ::close(client);
          continue;
        }
        int one = 1;
        ::setsockopt(client, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
        Link& l = links.emplace_back();
        l.client = client;
        l.server = server;
      }
    }
  }
  links.clear();
}

}  // namespace lk::chaos
