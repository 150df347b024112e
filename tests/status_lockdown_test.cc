// The status server locked down: only GET and HEAD, bounded heads and no bodies, header and
// idle timeouts, a connection cap slow clients cannot exhaust, a bearer token on every path
// but the probes, and loopback unless told otherwise. Over raw sockets on loopback, against
// the listener alone (controller/status/http_server.h) and against a real `lanekeeper
// controller` process whose memory is read from /proc.
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "controller/status/http_server.h"
#include "tests/support/child_process.h"
#include "tests/support/loopback_port.h"
#include "tests/support/temp_dir.h"

namespace lk {
namespace status_lockdown_test {

using namespace std::chrono_literals;
using testing::ChildProcess;
using testing::Eventually;
using Steady = std::chrono::steady_clock;

// A blocking client socket connected to 127.0.0.1:port, reads bounded by timeout.
int Connect(int port, std::chrono::milliseconds timeout = 5s) {
  int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(static_cast<uint16_t>(port));
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  timeval tv{static_cast<time_t>(timeout.count() / 1000),
             static_cast<suseconds_t>(timeout.count() % 1000 * 1000)};
  ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
  ::setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
  if (::connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof(a)) != 0) {
    ::close(fd);
    return -1;
  }
  return fd;
}

bool SendAll(int fd, std::string_view data) {
  while (!data.empty()) {
    ssize_t n = ::send(fd, data.data(), data.size(), MSG_NOSIGNAL);
    if (n <= 0) return false;
    data.remove_prefix(static_cast<size_t>(n));
  }
  return true;
}

struct Answer {
  int code = 0;  // 0: no answer (closed, reset or timed out first)
  std::string head;
  std::string body;
  std::string Header(const std::string& name) const {
    size_t at = head.find("\r\n" + name + ": ");
    if (at == std::string::npos) return "";
    at += name.size() + 4;
    return head.substr(at, head.find("\r\n", at) - at);
  }
};

// Reads one answer: head, then Content-Length bytes of body (none after HEAD).
Answer ReadAnswer(int fd, bool head_request = false) {
  Answer a;
  std::string in;
  char buf[4096];
  size_t end;
  while ((end = in.find("\r\n\r\n")) == std::string::npos) {
    ssize_t n = ::recv(fd, buf, sizeof(buf), 0);
    if (n <= 0) return a;
    in.append(buf, static_cast<size_t>(n));
  }
  a.head = in.substr(0, end + 2);
  in.erase(0, end + 4);
  a.code = std::stoi(a.head.substr(9, 3));
  size_t length = head_request ? 0 : std::stoul(a.Header("Content-Length"));
  while (in.size() < length) {
    ssize_t n = ::recv(fd, buf, sizeof(buf), 0);
    if (n <= 0) break;
    in.append(buf, static_cast<size_t>(n));
  }
  a.body = in;
  return a;
}

Answer Request(int port, const std::string& text, bool head_request = false) {
  int fd = Connect(port);
  if (fd < 0) return {};
  SendAll(fd, text);
  Answer a = ReadAnswer(fd, head_request);
  ::close(fd);
  return a;
}

std::string Get(const std::string& path, const std::string& extra = "") {
  return "GET " + path + " HTTP/1.1\r\nHost: x\r\n" + extra + "Connection: close\r\n\r\n";
}

// Whether the server closes fd within timeout (recv sees the end, or a reset).
bool ClosedWithin(int fd, std::chrono::milliseconds timeout) {
  pollfd p{fd, POLLIN, 0};
  if (::poll(&p, 1, static_cast<int>(timeout.count())) <= 0) return false;
  char c;
  return ::recv(fd, &c, 1, MSG_DONTWAIT) <= 0;
}

class StatusServerLockdown : public ::testing::Test {
 protected:
  void Start(HttpServerOptions o = {}) {
    o.addr = "127.0.0.1:0";
    auto s = HttpServer::Start(o, [](const HttpRequest& r) {
      return HttpResponse{200, "text/plain", r.method + " " + r.path + "\n", {}};
    });
    ASSERT_TRUE(s.ok()) << s.status().message();
    server_ = std::move(*s);
    port_ = server_->port();
  }
  std::unique_ptr<HttpServer> server_;
  int port_ = 0;
};

TEST_F(StatusServerLockdown, OnlyGetAndHeadAreServedAndTraceEchoesNoHeader) {
  Start();
  Answer get = Request(port_, Get("/status?x=1"));
  EXPECT_EQ(get.code, 200);
  EXPECT_EQ(get.body, "GET /status\n");
  Answer head = Request(port_, "HEAD /status HTTP/1.1\r\nConnection: close\r\n\r\n", true);
  EXPECT_EQ(head.code, 200);
  EXPECT_EQ(head.Header("Content-Length"), "13");  // "HEAD /status\n", not sent
  for (const char* method : {"TRACE", "POST", "PUT", "DELETE", "OPTIONS", "PATCH", "CONNECT"}) {
    Answer a = Request(port_, std::string(method) +
                                  " /status HTTP/1.1\r\nX-Probe: c00kie-Zq7\r\n"
                                  "Cookie: session=c00kie-Zq7\r\n\r\n");
    EXPECT_EQ(a.code, 405) << method;
    EXPECT_EQ(a.Header("Allow"), "GET, HEAD") << method;
    EXPECT_EQ((a.head + a.body).find("c00kie-Zq7"), std::string::npos) << method << a.head;
  }
}

TEST_F(StatusServerLockdown, HeadersPastTheLimitAre431) {
  Start();
  std::string big = Get("/status", "X-Big: " + std::string(20 * 1024, 'a') + "\r\n");
  Answer a = Request(port_, big);
  EXPECT_EQ(a.code, 431);
  EXPECT_EQ(Request(port_, Get("/status", "X-Fits: " + std::string(8 * 1024, 'a') + "\r\n")).code,
            200);
}

TEST_F(StatusServerLockdown, AnyBodyIs413) {
  Start();
  EXPECT_EQ(Request(port_, "GET /status HTTP/1.1\r\nContent-Length: 3\r\n\r\nabc").code, 413);
  EXPECT_EQ(Request(port_, "POST /status HTTP/1.1\r\nContent-Length: 3\r\n\r\nabc").code, 413);
  EXPECT_EQ(
      Request(port_, "PUT / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n")
          .code,
      413);
}

TEST_F(StatusServerLockdown, HeadersMustArriveWithinTheHeaderTimeout) {
  HttpServerOptions o;
  o.header_timeout = 300ms;
  Start(o);
  int fd = Connect(port_);
  auto begin = Steady::now();
  ASSERT_TRUE(SendAll(fd, "GET /status HTTP/1.1\r\nHost: x\r\n"));  // never finished
  EXPECT_TRUE(ClosedWithin(fd, 5s));
  EXPECT_GE(Steady::now() - begin, 250ms);
  ::close(fd);
}

TEST_F(StatusServerLockdown, KeptAliveConnectionsServeAgainThenCloseWhenIdle) {
  HttpServerOptions o;
  o.idle_timeout = 300ms;
  Start(o);
  int fd = Connect(port_);
  for (int i = 0; i < 3; ++i) {
    ASSERT_TRUE(SendAll(fd, "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n"));
    Answer a = ReadAnswer(fd);
    EXPECT_EQ(a.code, 200) << i;
    EXPECT_EQ(a.Header("Connection"), "keep-alive");
  }
  auto begin = Steady::now();
  EXPECT_TRUE(ClosedWithin(fd, 5s));
  EXPECT_GE(Steady::now() - begin, 250ms);
  ::close(fd);
}

TEST_F(StatusServerLockdown, ABearerTokenGuardsEveryPathButTheProbes) {
  HttpServerOptions o;
  o.auth_token = "t0ken-Zq7";
  Start(o);
  Answer none = Request(port_, Get("/status"));
  EXPECT_EQ(none.code, 401);
  EXPECT_EQ(none.Header("WWW-Authenticate"), "Bearer realm=\"lanekeeper\"");
  EXPECT_EQ(Request(port_, Get("/status", "Authorization: Bearer t0ken-Zq8\r\n")).code, 401);
  EXPECT_EQ(Request(port_, Get("/status", "Authorization: Bearer t0ken-Zq\r\n")).code, 401);
  EXPECT_EQ(Request(port_, Get("/status", "Authorization: Basic t0ken-Zq7\r\n")).code, 401);
  EXPECT_EQ(Request(port_, Get("/metrics", "Authorization: Bearer t0ken-Zq7\r\n")).code, 200);
  EXPECT_EQ(Request(port_, Get("/status", "authorization: bearer t0ken-Zq7\r\n")).code, 200);
  EXPECT_EQ(Request(port_, Get("/healthz")).code, 200);
  EXPECT_EQ(Request(port_, Get("/readyz")).code, 200);
}

TEST_F(StatusServerLockdown, ANonLoopbackAddressNeedsATokenOrInsecure) {
  EXPECT_TRUE(IsLoopbackHost("127.0.0.1"));
  EXPECT_TRUE(IsLoopbackHost("127.3.2.1"));
  EXPECT_TRUE(IsLoopbackHost("[::1]"));
  EXPECT_TRUE(IsLoopbackHost("localhost"));
  EXPECT_FALSE(IsLoopbackHost("0.0.0.0"));
  EXPECT_FALSE(IsLoopbackHost("[::]"));

  auto handler = [](const HttpRequest&) { return HttpResponse{}; };
  HttpServerOptions o;
  o.addr = "0.0.0.0:0";
  auto refused = HttpServer::Start(o, handler);
  ASSERT_FALSE(refused.ok());
  EXPECT_EQ(refused.status().code(), Status::Code::kFailedPrecondition);
  EXPECT_NE(refused.status().message().find("0.0.0.0:0 is not a loopback address"),
            std::string::npos) << refused.status().message();
  EXPECT_NE(refused.status().message().find("--auth-token-file FILE"), std::string::npos);
  EXPECT_NE(refused.status().message().find("--insecure"), std::string::npos);

  // Past the gate with a token or --insecure: binding is what fails, on a port taken on
  // every address, so that nothing here listens beyond loopback.
  auto taken = testing::LoopbackPort::Listening();
  ASSERT_TRUE(taken.ok()) << taken.status().message();
  o.addr = "0.0.0.0:" + std::to_string((*taken)->port());
  o.insecure = true;
  auto insecure = HttpServer::Start(o, handler);
  ASSERT_FALSE(insecure.ok());
  EXPECT_EQ(insecure.status().code(), Status::Code::kUnavailable) << insecure.status().message();
  o.insecure = false;
  o.auth_token = "t";
  auto with_token = HttpServer::Start(o, handler);
  ASSERT_FALSE(with_token.ok());
  EXPECT_EQ(with_token.status().code(), Status::Code::kUnavailable)
      << with_token.status().message();
}

TEST_F(StatusServerLockdown, ATokenFileOthersCanReadIsRefused) {
  testing::TempDir dir("token");
  std::string path = dir / "token";
  std::ofstream(path) << "  s3cret-Zq7 \n";
  ::chmod(path.c_str(), 0644);
  auto loose = ReadAuthTokenFile(path);
  ASSERT_FALSE(loose.ok());
  EXPECT_EQ(loose.status().message(), "--auth-token-file " + path +
                                          " is readable by group or others (mode 0644): "
                                          "chmod 600 " + path);
  ::chmod(path.c_str(), 0600);
  auto token = ReadAuthTokenFile(path);
  ASSERT_TRUE(token.ok()) << token.status().message();
  EXPECT_EQ(*token, "s3cret-Zq7");
  std::ofstream(path) << "\n";
  EXPECT_FALSE(ReadAuthTokenFile(path).ok());
  EXPECT_FALSE(ReadAuthTokenFile(dir / "missing").ok());
}

// ---- a real controller process -------------------------------------------------------

// VmRSS of pid in kB, or -1.
long RssKb(pid_t pid) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/status");
  std::string line;
  while (std::getline(in, line)) {
    if (line.starts_with("VmRSS:")) return std::stol(line.substr(6));
  }
  return -1;
}

