// `lanekeeper up -f FILE`: the quick start as a user runs it — the real binary with
// examples/quickstart.yaml, its private redis-server, real supervisors and workers, and
// Ctrl-C at the end, after which nothing of it may be left running.
#include <cpprest/http_client.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <regex>

#include "controller/install/private_redis.h"
#include "tests/support/child_process.h"
#include "tests/support/loopback_port.h"
#include "tests/support/proc_scan.h"
#include "tests/support/redis_server.h"
#include "tests/support/temp_dir.h"
#include "worker/job_queue.h"

namespace lk {
namespace {

namespace fs = std::filesystem;
using namespace std::chrono_literals;
using testing::ChildProcess;
using testing::Eventually;
using testing::RunLanekeeper;

const std::string kQuickstart =
    (fs::path(__FILE__).parent_path().parent_path() / "examples" / "quickstart.yaml").string();
// Whatever the environment of the test says, `up` must choose its own Redis.
const std::vector<std::string> kNoRedisEnv = {"LANEKEEPER_REDIS_URL="};

// Live processes with dir in any argument: the roles (--pid-file, --handlers under it),
// the workers (--handlers) and redis-server (its title names its socket).
std::vector<pid_t> ProcessesUsing(const std::string& dir) {
  std::vector<pid_t> found;
  std::error_code ec;
  for (fs::directory_iterator it("/proc", ec), end; !ec && it != end; it.increment(ec)) {
    pid_t pid = std::atoi(it->path().filename().c_str());
    if (pid <= 0 || pid == getpid()) continue;
    for (const auto& arg : testing::ProcessArgs(pid)) {
      if (arg.find(dir) != std::string::npos && testing::ProcessAlive(pid)) {
        found.push_back(pid);
        break;
      }
    }
  }
  return found;
}

class UpTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_TRUE(temp_.ok());
    dir_ = temp_.path();
    state_ = dir_ + "/state";
    HoldNewStatusPort();
  }

  void TearDown() override {
    for (auto& up : ups_) {
      if (up->Signal(SIGTERM)) up->Wait(60s);
    }
    // Nothing of this test may outlive it, whatever went wrong.
    for (pid_t p : ProcessesUsing(state_)) testing::SignalProcess(p, SIGKILL);
    testing::KillProcessesOfThisTest();
  }

  // A port for `up`'s dashboard that the test holds until it ends (LoopbackPort::ForServer):
  // `up` can listen there, nobody else can take it.
  void HoldNewStatusPort() {
    auto port = testing::LoopbackPort::ForServer();
    ASSERT_TRUE(port.ok()) << port.status().message();
    port_ = (*port)->port();
    held_ports_.push_back(std::move(port).value());
  }

  std::vector<std::string> UpArgs(const std::string& file, int port) {
    return {"up", "-f", file, "--state-dir", state_, "--status-addr",
            "127.0.0.1:" + std::to_string(port)};
  }

  // Starts `up` and waits until it prints where the dashboard is.
  ChildProcess& StartUp(const std::string& file = kQuickstart,
                        std::vector<std::string> env = kNoRedisEnv) {
    std::vector<std::string> argv = UpArgs(file, port_);
    argv.insert(argv.begin(), testing::LanekeeperBinary());
    ups_.push_back(std::make_unique<ChildProcess>(argv, env));
    ChildProcess& up = *ups_.back();
    EXPECT_TRUE(up.WaitForOutput("dashboard: http://127.0.0.1:" + std::to_string(port_) + "/\n",
                                 60s))
        << up.Stdout() << up.Stderr();
    return up;
  }

  std::string SocketUrl() const { return "unix://" + state_ + "/redis/redis.sock"; }

  // The redis-server pid `up` printed, or -1.
  static pid_t RedisPid(const ChildProcess& up) {
    std::smatch m;
    std::string out = up.Stdout();
    if (!std::regex_search(out, m, std::regex("redis-server pid ([0-9]+)"))) return -1;
    return std::stoi(m[1]);
  }

