// The Lane controller end to end: the real binary watching a real directory, running real
// supervisors and workers against a real redis-server. `apply`, `get` and `delete` as a
// user runs them.
#include <cpprest/http_client.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "controller/owner/owner_lease.h"
#include "tests/support/child_process.h"
#include "tests/support/loopback_port.h"
#include "tests/support/proc_scan.h"
#include "tests/support/queue_records.h"
#include "tests/support/redis_server.h"
#include "tests/support/signal_guard.h"
#include "tests/support/temp_dir.h"
#include "tests/support/worker_timeline.h"
#include "worker/job_queue.h"

// Named, not anonymous: the unity build compiles several test files as one.
namespace lk {
namespace lane_controller_test {

using namespace std::chrono_literals;
using testing::ChildProcess;
using testing::Eventually;
using testing::FindProcesses;
using testing::OneAtATime;
using testing::RunLanekeeper;

class LaneControllerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto server = testing::RedisServer::Start();
    ASSERT_TRUE(server.ok()) << server.status().message();
    server_ = std::move(server).value();
    ASSERT_TRUE(tmp_.ok());
    dir_ = tmp_.path();
    specs_ = dir_ + "/specs";
    state_ = dir_ + "/state";
    std::filesystem::create_directories(specs_);
    queue_ = std::string(::testing::UnitTest::GetInstance()->current_test_info()->name())
                 .substr(0, 30) + "-" + std::to_string(getpid());
    auto ep = ParseRedisUrl(server_->url());
    auto conn = RedisConnection::Connect(*ep, 2000ms);
    ASSERT_TRUE(conn.ok()) << conn.status().message();
    conn_ = std::move(conn).value();
    auto q = OpenJobQueue(server_->url(), queue_);
    ASSERT_TRUE(q.ok()) << q.status().message();
    records_queue_ = std::move(q).value();
    records_ = std::make_unique<testing::QueueRecords>(*records_queue_);
  }

  void TearDown() override {
    if (sampler_) sampler_->Stop();
    if (controller_ && controller_->Running()) {
      // Stopping drains every lane: bounded by the drain timeout (5 s) and its grace.
      controller_->Signal(SIGTERM);
      if (!controller_->Wait(40s)) {
        ADD_FAILURE() << "the controller did not stop within 40 s of SIGTERM:\n"
                      << controller_->Stderr();
        controller_->Signal(SIGKILL);
      }
    }
    // Nothing of this test may outlive it, whatever went wrong.
    for (pid_t p : Supervisors()) testing::SignalProcess(p, SIGKILL);
    for (pid_t p : Workers()) testing::SignalProcess(p, SIGKILL);
  }

  std::string LaneYaml(const std::string& name, int concurrency,
                       const std::string& extra = "") {
    return "apiVersion: lanekeeper.dev/v1alpha1\n"
           "kind: Lane\n"
           "metadata: {name: " + name + "}\n"
           "spec:\n"
           "  queue: " + queue_ + "\n"
           "  supervisor: {concurrency: " + std::to_string(concurrency) +
           ", drainTimeout: 5s}\n" + extra;
  }

  // `lanekeeper apply -f` of text; returns the result.
  testing::CommandResult Apply(const std::string& text) {
    std::string file = dir_ + "/apply-" + std::to_string(applies_++) + ".yaml";
    std::ofstream(file) << text;
    return RunLanekeeper({"--redis", server_->url(), "apply", "-f", file, "--specs", specs_});
  }

  ChildProcess& StartController(const std::vector<std::string>& extra = {}) {
    auto port = testing::LoopbackPort::ForServer();
    EXPECT_TRUE(port.ok()) << port.status().message();
    status_port_ = std::move(port).value();
    std::vector<std::string> argv{
        testing::LanekeeperBinary(), "--redis", server_->url(), "controller", "--specs", specs_,
        "--state-dir", state_, "--status-addr", status_port_->address(),
        "--rescan", "1s", "--supervisor-arg=--lease-ttl=3s", "--supervisor-arg=--lease-renew=1s"};
    argv.insert(argv.end(), extra.begin(), extra.end());
    controller_ = std::make_unique<ChildProcess>(argv);
    return *controller_;
  }

