#include "tests/support/loopback_port.h"

#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

namespace lk::testing {

namespace {

Status Errno(const std::string& what) {
  return Status::Unavailable(what + ": " + std::strerror(errno));
}

}  // namespace

StatusOr<std::unique_ptr<LoopbackPort>> LoopbackPort::Refusing() { return Bind(Kind::kRefusing); }
StatusOr<std::unique_ptr<LoopbackPort>> LoopbackPort::ForServer() { return Bind(Kind::kForServer); }
StatusOr<std::unique_ptr<LoopbackPort>> LoopbackPort::Listening() { return Bind(Kind::kListening); }

StatusOr<std::unique_ptr<LoopbackPort>> LoopbackPort::Bind(Kind kind) {
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return Errno("socket");
  auto fail = [fd](const std::string& what) {
    Status s = Errno(what);
    close(fd);
    return s;
  };
  if (kind == Kind::kForServer) {
    int one = 1;
    if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) != 0) {
      return fail("setsockopt SO_REUSEADDR");
    }
  }
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = 0;
  if (bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0) {
    return fail("bind 127.0.0.1:0");
  }
  if (kind == Kind::kListening && listen(fd, 1) != 0) return fail("listen");
  socklen_t len = sizeof(addr);
  if (getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) != 0) {
    return fail("getsockname");
  }
  return std::unique_ptr<LoopbackPort>(new LoopbackPort(fd, ntohs(addr.sin_port)));
}

LoopbackPort::~LoopbackPort() { close(fd_); }

std::string LoopbackPort::address() const { return "127.0.0.1:" + std::to_string(port_); }

bool LoopbackPort::CanListen() const {
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) {
    ADD_FAILURE() << "socket: " << std::strerror(errno);
    return false;
  }
  int one = 1;
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = htons(static_cast<uint16_t>(port_));
  bool can = setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) == 0 &&
             bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) == 0 &&
             listen(fd, 1) == 0;
  close(fd);
  return can;
}

int FreeLoopbackPort() {
  auto port = LoopbackPort::Refusing();
  if (!port.ok()) {
    ADD_FAILURE() << "no free loopback port: " << port.status().message();
    return -1;
  }
  return (*port)->port();
}

}  // namespace lk::testing