  int GetStatus(const std::string& path) {
    try {
      web::http::client::http_client_config config;
      config.set_timeout(std::chrono::seconds(5));
      web::http::client::http_client client("http://127.0.0.1:" + std::to_string(port_),
                                            config);
      return client.request(web::http::methods::GET, path).get().status_code();
    } catch (const std::exception&) {
      return 0;
    }
  }

  // Submits a hello job as `up` tells the user to; returns its id.
  std::string SubmitHello(const std::string& payload) {
    auto r = RunLanekeeper({"--redis", SocketUrl(), "--queue", "quickstart", "jobs", "submit",
                            "hello", "--payload", payload});
    EXPECT_EQ(r.exit_code, 0) << r.err;
    std::string id = r.out;
    while (!id.empty() && id.back() == '\n') id.pop_back();
    return id;
  }

  std::optional<Job> GetJob(const std::string& id) {
    auto q = OpenJobQueue(SocketUrl(), "quickstart");
    if (!q.ok()) return std::nullopt;
    auto j = (*q)->Get(id);
    if (!j.ok()) return std::nullopt;
    return *j;
  }

  bool Completed(const std::string& id) {
    auto j = GetJob(id);
    return j && j->state == JobState::kCompleted;
  }

  // After `up` exited: no role, worker or redis-server of this state dir is alive.
  void ExpectNothingLeftRunning(pid_t redis_pid) {
    EXPECT_EQ(ProcessesUsing(state_), std::vector<pid_t>{});
    EXPECT_FALSE(testing::ProcessAlive(redis_pid)) << "redis-server " << redis_pid;
    EXPECT_FALSE(fs::exists(state_ + "/up.pid"));
    EXPECT_FALSE(fs::exists(state_ + "/redis/redis.sock"));
  }

  testing::TempDir temp_{"up-test"};
  std::string dir_, state_;
  int port_ = 0;
  std::vector<std::unique_ptr<testing::LoopbackPort>> held_ports_;
  std::vector<std::unique_ptr<ChildProcess>> ups_;
};