  // GET path from the controller's status server: (HTTP status, body); (0, why) when it
  // does not answer.
  std::pair<int, std::string> Get(const std::string& path) {
    try {
      web::http::client::http_client_config config;
      config.set_timeout(std::chrono::seconds(5));
      web::http::client::http_client client("http://" + status_port_->address(), config);
      auto resp = client.request(web::http::methods::GET, path).get();
      return {resp.status_code(), resp.extract_string().get()};
    } catch (const std::exception& e) {
      return {0, e.what()};
    }
  }

  // lanekeeper_reconcile_total from /metrics, or -1.
  int64_t Reconciles() {
    auto [code, body] = Get("/metrics");
    if (code != 200) return -1;
    std::istringstream in(body);
    std::string line;
    while (std::getline(in, line)) {
      if (line.starts_with("lanekeeper_reconcile_total ")) return std::stoll(line.substr(27));
    }
    return -1;
  }

  // Waits until the controller has reconciled n more times (it rescans every second), so
  // that "nothing changed" is checked against reconciles that really happened.
  bool WaitReconciles(int n) {
    int64_t start = -1;
    if (!Eventually([&] { return (start = Reconciles()) >= 0; }, 20s)) return false;
    return Eventually([&] { return Reconciles() >= start + n; }, 20s);
  }

  nlohmann::json LaneStatus(const std::string& name) {
    auto [code, body] = Get("/status");
    if (code != 200) return nullptr;
    const nlohmann::json status = nlohmann::json::parse(body);
    for (const auto& l : status["lanes"]) {
      if (l["name"] == name) return l;
    }
    return nullptr;
  }

  static std::string Condition(const nlohmann::json& lane, const std::string& type,
                               const std::string& field = "status") {
    if (lane.is_null()) return "";
    for (const auto& c : lane["conditions"]) {
      if (c["type"] == type) return c[field];
    }
    return "";
  }

  std::vector<pid_t> Supervisors() {
    return FindProcesses({"jobs", "supervisor", "--queue", queue_});
  }
  // Live workers of the queue (a worker's own clones are not counted: FindProcesses).
  std::vector<pid_t> Workers() { return FindProcesses({"jobs", "work", "--queue", queue_}); }
  // The --concurrency of the one live worker, or -1.
  int WorkerConcurrency() {
    return testing::FlagOfTheOnlyProcess({"jobs", "work", "--queue", queue_}, "--concurrency");
  }

  // Watches the queue's workers in /proc every 5 ms from now on: start it before what
  // is watched is launched. A second witness beside the event record.
  void StartSampler() {
    sampler_ = std::make_unique<testing::ProcessSampler>(
        std::vector<std::string>{"jobs", "work", "--queue", queue_});
  }
  // Never two workers of the queue at once, proven from the record (every worker_started
  // and worker_exited of the queue, from the first) and, when a sampler ran, sampled: it
  // must have taken samples and seen a worker, or it proves nothing.
  void ExpectOneWorkerAtATime(OneAtATime rule) {
    EXPECT_EQ(testing::FirstSecondWorker(records_->Events(), rule), "");
    if (!sampler_) return;
    sampler_->Stop();
    // How many samples fit depends on how fast the lane converges (a few hundred ms now):
    // what matters is that it sampled while a worker ran.
    EXPECT_GT(sampler_->samples_seeing_any(), 0)
        << "the sampler never saw a worker in " << sampler_->samples() << " samples";
    EXPECT_LE(sampler_->most(), 1u) << "two workers on one queue at a sampled moment:\n"
                                    << sampler_->Describe();
  }

  testing::TempDir tmp_{"ctl-test"};
  std::unique_ptr<testing::RedisServer> server_;
  std::unique_ptr<RedisConnection> conn_;
  std::unique_ptr<JobQueue> records_queue_;
  std::unique_ptr<testing::QueueRecords> records_;
  std::string dir_, specs_, state_, queue_;
  int applies_ = 0;
  std::unique_ptr<testing::LoopbackPort> status_port_;
  std::unique_ptr<ChildProcess> controller_;
  std::unique_ptr<testing::ProcessSampler> sampler_;
};