class ControllerStatusLockdown : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_TRUE(dir_.ok());
    std::filesystem::create_directories(dir_ / "specs");
  }
  // Starts `lanekeeper controller` with no lanes and extra flags; waits for /healthz.
  void StartController(std::vector<std::string> extra = {}) {
    auto port = testing::LoopbackPort::ForServer();
    ASSERT_TRUE(port.ok()) << port.status().message();
    port_ = std::move(port).value();
    std::vector<std::string> argv = {testing::LanekeeperBinary(), "controller", "--specs",
                                     dir_ / "specs", "--state-dir", dir_ / "state",
                                     "--status-addr", port_->address()};
    argv.insert(argv.end(), extra.begin(), extra.end());
    controller_ = std::make_unique<ChildProcess>(argv);
    ASSERT_TRUE(Eventually([&] { return Request(port_->port(), Get("/healthz")).code == 200; },
                           20s))
        << controller_->Stderr();
  }
  testing::TempDir dir_{"lockdown"};
  std::unique_ptr<testing::LoopbackPort> port_;
  std::unique_ptr<ChildProcess> controller_;
};

TEST_F(ControllerStatusLockdown, ManySlowClientsDoNotLockOutTheProbe) {
  StartController();
  const int port = port_->port();
  // 200 clients that send their request one byte a second, for 6 seconds.
  std::vector<int> slow;
  for (int i = 0; i < 200; ++i) {
    int fd = Connect(port);
    if (fd >= 0) slow.push_back(fd);
  }
  ASSERT_EQ(slow.size(), 200u);
  std::atomic<bool> done{false};
  std::thread dribble([&] {
    const std::string text = "GET /status HTTP/1.1\r\n";
    for (size_t i = 0; i < 6 && !done; ++i) {
      for (int fd : slow) ::send(fd, &text[i], 1, MSG_NOSIGNAL | MSG_DONTWAIT);
      std::this_thread::sleep_for(1s);
    }
  });
  std::chrono::milliseconds worst{0};
  for (int i = 0; i < 10; ++i) {
    auto begin = Steady::now();
    Answer a = Request(port, Get("/healthz"));
    auto took = std::chrono::duration_cast<std::chrono::milliseconds>(Steady::now() - begin);
    worst = std::max(worst, took);
    EXPECT_EQ(a.code, 200) << i;
    std::this_thread::sleep_for(400ms);
  }
  done = true;
  dribble.join();
  for (int fd : slow) ::close(fd);
  std::cout << "[ figures ] /healthz beside 200 slow clients: worst " << worst.count()
            << " ms of 10\n";
  EXPECT_LT(worst, 2000ms);
}