TEST_F(UpTest, QuickStartRunsAJobAndCtrlCLeavesNothingRunning) {
  // What an earlier `up` (or an `apply` during it) left in STATE/specs goes first.
  fs::create_directories(state_ + "/specs");
  std::ofstream(state_ + "/specs/stray.yaml") << "apiVersion: lanekeeper.dev/v1alpha1\n"
                                                 "kind: Lane\nmetadata: {name: stray}\nspec: {}\n";
  ChildProcess& up = StartUp();
  pid_t redis_pid = RedisPid(up);
  ASSERT_GT(redis_pid, 0) << up.Stdout();
  // Where everything is and what to run next, as README.md shows it.
  const std::string me = testing::LanekeeperBinary();
  const std::string status = "http://127.0.0.1:" + std::to_string(port_);
  EXPECT_EQ(up.Stdout(),
            "lanekeeper up: 1 lane(s) from " + kQuickstart + ", state in " + state_ + "\n" +
                "lane/quickstart: queue quickstart on " + SocketUrl() + "\n" +
                "redis: private redis-server pid " + std::to_string(redis_pid) +
                ", append-only file in " + state_ + "/redis/appendonlydir\n" +
                "dashboard: " + status + "/\n" +
                "submit a job: " + me + " --redis " + SocketUrl() +
                " --queue quickstart jobs submit hello\n" +
                "list the lanes: " + me + " --redis " + SocketUrl() + " get --specs " + state_ +
                "/specs --controller " + status + "\n" +
                "change them: " + me + " --redis " + SocketUrl() + " apply -f FILE --specs " +
                state_ + "/specs\n" +
                "Ctrl-C stops everything.\n");
  EXPECT_EQ(testing::RunLanekeeper({"validate", "-f", state_ + "/specs"}, kNoRedisEnv).out,
            "1 lane(s) valid: quickstart (queue quickstart on redis://127.0.0.1:6379/0 (default))\n");
  EXPECT_TRUE(fs::exists(state_ + "/up.pid"));
  // The private Redis: the socket alone (no TCP), for this user only, an append-only file
  // synced every second and no RDB snapshots, everything in STATE/redis (mode 700).
  auto ep = ParseRedisUrl(SocketUrl());
  auto conn = RedisConnection::Connect(*ep, 2s);
  ASSERT_TRUE(conn.ok()) << conn.status().message();
  auto config = [&](const std::string& key) {
    auto r = (*conn)->Command({"CONFIG", "GET", key});
    return r.ok() && r->elements.size() == 2 ? r->elements[1].str : "?";
  };
  EXPECT_EQ(config("port"), "0");
  EXPECT_EQ(config("unixsocketperm"), "700");
  EXPECT_EQ(config("appendonly"), "yes");
  EXPECT_EQ(config("appendfsync"), "everysec");
  EXPECT_EQ(config("save"), "");
  EXPECT_EQ(config("dir"), state_ + "/redis");
  EXPECT_EQ(fs::status(state_ + "/redis").permissions() & fs::perms::all, fs::perms::owner_all);
  ASSERT_TRUE(Eventually([&] { return GetStatus("/readyz") == 200; }, 30s)) << up.Stderr();
  EXPECT_FALSE(fs::exists(state_ + "/specs/stray.yaml"));
  EXPECT_TRUE(fs::exists(state_ + "/specs/quickstart.yaml"));

  std::string id = SubmitHello("\"world\"");
  ASSERT_TRUE(Eventually([&] { return Completed(id); }, 30s)) << up.Stderr();
  EXPECT_EQ(GetJob(id)->result, "hello, \"world\"\n");
  // The specs directory works with the lane commands while up runs.
  testing::CommandResult got;
  EXPECT_TRUE(Eventually([&] {
    got = RunLanekeeper({"--redis", SocketUrl(), "get", "--specs", state_ + "/specs",
                         "--controller", "http://127.0.0.1:" + std::to_string(port_)});
    return got.exit_code == 0 && got.out.find("quickstart") != std::string::npos &&
           got.out.find("True") != std::string::npos;
  }, 30s)) << got.out << got.err;
  EXPECT_FALSE(ProcessesUsing(state_ + "/lanes/quickstart").empty()) << "supervisor and worker";

  ASSERT_TRUE(up.Signal(SIGINT));
  ASSERT_EQ(up.Wait(90s), 0) << up.Stderr();
  ExpectNothingLeftRunning(redis_pid);
  EXPECT_TRUE(fs::exists(state_ + "/redis/appendonlydir/appendonly.aof.manifest"));
}

TEST_F(UpTest, TheNextUpOnTheStateDirFindsTheJobsOfTheLast) {
  ChildProcess& first = StartUp();
  std::string id = SubmitHello("\"again\"");
  ASSERT_TRUE(Eventually([&] { return Completed(id); }, 30s)) << first.Stderr();
  first.Signal(SIGINT);
  ASSERT_EQ(first.Wait(90s), 0) << first.Stderr();
  ExpectNothingLeftRunning(RedisPid(first));

  ChildProcess& second = StartUp();
  EXPECT_NE(RedisPid(second), RedisPid(first));
  auto job = GetJob(id);
  ASSERT_TRUE(job) << second.Stderr();
  EXPECT_EQ(job->state, JobState::kCompleted);
  EXPECT_EQ(job->result, "hello, \"again\"\n");
  second.Signal(SIGINT);
  ASSERT_EQ(second.Wait(90s), 0) << second.Stderr();
  ExpectNothingLeftRunning(RedisPid(second));
}

TEST_F(UpTest, SigtermStopsEverythingLikeCtrlC) {
  ChildProcess& up = StartUp();
  pid_t redis_pid = RedisPid(up);
  // The supervisor and its worker.
  ASSERT_TRUE(Eventually([&] { return ProcessesUsing(state_ + "/lanes/quickstart").size() == 2; },
                         30s))
      << up.Stderr();
  ASSERT_TRUE(up.Signal(SIGTERM));
  ASSERT_EQ(up.Wait(90s), 0) << up.Stderr();
  ExpectNothingLeftRunning(redis_pid);
  EXPECT_TRUE(fs::exists(state_ + "/redis/appendonlydir/appendonly.aof.manifest"));
}