TEST_F(LaneControllerTest, ApplyEditDeleteConvergesWithNeverTwoWorkers) {
  StartSampler();  // from before the first worker exists
  auto& ctl = StartController();
  auto r = Apply(LaneYaml("kb", 1));
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.out, "lane/kb created\n");
  ASSERT_TRUE(Eventually([&] { return WorkerConcurrency() == 1; }, 30s)) << ctl.Stderr();
  EXPECT_EQ(Supervisors().size(), 1u);
  // The Redis URL (and any password in it) travels in the environment, never in argv,
  // which every user can read with ps.
  for (pid_t p : {Supervisors().at(0), Workers().at(0)}) {
    auto args = testing::ProcessArgs(p);
    EXPECT_EQ(std::find(args.begin(), args.end(), "--redis"), args.end());
    EXPECT_EQ(std::find(args.begin(), args.end(), server_->url()), args.end());
  }

  r = Apply(LaneYaml("kb", 3));
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.out, "lane/kb configured\n");
  ASSERT_TRUE(Eventually([&] { return WorkerConcurrency() == 3; }, 30s)) << ctl.Stderr();
  EXPECT_EQ(Apply(LaneYaml("kb", 3)).out, "lane/kb unchanged\n");

  r = RunLanekeeper({"delete", "kb", "--specs", specs_});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.out, "lane/kb deleted (" + specs_ + "/kb.yaml)\n");
  ASSERT_TRUE(Eventually([&] { return Supervisors().empty() && Workers().empty(); }, 30s))
      << ctl.Stderr();
  ExpectOneWorkerAtATime(OneAtATime::kStrict);
  EXPECT_EQ(records_->Events("worker_started").size(), 2u) << "one per generation";
  // The owner lease was released: nobody owns the queue.
  auto owner = ReadOwner(*conn_, queue_);
  ASSERT_TRUE(owner.ok());
  EXPECT_FALSE(owner->has_value());
  EXPECT_TRUE(ctl.Running());
}

TEST_F(LaneControllerTest, ANewIntervalRestartsOnlyTheAutopilot) {
  auto& ctl = StartController();
  std::string repo = dir_ + "/repo";
  std::filesystem::create_directories(repo);
  auto lane = [&](const std::string& interval) {
    return LaneYaml("kb", 1, "  autopilot: {mode: dispatch-only, repo: " + repo +
                                 ", interval: " + interval + "}\n");
  };
  ASSERT_EQ(Apply(lane("5m")).exit_code, 0);
  auto autopilots = [&] { return FindProcesses({"autopilot", "--queue", queue_}); };
  ASSERT_TRUE(Eventually([&] { return autopilots().size() == 1 && Workers().size() == 1; }, 30s))
      << ctl.Stderr();
  pid_t ap = autopilots().at(0);
  pid_t sup = Supervisors().at(0);
  auto args = testing::ProcessArgs(ap);
  EXPECT_NE(std::find(args.begin(), args.end(), "--no-worker"), args.end());

  ASSERT_EQ(Apply(lane("10m")).exit_code, 0);
  ASSERT_TRUE(Eventually([&] {
    auto a = autopilots();
    if (a.size() != 1 || a[0] == ap) return false;
    auto args = testing::ProcessArgs(a[0]);
    return std::find(args.begin(), args.end(), "600000ms") != args.end();
  }, 30s)) << ctl.Stderr();
  EXPECT_EQ(Supervisors(), std::vector<pid_t>{sup}) << "the supervisor's flags did not change";
}

