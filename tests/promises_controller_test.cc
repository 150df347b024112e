// docs/controller.md's promises about stopping and watching, end to end where only the
// real processes can show them: --leave-running, a second Ctrl-C, a specs directory that
// vanishes under a running controller; and at the unit level what a fake clock proves
// (the debounce) and what --help shows (the defaults). The stop deadline, a reused pid and
// the source's view of a missing directory are unit-tested in process_backend_test.cc and
// spec_dir_source_test.cc.
#include <cpprest/http_client.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "controller/lane_controller.h"
#include "controller/source/spec_dir_source.h"
#include "tests/support/child_process.h"
#include "tests/support/fake_clock.h"
#include "tests/support/lane_text.h"
#include "tests/support/loopback_port.h"
#include "tests/support/queue_under_test.h"
#include "tests/support/run_log.h"
#include "tests/support/temp_dir.h"
#include "tests/support/worker_timeline.h"
#include "worker/job_queue.h"

namespace lk {
namespace promises_controller_test {

namespace fs = std::filesystem;
using namespace std::chrono_literals;
using testing::ChildProcess;
using testing::Eventually;

constexpr auto kSlack = 10s;  // on top of the time under test: load, the sanitizer pass

pid_t HolderPid(const std::string& holder) {
  return static_cast<pid_t>(std::stoi(holder.substr(holder.rfind(':') + 1)));
}

// Whether --help text shows option as it is ("--rescan TEXT=15s"), followed by a space or
// the end of its line.
bool ShowsDefault(const std::string& help, const std::string& option) {
  size_t at = help.find(option);
  return at != std::string::npos &&
         (at + option.size() == help.size() || help[at + option.size()] == ' ' ||
          help[at + option.size()] == '\n');
}

class ControllerPromisesTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_TRUE(temp_.ok());
    specs_ = temp_ / "specs";
    state_ = temp_ / "state";
    fs::create_directories(specs_);
    lane_ = std::make_unique<testing::QueueUnderTest>();
    ASSERT_TRUE(lane_->ok());
    queue_ = &lane_->queue();
    records_ = &lane_->records();
    queue_name_ = lane_->name();
    auto port = testing::LoopbackPort::ForServer();
    ASSERT_TRUE(port.ok()) << port.status().message();
    port_ = std::move(port).value();
  }

  void TearDown() override {
    for (auto& c : controllers_) {
      if (c->Signal(SIGTERM) && !c->Wait(40s)) ADD_FAILURE() << "a controller did not stop";
    }
    controllers_.clear();
    testing::KillProcessesOfThisTest();
  }

  // The lane kb on the test's queue, its supervisor with drain_timeout, a handler `slow`
  // that records its runs and holds until Release() exists.
  void WriteLane(const std::string& drain_timeout = "5s") {
    std::ofstream(specs_ + "/kb.yaml")
        << "apiVersion: lanekeeper.dev/v1alpha1\nkind: Lane\nmetadata: {name: kb}\nspec:\n"
        << "  queue: " << queue_name_ << "\n"
        << "  supervisor: {concurrency: 1, drainTimeout: " << drain_timeout << "}\n"
        << "  handlers:\n    slow: {command: [" << testing::TestHelperBinary("recorded_job")
        << ", " << Runs().path() << ", --hold-until, " << Release() << "]}\n";
  }

  ChildProcess& StartController(std::vector<std::string> extra = {}) {
    std::vector<std::string> argv = {testing::LanekeeperBinary(), "--redis", lane_->redis().url(),
                                     "controller", "--specs", specs_, "--state-dir", state_,
                                     "--status-addr", port_->address(), "--rescan", "1s",
                                     "--supervisor-arg=--lease-ttl=3s",
                                     "--supervisor-arg=--lease-renew=1s"};
    argv.insert(argv.end(), extra.begin(), extra.end());
    controllers_.push_back(std::make_unique<ChildProcess>(argv));
    return *controllers_.back();
  }