TEST_F(UpTest, AKilledUpIsAdoptedByTheNextInsteadOfStartingTwice) {
  ChildProcess& killed = StartUp();
  pid_t redis_pid = RedisPid(killed);
  ASSERT_TRUE(Eventually([&] { return ProcessesUsing(state_ + "/lanes/quickstart").size() == 2; },
                         30s))
      << killed.Stderr();
  std::vector<pid_t> roles = ProcessesUsing(state_ + "/lanes/quickstart");
  killed.Signal(SIGKILL);
  ASSERT_TRUE(killed.Wait(10s));
  EXPECT_TRUE(testing::ProcessAlive(redis_pid)) << "SIGKILL leaves redis-server running";

  // The killed one's roles may still hold its status port: the next one takes another.
  HoldNewStatusPort();
  ChildProcess& next = StartUp();
  EXPECT_NE(next.Stdout().find("adopted the private redis-server left running, pid " +
                               std::to_string(redis_pid)),
            std::string::npos)
      << next.Stdout();
  ASSERT_TRUE(Eventually([&] { return GetStatus("/readyz") == 200; }, 30s)) << next.Stderr();
  EXPECT_EQ(ProcessesUsing(state_ + "/lanes/quickstart"), roles) << "adopted, not started again";
  std::string id = SubmitHello("\"adopted\"");
  ASSERT_TRUE(Eventually([&] { return Completed(id); }, 30s)) << next.Stderr();
  next.Signal(SIGINT);
  ASSERT_EQ(next.Wait(90s), 0) << next.Stderr();
  ExpectNothingLeftRunning(redis_pid);
}

TEST_F(UpTest, APrivateRedisThatDiesStopsTheLanesAndExitsOne) {
  ChildProcess& up = StartUp();
  pid_t redis_pid = RedisPid(up);
  ASSERT_TRUE(Eventually([&] { return ProcessesUsing(state_ + "/lanes/quickstart").size() == 2; },
                         30s))
      << up.Stderr();
  ASSERT_TRUE(testing::SignalProcess(redis_pid, SIGKILL));
  ASSERT_EQ(up.Wait(90s), 1) << up.Stderr();
  EXPECT_NE(up.Stderr().find("the private redis-server (pid " + std::to_string(redis_pid) +
                             ") exited; stopping the lanes"),
            std::string::npos)
      << up.Stderr();
  EXPECT_EQ(ProcessesUsing(state_), std::vector<pid_t>{});
  EXPECT_FALSE(fs::exists(state_ + "/up.pid"));
}

TEST_F(UpTest, ABadFileExitsTwoWithItsLineAndStartsNothing) {
  std::string bad = dir_ + "/bad.yaml";
  std::ofstream(bad) << "apiVersion: lanekeeper.dev/v1alpha1\n"
                        "kind: Lane\n"
                        "metadata: {name: kb}\n"
                        "spec:\n"
                        "  supervisor: {concurency: 2}\n";
  auto r = RunLanekeeper(UpArgs(bad, port_), kNoRedisEnv);
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_EQ(r.out, "");
  EXPECT_EQ(r.err, bad + ":5:16: spec.supervisor.concurency: unknown field 'concurency' (did "
                         "you mean 'concurrency'?)\nlanekeeper: up: nothing started\n");
  EXPECT_FALSE(fs::exists(state_));
  EXPECT_EQ(ProcessesUsing(state_), std::vector<pid_t>{});
}

TEST_F(UpTest, ASecondUpOnTheSameStateDirExitsTwoNamingTheFirst) {
  ChildProcess& first = StartUp();
  const int first_port = port_;
  HoldNewStatusPort();
  auto r = RunLanekeeper(UpArgs(kQuickstart, port_), kNoRedisEnv);
  port_ = first_port;
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_NE(r.err.find("another `lanekeeper up` (pid " + std::to_string(first.pid()) + ")"),
            std::string::npos)
      << r.err;
  EXPECT_TRUE(first.Running());
  EXPECT_EQ(GetStatus("/healthz"), 200);
}

