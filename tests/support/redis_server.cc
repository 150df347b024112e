#include "tests/support/redis_server.h"

#include <signal.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <thread>
#include <vector>

#include "tests/support/temp_dir.h"
#include "worker/redis_connection.h"

namespace lk::testing {

namespace {

// The last lines of redis-server's log: why it would not start.
std::string LogTail(const std::string& path) {
  std::ifstream in(path);
  std::vector<std::string> lines;
  for (std::string line; std::getline(in, line);) lines.push_back(line);
  std::string tail;
  for (size_t i = lines.size() > 5 ? lines.size() - 5 : 0; i < lines.size(); ++i) {
    tail += "\n  " + lines[i];
  }
  return tail.empty() ? " (its log is empty)" : tail;
}

}  // namespace

StatusOr<std::unique_ptr<RedisServer>> RedisServer::Start(const RedisServerOptions& options) {
  std::unique_ptr<RedisServer> server(new RedisServer());
  server->options_ = options;
  auto port = LoopbackPort::ForServer();
  if (!port.ok()) return Status::Unavailable("redis-server: " + port.status().message());
  server->port_ = std::move(port).value();
  auto dir = TempDir::Create("redis");
  if (!dir.ok()) return Status::Unavailable("redis-server: " + dir.status().message());
  server->dir_ = *dir;
  LK_RETURN_IF_ERROR(server->Launch());
  return server;
}

Status RedisServer::Launch() {
  std::vector<std::string> args = {"redis-server",     "--port",         std::to_string(port()),
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
  auto process = ChildProcess::Start(args);
  if (!process.ok()) return process.status();
  process_ = std::move(process).value();

  RedisEndpoint ep;
  ep.port = port();
  ep.password = options_.password;
  Status last = Status::Unavailable("no answer");
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(20);
  while (std::chrono::steady_clock::now() < deadline) {
    if (!process_->Running()) {
      auto code = process_->Wait(std::chrono::milliseconds(0));
      process_.reset();
      return Status::Unavailable("redis-server on 127.0.0.1:" + std::to_string(port()) +
                                 " exited at start with code " + std::to_string(code.value_or(-1)) +
                                 ":" + LogTail(dir_ + "/redis.log"));
    }
    auto conn = RedisConnection::Connect(ep, std::chrono::milliseconds(200));
    if (conn.ok()) {
      auto pong = (*conn)->Command({"PING"});
      if (pong.ok() && !pong->is_error()) return Status::OK();
      last = pong.ok() ? Status::Unavailable(pong->str) : pong.status();
    } else {
      last = conn.status();
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  Kill();
  return Status::Unavailable("redis-server on 127.0.0.1:" + std::to_string(port()) +
                             " did not answer PING within 20s: " + last.message() +
                             LogTail(dir_ + "/redis.log"));
}

std::string RedisServer::url(int db) const {
  std::string auth = options_.password.empty() ? "" : ":" + options_.password + "@";
  return "redis://" + auth + "127.0.0.1:" + std::to_string(port()) + "/" + std::to_string(db);
}

void RedisServer::Kill() {
  // The destructor SIGKILLs the server's process group and reaps it.
  process_.reset();
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
