// The process backend with a fake spawner and a fake clock: what it starts (argv, the
// environment, files), what it adopts after a controller restart, how it stops a role
// that overruns, and — driven by the real reconciler and work queue — how a role that
// keeps dying is started again: after 1, 2, 4 ... 60 seconds. No process is started.
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "controller/spec/lane_set.h"
#include "controller/backend/process_backend.h"
#include "controller/reconcile/reconcile_loop.h"
#include "controller/reconcile/reconciler.h"
#include "controller/source/lane_source.h"
#include "tests/support/fake_clock.h"
#include "tests/support/fake_lane_source.h"
#include "tests/support/lane_text.h"
#include "tests/support/fake_spawner.h"

namespace lk {
// Named, not anonymous: the unity build compiles several test files as one.
namespace process_backend_test {

namespace fs = std::filesystem;
using testing::FakeClock;
using testing::Keys;
using testing::FakeSpawner;

constexpr const char* kRedis = "redis://:s3cret@127.0.0.1:6379/0";

// With the Redis URL filled in, as the reconciler hands specs on.
LaneSpec Spec(const std::string& name, const std::string& spec_body) {
  LaneSpec s = testing::ParseLane(name, spec_body);
  if (s.redis_url.empty()) s.redis_url = kRedis;
  return s;
}

class ProcessBackendTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/lk-backend-test-XXXXXX";
    ASSERT_NE(mkdtemp(tmpl), nullptr);
    dir_ = tmpl;
  }
  void TearDown() override { fs::remove_all(dir_); }

  ProcessBackendOptions Options() {
    ProcessBackendOptions o;
    o.state_dir = dir_;
    o.binary = "/opt/lanekeeper/bin/lanekeeper";
    o.supervisor_args = {"--lease-ttl=3s"};
    o.restart.jitter = 0;  // exact delays
    o.clock = &clock_;
    o.spawner = &spawner_;
    return o;
  }
  LaneMeta Meta(const LaneSpec& s) {
    return {s.Key(), ContentHash(s.SpecJson()), 1, s.queue, s.redis_url,
            IdentifyQueue(s.redis_url, s.queue).Key()};
  }

  std::string dir_;
  FakeClock clock_;
  FakeSpawner spawner_;
};