TEST_F(ControllerStatusLockdown, BodiesAreRefusedWithoutGrowingTheServer) {
  StartController();
  const int port = port_->port();
  long before = RssKb(controller_->pid());
  ASSERT_GT(before, 0);
  constexpr size_t kBody = 50u << 20;
  std::atomic<int> answered_413{0};
  std::vector<std::thread> clients;
  for (int i = 0; i < 8; ++i) {
    clients.emplace_back([&] {
      int fd = Connect(port, 10s);
      if (fd < 0) return;
      SendAll(fd, "POST /status HTTP/1.1\r\nContent-Length: " + std::to_string(kBody) +
                      "\r\n\r\n");
      std::string chunk(1 << 20, 'x');
      for (size_t sent = 0; sent < kBody; sent += chunk.size()) {
        if (!SendAll(fd, chunk)) break;
      }
      if (ReadAnswer(fd).code == 413) ++answered_413;
      ::close(fd);
    });
  }
  for (auto& t : clients) t.join();
  long after = RssKb(controller_->pid());
  std::cout << "[ figures ] 8 x 50 MB bodies: VmRSS " << before << " kB -> " << after
            << " kB; " << answered_413.load() << " of 8 read their 413\n";
  EXPECT_LT(after - before, 20 * 1024) << "before " << before << " kB, after " << after;
  EXPECT_EQ(Request(port, Get("/healthz")).code, 200);
}

