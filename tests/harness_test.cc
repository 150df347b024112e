// The test harness itself (tests/support): a process that cannot be started signals
// nothing, nothing a test starts outlives it, ports are held instead of guessed, a failed
// Redis read fails the test, and the checks that prove invariants from the record do catch
// a second worker.
#include <arpa/inet.h>
#include <gtest/gtest-spi.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <fstream>
#include <vector>

#include "tests/support/child_process.h"
#include "tests/support/loopback_port.h"
#include "tests/support/proc_scan.h"
#include "tests/support/queue_records.h"
#include "tests/support/redis_server.h"
#include "tests/support/run_log.h"
#include "tests/support/temp_dir.h"
#include "tests/support/worker_timeline.h"

namespace lk {
namespace {

using namespace std::chrono_literals;
using testing::ChildProcess;
using testing::Eventually;

// Records every fork and kill; fork fails when told to, kill never reaches the kernel.
class RecordingCalls : public testing::ProcessCalls {
 public:
  explicit RecordingCalls(bool fork_fails) : fork_fails_(fork_fails) {}
  pid_t Fork() override {
    ++forks;
    if (fork_fails_) {
      errno = EAGAIN;
      return -1;
    }
    return testing::ProcessCalls::Real().Fork();
  }
  int Kill(pid_t target, int sig) override {
    kills.emplace_back(target, sig);
    return 0;
  }
  int forks = 0;
  std::vector<std::pair<pid_t, int>> kills;