TEST_F(UpTest, ADashboardPortInUseExitsTwoAndStartsNothing) {
  auto taken = testing::LoopbackPort::Listening();
  ASSERT_TRUE(taken.ok()) << taken.status().message();
  auto r = RunLanekeeper(UpArgs(kQuickstart, (*taken)->port()), kNoRedisEnv);
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_NE(r.err.find("cannot listen on " + (*taken)->address() + ": Address already in use"),
            std::string::npos)
      << r.err;
  EXPECT_FALSE(fs::exists(state_ + "/redis"));
  EXPECT_FALSE(fs::exists(state_ + "/up.pid"));
  EXPECT_EQ(ProcessesUsing(state_), std::vector<pid_t>{});
}

TEST_F(UpTest, WithRedisGivenTheLanesUseItAndNoPrivateRedisStarts) {
  auto server = testing::RedisServer::Start();
  ASSERT_TRUE(server.ok()) << server.status().message();
  ChildProcess& up = StartUp(kQuickstart, {"LANEKEEPER_REDIS_URL=" + (*server)->url()});
  EXPECT_EQ(RedisPid(up), -1) << up.Stdout();
  EXPECT_FALSE(fs::exists(state_ + "/redis"));
  auto q = OpenJobQueue((*server)->url(), "quickstart");
  ASSERT_TRUE(q.ok());
  JobSpec spec;
  spec.name = "hello";
  auto id = (*q)->Enqueue(spec);
  ASSERT_TRUE(id.ok());
  ASSERT_TRUE(Eventually([&] {
    auto j = (*q)->Get(id->id);
    return j.ok() && j->state == JobState::kCompleted;
  }, 30s)) << up.Stderr();
  up.Signal(SIGINT);
  EXPECT_EQ(up.Wait(90s), 0) << up.Stderr();
  EXPECT_EQ(ProcessesUsing(state_), std::vector<pid_t>{});
}

// --- the private Redis: what `up` says when it cannot have one ---

// A directory of programs for PATH: scripts named as the tools `up` looks for.
class FakeBin {
 public:
  explicit FakeBin(testing::TempDir& dir) : path_(dir / "bin") { fs::create_directories(path_); }
  void Add(const std::string& name, const std::string& script) {
    std::string file = path_ + "/" + name;
    std::ofstream(file) << "#!/bin/sh\n" << script;
    fs::permissions(file, fs::perms::owner_all);
  }
  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

TEST_F(UpTest, WithoutRedisServerInPathItNamesThePackageExitsOneAndLeavesNothing) {
  FakeBin empty(temp_);
  auto r = RunLanekeeper(UpArgs(kQuickstart, port_), {"LANEKEEPER_REDIS_URL=", "PATH=" + empty.path()});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_EQ(r.err, "lanekeeper: up: private Redis: redis-server is not installed (not found in "
                   "PATH): install the Debian package redis-server (apt-get install "
                   "redis-server)\nlanekeeper: up: or run the lanes on a Redis of yours: "
                   "lanekeeper --redis URL up -f FILE\n");
  EXPECT_FALSE(fs::exists(state_ + "/up.pid"));
  EXPECT_EQ(ProcessesUsing(state_), std::vector<pid_t>{});
}

TEST_F(UpTest, ARedisServerThatExitsAtStartIsReportedWithTheEndOfItsLog) {
  FakeBin bin(temp_);
  bin.Add("redis-server",
          "while [ $# -gt 0 ]; do\n"
          "  [ \"$1\" = --logfile ] && echo 'Fatal error, cannot open the append-only file' >> \"$2\"\n"
          "  shift\n"
          "done\n"
          "exit 1\n");
  auto r = RunLanekeeper(UpArgs(kQuickstart, port_),
                         {"LANEKEEPER_REDIS_URL=", "PATH=" + bin.path() + ":/usr/bin:/bin"});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.err.find("lanekeeper: up: private Redis: redis-server exited with code 1 before it "
                       "answered on " + state_ + "/redis/redis.sock; its log (" + state_ +
                       "/redis/redis.log):\n  Fatal error, cannot open the append-only file\n"),
            std::string::npos)
      << r.err;
  EXPECT_FALSE(fs::exists(state_ + "/up.pid"));
  EXPECT_EQ(ProcessesUsing(state_), std::vector<pid_t>{});
}