TEST_F(ControllerStatusLockdown, TheTokenFileGuardsStatusAndLeavesTheProbesOpen) {
  std::string token = dir_ / "token";
  std::ofstream(token) << "tok-Zq7\n";
  ::chmod(token.c_str(), 0640);
  auto r = testing::RunLanekeeper({"controller", "--specs", dir_ / "specs", "--state-dir",
                                   dir_ / "state", "--status-addr", "127.0.0.1:0",
                                   "--auth-token-file", token});
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_NE(r.err.find("is readable by group or others (mode 0640): chmod 600"),
            std::string::npos) << r.err;
  ::chmod(token.c_str(), 0600);
  StartController({"--auth-token-file", token});
  EXPECT_EQ(Request(port_->port(), Get("/status")).code, 401);
  EXPECT_EQ(Request(port_->port(), Get("/status", "Authorization: Bearer tok-Zq7\r\n")).code, 200);
  EXPECT_TRUE(Eventually([&] { return Request(port_->port(), Get("/readyz")).code == 200; }, 10s));
}

// The clients of the status server: doctor --controller and get --controller send the
// token of their own --auth-token-file (read from the file, never from argv); without it a
// guarded controller's 401 is said as such, with what to pass.
TEST_F(ControllerStatusLockdown, DoctorAndGetSendTheTokenOfTheirAuthTokenFile) {
  std::string token = dir_ / "token";
  std::ofstream(token) << "tok-Wv3\n";
  ::chmod(token.c_str(), 0600);
  StartController({"--auth-token-file", token});
  const std::string url = "http://" + port_->address();
  ASSERT_TRUE(Eventually([&] { return Request(port_->port(), Get("/readyz")).code == 200; }, 10s));
  const std::vector<std::string> doctor = {"--redis", "redis://127.0.0.1:1/0", "doctor",
                                           "--controller", url};

  auto refused = testing::RunLanekeeper(doctor);
  EXPECT_NE(refused.out.find("controller: fail  controller at " + url +
                             " requires a bearer token (HTTP 401): pass --auth-token-file FILE"),
            std::string::npos) << refused.out << refused.err;
  auto with = doctor;
  with.insert(with.end(), {"--auth-token-file", token});
  auto answered = testing::RunLanekeeper(with);
  EXPECT_NE(answered.out.find("controller: ok  controller at " + url + ": 0 lane(s), all ready"),
            std::string::npos) << answered.out << answered.err;
  EXPECT_EQ(answered.out.find("tok-Wv3"), std::string::npos);

  // get's own specs directory, with one lane (the controller's has none): with no lane
  // get prints "No lanes" and asks nothing.
  std::filesystem::create_directories(dir_ / "get-specs");
  std::ofstream(dir_ / "get-specs/kb.yaml")
      << "apiVersion: lanekeeper.dev/v1alpha1\nkind: Lane\nmetadata: {name: kb}\nspec:\n"
         "  queue: kb\n";
  const std::vector<std::string> get = {"get", "--specs", dir_ / "get-specs", "--controller",
                                        url};
  auto unknown = testing::RunLanekeeper(get);
  EXPECT_EQ(unknown.exit_code, 0) << unknown.err;
  EXPECT_NE(unknown.out.find("(controller at " + url + " requires a bearer token (HTTP 401): "
                             "pass --auth-token-file FILE"),
            std::string::npos) << unknown.out;
  auto json = get;
  json.insert(json.end(), {"-o", "json"});
  auto unknown_json = testing::RunLanekeeper(json);
  EXPECT_NE(unknown_json.err.find("warning: controller at " + url + " requires a bearer token"),
            std::string::npos) << unknown_json.err;
  with = get;
  with.insert(with.end(), {"--auth-token-file", token});
  auto known = testing::RunLanekeeper(with);
  EXPECT_EQ(known.exit_code, 0) << known.err;
  EXPECT_EQ(known.out.find("requires a bearer token"), std::string::npos) << known.out;
  EXPECT_EQ(known.out.find("no controller answered"), std::string::npos) << known.out;
  EXPECT_NE(known.out.find("kb "), std::string::npos) << known.out;

  // A wrong token is refused as such; a token file others can read is not read at all.
  std::string wrong = dir_ / "wrong";
  std::ofstream(wrong) << "nope\n";
  ::chmod(wrong.c_str(), 0600);
  with = doctor;
  with.insert(with.end(), {"--auth-token-file", wrong});
  auto bad = testing::RunLanekeeper(with);
  EXPECT_NE(bad.out.find("refused the token of --auth-token-file " + wrong + " (HTTP 401)"),
            std::string::npos) << bad.out;
  ::chmod(wrong.c_str(), 0644);
  for (const auto& argv : {doctor, get}) {
    with = argv;
    with.insert(with.end(), {"--auth-token-file", wrong});
    auto loose = testing::RunLanekeeper(with);
    EXPECT_EQ(loose.exit_code, 2);
    EXPECT_NE(loose.err.find("is readable by group or others (mode 0644): chmod 600 " + wrong),
              std::string::npos) << loose.err;
  }
}

TEST_F(ControllerStatusLockdown, ANonLoopbackAddressWithoutATokenDoesNotStart) {
  auto r = testing::RunLanekeeper({"controller", "--specs", dir_ / "specs", "--state-dir",
                                   dir_ / "state", "--status-addr", "0.0.0.0:0"});
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_NE(r.err.find("0.0.0.0:0 is not a loopback address"), std::string::npos) << r.err;
}

}  // namespace status_lockdown_test
}  // namespace lk