TEST_F(LaneControllerTest, HandingTheWorkerFromAutopilotToSupervisorNeverRunsTwo) {
  StartSampler();
  auto& ctl = StartController();
  std::string repo = dir_ + "/repo";
  std::filesystem::create_directories(repo);
  std::string laptop = "apiVersion: lanekeeper.dev/v1alpha1\nkind: Lane\nmetadata: {name: kb}\n"
                       "spec:\n  queue: " + queue_ + "\n"
                       "  supervisor: {enabled: false}\n"
                       "  autopilot: {mode: managed-worker, repo: " + repo +
                       ", concurrency: 2, drainTimeout: 5s}\n";
  ASSERT_EQ(Apply(laptop).exit_code, 0);
  ASSERT_TRUE(Eventually([&] { return WorkerConcurrency() == 2; }, 30s)) << ctl.Stderr();
  EXPECT_TRUE(Supervisors().empty());

  ASSERT_EQ(Apply(LaneYaml("kb", 3, "  autopilot: {mode: dispatch-only, repo: " + repo + "}\n"))
                .exit_code, 0);
  ASSERT_TRUE(Eventually([&] { return WorkerConcurrency() == 3 && Supervisors().size() == 1; },
                         30s)) << ctl.Stderr();
  ExpectOneWorkerAtATime(OneAtATime::kStrict);
  EXPECT_EQ(records_->Events("worker_started", "autopilot").size(), 1u);
  EXPECT_EQ(records_->Events("worker_started", "supervisor").size(), 1u);
  auto owner = ReadOwner(*conn_, queue_);
  ASSERT_TRUE(owner.ok() && owner->has_value());
  EXPECT_EQ((*owner)->role, "supervisor");
}

TEST_F(LaneControllerTest, RunsJobsWithTheSpecsHandlers) {
  auto& ctl = StartController();
  auto r = Apply(LaneYaml("kb", 2, "  handlers:\n    hello: {command: [sh, -c, 'cat > /dev/null; echo hi'], timeout: 10s}\n"));
  ASSERT_EQ(r.exit_code, 0) << r.err;
  auto q = OpenJobQueue(server_->url(), queue_);
  ASSERT_TRUE(q.ok());
  JobSpec spec;
  spec.name = "hello";
  auto id = (*q)->Enqueue(spec);
  ASSERT_TRUE(id.ok());
  ASSERT_TRUE(Eventually([&] {
    auto j = (*q)->Get(id->id);
    return j.ok() && j->state == JobState::kCompleted;
  }, 30s)) << ctl.Stderr();
}

TEST_F(LaneControllerTest, InvalidEditKeepsTheLastGoodLaneRunning) {
  auto& ctl = StartController();
  ASSERT_EQ(Apply(LaneYaml("kb", 2)).exit_code, 0);
  ASSERT_TRUE(Eventually([&] { return WorkerConcurrency() == 2; }, 30s)) << ctl.Stderr();
  pid_t sup = Supervisors().at(0);
  pid_t worker = Workers().at(0);

  // apply refuses it, with the line and field...
  auto r = Apply(LaneYaml("kb", 2) + "  supervisor2: {}\n");
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_NE(r.err.find(":7:3: spec.supervisor2: unknown field 'supervisor2'"), std::string::npos)
      << r.err;
  EXPECT_NE(r.err.find("nothing applied"), std::string::npos);

  // ...and an editor writing it straight into the directory changes nothing that runs.
  std::ofstream(specs_ + "/kb.yaml") << LaneYaml("kb", 0);
  ASSERT_TRUE(ctl.WaitForOutput("spec.supervisor.concurrency", 20s)) << ctl.Stderr();
  // Two reconciles later the same processes still run, and status says why.
  ASSERT_TRUE(WaitReconciles(2));
  EXPECT_EQ(Supervisors(), std::vector<pid_t>{sup});
  EXPECT_EQ(Workers(), std::vector<pid_t>{worker});
  nlohmann::json lane = LaneStatus("kb");
  EXPECT_EQ(Condition(lane, "SpecValid"), "False") << lane.dump();
  EXPECT_EQ(Condition(lane, "SpecValid", "reason"), "InvalidSpec");
  EXPECT_NE(Condition(lane, "SpecValid", "message").find("spec.supervisor.concurrency"),
            std::string::npos) << lane.dump();
  EXPECT_EQ(Condition(lane, "Ready"), "True") << "the last good lane still runs: " << lane.dump();

  // Fixed: converges to the new spec.
  std::ofstream(specs_ + "/kb.yaml") << LaneYaml("kb", 4);
  ASSERT_TRUE(Eventually([&] { return WorkerConcurrency() == 4; }, 30s)) << ctl.Stderr();
}