  // The controller's /status, or null while it does not answer.
  nlohmann::json Status() {
    try {
      web::http::client::http_client_config config;
      config.set_timeout(std::chrono::seconds(5));
      web::http::client::http_client client("http://" + port_->address(), config);
      auto r = client.request(web::http::methods::GET, "/status").get();
      if (r.status_code() != 200) return nullptr;
      return nlohmann::json::parse(r.extract_string().get());
    } catch (const std::exception&) {
      return nullptr;
    }
  }
  int64_t Reconciles() {
    try {
      web::http::client::http_client client("http://" + port_->address());
      std::istringstream in(client.request(web::http::methods::GET, "/metrics")
                                .get()
                                .extract_string()
                                .get());
      for (std::string line; std::getline(in, line);) {
        if (line.starts_with("lanekeeper_reconcile_total ")) return std::stoll(line.substr(27));
      }
    } catch (const std::exception&) {
    }
    return -1;
  }

  // Waits until the lane's supervisor owns the queue and its worker runs; their pids.
  std::pair<pid_t, pid_t> WaitForLane(ChildProcess& controller) {
    pid_t sup = 0, worker = 0;
    EXPECT_TRUE(Eventually([&] {
      auto started = records_->Events("worker_started");
      auto owner = records_->Owner();
      if (started.empty() || !owner) return false;
      sup = HolderPid(owner->holder);
      worker = std::stoi(started.back().fields["worker_pid"]);
      return true;
    }, 3 * kSlack)) << controller.Stderr();
    return {sup, worker};
  }

  std::string Submit(const std::string& name) {
    JobSpec spec;
    spec.name = name;
    auto r = queue_->Enqueue(spec);
    EXPECT_TRUE(r.ok()) << r.status().message();
    return r.ok() ? r->id : "";
  }
  testing::RunLog Runs() const { return testing::RunLog(temp_ / "runs"); }
  std::string Release() const { return temp_ / "release"; }

  testing::TempDir temp_{"ctl-promises"};
  std::string specs_, state_, queue_name_;
  std::unique_ptr<testing::QueueUnderTest> lane_;
  JobQueue* queue_ = nullptr;
  testing::QueueRecords* records_ = nullptr;
  std::unique_ptr<testing::LoopbackPort> port_;
  std::vector<std::unique_ptr<ChildProcess>> controllers_;
};

// An upgrade without draining: the old controller leaves, the lanes run on, the next one
// adopts them and starts nothing twice.
TEST_F(ControllerPromisesTest, LeaveRunningLeavesTheLanesForTheNextControllerToAdopt) {
  WriteLane();
  ChildProcess& first = StartController({"--leave-running"});
  auto [sup, worker] = WaitForLane(first);
  ASSERT_GT(sup, 0);
  ASSERT_TRUE(first.Signal(SIGTERM));
  ASSERT_EQ(first.Wait(kSlack), 0) << first.Stderr();
  EXPECT_NE(first.Stderr().find("controller: stopping; 1 lane(s) left running for the next "
                                "controller to adopt"),
            std::string::npos)
      << first.Stderr();
  EXPECT_TRUE(testing::ProcessAlive(sup));
  EXPECT_TRUE(testing::ProcessAlive(worker));

  ChildProcess& next = StartController();
  ASSERT_TRUE(next.WaitForOutput("controller: lane kb: adopted supervisor (pid " +
                                     std::to_string(sup) + ")",
                                 kSlack))
      << next.Stderr();
  // A job still runs on the adopted lane, and its worker is the one that ran all along.
  std::string id = Submit("slow");
  ASSERT_TRUE(Eventually([&] { return Runs().Started(id); }, kSlack)) << next.Stderr();
  EXPECT_EQ(Runs().RunsOf(id)[0].parent, worker);
  std::ofstream(Release()) << "go\n";
  EXPECT_EQ(records_->Events("lease_acquired").size(), 1u);
  EXPECT_EQ(records_->Events("worker_started").size(), 1u);

  // This one was not told to leave them: SIGTERM stops the lane.
  ASSERT_TRUE(next.Signal(SIGTERM));
  ASSERT_EQ(next.Wait(30s), 0) << next.Stderr();
  EXPECT_FALSE(testing::ProcessAlive(sup));
  EXPECT_FALSE(testing::ProcessAlive(worker));
  EXPECT_FALSE(records_->Owner().has_value());
  EXPECT_EQ(testing::FirstSecondWorker(records_->Events(), testing::OneAtATime::kStrict), "");
}