 private:
  bool fork_fails_;
};

// ---- starting and stopping processes ----------------------------------------------------

TEST(ChildProcessHarness, AFailedForkIsATestFailureAndSignalsNothingEver) {
  RecordingCalls calls(/*fork_fails=*/true);
  {
    std::unique_ptr<ChildProcess> child;
    EXPECT_NONFATAL_FAILURE(
        child = std::make_unique<ChildProcess>(std::vector<std::string>{"sleep", "60"},
                                               std::vector<std::string>{}, calls),
        "cannot start sleep: fork: Resource temporarily unavailable");
    EXPECT_EQ(calls.forks, 1);
    EXPECT_FALSE(child->started());
    EXPECT_EQ(child->pid(), 0);
    EXPECT_FALSE(child->Signal(SIGTERM));
    EXPECT_FALSE(child->SignalGroup(SIGKILL));
    EXPECT_FALSE(child->Running());
    EXPECT_EQ(child->Wait(10ms), std::nullopt);
  }  // the destructor too
  EXPECT_TRUE(calls.kills.empty()) << "first kill target: " << calls.kills[0].first;
}

TEST(ChildProcessHarness, TheSignalGuardRefusesEveryTargetThatIsNotAProcessTheTestStarted) {
  RecordingCalls calls(/*fork_fails=*/false);
  for (pid_t target : {-1, 0, 1, getpid()}) {
    EXPECT_NONFATAL_FAILURE(testing::SignalProcess(target, SIGKILL, calls), "refusing");
  }
  for (pid_t group : {-1, 0, 1, getpgrp()}) {
    EXPECT_NONFATAL_FAILURE(testing::SignalProcessGroup(group, SIGKILL, calls), "refusing");
  }
  EXPECT_TRUE(calls.kills.empty());
}

TEST(ChildProcessHarness, ATempDirThatCannotBeMadeIsATestFailureBeforeAnythingIsForked) {
  RecordingCalls calls(/*fork_fails=*/false);
  const char* old = std::getenv("TMPDIR");
  std::string saved = old ? old : "";
  setenv("TMPDIR", "/nonexistent-lk-tmpdir", 1);
  {
    std::unique_ptr<ChildProcess> child;
    EXPECT_NONFATAL_FAILURE(
        child = std::make_unique<ChildProcess>(std::vector<std::string>{"true"},
                                               std::vector<std::string>{}, calls),
        "no temporary directory");
    EXPECT_FALSE(child->started());
    EXPECT_NONFATAL_FAILURE(testing::TempDir dir("x"), "no temporary directory");
  }
  if (old) setenv("TMPDIR", saved.c_str(), 1);
  else unsetenv("TMPDIR");
  EXPECT_EQ(calls.forks, 0);
  EXPECT_TRUE(calls.kills.empty());
}

TEST(ChildProcessHarness, AProgramThatCannotBeExecutedIsATestFailureNamingIt) {
  std::unique_ptr<ChildProcess> child;
  EXPECT_NONFATAL_FAILURE(
      child = std::make_unique<ChildProcess>(std::vector<std::string>{"/nonexistent/prog"}),
      "exec /nonexistent/prog: No such file or directory");
  EXPECT_FALSE(child->started());
  auto start = ChildProcess::Start({"/nonexistent/prog"});
  ASSERT_FALSE(start.ok());
  EXPECT_EQ(start.status().message(),
            "cannot start /nonexistent/prog: exec /nonexistent/prog: No such file or directory");
}

TEST(ChildProcessHarness, EachChildLeadsItsOwnGroupAndTakesItWhenDestroyed) {
  testing::TempDir dir("harness");
  ASSERT_TRUE(dir.ok());
  pid_t grandchild = 0;
  {
    ChildProcess child({"/bin/sh", "-c", "sleep 300 & echo $! > " + (dir / "pid") + "; wait"});
    ASSERT_TRUE(child.started());
    EXPECT_EQ(getpgid(child.pid()), child.pid());
    EXPECT_NE(getpgid(child.pid()), getpgrp());
    ASSERT_TRUE(Eventually([&] {
      std::ifstream in(dir / "pid");
      return static_cast<bool>(in >> grandchild) && grandchild > 0;
    }, 10s));
    EXPECT_EQ(getpgid(grandchild), child.pid());
  }
  EXPECT_TRUE(Eventually([&] { return !testing::ProcessAlive(grandchild); }, 5s));
}

TEST(ChildProcessHarness, WhenTheChildExitsWhatItLeftInItsGroupIsKilledBeforeItIsReaped) {
  testing::TempDir dir("harness");
  ASSERT_TRUE(dir.ok());
  ChildProcess child({"/bin/sh", "-c", "sleep 300 & echo $! > " + (dir / "pid") + "; exit 3"});
  ASSERT_EQ(child.Wait(10s), 3);
  pid_t left = 0;
  std::ifstream(dir / "pid") >> left;
  ASSERT_GT(left, 0);
  EXPECT_TRUE(Eventually([&] { return !testing::ProcessAlive(left); }, 5s));
  // Reaped: its pid may be anyone's now, so nothing is sent there any more.
  EXPECT_FALSE(child.Signal(SIGKILL));
  EXPECT_FALSE(child.SignalGroup(SIGKILL));
}

TEST(ChildProcessHarness, WhatLeavesTheGroupIsKilledByTheTestMarker) {
  testing::TempDir dir("harness");
  ASSERT_TRUE(dir.ok());
  pid_t escaped = 0;
  {
    // setsid: a session and group of its own, as a supervisor's worker has.
    ChildProcess child(
        {"/bin/sh", "-c", "setsid sleep 300 & echo $! > " + (dir / "pid") + "; wait"});
    ASSERT_TRUE(Eventually([&] {
      std::ifstream in(dir / "pid");
      return static_cast<bool>(in >> escaped) && escaped > 0 && getsid(escaped) == escaped;
    }, 10s));
  }
  ASSERT_TRUE(testing::ProcessAlive(escaped)) << "the group kill cannot reach it";
  EXPECT_GE(testing::KillProcessesOfThisTest(), 1);
  EXPECT_TRUE(Eventually([&] { return !testing::ProcessAlive(escaped); }, 5s));
}

TEST(ChildProcessHarness, WhatADeadTestProcessLeftRunningIsKilledWhenTheNextTestStarts) {
  testing::TempDir dir("harness");
  ASSERT_TRUE(dir.ok());
  // A test process that is gone: a pid nobody holds now.
  pid_t gone = 0;
  {
    ChildProcess dead({"true"});
    ASSERT_TRUE(dead.Wait(10s).has_value());
    gone = dead.pid();
  }
  std::string marker = std::to_string(gone) + ".12345.1";
  // What it left: a process in a session of its own with that test's marker.
  ChildProcess parent({"/bin/sh", "-c",
                       "LK_TEST_MARKER=" + marker + " setsid sleep 300 & echo $! > " +
                           (dir / "pid") + "; exec sleep 300"});
  pid_t left = 0;
  ASSERT_TRUE(Eventually([&] {
    std::ifstream in(dir / "pid");
    return static_cast<bool>(in >> left) && left > 0 && getsid(left) == left;
  }, 10s));
  // Any test that starts meanwhile (ctest -j2) sweeps it as well, so only the outcome counts.
  testing::KillProcessesOfGoneTests();
  EXPECT_TRUE(Eventually([&] { return !testing::ProcessAlive(left); }, 5s));
  EXPECT_TRUE(parent.Running()) << "a live test's processes are left alone";
}

// ---- ports --------------------------------------------------------------------------------

int ConnectTo(int port) {
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = htons(static_cast<uint16_t>(port));
  int rc = connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr));
  int err = rc == 0 ? 0 : errno;
  close(fd);
  return err;
}