TEST_F(LaneControllerTest, RestartedControllerAdoptsItsRolesInsteadOfStartingThemTwice) {
  StartSampler();
  auto& ctl = StartController();
  ASSERT_EQ(Apply(LaneYaml("kb", 1)).exit_code, 0);
  ASSERT_TRUE(Eventually([&] { return WorkerConcurrency() == 1; }, 30s)) << ctl.Stderr();
  pid_t sup = Supervisors().at(0);
  pid_t worker = Workers().at(0);

  ctl.Signal(SIGKILL);
  ASSERT_TRUE(ctl.Wait(10s));
  EXPECT_TRUE(testing::ProcessAlive(sup)) << "a SIGKILLed controller leaves its roles running";
  // ...but none of them holds the status server's port: the next controller listens again.
  EXPECT_TRUE(status_port_->CanListen());

  auto& again = StartController();  // on a new status port
  ASSERT_TRUE(again.WaitForOutput("adopted supervisor (pid " + std::to_string(sup) + ")", 20s))
      << again.Stderr();
  ASSERT_TRUE(again.WaitForOutput("controller: watching", 20s)) << again.Stderr();
  // Over three reconciles: the same supervisor and worker, nothing started beside them.
  ASSERT_TRUE(WaitReconciles(3));
  EXPECT_EQ(Supervisors(), std::vector<pid_t>{sup});
  EXPECT_EQ(Workers(), std::vector<pid_t>{worker});
  EXPECT_EQ(records_->Events("worker_started").size(), 1u) << "adopted, not started again";
  EXPECT_EQ(again.Stderr().find("started supervisor"), std::string::npos) << again.Stderr();

  // The adopted lane is still managed: an edit converges it.
  ASSERT_EQ(Apply(LaneYaml("kb", 2)).exit_code, 0);
  ASSERT_TRUE(Eventually([&] { return WorkerConcurrency() == 2; }, 30s)) << again.Stderr();
  EXPECT_FALSE(testing::ProcessAlive(sup));
  ExpectOneWorkerAtATime(OneAtATime::kStrict);
}

TEST_F(LaneControllerTest, ARoleKilledByHandIsStartedAgain) {
  auto& ctl = StartController();
  ASSERT_EQ(Apply(LaneYaml("kb", 1)).exit_code, 0);
  ASSERT_TRUE(Eventually([&] { return Supervisors().size() == 1; }, 30s)) << ctl.Stderr();
  pid_t sup = Supervisors().at(0);
  ASSERT_TRUE(testing::SignalProcess(sup, SIGKILL));
  ASSERT_TRUE(Eventually([&] {
    auto s = Supervisors();
    return s.size() == 1 && s[0] != sup;
  }, 30s)) << ctl.Stderr();
  EXPECT_TRUE(ctl.WaitForOutput("killed by signal 9 (not asked to stop)", 5s)) << ctl.Stderr();
  // The orphaned worker of the killed supervisor is fenced or drains; one worker remains.
  ASSERT_TRUE(Eventually([&] { return Workers().size() == 1; }, 30s));
  // The orphan (epoch 1) may outlive its owner until the successor's epoch fences it.
  ExpectOneWorkerAtATime(OneAtATime::kFencedOverlap);
}

// --restart-backoff-max caps the wait before a role that keeps dying is started again: the
// fourth restart in a row waits 500ms (x1.1), not the default's 8 s (x0.9..1.1).
TEST_F(LaneControllerTest, RestartBackoffMaxCapsTheWaitBeforeARoleIsStartedAgain) {
  auto& ctl = StartController({"--restart-backoff-max", "500ms"});
  ASSERT_EQ(Apply(LaneYaml("kb", 1)).exit_code, 0);
  ASSERT_TRUE(Eventually([&] { return Supervisors().size() == 1; }, 30s)) << ctl.Stderr();
  for (int kill = 1; kill <= 4; ++kill) {
    pid_t sup = Supervisors().at(0);
    ASSERT_TRUE(testing::SignalProcess(sup, SIGKILL));
    auto killed = std::chrono::steady_clock::now();
    ASSERT_TRUE(Eventually([&] {
      auto s = Supervisors();
      return s.size() == 1 && s[0] != sup;
    }, 30s)) << ctl.Stderr();
    auto took = std::chrono::steady_clock::now() - killed;
    if (kill == 4) {
      EXPECT_LT(took, 6s) << "the default backoff would wait 7.2 to 8.8 s";
    }
  }
}