// The first Ctrl-C drains (here it would wait for a job held for as long as the test likes,
// up to the 60 s drain timeout); the second does not wait.
TEST_F(ControllerPromisesTest, ASecondCtrlCKillsTheRolesAtOnce) {
  WriteLane("60s");
  ChildProcess& controller = StartController();
  auto [sup, worker] = WaitForLane(controller);
  std::string id = Submit("slow");
  ASSERT_TRUE(Eventually([&] { return Runs().Started(id); }, kSlack)) << controller.Stderr();
  ASSERT_TRUE(controller.Signal(SIGINT));
  ASSERT_TRUE(controller.WaitForOutput("draining worker " + std::to_string(worker), kSlack))
      << controller.Stderr();
  EXPECT_TRUE(controller.Running());
  ASSERT_TRUE(controller.Signal(SIGINT));
  ASSERT_EQ(controller.Wait(kSlack), 0) << controller.Stderr();
  EXPECT_NE(controller.Stderr().find("controller: asked again: killing every role now"),
            std::string::npos)
      << controller.Stderr();
  EXPECT_FALSE(testing::ProcessAlive(sup));
  EXPECT_FALSE(Runs().Ended(id));
}

// A directory swapped out by a deploy tool, or removed by mistake, is not "every lane
// deleted": the lanes keep running, /status says why the specs cannot be read, and once it
// is back nothing restarts.
TEST_F(ControllerPromisesTest, AVanishedSpecsDirKeepsTheLanesRunningAndStatusSaysSoUntilItIsBack) {
  WriteLane();
  ChildProcess& controller = StartController();
  auto [sup, worker] = WaitForLane(controller);
  fs::remove_all(specs_);
  const std::string gone =
      specs_ + ": cannot read: the directory is gone; lanes keep running until it is back";
  ASSERT_TRUE(Eventually([&] {
    auto s = Status();
    return !s.is_null() && s["errors"].size() == 1 && s["errors"][0] == gone;
  }, kSlack)) << controller.Stderr();
  // Two more rescans (one a second) with the directory gone: nothing stops.
  int64_t seen = Reconciles();
  ASSERT_TRUE(Eventually([&] { return Reconciles() >= seen + 2; }, 2s + kSlack));
  EXPECT_TRUE(testing::ProcessAlive(sup));
  EXPECT_TRUE(testing::ProcessAlive(worker));
  auto s = Status();
  ASSERT_EQ(s["lanes"].size(), 1u) << s.dump();
  EXPECT_EQ(s["lanes"][0]["name"], "kb");
  EXPECT_EQ(s["lanes"][0]["ready"], true) << s.dump();

  fs::create_directories(specs_);
  WriteLane();
  ASSERT_TRUE(Eventually([&] {
    auto st = Status();
    return !st.is_null() && st["errors"].empty();
  }, kSlack)) << controller.Stderr();
  EXPECT_TRUE(testing::ProcessAlive(sup));
  EXPECT_TRUE(testing::ProcessAlive(worker));
  EXPECT_EQ(records_->Events("worker_started").size(), 1u);
}

