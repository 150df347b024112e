// The Redis version the queue needs (6.0), checked when a queue connects and by doctor.
// No older redis-server is installed here, so an old server is played by FakeRedis: a
// loopback socket that answers RESP commands from a table, as Redis 5 would answer them.
#include <arpa/inet.h>
#include <fcntl.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <map>
#include <string>
#include <thread>

#include "controller/status/doctor.h"
#include "tests/support/redis_server.h"
#include "worker/job_queue.h"

namespace lk {
namespace {

// Answers each command (by its upper-case name) with a raw RESP reply from answers, or
// "-ERR unknown command" when it has none. Serves one client at a time until destroyed.
class FakeRedis {
 public:
  explicit FakeRedis(std::map<std::string, std::string> answers) : answers_(std::move(answers)) {
    listen_fd_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof addr;
    if (listen_fd_ < 0 || ::bind(listen_fd_, reinterpret_cast<sockaddr*>(&addr), len) != 0 ||
        ::listen(listen_fd_, 8) != 0 ||
        ::getsockname(listen_fd_, reinterpret_cast<sockaddr*>(&addr), &len) != 0 ||
        ::pipe2(stop_, O_CLOEXEC) != 0) {
      std::abort();
    }
    port_ = ntohs(addr.sin_port);
    thread_ = std::thread([this] { Serve(); });
  }
  ~FakeRedis() {
    [[maybe_unused]] ssize_t n = ::write(stop_[1], "x", 1);
    thread_.join();
    ::close(listen_fd_);
    ::close(stop_[0]);
    ::close(stop_[1]);
  }
  std::string url() const { return "redis://127.0.0.1:" + std::to_string(port_) + "/0"; }

 private:
  // Waits until fd is readable; false when asked to stop.
  bool Readable(int fd) {
    pollfd fds[2] = {{fd, POLLIN, 0}, {stop_[0], POLLIN, 0}};
    return ::poll(fds, 2, -1) > 0 && !(fds[1].revents & POLLIN);
  }
  void Serve() {
    while (Readable(listen_fd_)) {
      int client = ::accept4(listen_fd_, nullptr, nullptr, SOCK_CLOEXEC);
      if (client < 0) continue;
      std::string buffer;
      char chunk[4096];
      while (Readable(client)) {
        ssize_t n = ::read(client, chunk, sizeof chunk);
        if (n <= 0) break;
        buffer.append(chunk, static_cast<size_t>(n));
        for (std::string name; TakeCommand(buffer, name);) {
          auto it = answers_.find(name);
          std::string reply = it != answers_.end() ? it->second : "-ERR unknown command '" + name + "'\r\n";
          if (::write(client, reply.data(), reply.size()) < 0) break;
        }
      }
      ::close(client);
    }
  }
  // Removes one complete "*N\r\n$L\r\narg\r\n..." command from buffer and names it.
  static bool TakeCommand(std::string& buffer, std::string& name) {
    size_t pos = 0;
    auto line = [&](std::string& out) {
      size_t end = buffer.find("\r\n", pos);
      if (end == std::string::npos) return false;
      out = buffer.substr(pos, end - pos);
      pos = end + 2;
      return true;
    };
    std::string head;
    if (!line(head) || head.empty() || head[0] != '*') return false;
    int args = std::stoi(head.substr(1));
    for (int i = 0; i < args; ++i) {
      std::string size;
      if (!line(size)) return false;
      size_t n = std::stoul(size.substr(1));
      if (buffer.size() < pos + n + 2) return false;
      if (i == 0) {
        name = buffer.substr(pos, n);
        for (char& c : name) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
      }
      pos += n + 2;
    }
    buffer.erase(0, pos);
    return true;
  }

  std::map<std::string, std::string> answers_;
  int listen_fd_ = -1;
  int stop_[2] = {-1, -1};
  int port_ = 0;
  std::thread thread_;
};

std::string Bulk(const std::string& s) {
  return "$" + std::to_string(s.size()) + "\r\n" + s + "\r\n";
}

// Redis 5.0: no HELLO (it came with 6.0), INFO says which version it is.
std::map<std::string, std::string> Redis5() {
  return {{"HELLO", "-ERR unknown command `HELLO`, with args beginning with: `2`, \r\n"},
          {"INFO", Bulk("# Server\r\nredis_version:5.0.14\r\nredis_mode:standalone\r\n")},
          {"PING", "+PONG\r\n"}};
}

TEST(RedisVersion, AQueueRefusesARedisOlderThan6AtConnectAndNamesBothVersions) {
  FakeRedis old_redis(Redis5());
  auto q = OpenJobQueue(old_redis.url(), "q");
  ASSERT_FALSE(q.ok()) << "a queue opened on Redis 5.0.14";
  EXPECT_EQ(q.status().code(), Status::Code::kFailedPrecondition);
  EXPECT_EQ(q.status().message(), "Redis 5.0.14 at " + old_redis.url() +
                                      " is too old: the queue needs Redis 6.0 or later");
}

TEST(RedisVersion, DoctorFailsTheRedisCheckOfARedisOlderThan6) {
  FakeRedis old_redis(Redis5());
  DoctorReport report = RunDoctor(old_redis.url(), "q", DoctorOptions{});
  ASSERT_FALSE(report.checks.empty());
  EXPECT_EQ(report.checks[0].name, "redis");
  EXPECT_EQ(report.checks[0].level, CheckLevel::kFail);
  EXPECT_NE(report.checks[0].message.find("Redis 5.0.14 at " + old_redis.url() +
                                          " is too old: the queue needs Redis 6.0 or later"),
            std::string::npos)
      << report.checks[0].message;
}

TEST(RedisVersion, DoctorOfAnOpenQueueFailsTheRedisCheckOfARedisOlderThan6) {
  FakeRedis old_redis(Redis5());
  auto conn = RedisConnection::Connect(*ParseRedisUrl(old_redis.url()), Millis(2'000));
  ASSERT_TRUE(conn.ok()) << conn.status().message();
  JobQueue queue(std::move(conn).value(), "q");
  DoctorReport report = RunDoctor(queue, DoctorOptions{});
  ASSERT_FALSE(report.checks.empty());
  EXPECT_EQ(report.checks[0].name, "redis");
  EXPECT_EQ(report.checks[0].level, CheckLevel::kFail);
  EXPECT_EQ(report.checks[0].message,
            "Redis 5.0.14 at " + old_redis.url() + " is too old: the queue needs Redis 6.0 or later");
}

}  // namespace
}  // namespace lk