int BindTo(int port, bool reuse, bool then_listen) {
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  int one = 1;
  if (reuse) setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = htons(static_cast<uint16_t>(port));
  int err = 0;
  if (bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0 ||
      (then_listen && listen(fd, 1) != 0)) {
    err = errno;
  }
  close(fd);
  return err;
}

TEST(LoopbackPortHarness, ARefusingPortRefusesConnectionsAndCannotBeTaken) {
  auto port = testing::LoopbackPort::Refusing();
  ASSERT_TRUE(port.ok()) << port.status().message();
  EXPECT_GT((*port)->port(), 0);
  EXPECT_EQ(ConnectTo((*port)->port()), ECONNREFUSED);
  EXPECT_EQ(BindTo((*port)->port(), /*reuse=*/false, false), EADDRINUSE);
  EXPECT_EQ(BindTo((*port)->port(), /*reuse=*/true, false), EADDRINUSE);
}

TEST(LoopbackPortHarness, APortForAServerLetsOnlyAServerThatReusesAddressesListenOnIt) {
  auto port = testing::LoopbackPort::ForServer();
  ASSERT_TRUE(port.ok()) << port.status().message();
  EXPECT_EQ(BindTo((*port)->port(), /*reuse=*/false, false), EADDRINUSE);
  EXPECT_EQ(BindTo((*port)->port(), /*reuse=*/true, /*then_listen=*/true), 0);
  EXPECT_TRUE((*port)->CanListen());
  {
    testing::TempDir dir("harness");
    ASSERT_TRUE(dir.ok());
    auto server = testing::ChildProcess::Start(
        {"redis-server", "--port", std::to_string((*port)->port()), "--bind", "127.0.0.1",
         "--dir", dir.path(), "--save", "", "--appendonly", "no"});
    ASSERT_TRUE(server.ok()) << server.status().message();
    ASSERT_TRUE(Eventually([&] { return ConnectTo((*port)->port()) == 0; }, 10s));
    EXPECT_FALSE((*port)->CanListen()) << "a server listens there";
  }
  EXPECT_TRUE((*port)->CanListen());
}

TEST(LoopbackPortHarness, RedisListensOnItsHeldPortAcrossARestart) {
  auto server = testing::RedisServer::Start();
  ASSERT_TRUE(server.ok()) << server.status().message();
  int port = (*server)->port();
  EXPECT_EQ(ConnectTo(port), 0);
  (*server)->Kill();
  EXPECT_EQ(ConnectTo(port), ECONNREFUSED);
  EXPECT_EQ(BindTo(port, /*reuse=*/false, false), EADDRINUSE) << "still the test's";
  ASSERT_TRUE((*server)->Restart().ok());
  EXPECT_EQ((*server)->port(), port);
  EXPECT_EQ(ConnectTo(port), 0);
}

// ---- reading the record -------------------------------------------------------------------

TEST(QueueRecordsHarness, AReadThatFailsIsATestFailureNotNothing) {
  auto server = testing::RedisServer::Start();
  ASSERT_TRUE(server.ok()) << server.status().message();
  auto queue = OpenJobQueue((*server)->url(), "records");
  ASSERT_TRUE(queue.ok());
  testing::QueueRecords records(**queue);
  EXPECT_FALSE(records.Owner().has_value());  // Redis answered: nobody
  EXPECT_TRUE(records.Events().empty());
  (*server)->Kill();
  EXPECT_NONFATAL_FAILURE(records.Owner(), "cannot read the owner lease of queue records");
  EXPECT_NONFATAL_FAILURE(records.Events("crash"), "cannot read the events of queue records");
  EXPECT_NONFATAL_FAILURE(records.Autopilot(), "cannot read the autopilot record");
}