// Editors write a file in several steps; what the controller reads is the file once those
// writes are done, within the 50 ms debounce — never the half-written state in between.
TEST(SpecDirDebounce, WritesWithinTheDebounceAreReadOnceAsTheirEnd) {
  EXPECT_EQ(LaneControllerOptions{}.debounce, Millis(50));
  testing::TempDir dir("debounce");
  ASSERT_TRUE(dir.ok());
  const std::string lanes = dir / "lanes";
  fs::create_directories(lanes);
  testing::FakeClock clock;
  SpecDirSource source({lanes, Millis(3'600'000), Millis(50), &clock});
  ASSERT_TRUE(source.Start().ok());
  const std::string full =
      "apiVersion: lanekeeper.dev/v1alpha1\nkind: Lane\nmetadata: {name: a}\nspec:\n  queue: qa\n";
  // The editor's first write, and its last 30 ms later: whenever the source reads within
  // 50 ms of them, it reads the end, once.
  std::vector<LaneKey> seen;
  std::ofstream(lanes + "/a.yaml") << full.substr(0, 40);
  EXPECT_TRUE(source.Poll().empty());
  clock.Advance(Millis(30));
  std::ofstream(lanes + "/a.yaml") << full;
  EXPECT_TRUE(source.Poll().empty());
  for (int i = 0; i < 10; ++i) {
    clock.Advance(Millis(10));
    for (auto& k : source.Poll()) seen.push_back(k);
  }
  EXPECT_EQ(seen, testing::Keys({"a"}));
  ASSERT_NE(source.Get({"", "a"}), nullptr);
  EXPECT_TRUE(source.Get({"", "a"})->valid);
  EXPECT_EQ(source.Get({"", "a"})->spec.queue, "qa");
  EXPECT_TRUE(source.Errors().empty());
}

TEST(ControllerDefaults, AreThoseDocsControllerMdNames) {
  LaneControllerOptions o;
  EXPECT_EQ(o.rescan_every, Millis(15'000));
  EXPECT_EQ(o.debounce, Millis(50));
  EXPECT_FALSE(o.leave_running);
  EXPECT_EQ(o.workers, 1) << "--workers: 1 for local processes (8 with --kube, set by the command)";
  auto help = testing::RunLanekeeper({"controller", "--help"},
                                     {"LANEKEEPER_SPECS_DIR=/srv/lanes",
                                      "LANEKEEPER_STATE_DIR=/srv/state"});
  ASSERT_EQ(help.exit_code, 0) << help.err;
  EXPECT_TRUE(ShowsDefault(help.out, "--specs TEXT=/srv/lanes")) << help.out;
  EXPECT_TRUE(ShowsDefault(help.out, "--state-dir TEXT=/srv/state")) << help.out;
  EXPECT_TRUE(ShowsDefault(help.out, "--status-addr TEXT=127.0.0.1:8081")) << help.out;
  EXPECT_TRUE(ShowsDefault(help.out, "--rescan TEXT=15s")) << help.out;
  EXPECT_NE(help.out.find("--workers"), std::string::npos) << help.out;
  // Without the variables: root's system directories, anyone else's XDG ones.
  std::vector<std::string> env = {"LANEKEEPER_SPECS_DIR=", "LANEKEEPER_STATE_DIR=", "HOME=/h",
                                  "XDG_CONFIG_HOME=", "XDG_STATE_HOME="};
  auto plain = testing::RunLanekeeper({"controller", "--help"}, env);
  auto up = testing::RunLanekeeper({"up", "--help"}, env);
  const bool root = geteuid() == 0;
  EXPECT_TRUE(ShowsDefault(plain.out, root ? "--specs TEXT=/etc/lanekeeper/lanes"
                                           : "--specs TEXT=/h/.config/lanekeeper/lanes"))
      << plain.out;
  EXPECT_TRUE(ShowsDefault(plain.out, root ? "--state-dir TEXT=/var/lib/lanekeeper"
                                           : "--state-dir TEXT=/h/.local/state/lanekeeper"))
      << plain.out;
  EXPECT_TRUE(ShowsDefault(up.out, root ? "--state-dir TEXT=/var/lib/lanekeeper/up"
                                        : "--state-dir TEXT=/h/.local/state/lanekeeper/up"))
      << up.out;
  auto up_env = testing::RunLanekeeper({"up", "--help"}, {"LANEKEEPER_STATE_DIR=/srv/state"});
  EXPECT_TRUE(ShowsDefault(up_env.out, "--state-dir TEXT=/srv/state/up")) << up_env.out;
}

}  // namespace promises_controller_test
}  // namespace lk