TEST_F(LaneControllerTest, ARestartBackoffMaxBelow100msIsAUsageError) {
  auto r = RunLanekeeper({"controller", "--specs", specs_, "--state-dir", state_,
                          "--status-addr", "off", "--restart-backoff-max", "10ms"});
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_NE(r.err.find("--restart-backoff-max: must be at least 100ms"), std::string::npos)
      << r.err;
}

TEST_F(LaneControllerTest, SigtermStopsEveryLaneAndLeavesNothingRunning) {
  auto& ctl = StartController();
  ASSERT_EQ(Apply(LaneYaml("kb", 1)).exit_code, 0);
  ASSERT_TRUE(Eventually([&] { return WorkerConcurrency() == 1; }, 30s)) << ctl.Stderr();
  ctl.Signal(SIGTERM);
  auto rc = ctl.Wait(40s);
  ASSERT_TRUE(rc.has_value()) << ctl.Stderr();
  EXPECT_EQ(*rc, 0);
  EXPECT_TRUE(Supervisors().empty());
  EXPECT_TRUE(Workers().empty());
  EXPECT_FALSE(std::filesystem::exists(state_ + "/lanes/kb"));
  controller_.reset();
}

TEST_F(LaneControllerTest, ALaneOnATakenQueueIsNotStarted) {
  auto& ctl = StartController();
  ASSERT_EQ(Apply(LaneYaml("kb", 1)).exit_code, 0);
  ASSERT_TRUE(Eventually([&] { return Supervisors().size() == 1; }, 30s)) << ctl.Stderr();
  // apply says no...
  auto r = Apply(LaneYaml("other", 1));
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_NE(r.err.find("spec.queue: lane 'kb' (" + specs_ + "/kb.yaml:5:10) already uses queue"),
            std::string::npos) << r.err;
  // ...and a file dropped in by hand does not start a second owner.
  std::ofstream(specs_ + "/a-other.yaml") << LaneYaml("other", 1);
  ASSERT_TRUE(ctl.WaitForOutput("a-other.yaml", 20s)) << ctl.Stderr();
  ASSERT_TRUE(WaitReconciles(2));
  EXPECT_EQ(Supervisors().size(), 1u);
  ExpectOneWorkerAtATime(OneAtATime::kStrict);
  EXPECT_EQ(records_->Events("lease_acquired").size(), 1u) << "the refused lane took nothing";
}

TEST_F(LaneControllerTest, WithFourWorkersTwoLanesOnOneQueueAppearingTogetherStartOneOwner) {
  // Local processes reconciled by four workers (the ProcessBackend one call at a time):
  // both files are read in one round, both lanes reconcile at once, one is admitted.
  std::ofstream(specs_ + "/kb.yaml") << LaneYaml("kb", 1);
  std::ofstream(specs_ + "/other.yaml") << LaneYaml("other", 1);
  auto& ctl = StartController({"--workers", "4"});
  ASSERT_TRUE(Eventually([&] { return Supervisors().size() == 1; }, 30s)) << ctl.Stderr();
  ASSERT_TRUE(ctl.WaitForOutput("already uses queue", 20s)) << ctl.Stderr();
  ASSERT_TRUE(WaitReconciles(2));
  EXPECT_EQ(Supervisors().size(), 1u);
  ExpectOneWorkerAtATime(OneAtATime::kStrict);
  EXPECT_EQ(records_->Events("lease_acquired").size(), 1u) << "the refused lane took nothing";
}