TEST(QueueRecordsHarness, ATrimmedEventStreamIsATestFailure) {
  auto server = testing::RedisServer::Start();
  ASSERT_TRUE(server.ok()) << server.status().message();
  auto queue = OpenJobQueue((*server)->url(), "trimmed");
  ASSERT_TRUE(queue.ok());
  RedisConnection& conn = (*queue)->connection();
  for (int i = 0; i < 3; ++i) {
    ASSERT_TRUE(conn.Command({"XADD", "lk:{trimmed}:events", "*", "type", "x"}).ok());
  }
  ASSERT_TRUE(conn.Command({"XTRIM", "lk:{trimmed}:events", "MAXLEN", "1"}).ok());
  testing::QueueRecords records(**queue);
  EXPECT_NONFATAL_FAILURE(records.Events(), "was trimmed: it holds 1 of the 3 events added");
}

// ---- the one-worker check -------------------------------------------------------------------

LifecycleEvent Ev(const std::string& type, const std::string& holder,
                  std::map<std::string, std::string> fields, int64_t ts) {
  LifecycleEvent e;
  e.type = type;
  e.role = "supervisor";
  e.holder = holder;
  e.fields = std::move(fields);
  e.ts_ms = ts;
  return e;
}

TEST(WorkerTimelineHarness, ASecondWorkerOfOneEpochIsFoundWithTheEventsAroundIt) {
  std::vector<LifecycleEvent> events = {
      Ev("lease_acquired", "h:1", {{"epoch", "1"}}, 1000),
      Ev("worker_started", "h:1", {{"worker_pid", "11"}, {"epoch", "1"}}, 1010),
      Ev("worker_started", "h:1", {{"worker_pid", "12"}, {"epoch", "1"}}, 1500),
  };
  std::string v = testing::FirstSecondWorker(events, testing::OneAtATime::kFencedOverlap);
  EXPECT_NE(v.find("event #2: worker 12 (epoch 1) started while worker 11 (epoch 1, #1) had "
                   "not exited: two workers of one epoch both claim"),
            std::string::npos)
      << v;
  EXPECT_NE(v.find("#0 +0ms lease_acquired"), std::string::npos) << v;
  EXPECT_NE(v.find("#2 +500ms worker_started role=supervisor holder=h:1 epoch=1 worker_pid=12"),
            std::string::npos)
      << v;
}

TEST(WorkerTimelineHarness, AnOrphanOfAnOlderEpochIsFencedOverlapNotStrict) {
  std::vector<LifecycleEvent> events = {
      Ev("lease_acquired", "h:1", {{"epoch", "1"}}, 0),
      Ev("worker_started", "h:1", {{"worker_pid", "11"}, {"epoch", "1"}}, 1),
      Ev("lease_acquired", "h:2", {{"epoch", "2"}}, 2),  // h:1 was killed; its worker lives
      Ev("worker_started", "h:2", {{"worker_pid", "21"}, {"epoch", "2"}}, 3),
  };
  EXPECT_EQ(testing::FirstSecondWorker(events, testing::OneAtATime::kFencedOverlap), "");
  std::string strict = testing::FirstSecondWorker(events, testing::OneAtATime::kStrict);
  EXPECT_NE(strict.find("event #2: h:2 took the lease (epoch 2) while worker 11 of h:1"),
            std::string::npos)
      << strict;
}