// The 20 s start bound, proven with a short one: a redis-server that never answers is given
// up on at the bound, with its log, and nothing of it is left running.
TEST(PrivateRedis, ARedisServerThatNeverAnswersIsGivenUpAtTheStartBoundAndStopped) {
  EXPECT_EQ(PrivateRedisOptions{}.start_timeout, Millis(20'000));
  testing::TempDir dir("private-redis");
  ASSERT_TRUE(dir.ok());
  FakeBin bin(dir);
  bin.Add("redis-server", "echo 'Loading the append-only file' >> " + dir.path() +
                              "/redis/redis.log\nwhile :; do sleep 0.05; done\n");
  PrivateRedisOptions o;
  o.dir = dir / "redis";
  o.binary = bin.path() + "/redis-server";
  o.start_timeout = Millis(500);
  auto begin = std::chrono::steady_clock::now();
  auto redis = PrivateRedis::Start(o);
  auto took = std::chrono::steady_clock::now() - begin;
  ASSERT_FALSE(redis.ok());
  EXPECT_TRUE(redis.status().IsUnavailable());
  EXPECT_EQ(redis.status().message(),
            "redis-server did not answer PING on " + o.dir + "/redis.sock within 500ms; its log (" +
                o.dir + "/redis.log):\n  Loading the append-only file");
  EXPECT_GE(took, 500ms);
  EXPECT_LT(took, 500ms + 10s);  // stopped: SIGTERM, which a shell obeys
  EXPECT_EQ(ProcessesUsing(bin.path()), std::vector<pid_t>{});
}

TEST_F(UpTest, ADirectoryIsRefusedAsTheFile) {
  auto r = RunLanekeeper(UpArgs(dir_, port_), kNoRedisEnv);
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_EQ(r.err, dir_ + ": is a directory: up runs the lanes of one file (separate them with "
                          "---)\nlanekeeper: up: nothing started\n");
  EXPECT_FALSE(fs::exists(state_));
}

// A unix socket path is at most 106 bytes: sun_path holds 108 with its NUL, and hiredis
// 0.14 leaves a path of 107 unterminated (private_redis.cc).
TEST_F(UpTest, AStateDirWhoseSocketPathIsOver106BytesIsRefusedSayingSo) {
  std::string deep = dir_ + "/";
  deep += std::string(107 - deep.size() - std::string("/redis/redis.sock").size(), 'd');
  ASSERT_EQ((deep + "/redis/redis.sock").size(), 107u);
  auto r = RunLanekeeper({"up", "-f", kQuickstart, "--state-dir", deep, "--status-addr",
                          "127.0.0.1:" + std::to_string(port_)},
                         kNoRedisEnv);
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.err.find("lanekeeper: up: private Redis: the socket path " + deep +
                       "/redis/redis.sock is 107 bytes, over the 106 a unix socket allows (hiredis 0.14): choose "
                       "a shorter state dir"),
            std::string::npos)
      << r.err;
  EXPECT_FALSE(fs::exists(deep + "/up.pid"));
  EXPECT_EQ(ProcessesUsing(deep), std::vector<pid_t>{});
}

TEST(PrivateRedis, ASocketPathOfExactly106BytesWorks) {
  testing::TempDir dir("private-redis");
  ASSERT_TRUE(dir.ok());
  std::string deep = dir.path() + "/";
  deep += std::string(106 - deep.size() - std::string("/redis.sock").size(), 'd');
  PrivateRedisOptions o;
  o.dir = deep;
  auto redis = PrivateRedis::Start(o);
  ASSERT_TRUE(redis.ok()) << redis.status().message();
  EXPECT_EQ((*redis)->url(), "unix://" + deep + "/redis.sock");
  auto conn = RedisConnection::Connect(*ParseRedisUrl((*redis)->url()), 2s);
  ASSERT_TRUE(conn.ok()) << conn.status().message();
  EXPECT_EQ((*conn)->Command({"PING"})->str, "PONG");
  EXPECT_TRUE((*redis)->Stop().ok());
}
}  // namespace
}  // namespace lk
