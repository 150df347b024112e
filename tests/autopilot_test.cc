// The autopilot: its cycle file, the autopilot-cycle handler, its Redis record, and the
// `lanekeeper autopilot` process beside (or without) a supervisor — real redis-server, real
// processes, bounded waits.
#include <gtest/gtest.h>
#include <signal.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>
#include <thread>

#include "controller/owner/autopilot_record.h"
#include "controller/spec/cycle_file.h"
#include "controller/owner/lifecycle_events.h"
#include "controller/owner/owner_lease.h"
#include "tests/support/child_process.h"
#include "tests/support/proc_scan.h"
#include "tests/support/redis_server.h"
#include "worker/autopilot_cycle_handler.h"
#include "worker/exit_codes.h"
#include "worker/job_queue.h"

namespace lk {
namespace {

using namespace std::chrono_literals;
using nlohmann::json;
using testing::ChildPids;
using testing::ChildProcess;
using testing::Eventually;
using testing::FindProcesses;
using testing::LanekeeperBinary;
using testing::RunLanekeeper;

std::string MakeTempDir(const std::string& prefix) {
  std::string tmpl = "/tmp/" + prefix + "-XXXXXX";
  return mkdtemp(tmpl.data());
}

std::string ReadFile(const std::string& path) {
  std::ifstream in(path);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

size_t Count(const std::string& haystack, const std::string& needle) {
  size_t n = 0;
  for (size_t at = haystack.find(needle); at != std::string::npos;
       at = haystack.find(needle, at + needle.size())) {
    ++n;
  }
  return n;
}

// --- The cycle file ---

TEST(AutopilotCycleSpec, StepsAreReadInOrderWithTheirTimeoutsAndADefaultOneWhereUnset) {
  auto steps = ParseCycleSpec(R"(steps:
  - name: sync
    command: [git, pull, --ff-only]
    timeout: 120s
  - name: index
    command: [make, index]
)", "cycle.yaml");
  ASSERT_TRUE(steps.ok()) << steps.status().message();
  ASSERT_EQ(steps->size(), 2u);
  EXPECT_EQ((*steps)[0].name, "sync");
  EXPECT_EQ((*steps)[0].command, (std::vector<std::string>{"git", "pull", "--ff-only"}));
  EXPECT_EQ((*steps)[0].timeout, Millis(120'000));
  EXPECT_EQ((*steps)[1].name, "index");
  EXPECT_EQ((*steps)[1].timeout, kDefaultCycleStepTimeout);
}

TEST(AutopilotCycleSpec, AnEmptyStepListIsACycleThatOnlyChecksTheRepo) {
  auto steps = ParseCycleSpec("steps: []\n", "cycle.yaml");
  ASSERT_TRUE(steps.ok()) << steps.status().message();
  EXPECT_TRUE(steps->empty());
}

TEST(AutopilotCycleSpec, AnUnknownFieldIsAnErrorNamingFileLineColumnAndFieldPath) {
  auto steps = ParseCycleSpec(R"(steps:
  - name: sync
    comand: [git, pull]
)", "cycle.yaml");
  ASSERT_FALSE(steps.ok());
  // Every error at once, as for a Lane spec (one checker reads both).
  EXPECT_EQ(steps.status().message(),
            "cycle.yaml:3:5: steps[0].comand: unknown field 'comand' (did you mean 'command'?)\n"
            "cycle.yaml:2:5: steps[0].command: missing");
}

TEST(AutopilotCycleSpec, BadValuesAndMissingFieldsNameWhereTheyAre) {
  auto bad_timeout = ParseCycleSpec("steps:\n  - name: a\n    command: [x]\n    timeout: 10x\n",
                                    "c.yaml");
  ASSERT_FALSE(bad_timeout.ok());
  EXPECT_EQ(bad_timeout.status().message().rfind("c.yaml:4:14: steps[0].timeout: bad duration '10x'", 0),
            0u)
      << bad_timeout.status().message();

  auto no_command = ParseCycleSpec("steps:\n  - name: a\n", "c.yaml");
  ASSERT_FALSE(no_command.ok());
  EXPECT_EQ(no_command.status().message(),
            "c.yaml:2:5: steps[0].command: missing");

  auto twice = ParseCycleSpec("steps:\n  - {name: a, command: [x]}\n  - {name: a, command: [y]}\n",
                              "c.yaml");
  ASSERT_FALSE(twice.ok());
  EXPECT_EQ(twice.status().message(),
            "c.yaml:3:12: steps[1].name: duplicate step name 'a' (first at line 2)");

  auto top = ParseCycleSpec("stepz: []\n", "c.yaml");
  ASSERT_FALSE(top.ok());
  EXPECT_EQ(top.status().message(),
            "c.yaml:1:1: stepz: unknown field 'stepz' (did you mean 'steps'?)\n"
            "c.yaml:1:1: steps: missing");

  auto two = ParseCycleSpec("steps: []\n---\nsteps:\n  - {name: a, command: [x]}\n", "c.yaml");
  ASSERT_FALSE(two.ok());
  EXPECT_EQ(two.status().message(),
            "c.yaml:3:1: a second YAML document: this file holds one (remove the '---' and merge "
            "them)");

  auto broken = ParseCycleSpec("steps: [\n", "c.yaml");
  ASSERT_FALSE(broken.ok());
  EXPECT_EQ(broken.status().message().rfind("c.yaml:", 0), 0u);
  EXPECT_NE(broken.status().message().find("invalid YAML"), std::string::npos);
}

TEST(AutopilotCycleSpec, AnUnreadableFileIsAnErrorNamingIt) {
  auto steps = LoadCycleSpec("/nonexistent/cycle.yaml");
  ASSERT_FALSE(steps.ok());
  EXPECT_EQ(steps.status().message(),
            "cannot read cycle file '/nonexistent/cycle.yaml': No such file or directory");
}

// --- The autopilot-cycle handler ---

class AutopilotCycleHandlerTest : public ::testing::Test {
 protected:
  void SetUp() override { repo_ = MakeTempDir("lk-ap-repo"); }
  void TearDown() override { std::filesystem::remove_all(repo_); }

  HandlerOutcome RunCycle(const std::vector<CycleStep>& steps, const std::string& repo) {
    StopToken stop;
    JobContext ctx{"q", "7", kAutopilotCycleJob, EncodeCyclePayload({repo, steps}), 1, Millis(0),
                   stop};
    return AutopilotCycleHandler().Run(ctx);
  }

  std::string repo_;
};

TEST_F(AutopilotCycleHandlerTest, StepsRunInOrderInTheRepoAndTheResultListsEachStep) {
  std::string cwd_before = std::filesystem::current_path();
  auto outcome = RunCycle({{"mark", {"touch", "marker"}, Millis(10'000)},
                           {"check", {"ls", "marker"}, Millis(10'000)},
                           {"where", {"sh", "-c", "pwd > out.txt; echo done"}, Millis(10'000)}},
                          repo_);
  ASSERT_TRUE(outcome.success) << outcome.error;
  EXPECT_TRUE(std::filesystem::exists(repo_ + "/marker"));
  EXPECT_EQ(ReadFile(repo_ + "/out.txt"), repo_ + "\n");
  EXPECT_EQ(std::filesystem::current_path(), cwd_before);  // chdir was the child's alone

  json result = json::parse(outcome.result);
  EXPECT_EQ(result["repo"], repo_);
  ASSERT_EQ(result["steps"].size(), 3u);
  EXPECT_EQ(result["steps"][0]["name"], "mark");
  EXPECT_EQ(result["steps"][1]["name"], "check");
  EXPECT_EQ(result["steps"][1]["output_tail"], "marker\n");
  EXPECT_EQ(result["steps"][2]["name"], "where");
  EXPECT_EQ(result["steps"][2]["output_tail"], "done\n");
  for (const auto& step : result["steps"]) {
    EXPECT_EQ(step["exit_code"], 0);
    EXPECT_EQ(step["ok"], true);
    EXPECT_TRUE(step["duration_ms"].is_number_integer());
  }
}

TEST_F(AutopilotCycleHandlerTest, ACycleWithoutStepsOnlyChecksTheRepo) {
  auto outcome = RunCycle({}, repo_);
  ASSERT_TRUE(outcome.success) << outcome.error;
  EXPECT_EQ(json::parse(outcome.result), json({{"repo", repo_}, {"steps", json::array()}}));
}

TEST_F(AutopilotCycleHandlerTest, TheFirstFailingStepFailsTheJobWithItsExitCodeAndStderr) {
  auto outcome = RunCycle({{"first", {"true"}, Millis(10'000)},
                           {"check", {"sh", "-c", "echo 'not a git repository' >&2; exit 3"},
                            Millis(10'000)},
                           {"never", {"touch", "never-ran"}, Millis(10'000)}},
                          repo_);
  EXPECT_FALSE(outcome.success);
  EXPECT_EQ(outcome.error, "step 'check' failed: exit code 3: not a git repository");
  EXPECT_FALSE(std::filesystem::exists(repo_ + "/never-ran"));
  json result = json::parse(outcome.result);
  ASSERT_EQ(result["steps"].size(), 2u);
  EXPECT_EQ(result["steps"][1]["ok"], false);
  EXPECT_EQ(result["steps"][1]["exit_code"], 3);
}

TEST_F(AutopilotCycleHandlerTest, AStepPastItsTimeoutFailsTheJob) {
  auto outcome = RunCycle({{"slow", {"sleep", "30"}, Millis(300)}}, repo_);
  EXPECT_FALSE(outcome.success);
  EXPECT_EQ(outcome.error, "step 'slow' failed: timed out after 300ms");
}

TEST_F(AutopilotCycleHandlerTest, AMissingRepoFailsTheJobBeforeAnyStepRuns) {
  auto outcome = RunCycle({{"mark", {"touch", "/tmp/lk-ap-should-not-exist"}, Millis(10'000)}},
                          repo_ + "/gone");
  EXPECT_FALSE(outcome.success);
  EXPECT_EQ(outcome.error,
            "repo '" + repo_ + "/gone' is missing or unreadable: No such file or directory");
  EXPECT_FALSE(std::filesystem::exists("/tmp/lk-ap-should-not-exist"));
}

TEST(AutopilotCyclePayload, RoundTripsAndRejectsAPayloadWithoutARepo) {
  CyclePayload p{"/srv/repo", {{"sync", {"git", "pull"}, Millis(120'000)}}};
  auto back = DecodeCyclePayload(EncodeCyclePayload(p));
  ASSERT_TRUE(back.ok()) << back.status().message();
  EXPECT_EQ(back->repo, "/srv/repo");
  ASSERT_EQ(back->steps.size(), 1u);
  EXPECT_EQ(back->steps[0].command, (std::vector<std::string>{"git", "pull"}));
  EXPECT_EQ(back->steps[0].timeout, Millis(120'000));
  auto bad = DecodeCyclePayload(R"({"steps": []})");
  ASSERT_FALSE(bad.ok());
  EXPECT_EQ(bad.status().message(), "autopilot-cycle payload: repo: expected a non-empty string");
}

// --- Redis-backed: the record and the process ---

class AutopilotRedisTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto server = testing::RedisServer::Start();
    ASSERT_TRUE(server.ok()) << server.status().message();
    server_ = std::move(server).value();
    auto ep = ParseRedisUrl(server_->url());
    auto conn = RedisConnection::Connect(*ep, 2000ms);
    ASSERT_TRUE(conn.ok()) << conn.status().message();
    conn_ = std::move(conn).value();
    dir_ = MakeTempDir("lk-ap-test");
    repo_ = dir_ + "/repo";
    std::filesystem::create_directory(repo_);
    static int tests_run = 0;
    queue_name_ = "ap" + std::to_string(getpid()) + "-" + std::to_string(++tests_run);
    auto q = OpenJobQueue(server_->url(), queue_name_);
    ASSERT_TRUE(q.ok());
    queue_ = std::move(q).value();
  }
  // Stops what the test started gracefully, newest first and while Redis still runs, so
  // that their workers drain and exit too (a SIGKILLed owner leaves its worker behind).
  void TearDown() override {
    for (auto it = processes_.rbegin(); it != processes_.rend(); ++it) {
      if ((*it)->Running()) {
        (*it)->Signal(SIGTERM);
        (*it)->Wait(30s);
      }
    }
    processes_.clear();
    std::filesystem::remove_all(dir_);
  }

  ChildProcess& StartAutopilot(std::vector<std::string> extra) {
    std::vector<std::string> argv = {LanekeeperBinary(), "autopilot", "--redis", server_->url(),
                                     "--queue", queue_name_, "--repo", repo_,
                                     "--interval", "1s", "--log-level", "debug"};
    argv.insert(argv.end(), extra.begin(), extra.end());
    processes_.push_back(std::make_unique<ChildProcess>(argv));
    return *processes_.back();
  }

  ChildProcess& StartSupervisor() {
    std::vector<std::string> argv = {LanekeeperBinary(), "jobs", "supervisor",
                                     "--redis", server_->url(), "--queue", queue_name_,
                                     "--concurrency", "1",
                                     "--pid-file", dir_ + "/supervisor.pid"};
    processes_.push_back(std::make_unique<ChildProcess>(argv));
    return *processes_.back();
  }

  std::optional<OwnerRecord> Owner() {
    auto o = ReadOwner(*conn_, queue_name_);
    return o.ok() ? *o : std::nullopt;
  }

  std::optional<AutopilotRecord> Record() {
    auto r = ReadAutopilotRecord(*conn_, queue_name_);
    return r.ok() ? *r : std::nullopt;
  }

  std::vector<Job> CycleJobs(JobState state) {
    std::vector<Job> out;
    auto jobs = queue_->List(state, 1000);
    if (!jobs.ok()) return out;
    for (auto& j : *jobs) {
      if (j.name == kAutopilotCycleJob) out.push_back(j);
    }
    return out;
  }

  std::vector<pid_t> Workers() { return FindProcesses({"jobs", "work", "--queue", queue_name_}); }

  static pid_t HolderPid(const std::string& holder) {
    return static_cast<pid_t>(std::stoi(holder.substr(holder.rfind(':') + 1)));
  }

  static pid_t ParentOf(pid_t pid) {
    std::string stat = ReadFile("/proc/" + std::to_string(pid) + "/stat");
    auto close_paren = stat.rfind(')');
    if (close_paren == std::string::npos) return 0;
    std::istringstream rest(stat.substr(close_paren + 2));
    char state;
    pid_t ppid = 0;
    rest >> state >> ppid;
    return ppid;
  }

  std::vector<LifecycleEvent> Events(const std::string& type) {
    std::vector<LifecycleEvent> out;
    auto all = ReadEvents(*conn_, queue_name_, 0, 10000);
    if (!all.ok()) return out;
    for (auto& e : *all) {
      if (e.type == type && e.role == "autopilot") out.push_back(e);
    }
    return out;
  }

  std::unique_ptr<testing::RedisServer> server_;
  std::unique_ptr<RedisConnection> conn_;
  std::unique_ptr<JobQueue> queue_;
  std::string dir_, repo_, queue_name_;
  std::vector<std::unique_ptr<ChildProcess>> processes_;
};

using AutopilotRecordTest = AutopilotRedisTest;

TEST_F(AutopilotRecordTest, APublishedRecordReadsBackAndOnlyItsHolderRemovesIt) {
  EXPECT_FALSE(Record().has_value());
  AutopilotRecord r{"host:1", "/srv/repo", "dispatch-only", 300'000, 1234, "42", 0, 0, 5678};
  ASSERT_TRUE(PublishAutopilotRecord(*conn_, queue_name_, r).ok());
  auto back = Record();
  ASSERT_TRUE(back.has_value());
  EXPECT_EQ(back->holder, "host:1");
  EXPECT_EQ(back->repo, "/srv/repo");
  EXPECT_EQ(back->mode, "dispatch-only");
  EXPECT_EQ(back->interval_ms, 300'000);
  EXPECT_EQ(back->last_dispatch_ms, 1234);
  EXPECT_EQ(back->last_job_id, "42");
  EXPECT_EQ(back->updated_ms, 5678);
  ASSERT_TRUE(RemoveAutopilotRecord(*conn_, queue_name_, "host:2").ok());
  EXPECT_TRUE(Record().has_value());
  ASSERT_TRUE(RemoveAutopilotRecord(*conn_, queue_name_, "host:1").ok());
  EXPECT_FALSE(Record().has_value());
}

using AutopilotProcessTest = AutopilotRedisTest;

TEST_F(AutopilotProcessTest, NoWorkerDispatchesAtStartAndEveryIntervalButNeverTwoPending) {
  auto& ap = StartAutopilot({"--no-worker"});
  ASSERT_TRUE(Eventually([&] { return CycleJobs(JobState::kWaiting).size() == 1; }, 10s))
      << ap.Stderr();
  Job first = CycleJobs(JobState::kWaiting)[0];
  json payload = json::parse(first.payload);
  EXPECT_EQ(payload, json({{"repo", repo_}, {"steps", json::array()}}));
  EXPECT_EQ(first.idempotency_key.rfind("autopilot-cycle:" + repo_ + ":", 0), 0u)
      << first.idempotency_key;

  // Three more slots pass with the first cycle still waiting (no worker runs): each is
  // skipped, and the queue still holds exactly one cycle.
  ASSERT_TRUE(ap.WaitForOutput("skipping slot", 10s)) << ap.Stderr();
  ASSERT_TRUE(Eventually([&] { return Count(ap.Stderr(), "skipping slot") >= 3; }, 10s))
      << ap.Stderr();
  EXPECT_EQ(CycleJobs(JobState::kWaiting).size(), 1u);
  EXPECT_EQ(Events("dispatch").size(), 1u);

  auto record = Record();
  ASSERT_TRUE(record.has_value());
  EXPECT_EQ(record->last_job_id, first.id);
  EXPECT_EQ(record->mode, "dispatch-only");
  EXPECT_EQ(record->repo, repo_);
  EXPECT_EQ(record->interval_ms, 1000);
  EXPECT_GT(record->last_dispatch_ms, 0);
  EXPECT_LE(NowUnixMillis() - record->updated_ms, 5000);

  // Once the pending cycle is gone, the next slot dispatches a new one.
  ASSERT_TRUE(queue_->Cancel(first.id).ok());
  ASSERT_TRUE(Eventually([&] {
    auto waiting = CycleJobs(JobState::kWaiting);
    return waiting.size() == 1 && waiting[0].id != first.id;
  }, 10s)) << ap.Stderr();
  std::string second = CycleJobs(JobState::kWaiting)[0].id;
  EXPECT_TRUE(Eventually([&] { return Record() && Record()->last_job_id == second; }, 5s));
  auto dispatches = Events("dispatch");
  ASSERT_EQ(dispatches.size(), 2u);
  EXPECT_EQ(dispatches[1].fields["job_id"], second);

  // It never took the lease nor started a worker.
  EXPECT_FALSE(Owner().has_value());
  EXPECT_TRUE(ChildPids(ap.pid()).empty());

  ap.Signal(SIGTERM);
  EXPECT_EQ(ap.Wait(10s), kExitOk) << ap.Stderr();
  EXPECT_FALSE(Record().has_value());
  EXPECT_EQ(Events("stopped").size(), 1u);
}

TEST_F(AutopilotProcessTest, ARestartedAutopilotFindsItsPendingCycleInsteadOfAddingASecond) {
  auto& first = StartAutopilot({"--no-worker"});
  ASSERT_TRUE(Eventually([&] { return CycleJobs(JobState::kWaiting).size() == 1; }, 10s))
      << first.Stderr();
  std::string pending = CycleJobs(JobState::kWaiting)[0].id;
  first.Signal(SIGTERM);
  ASSERT_EQ(first.Wait(10s), kExitOk) << first.Stderr();
  EXPECT_FALSE(Record().has_value());

  auto& second = StartAutopilot({"--no-worker"});
  ASSERT_TRUE(second.WaitForOutput("autopilot-cycle job " + pending + " is still waiting", 10s))
      << second.Stderr();
  ASSERT_TRUE(Eventually([&] { return Count(second.Stderr(), "skipping slot") >= 2; }, 10s))
      << second.Stderr();
  auto waiting = CycleJobs(JobState::kWaiting);
  ASSERT_EQ(waiting.size(), 1u);
  EXPECT_EQ(waiting[0].id, pending);
}

TEST_F(AutopilotProcessTest, BesideARunningSupervisorItStartsNoWorkerAndSaysSo) {
  auto& sup = StartSupervisor();
  ASSERT_TRUE(Eventually([&] { return Owner() && Owner()->role == "supervisor"; }, 10s))
      << sup.Stderr();
  ASSERT_TRUE(Eventually([&] { return Workers().size() == 1; }, 10s)) << sup.Stderr();
  OwnerRecord owner = *Owner();

  auto& ap = StartAutopilot({"--concurrency", "1"});
  std::string line = "queue " + queue_name_ + " is owned by supervisor " + owner.holder +
                     " (epoch " + std::to_string(owner.epoch) + "); running dispatch-only";
  ASSERT_TRUE(ap.WaitForOutput(line, 10s)) << ap.Stderr();
  // The supervisor's worker runs the cycle the autopilot dispatched.
  ASSERT_TRUE(Eventually([&] { return !CycleJobs(JobState::kCompleted).empty(); }, 20s))
      << ap.Stderr() << sup.Stderr();

  // A few ownership re-checks later: still no worker of its own, still the supervisor's one.
  ASSERT_TRUE(Eventually([&] { return Count(ap.Stderr(), "skipping slot") +
                                      Count(ap.Stderr(), "event dispatch ") >= 4; }, 15s))
      << ap.Stderr();
  EXPECT_TRUE(ChildPids(ap.pid()).empty());
  auto workers = Workers();
  ASSERT_EQ(workers.size(), 1u);
  EXPECT_EQ(ParentOf(workers[0]), sup.pid());
  EXPECT_EQ(Owner()->holder, owner.holder);
  EXPECT_EQ(Count(ap.Stderr(), line), 1u);  // said once, not on every re-check
  auto record = Record();
  ASSERT_TRUE(record.has_value());
  EXPECT_EQ(record->mode, "dispatch-only");
  EXPECT_EQ(record->worker_pid, 0);
  EXPECT_EQ(Events("dispatch_only").size(), 1u);

  ap.Signal(SIGTERM);
  EXPECT_EQ(ap.Wait(10s), kExitOk) << ap.Stderr();
  EXPECT_EQ(Owner()->holder, owner.holder);  // it never held the lease, so never released it
}

TEST_F(AutopilotProcessTest, AloneItOwnsTheQueueRunsCyclesAndASupervisorTakesOverAfterIt) {
  std::string cycle = dir_ + "/cycle.yaml";
  std::ofstream(cycle) << "steps:\n"
                       << "  - name: log\n"
                       << "    command: [sh, -c, 'echo ran >> cycles.log']\n"
                       << "    timeout: 10s\n";
  auto& ap = StartAutopilot({"--cycle", cycle});
  ASSERT_TRUE(Eventually([&] { return Owner().has_value(); }, 10s)) << ap.Stderr();
  EXPECT_EQ(Owner()->role, "autopilot");
  EXPECT_EQ(HolderPid(Owner()->holder), ap.pid());

  ASSERT_TRUE(Eventually([&] { return CycleJobs(JobState::kCompleted).size() >= 2; }, 20s))
      << ap.Stderr();
  Job done = CycleJobs(JobState::kCompleted).back();
  json result = json::parse(done.result);
  EXPECT_EQ(result["repo"], repo_);
  ASSERT_EQ(result["steps"].size(), 1u);
  EXPECT_EQ(result["steps"][0]["name"], "log");
  EXPECT_EQ(result["steps"][0]["ok"], true);
  EXPECT_NE(ReadFile(repo_ + "/cycles.log").find("ran\n"), std::string::npos);

  auto children = ChildPids(ap.pid());
  ASSERT_EQ(children.size(), 1u);
  EXPECT_EQ(Workers(), children);
  auto record = Record();
  ASSERT_TRUE(record.has_value());
  EXPECT_EQ(record->mode, "managed-worker");
  EXPECT_EQ(record->worker_pid, children[0]);
  EXPECT_EQ(record->epoch, Owner()->epoch);
  EXPECT_EQ(Events("lease_acquired").size(), 1u);
  EXPECT_EQ(Events("worker_started").size(), 1u);

  // A supervisor started now waits as standby: still one worker, the autopilot's.
  auto& sup = StartSupervisor();
  ASSERT_TRUE(sup.WaitForOutput("standby: queue " + queue_name_ + " is owned by autopilot", 10s))
      << sup.Stderr();
  EXPECT_EQ(Workers(), children);

  // The autopilot stops: drains its worker, releases the lease; the supervisor takes over.
  ap.Signal(SIGTERM);
  EXPECT_EQ(ap.Wait(30s), kExitOk) << ap.Stderr();
  EXPECT_FALSE(testing::ProcessAlive(children[0]));
  ASSERT_TRUE(Eventually([&] { return Owner() && Owner()->role == "supervisor"; }, 10s))
      << sup.Stderr();
  ASSERT_TRUE(Eventually([&] {
    auto w = Workers();
    return w.size() == 1 && ParentOf(w[0]) == sup.pid();
  }, 10s)) << sup.Stderr();
  EXPECT_FALSE(Record().has_value());
  EXPECT_EQ(Events("worker_exited").size(), 1u);
  EXPECT_EQ(Events("stopped").size(), 1u);
}

TEST_F(AutopilotProcessTest, ItsCrashedWorkerIsRestartedUnderTheSameLease) {
  auto& ap = StartAutopilot({});
  ASSERT_TRUE(Eventually([&] { return ChildPids(ap.pid()).size() == 1; }, 10s)) << ap.Stderr();
  pid_t first = ChildPids(ap.pid())[0];
  int64_t epoch = Owner()->epoch;
  kill(first, SIGKILL);
  ASSERT_TRUE(Eventually([&] {
    auto children = ChildPids(ap.pid());
    return children.size() == 1 && children[0] != first;
  }, 10s)) << ap.Stderr();
  EXPECT_EQ(Owner()->epoch, epoch);
  auto exits = Events("worker_exited");
  ASSERT_EQ(exits.size(), 1u);
  EXPECT_EQ(exits[0].fields["reason"], "crash");
  EXPECT_EQ(exits[0].fields["detail"], "killed by signal 9");
  EXPECT_EQ(Workers().size(), 1u);
}

TEST_F(AutopilotProcessTest, WhenItsLeaseIsTakenItsWorkerStopsAndItGoesDispatchOnly) {
  auto& ap = StartAutopilot({});
  ASSERT_TRUE(Eventually([&] { return ChildPids(ap.pid()).size() == 1; }, 10s)) << ap.Stderr();
  pid_t worker = ChildPids(ap.pid())[0];

  // Someone else takes the queue (as after a long pause of the autopilot): the lease key is
  // gone and a new holder has the next epoch.
  ASSERT_TRUE(conn_->Command({"DEL", JobQueue::KeyPrefix(queue_name_) + "owner"}).ok());
  OwnerLease other(*conn_, queue_name_, OwnerRole::kSupervisor, "elsewhere:1", 1, 0);
  auto taken = other.TryAcquire();
  ASSERT_TRUE(taken.ok() && taken->acquired);

  ASSERT_TRUE(Eventually([&] { return !testing::ProcessAlive(worker); }, 20s)) << ap.Stderr();
  std::string line = "queue " + queue_name_ + " is owned by supervisor elsewhere:1 (epoch " +
                     std::to_string(other.epoch()) + "); running dispatch-only";
  ASSERT_TRUE(ap.WaitForOutput(line, 10s)) << ap.Stderr();
  EXPECT_TRUE(ChildPids(ap.pid()).empty());
  EXPECT_TRUE(Workers().empty());
  EXPECT_TRUE(Eventually([&] { return Record() && Record()->mode == "dispatch-only"; }, 5s));
  EXPECT_EQ(Owner()->holder, "elsewhere:1");
  ASSERT_TRUE(other.Release().ok());
}

TEST_F(AutopilotProcessTest, ItRidesOutARedisOutageLoggingItOnceAndDispatchesAfterwards) {
  auto& ap = StartAutopilot({"--no-worker"});
  ASSERT_TRUE(Eventually([&] { return CycleJobs(JobState::kWaiting).size() == 1; }, 10s))
      << ap.Stderr();
  server_->Kill();
  ASSERT_TRUE(ap.WaitForOutput("Redis trouble", 10s)) << ap.Stderr();
  // The outage lasts a few slots and heartbeats, each of which fails.
  std::this_thread::sleep_for(3s);
  EXPECT_TRUE(ap.Running());
  int64_t restarted_ms = NowUnixMillis();
  ASSERT_TRUE(server_->Restart().ok());
  ASSERT_TRUE(ap.WaitForOutput("Redis is back", 15s)) << ap.Stderr();
  EXPECT_EQ(Count(ap.Stderr(), "Redis trouble"), 1u) << ap.Stderr();
  // Back to work: its record is fresh again and one cycle waits.
  ASSERT_TRUE(conn_->Reconnect().ok());
  ASSERT_TRUE(queue_->connection().Reconnect().ok());
  ASSERT_TRUE(Eventually([&] { return Record() && Record()->updated_ms >= restarted_ms; }, 10s))
      << ap.Stderr();
  ASSERT_TRUE(Eventually([&] { return CycleJobs(JobState::kWaiting).size() == 1; }, 10s))
      << ap.Stderr();
  EXPECT_TRUE(ap.Running());
}

TEST_F(AutopilotProcessTest, ABadCycleFileStopsItAtOnceNamingFileLineAndColumn) {
  std::string cycle = dir_ + "/cycle.yaml";
  std::ofstream(cycle) << "steps:\n  - name: sync\n    command: [git, pull]\n    retries: 3\n";
  auto r = RunLanekeeper({"autopilot", "--redis", server_->url(), "--queue", queue_name_,
                          "--repo", repo_, "--cycle", cycle},
                         {}, 10s);
  EXPECT_EQ(r.exit_code, kExitUsage);
  EXPECT_NE(r.err.find(cycle + ":4:5: steps[0].retries: unknown field"), std::string::npos)
      << r.err;
  EXPECT_TRUE(CycleJobs(JobState::kWaiting).empty());
}

}  // namespace
}  // namespace lk
