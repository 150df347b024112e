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
  ChildProcess& up = StartUp();
  EXPECT_NE(up.Stdout().find("submit a job: " + testing::LanekeeperBinary() + " --redis " +
                             SocketUrl() + " --queue quickstart jobs submit hello\n"),
            std::string::npos)
      << up.Stdout();
  pid_t redis_pid = RedisPid(up);
  ASSERT_GT(redis_pid, 0) << up.Stdout();
  ASSERT_TRUE(Eventually([&] { return GetStatus("/readyz") == 200; }, 30s)) << up.Stderr();

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

}  // namespace
}  // namespace lk
