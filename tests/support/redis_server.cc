#include "tests/support/redis_server.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <sstream>
#include <thread>
#include <vector>

#include "tests/support/child_process.h"
#include "worker/redis_connection.h"

namespace lk::testing {

int FreeLoopbackPort() {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = 0;
  bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr));
  socklen_t len = sizeof(addr);
  getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len);
  int port = ntohs(addr.sin_port);
  close(fd);
  return port;
}

StatusOr<std::unique_ptr<RedisServer>> RedisServer::Start(const RedisServerOptions& options) {
  std::unique_ptr<RedisServer> server(new RedisServer());
  server->options_ = options;
  char tmpl[] = "/tmp/lk-redis-XXXXXX";
  if (mkdtemp(tmpl) == nullptr) return Status::Internal("mkdtemp failed");
  server->dir_ = tmpl;
  // A port picked by FreeLoopbackPort can be taken by someone else before redis binds it;
  // try a few.
  Status last;
  for (int attempt = 0; attempt < 5; ++attempt) {
    server->port_ = FreeLoopbackPort();
    last = server->Launch();
    if (last.ok()) return server;
  }
  return last;
}

Status RedisServer::Launch() {
  std::vector<std::string> args = {"redis-server",     "--port",         std::to_string(port_),
                                   "--bind",           "127.0.0.1",      "--dir",
                                   dir_,               "--save",         "",
                                   "--appendonly",     options_.appendonly ? "yes" : "no",
                                   "--daemonize",      "no",             "--logfile",
                                   dir_ + "/redis.log", "--protected-mode", "no"};
  if (!options_.password.empty()) {
    args.push_back("--requirepass");
    args.push_back(options_.password);
  }
  std::istringstream extra(options_.extra_args);
  for (std::string a; extra >> a;) args.push_back(a);
  // The server dies with the test process, even when that crashes.
  const ForkOrigin origin = ForkOrigin::Here();
  pid_t pid = fork();
  if (pid == 0) {
    origin.ApplyInChild();
    std::vector<char*> argv;
    for (auto& a : args) argv.push_back(a.data());
    argv.push_back(nullptr);
    execvp("redis-server", argv.data());
    _exit(127);
  }
  pid_ = pid;
  RedisEndpoint ep;
  ep.port = port_;
  ep.password = options_.password;
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  while (std::chrono::steady_clock::now() < deadline) {
    int status;
    if (waitpid(pid_, &status, WNOHANG) == pid_) {
      pid_ = -1;
      return Status::Unavailable("redis-server exited at start (port " + std::to_string(port_) +
                                 "); see " + dir_ + "/redis.log");
    }
    auto conn = RedisConnection::Connect(ep, std::chrono::milliseconds(200));
    if (conn.ok()) {
      auto pong = (*conn)->Command({"PING"});
      if (pong.ok() && !pong->is_error()) return Status::OK();
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  Kill();
  return Status::Unavailable("redis-server did not answer within 10s");
}

std::string RedisServer::url(int db) const {
  std::string auth = options_.password.empty() ? "" : ":" + options_.password + "@";
  return "redis://" + auth + "127.0.0.1:" + std::to_string(port_) + "/" + std::to_string(db);
}

void RedisServer::Kill() {
  if (pid_ > 0) {
    kill(pid_, SIGKILL);
    waitpid(pid_, nullptr, 0);
    pid_ = -1;
  }
}

Status RedisServer::Restart() {
  Kill();
  return Launch();
}

RedisServer::~RedisServer() {
  Kill();
  std::error_code ec;
  std::filesystem::remove_all(dir_, ec);
}

}  // namespace lk::testing