TEST_F(ProcessBackendTest, ARoleRunsWithItsPlanFilesAndTheRedisUrlInItsEnvironmentOnly) {
  ProcessBackend backend(Options());
  ASSERT_TRUE(backend.Start().ok());
  LaneSpec s = Spec("kb", "  queue: q\n  supervisor: {concurrency: 2}\n"
                          "  handlers: {hello: {command: [echo, hi]}}\n");
  RolePlan plan = PlanRoles(s);
  auto r = backend.Ensure(Meta(s), plan, plan.roles[0]);
  ASSERT_TRUE(r.ok()) << r.status().message();
  EXPECT_TRUE(r->started);
  ASSERT_EQ(spawner_.spawned.size(), 1u);
  const auto& argv = spawner_.spawned[0].argv;
  std::string line;
  for (const auto& a : argv) line += a + " ";
  EXPECT_EQ(argv[0], "/opt/lanekeeper/bin/lanekeeper");
  EXPECT_NE(line.find("--queue q jobs supervisor --concurrency 2"), std::string::npos) << line;
  EXPECT_NE(line.find("--pid-file " + dir_ + "/lanes/kb/supervisor.pid"), std::string::npos);
  EXPECT_EQ(argv.back(), "--lease-ttl=3s");
  EXPECT_EQ(line.find("s3cret"), std::string::npos) << "a password in argv: " << line;
  EXPECT_EQ(spawner_.spawned[0].env.at("LANEKEEPER_REDIS_URL"), kRedis);
  // The handlers file: content-addressed, for the controller's user alone.
  auto h = std::find(argv.begin(), argv.end(), "--handlers");
  ASSERT_NE(h, argv.end());
  std::string path = *(h + 1);
  EXPECT_EQ(path, dir_ + "/lanes/kb/handlers-" + ContentHash(plan.roles[0].files[0].content) +
                      ".yaml");
  std::ifstream in(path);
  std::string content((std::istreambuf_iterator<char>(in)), {});
  EXPECT_EQ(content, plan.roles[0].files[0].content);
  struct stat st{};
  ASSERT_EQ(stat(path.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);
  ASSERT_EQ(stat((dir_ + "/lanes/kb/state.json").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u) << "state.json holds the Redis URL";
  ASSERT_EQ(stat((dir_ + "/lanes").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0700u);

  ObservedLane o = backend.Observe(s.Key());
  ASSERT_EQ(o.roles.size(), 1u);
  EXPECT_TRUE(o.roles[0].running);
  EXPECT_EQ(o.roles[0].plan_hash, plan.roles[0].hash);
  EXPECT_TRUE(o.roles[0].owns_worker);
  EXPECT_TRUE(backend.QueueServed(IdentifyQueue(kRedis, "q").Key(), {"", "other"}));
  EXPECT_FALSE(backend.QueueServed(IdentifyQueue(kRedis, "q").Key(), s.Key()));
}

TEST_F(ProcessBackendTest, ANewControllerAdoptsLiveRolesButNotAPidReusedByAnotherProcess) {
  LaneSpec a = Spec("a", "  queue: qa\n");
  LaneSpec b = Spec("b", "  queue: qb\n");
  {
    ProcessBackend first(Options());
    ASSERT_TRUE(first.Start().ok());
    for (const LaneSpec* s : {&a, &b}) {
      RolePlan plan = PlanRoles(*s);
      ASSERT_TRUE(first.Ensure(Meta(*s), plan, plan.roles[0]).ok());
    }
  }  // the first controller is gone; its roles are not
  pid_t pid_a = spawner_.spawned[0].pid, pid_b = spawner_.spawned[1].pid;
  // b's pid now names another process (its start time differs).
  spawner_.processes[pid_b].start_ticks += 1;

  ProcessBackend second(Options());
  ASSERT_TRUE(second.Start().ok());
  ObservedLane oa = second.Observe(a.Key());
  ASSERT_EQ(oa.roles.size(), 1u);
  EXPECT_TRUE(oa.roles[0].adopted);
  EXPECT_EQ(oa.roles[0].pid, pid_a);
  EXPECT_EQ(oa.roles[0].plan_hash, PlanRoles(a).roles[0].hash);
  EXPECT_EQ(oa.generation, 1);
  EXPECT_EQ(oa.redis_url, kRedis);
  EXPECT_TRUE(second.Observe(b.Key()).roles.empty()) << "not adopted: the pid was reused";
  EXPECT_TRUE(spawner_.Signals(pid_b).empty()) << "never signal a process that is not ours";
  EXPECT_EQ(spawner_.spawned.size(), 2u) << "adoption starts nothing";
}

TEST_F(ProcessBackendTest, ARoleStartedWithOtherFlagsIsOutdatedWhateverItsPlan) {
  LaneSpec s = Spec("kb", "  queue: q\n");
  RolePlan plan = PlanRoles(s);
  {
    ProcessBackend first(Options());
    ASSERT_TRUE(first.Start().ok());
    ASSERT_TRUE(first.Ensure(Meta(s), plan, plan.roles[0]).ok());
  }
  ProcessBackendOptions o = Options();
  o.supervisor_args = {"--lease-ttl=15s"};
  ProcessBackend second(o);
  ASSERT_TRUE(second.Start().ok());
  ObservedLane obs = second.Observe(s.Key());
  ASSERT_EQ(obs.roles.size(), 1u);
  EXPECT_EQ(obs.roles[0].plan_hash, "");
}

TEST_F(ProcessBackendTest, AStopThatOverrunsTheDrainTimeoutAndGraceIsKilled) {
  ProcessBackend backend(Options());
  ASSERT_TRUE(backend.Start().ok());
  LaneSpec s = Spec("kb", "  queue: q\n  supervisor: {drainTimeout: 5s}\n");
  RolePlan plan = PlanRoles(s);
  ASSERT_TRUE(backend.Ensure(Meta(s), plan, plan.roles[0]).ok());
  pid_t pid = spawner_.spawned[0].pid;
  auto gone = backend.Stop(s.Key(), "supervisor", "lane deleted");
  ASSERT_TRUE(gone.ok());
  EXPECT_FALSE(*gone);
  EXPECT_EQ(spawner_.Signals(pid), std::vector<int>{SIGTERM});
  EXPECT_LE(backend.NextPoll(), clock_.Now() + Millis(5'000 + 15'000));
  clock_.Advance(Millis(19'999));
  EXPECT_TRUE(backend.Poll().empty());
  clock_.Advance(Millis(1));
  EXPECT_EQ(backend.Poll(), std::vector<LaneKey>{s.Key()});
  EXPECT_EQ(spawner_.Signals(pid), (std::vector<int>{SIGTERM, SIGKILL}));
  EXPECT_TRUE(*backend.Stop(s.Key(), "supervisor", "lane deleted"));
  EXPECT_TRUE(backend.Forget(s.Key()).ok());
  EXPECT_FALSE(fs::exists(dir_ + "/lanes/kb"));
}

// Driven as the controller drives it: the reconciler, the work queue, the backend.
class ReconcileProcessBackendTest : public ProcessBackendTest {
 protected:
  void Drive(const LaneSpec& s) {
    backend_ = std::make_unique<ProcessBackend>(Options());
    ASSERT_TRUE(backend_->Start().ok());
    source_ = std::make_unique<testing::FakeLaneSource>();
    source_->Set(s);
    reconciler_ = std::make_unique<Reconciler>(
        ReconcilerOptions{kRedis, &clock_, [](const LaneKey&) {}}, *source_, *backend_);
    loop_ = std::make_unique<ReconcileLoop>(clock_, *reconciler_);
    loop_->queue().Add(s.Key());
    loop_->ProcessDue();
  }
  // What the controller's loop does when the backend reports an exit.
  void Collect() {
    for (const LaneKey& k : backend_->Poll()) loop_->queue().Add(k);
    loop_->ProcessDue();
  }

  std::unique_ptr<ProcessBackend> backend_;
  std::unique_ptr<testing::FakeLaneSource> source_;
  std::unique_ptr<Reconciler> reconciler_;
  std::unique_ptr<ReconcileLoop> loop_;
};

TEST_F(ReconcileProcessBackendTest, ARoleThatKeepsDyingIsStartedAgainAfter1_2_4UpTo60Seconds) {
  LaneSpec s = Spec("kb", "  queue: q\n");
  Drive(s);
  ASSERT_EQ(spawner_.spawned.size(), 1u);
  ProcessBackend& backend = *backend_;
  ReconcileLoop& loop = *loop_;

  std::vector<int64_t> delays;
  for (int death = 0; death < 9; ++death) {
    clock_.Advance(Millis(10));  // it dies young
    spawner_.Exit(spawner_.spawned.back().pid);
    Collect();
    size_t before = spawner_.spawned.size();
    auto due = loop.queue().NextDue();
    ASSERT_NE(due, Clock::TimePoint::max()) << "nothing scheduled after death " << death;
    delays.push_back(std::chrono::duration_cast<Millis>(due - clock_.Now()).count());
    clock_.AdvanceTo(due);
    loop.ProcessDue();
    ASSERT_EQ(spawner_.spawned.size(), before + 1) << "not started again after death " << death;
  }
  EXPECT_EQ(delays, (std::vector<int64_t>{1'000, 2'000, 4'000, 8'000, 16'000, 32'000, 60'000,
                                          60'000, 60'000}));
  // Started 10 times: 9 restarts, each counted once.
  ObservedLane o = backend.Observe(s.Key());
  ASSERT_EQ(o.roles.size(), 1u);
  EXPECT_EQ(o.roles[0].restarts, 9);
  EXPECT_EQ(o.roles[0].last_exit, "exit code 1");

  // A role that ran a healthy minute before dying starts a new streak: 1 s again.
  clock_.Advance(Millis(60'000));
  spawner_.Exit(spawner_.spawned.back().pid);
  Collect();
  EXPECT_EQ(std::chrono::duration_cast<Millis>(loop.queue().NextDue() - clock_.Now()).count(),
            1'000);
}

TEST_F(ReconcileProcessBackendTest, ARoleThatCannotStartIsRetriedWithTheQueuesBackoff) {
  spawner_.fail_spawn =
      Status::Internal("cannot start /opt/lanekeeper/bin/lanekeeper: No such file or directory");
  Drive(Spec("kb", "  queue: q\n"));
  ReconcileLoop& loop = *loop_;
  Reconciler& reconciler = *reconciler_;
  EXPECT_TRUE(spawner_.spawned.empty());
  EXPECT_EQ(loop.counters().errors, 1u);
  auto states = reconciler.States();
  ASSERT_EQ(states.size(), 1u);
  EXPECT_EQ(states[0].last_reconcile_error,
            "cannot start supervisor: cannot start /opt/lanekeeper/bin/lanekeeper: No such file "
            "or directory");
  ASSERT_EQ(states[0].roles.size(), 1u);
  EXPECT_EQ(states[0].roles[0].state, "failed");
  clock_.AdvanceTo(loop.queue().NextDue());
  loop.ProcessDue();
  EXPECT_EQ(spawner_.spawned.size(), 1u);
  EXPECT_EQ(reconciler.States()[0].roles[0].state, "running");
}

}  // namespace process_backend_test
}  // namespace lk