TEST_F(LaneControllerTest, StatusEndpointsAgreeWithTheProcesses) {
  auto& ctl = StartController();
  ASSERT_EQ(Apply(LaneYaml("kb", 2)).exit_code, 0);
  ASSERT_TRUE(Eventually([&] { return Condition(LaneStatus("kb"), "Ready") == "True"; }, 30s))
      << ctl.Stderr() << Get("/status").first << Get("/status").second;
  EXPECT_EQ(Get("/healthz").first, 200);
  EXPECT_EQ(Get("/readyz").first, 200);
  nlohmann::json lane = LaneStatus("kb");
  auto sups = Supervisors();
  ASSERT_EQ(sups.size(), 1u);
  ASSERT_EQ(lane["roles"].size(), 1u) << lane.dump();
  EXPECT_EQ(lane["roles"][0]["role"], "supervisor");
  EXPECT_EQ(lane["roles"][0]["pid"], sups[0]);
  EXPECT_EQ(lane["generation"], 1);
  EXPECT_EQ(lane["observedGeneration"], 1);
  auto owner = ReadOwner(*conn_, queue_);
  ASSERT_TRUE(owner.ok() && owner->has_value());
  EXPECT_EQ(lane["owner"]["holder"], (*owner)->holder);
  EXPECT_EQ(lane["owner"]["epoch"], (*owner)->epoch);
  EXPECT_EQ(Condition(lane, "OwnerElected"), "True");
  EXPECT_EQ(Condition(lane, "SpecValid"), "True");
  EXPECT_EQ(Condition(lane, "Degraded"), "False");

  // An edit bumps the generation; once converged, observedGeneration follows.
  ASSERT_EQ(Apply(LaneYaml("kb", 3)).exit_code, 0);
  ASSERT_TRUE(Eventually([&] {
    auto l = LaneStatus("kb");
    return !l.is_null() && l["generation"] == 2 && l["observedGeneration"] == 2 &&
           Condition(l, "Ready") == "True";
  }, 30s)) << ctl.Stderr() << LaneStatus("kb").dump();
  lane = LaneStatus("kb");
  EXPECT_EQ(lane["roles"][0]["pid"], Supervisors().at(0));
  auto metrics = Get("/metrics").second;
  EXPECT_NE(metrics.find("lanekeeper_role_restarts_total{lane=\"kb\",reason=\"spec_change\"} 1"),
            std::string::npos) << metrics;
}

TEST_F(LaneControllerTest, GetListsLanesAsTableYamlAndJson) {
  ASSERT_EQ(Apply(LaneYaml("kb", 2)).exit_code, 0);
  auto r = RunLanekeeper({"get", "--specs", specs_, "--controller", "http://127.0.0.1:1"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.out.find("NAME"), std::string::npos);
  EXPECT_NE(r.out.find("kb"), std::string::npos);
  EXPECT_NE(r.out.find("no controller answered"), std::string::npos);

  r = RunLanekeeper({"get", "kb", "-o", "json", "--specs", specs_, "--controller",
                     "http://127.0.0.1:1"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  auto j = nlohmann::json::parse(r.out);
  EXPECT_EQ(j["kind"], "Lane");
  EXPECT_EQ(j["metadata"]["name"], "kb");
  EXPECT_EQ(j["spec"]["supervisor"]["concurrency"], 2);
  EXPECT_EQ(j["spec"]["supervisor"]["drainTimeout"], "5s");

  // -o yaml is a valid Lane again: apply it back, unchanged in meaning.
  r = RunLanekeeper({"get", "kb", "-o", "yaml", "--specs", specs_, "--controller",
                     "http://127.0.0.1:1"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  std::ofstream(dir_ + "/roundtrip.yaml") << r.out;
  auto v = RunLanekeeper({"validate", "-f", dir_ + "/roundtrip.yaml"});
  EXPECT_EQ(v.exit_code, 0) << v.err << r.out;

  r = RunLanekeeper({"get", "nope", "--specs", specs_, "--controller", "http://127.0.0.1:1"});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.err.find("lane 'nope' not found in " + specs_), std::string::npos) << r.err;
  r = RunLanekeeper({"delete", "nope", "--specs", specs_});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.err.find("lane 'nope' not found"), std::string::npos) << r.err;
}

TEST_F(LaneControllerTest, ControllerRefusesAMissingSpecsDirectory) {
  auto r = RunLanekeeper({"controller", "--specs", dir_ + "/nope", "--state-dir", state_,
                          "--status-addr", "off"});
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_NE(r.err.find("--specs " + dir_ + "/nope: not a directory"), std::string::npos)
      << r.err;
}

}  // namespace lane_controller_test
}  // namespace lk