TEST(WorkerTimelineHarness, AStaleOwnersWorkerAnIncompleteRecordAndNoWorkerAtAllAreFound) {
  std::vector<LifecycleEvent> stale = {
      Ev("lease_acquired", "h:2", {{"epoch", "2"}}, 0),
      Ev("worker_started", "h:1", {{"worker_pid", "11"}, {"epoch", "1"}}, 1),
  };
  EXPECT_NE(testing::FirstSecondWorker(stale, testing::OneAtATime::kFencedOverlap)
                .find("older than the current epoch 2"),
            std::string::npos);
  std::vector<LifecycleEvent> incomplete = {
      Ev("worker_exited", "h:1", {{"worker_pid", "11"}, {"reason", "crash"}}, 0),
  };
  EXPECT_NE(testing::FirstSecondWorker(incomplete, testing::OneAtATime::kStrict)
                .find("never started: the record is incomplete"),
            std::string::npos);
  EXPECT_NE(testing::FirstSecondWorker({}, testing::OneAtATime::kStrict)
                .find("nothing to check"),
            std::string::npos);
  EXPECT_EQ(testing::FirstSecondWorker({}, testing::OneAtATime::kStrict, /*allow_none=*/true), "");
}

TEST(WorkerTimelineHarness, RestartsInTurnAreOneAtATimeAndTheirGapsAreMeasured) {
  std::vector<LifecycleEvent> events = {
      Ev("lease_acquired", "h:1", {{"epoch", "1"}}, 0),
      Ev("worker_started", "h:1", {{"worker_pid", "11"}, {"epoch", "1"}}, 100),
      Ev("worker_exited", "h:1", {{"worker_pid", "11"}}, 150),
      Ev("worker_started", "h:1", {{"worker_pid", "12"}, {"epoch", "1"}}, 1150),
      Ev("worker_exited", "h:1", {{"worker_pid", "12"}}, 1200),
      Ev("worker_started", "h:1", {{"worker_pid", "13"}, {"epoch", "1"}}, 3200),
  };
  EXPECT_EQ(testing::FirstSecondWorker(events, testing::OneAtATime::kStrict), "");
  EXPECT_EQ(testing::ExitToStartGaps(events), (std::vector<int64_t>{1000, 2000}));
  EXPECT_EQ(testing::StartToStartGaps(events), (std::vector<int64_t>{1050, 2050}));
}

// ---- the second witness and the run log ---------------------------------------------------

TEST(ProcessSamplerHarness, ItSamplesFromTheStartAndSaysWhatItSaw) {
  testing::TempDir dir("harness");
  ASSERT_TRUE(dir.ok());
  std::string tag = dir / "sampled";  // a shell's $0: in its argv, unique to this test
  testing::ProcessSampler sampler({"/bin/sh", tag});
  ChildProcess child({"/bin/sh", "-c", "sleep 30; :", tag});
  ASSERT_TRUE(Eventually([&] { return sampler.samples_seeing_any() > 0; }, 10s))
      << sampler.Describe();
  sampler.Stop();
  EXPECT_GE(sampler.samples(), sampler.samples_seeing_any());
  EXPECT_EQ(sampler.most(), 1u) << sampler.Describe();
}

TEST(RunLogHarness, RunsAreCountedPerJobAndAnUnfinishedOrExtraRunIsNamed) {
  testing::TempDir dir("harness");
  ASSERT_TRUE(dir.ok());
  std::ofstream(dir / "runs") << "start 1 1 100 90 5000\n"
                              << "start 2 1 101 90 5001\n"
                              << "end 1 1 100 90 5100\n"
                              << "start 2 2 102 91 6000\n"
                              << "end 2 2 102 91 6100\n";
  testing::RunLog log(dir / "runs");
  ASSERT_EQ(log.Runs().size(), 3u);
  EXPECT_EQ(log.RunsOf("2").size(), 2u);
  EXPECT_EQ(log.RunsOf("2")[1].start_ms, 6000);
  EXPECT_EQ(log.RunsOf("2")[1].parent, 91);
  EXPECT_TRUE(log.Ended("1"));
  EXPECT_EQ(log.EachRanOnce({"1"}).rfind("job 2 ran, but no run of it was expected", 0), 0u)
      << log.EachRanOnce({"1"});
  std::string twice = log.EachRanOnce({"1", "2"});
  EXPECT_NE(twice.find("job 2 ran 2 times"), std::string::npos) << twice;
  EXPECT_NE(twice.find("job 2 (pid 101) never ended"), std::string::npos) << twice;
  EXPECT_EQ(testing::RunLog(dir / "none").Runs().size(), 0u);
}

}  // namespace
}  // namespace lk
