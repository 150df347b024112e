// The autopilot: its cycle file, the autopilot-cycle handler, its Redis record, and the
// `lanekeeper autopilot` process beside (or without) a supervisor — real redis-server, real
// processes. Bounds are the interval or backoff under test plus kSlack for the sanitizer
// pass; what must never happen (two workers) is checked on the queue's lifecycle events.
#include <gtest/gtest.h>
#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>
#include <thread>

#include "controller/owner/autopilot.h"
#include "controller/owner/autopilot_record.h"
#include "controller/spec/cycle_file.h"
#include "controller/owner/lifecycle_events.h"
#include "controller/owner/owner_lease.h"
#include "tests/support/child_process.h"
#include "tests/support/proc_scan.h"
#include "tests/support/queue_records.h"
#include "tests/support/queue_under_test.h"
#include "tests/support/redis_server.h"
#include "tests/support/temp_dir.h"
#include "tests/support/worker_timeline.h"
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
using testing::OneAtATime;
using testing::RunLanekeeper;

constexpr auto kInterval = 1s;  // the autopilot's --interval in these tests
constexpr auto kSlack = 10s;

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
  void SetUp() override {
    ASSERT_TRUE(dir_.ok());
    repo_ = dir_ / "repo";
    ASSERT_TRUE(std::filesystem::create_directory(repo_));
  }

  HandlerOutcome RunCycle(const std::vector<CycleStep>& steps, const std::string& repo) {
    StopToken stop;
    JobContext ctx{"q", "7", kAutopilotCycleJob, EncodeCyclePayload({repo, steps}), 1, Millis(0),
                   stop};
    return AutopilotCycleHandler().Run(ctx);
  }

  testing::TempDir dir_{"ap-repo"};
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
  const std::string marker = dir_ / "step-ran";  // outside the repo, where the step would write
  auto outcome = RunCycle({{"mark", {"touch", marker}, Millis(10'000)}}, repo_ + "/gone");
  EXPECT_FALSE(outcome.success);
  EXPECT_EQ(outcome.error,
            "repo '" + repo_ + "/gone' is missing or unreadable: No such file or directory");
  EXPECT_FALSE(std::filesystem::exists(marker));
}

TEST_F(AutopilotCycleHandlerTest, EachStepGetsTheJobsEnvironmentWithTheRepoAndItsNameAndNoStdin) {
  const std::string show =
      "cat; echo \"$LANEKEEPER_REPO|$LANEKEEPER_STEP|$LANEKEEPER_JOB_ID|$LANEKEEPER_JOB_NAME|"
      "$LANEKEEPER_JOB_ATTEMPT|$LANEKEEPER_QUEUE|$HOME\"";
  auto outcome = RunCycle({{"first", {"sh", "-c", show}, Millis(10'000)},
                           {"second", {"sh", "-c", show}, Millis(10'000)}},
                          repo_);
  ASSERT_TRUE(outcome.success) << outcome.error;
  json result = json::parse(outcome.result);
  ASSERT_EQ(result["steps"].size(), 2u);
  // `cat` ends at once: a step's stdin is empty, never the worker's. The environment is the
  // worker's own plus the job's.
  const std::string home = std::getenv("HOME") ? std::getenv("HOME") : "";
  EXPECT_EQ(result["steps"][0]["output_tail"],
            repo_ + "|first|7|autopilot-cycle|1|q|" + home + "\n");
  EXPECT_EQ(result["steps"][1]["output_tail"],
            repo_ + "|second|7|autopilot-cycle|1|q|" + home + "\n");
}

TEST_F(AutopilotCycleHandlerTest, AStepKilledByASignalOrThatCannotStartFailsTheJobSayingSo) {
  auto killed = RunCycle({{"crash", {"sh", "-c", "kill -9 $$"}, Millis(10'000)}}, repo_);
  EXPECT_FALSE(killed.success);
  EXPECT_EQ(killed.error, "step 'crash' failed: killed by signal 9");
  auto missing = RunCycle({{"sync", {"lk-no-such-program"}, Millis(10'000)}}, repo_);
  EXPECT_FALSE(missing.success);
  EXPECT_EQ(missing.error,
            "step 'sync' failed: cannot run 'lk-no-such-program': No such file or directory");
}

TEST_F(AutopilotCycleHandlerTest, TheOutputTailIsTheLast2KiBOfStdoutThenStderr) {
  auto outcome = RunCycle({{"loud", {"sh", "-c",
                                     "head -c 5000 /dev/zero | tr '\\0' a; echo; echo oops >&2"},
                            Millis(10'000)}},
                          repo_);
  ASSERT_TRUE(outcome.success) << outcome.error;
  std::string tail = json::parse(outcome.result)["steps"][0]["output_tail"];
  EXPECT_EQ(tail, std::string(2042, 'a') + "\n" + "oops\n");
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
    ASSERT_TRUE(dir_.ok());
    auto server = testing::RedisServer::Start();
    ASSERT_TRUE(server.ok()) << server.status().message();
    server_ = std::move(server).value();
    repo_ = dir_ / "repo";
    ASSERT_TRUE(std::filesystem::create_directory(repo_));
    // Unique per test and process: leftovers of one test never count in another.
    queue_name_ = std::string(::testing::UnitTest::GetInstance()->current_test_info()->name())
                      .substr(0, 30) + "-" + std::to_string(getpid());
    auto q = OpenJobQueue(server_->url(), queue_name_);
    ASSERT_TRUE(q.ok()) << q.status().message();
    queue_ = std::move(q).value();
    records_ = std::make_unique<testing::QueueRecords>(*queue_);
  }
  // Stops what the test started gracefully, newest first and while Redis still runs, so
  // that their workers drain and exit too; whatever is left is killed.
  void TearDown() override {
    for (auto it = processes_.rbegin(); it != processes_.rend(); ++it) {
      if ((*it)->Signal(SIGTERM)) (*it)->Wait(30s);
    }
    processes_.clear();
    testing::KillProcessesOfThisTest();
  }

  RedisConnection& conn() { return queue_->connection(); }

  // With --repo repo_ and --interval 1s unless extra gives others.
  ChildProcess& StartAutopilot(std::vector<std::string> extra) {
    std::vector<std::string> argv = {LanekeeperBinary(), "autopilot", "--redis", server_->url(),
                                     "--queue", queue_name_, "--log-level", "debug"};
    for (const auto& [flag, value] : {std::pair<std::string, std::string>{"--repo", repo_},
                                      {"--interval", "1s"}}) {
      if (std::find(extra.begin(), extra.end(), flag) == extra.end()) {
        argv.insert(argv.end(), {flag, value});
      }
    }
    argv.insert(argv.end(), extra.begin(), extra.end());
    processes_.push_back(std::make_unique<ChildProcess>(argv));
    return *processes_.back();
  }

  ChildProcess& StartSupervisor() {
    std::vector<std::string> argv = {LanekeeperBinary(), "jobs", "supervisor",
                                     "--redis", server_->url(), "--queue", queue_name_,
                                     "--concurrency", "1",
                                     "--pid-file", dir_ / "supervisor.pid"};
    processes_.push_back(std::make_unique<ChildProcess>(argv));
    return *processes_.back();
  }

  std::optional<OwnerRecord> Owner() { return records_->Owner(); }
  std::optional<AutopilotRecord> Record() { return records_->Autopilot(); }
  std::vector<Job> CycleJobs(JobState state) { return records_->List(state, kAutopilotCycleJob); }
  std::vector<pid_t> Workers() { return FindProcesses({"jobs", "work", "--queue", queue_name_}); }
  // The autopilot's events of one type.
  std::vector<LifecycleEvent> Events(const std::string& type) {
    return records_->Events(type, "autopilot");
  }
  void ExpectOneWorkerAtATime(OneAtATime rule, bool allow_none = false) {
    EXPECT_EQ(testing::FirstSecondWorker(records_->Events(), rule, allow_none), "");
  }

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

  testing::TempDir dir_{"ap-test"};
  std::unique_ptr<testing::RedisServer> server_;
  std::unique_ptr<JobQueue> queue_;
  std::unique_ptr<testing::QueueRecords> records_;
  std::string repo_, queue_name_;
  std::vector<std::unique_ptr<ChildProcess>> processes_;
};

using AutopilotRecordTest = AutopilotRedisTest;

TEST_F(AutopilotRecordTest, APublishedRecordReadsBackAndOnlyItsHolderRemovesIt) {
  EXPECT_FALSE(Record().has_value());
  AutopilotRecord r{"host:1", "/srv/repo", "dispatch-only", 300'000, 1234, "42", 0, 0, 5678};
  ASSERT_TRUE(PublishAutopilotRecord(conn(), queue_name_, r).ok());
  auto back = Record();
  ASSERT_TRUE(back.has_value());
  EXPECT_EQ(back->holder, "host:1");
  EXPECT_EQ(back->repo, "/srv/repo");
  EXPECT_EQ(back->mode, "dispatch-only");
  EXPECT_EQ(back->interval_ms, 300'000);
  EXPECT_EQ(back->last_dispatch_ms, 1234);
  EXPECT_EQ(back->last_job_id, "42");
  EXPECT_EQ(back->updated_ms, 5678);
  ASSERT_TRUE(RemoveAutopilotRecord(conn(), queue_name_, "host:2").ok());
  EXPECT_TRUE(Record().has_value());
  ASSERT_TRUE(RemoveAutopilotRecord(conn(), queue_name_, "host:1").ok());
  EXPECT_FALSE(Record().has_value());
}

using AutopilotProcessTest = AutopilotRedisTest;

TEST_F(AutopilotProcessTest, NoWorkerDispatchesAtStartAndEveryIntervalButNeverTwoPending) {
  auto& ap = StartAutopilot({"--no-worker"});
  ASSERT_TRUE(Eventually([&] { return CycleJobs(JobState::kWaiting).size() == 1; }, kSlack))
      << ap.Stderr();
  Job first = CycleJobs(JobState::kWaiting)[0];
  json payload = json::parse(first.payload);
  EXPECT_EQ(payload, json({{"repo", repo_}, {"steps", json::array()}}));
  EXPECT_EQ(first.idempotency_key.rfind("autopilot-cycle:" + repo_ + ":", 0), 0u)
      << first.idempotency_key;

  // Three more slots pass with the first cycle still waiting (no worker runs): each is
  // skipped, and the queue still holds exactly one cycle.
  ASSERT_TRUE(Eventually([&] { return Count(ap.Stderr(), "skipping slot") >= 3; },
                         3 * kInterval + kSlack))
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
  }, kInterval + kSlack)) << ap.Stderr();
  std::string second = CycleJobs(JobState::kWaiting)[0].id;
  EXPECT_TRUE(Eventually([&] {
    auto r = Record();
    return r && r->last_job_id == second;
  }, kSlack));
  auto dispatches = Events("dispatch");
  ASSERT_EQ(dispatches.size(), 2u);
  EXPECT_EQ(dispatches[1].fields["job_id"], second);

  // It never took the lease nor started a worker.
  EXPECT_FALSE(Owner().has_value());
  EXPECT_TRUE(ChildPids(ap.pid()).empty());
  EXPECT_TRUE(records_->Events("worker_started").empty());

  ap.Signal(SIGTERM);
  EXPECT_EQ(ap.Wait(kSlack), kExitOk) << ap.Stderr();
  EXPECT_FALSE(Record().has_value());
  EXPECT_EQ(Events("stopped").size(), 1u);
}

TEST_F(AutopilotProcessTest, ARestartedAutopilotFindsItsPendingCycleInsteadOfAddingASecond) {
  auto& first = StartAutopilot({"--no-worker"});
  ASSERT_TRUE(Eventually([&] { return CycleJobs(JobState::kWaiting).size() == 1; }, kSlack))
      << first.Stderr();
  std::string pending = CycleJobs(JobState::kWaiting)[0].id;
  first.Signal(SIGTERM);
  ASSERT_EQ(first.Wait(kSlack), kExitOk) << first.Stderr();
  EXPECT_FALSE(Record().has_value());

  auto& second = StartAutopilot({"--no-worker"});
  ASSERT_TRUE(second.WaitForOutput("autopilot-cycle job " + pending + " is still waiting",
                                   kInterval + kSlack))
      << second.Stderr();
  ASSERT_TRUE(Eventually([&] { return Count(second.Stderr(), "skipping slot") >= 2; },
                         2 * kInterval + kSlack))
      << second.Stderr();
  auto waiting = CycleJobs(JobState::kWaiting);
  ASSERT_EQ(waiting.size(), 1u);
  EXPECT_EQ(waiting[0].id, pending);
  EXPECT_EQ(Events("dispatch").size(), 1u);
}

TEST_F(AutopilotProcessTest, BesideARunningSupervisorItStartsNoWorkerAndSaysSo) {
  testing::ProcessSampler sampler({"jobs", "work", "--queue", queue_name_});
  auto& sup = StartSupervisor();
  ASSERT_TRUE(Eventually([&] {
    auto o = Owner();
    return o && o->role == "supervisor";
  }, kSlack)) << sup.Stderr();
  ASSERT_TRUE(Eventually([&] { return !records_->Events("worker_started").empty(); }, kSlack))
      << sup.Stderr();
  OwnerRecord owner = *Owner();

  auto& ap = StartAutopilot({"--concurrency", "1"});
  std::string line = "queue " + queue_name_ + " is owned by supervisor " + owner.holder +
                     " (epoch " + std::to_string(owner.epoch) + "); running dispatch-only";
  ASSERT_TRUE(ap.WaitForOutput(line, kSlack)) << ap.Stderr();
  // The supervisor's worker runs the cycle the autopilot dispatched.
  ASSERT_TRUE(Eventually([&] { return !CycleJobs(JobState::kCompleted).empty(); }, kSlack))
      << ap.Stderr() << sup.Stderr();

  // A few ownership re-checks later (one every 2 s): still no worker of its own, still the
  // supervisor's one.
  ASSERT_TRUE(Eventually([&] { return Count(ap.Stderr(), "skipping slot") +
                                      Count(ap.Stderr(), "event dispatch ") >= 4; },
                         4 * kInterval + kSlack))
      << ap.Stderr();
  sampler.Stop();
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
  EXPECT_TRUE(Events("lease_acquired").empty());
  EXPECT_TRUE(Events("worker_started").empty());
  ExpectOneWorkerAtATime(OneAtATime::kStrict);
  EXPECT_GT(sampler.samples_seeing_any(), 0) << sampler.Describe();
  EXPECT_EQ(sampler.most(), 1u) << sampler.Describe();

  ap.Signal(SIGTERM);
  EXPECT_EQ(ap.Wait(kSlack), kExitOk) << ap.Stderr();
  EXPECT_EQ(Owner()->holder, owner.holder);  // it never held the lease, so never released it
}

TEST_F(AutopilotProcessTest, AloneItOwnsTheQueueRunsCyclesAndASupervisorTakesOverAfterIt) {
  testing::ProcessSampler sampler({"jobs", "work", "--queue", queue_name_});
  std::string cycle = dir_ / "cycle.yaml";
  std::ofstream(cycle) << "steps:\n"
                       << "  - name: log\n"
                       << "    command: [sh, -c, 'echo ran >> cycles.log']\n"
                       << "    timeout: 10s\n";
  auto& ap = StartAutopilot({"--cycle", cycle});
  ASSERT_TRUE(Eventually([&] { return Owner().has_value(); }, kSlack)) << ap.Stderr();
  EXPECT_EQ(Owner()->role, "autopilot");
  EXPECT_EQ(HolderPid(Owner()->holder), ap.pid());

  ASSERT_TRUE(Eventually([&] { return CycleJobs(JobState::kCompleted).size() >= 2; },
                         2 * kInterval + kSlack))
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
  ASSERT_TRUE(sup.WaitForOutput("standby: queue " + queue_name_ + " is owned by autopilot",
                                kSlack))
      << sup.Stderr();
  EXPECT_EQ(Workers(), children);

  // The autopilot stops: drains its worker, releases the lease; the supervisor takes over.
  ap.Signal(SIGTERM);
  EXPECT_EQ(ap.Wait(30s), kExitOk) << ap.Stderr();
  EXPECT_FALSE(testing::ProcessAlive(children[0]));
  ASSERT_TRUE(Eventually([&] {
    auto o = Owner();
    return o && o->role == "supervisor";
  }, kSlack)) << sup.Stderr();
  ASSERT_TRUE(Eventually([&] { return records_->Events("worker_started").size() == 2; },
                         kSlack))
      << sup.Stderr();
  sampler.Stop();
  auto w = Workers();
  ASSERT_EQ(w.size(), 1u);
  EXPECT_EQ(ParentOf(w[0]), sup.pid());
  EXPECT_FALSE(Record().has_value());
  EXPECT_EQ(Events("worker_exited").size(), 1u);
  EXPECT_EQ(Events("stopped").size(), 1u);
  // The handover, from the record: the autopilot's worker exited before the supervisor took
  // the lease and started its own.
  ExpectOneWorkerAtATime(OneAtATime::kStrict);
  EXPECT_GT(sampler.samples_seeing_any(), 0) << sampler.Describe();
  EXPECT_EQ(sampler.most(), 1u) << sampler.Describe();
}

TEST_F(AutopilotProcessTest, ItsCrashedWorkerIsRestartedUnderTheSameLeaseAfterABackoff) {
  auto& ap = StartAutopilot({});
  ASSERT_TRUE(Eventually([&] { return Events("worker_started").size() == 1; }, kSlack))
      << ap.Stderr();
  pid_t first = std::stoi(Events("worker_started")[0].fields["worker_pid"]);
  int64_t epoch = Owner()->epoch;
  ASSERT_TRUE(testing::SignalProcess(first, SIGKILL));
  ASSERT_TRUE(Eventually([&] { return Events("worker_started").size() == 2; }, 1s + kSlack))
      << ap.Stderr();
  pid_t second = std::stoi(Events("worker_started")[1].fields["worker_pid"]);
  EXPECT_NE(second, first);
  EXPECT_EQ(ChildPids(ap.pid()), std::vector<pid_t>{second});
  EXPECT_EQ(Owner()->epoch, epoch);
  EXPECT_EQ(Events("worker_started")[1].fields["epoch"], std::to_string(epoch));
  auto exits = Events("worker_exited");
  ASSERT_EQ(exits.size(), 1u);
  EXPECT_EQ(exits[0].fields["reason"], "crash");
  EXPECT_EQ(exits[0].fields["detail"], "killed by signal 9");
  // The first crash backs off 1 s (no jitter), measured from the exit to the next start;
  // the loop ticks every 250 ms.
  auto events = records_->Events();
  auto gaps = testing::ExitToStartGaps(events);
  ASSERT_EQ(gaps.size(), 1u) << testing::DescribeEvents(events);
  EXPECT_GE(gaps[0], 1000 - 50) << testing::DescribeEvents(events);
  EXPECT_LE(gaps[0], 1000 + 250 + 1000) << testing::DescribeEvents(events);
  EXPECT_EQ(Workers().size(), 1u);
  ExpectOneWorkerAtATime(OneAtATime::kStrict);
}

TEST_F(AutopilotProcessTest, WhenItsLeaseIsTakenItsWorkerStopsAndItGoesDispatchOnly) {
  auto& ap = StartAutopilot({});
  ASSERT_TRUE(Eventually([&] { return Events("worker_started").size() == 1; }, kSlack))
      << ap.Stderr();
  pid_t worker = std::stoi(Events("worker_started")[0].fields["worker_pid"]);

  // Someone else takes the queue (as after a long pause of the autopilot): the lease key is
  // gone and a new holder has the next epoch.
  ASSERT_TRUE(conn().Command({"DEL", JobQueue::KeyPrefix(queue_name_) + "owner"}).ok());
  OwnerLease other(conn(), queue_name_, OwnerRole::kSupervisor, "elsewhere:1", 1, 0);
  auto taken = other.TryAcquire();
  ASSERT_TRUE(taken.ok() && taken->acquired);

  ASSERT_TRUE(Eventually([&] { return !testing::ProcessAlive(worker); }, kSlack)) << ap.Stderr();
  std::string line = "queue " + queue_name_ + " is owned by supervisor elsewhere:1 (epoch " +
                     std::to_string(other.epoch()) + "); running dispatch-only";
  ASSERT_TRUE(ap.WaitForOutput(line, kSlack)) << ap.Stderr();
  EXPECT_TRUE(ChildPids(ap.pid()).empty());
  EXPECT_TRUE(Workers().empty());
  EXPECT_TRUE(Eventually([&] {
    auto r = Record();
    return r && r->mode == "dispatch-only";
  }, kSlack));
  EXPECT_EQ(Owner()->holder, "elsewhere:1");
  EXPECT_EQ(Events("lease_lost").size(), 1u);
  auto exits = Events("worker_exited");
  ASSERT_EQ(exits.size(), 1u);
  // Whichever saw it first: the worker at its next claim (fenced, exit 13), or the
  // autopilot at its next renewal (it drains the worker).
  EXPECT_TRUE(exits[0].fields["reason"] == "fenced" || exits[0].fields["reason"] == "lease lost")
      << exits[0].fields["reason"];
  EXPECT_EQ(Events("worker_started").size(), 1u);
  ExpectOneWorkerAtATime(OneAtATime::kStrict);
  ASSERT_TRUE(other.Release().ok());
}

// Waits on purpose: the outage must outlast several slots (1 s each) and reconnect attempts,
// and nothing outside the autopilot shows them passing.
TEST_F(AutopilotProcessTest, ItRidesOutAThreeSecondRedisOutageLoggingItOnceAndDispatchesAfter) {
  auto& ap = StartAutopilot({"--no-worker"});
  ASSERT_TRUE(Eventually([&] { return CycleJobs(JobState::kWaiting).size() == 1; }, kSlack))
      << ap.Stderr();
  server_->Kill();
  ASSERT_TRUE(ap.WaitForOutput("Redis trouble", kSlack)) << ap.Stderr();
  const auto outage_until = std::chrono::steady_clock::now() + 3 * kInterval;
  ASSERT_TRUE(Eventually([&] { return std::chrono::steady_clock::now() >= outage_until; },
                         3 * kInterval + kSlack));
  EXPECT_TRUE(ap.Running());
  int64_t restarted_ms = NowUnixMillis();
  ASSERT_TRUE(server_->Restart().ok());
  ASSERT_TRUE(ap.WaitForOutput("Redis is back", kSlack)) << ap.Stderr();
  EXPECT_EQ(Count(ap.Stderr(), "Redis trouble"), 1u) << ap.Stderr();
  // Back to work: its record is fresh again and one cycle waits.
  ASSERT_TRUE(conn().Reconnect().ok());
  ASSERT_TRUE(Eventually([&] {
    auto r = Record();
    return r && r->updated_ms >= restarted_ms;
  }, kSlack)) << ap.Stderr();
  ASSERT_TRUE(Eventually([&] { return CycleJobs(JobState::kWaiting).size() == 1; }, kSlack))
      << ap.Stderr();
  EXPECT_TRUE(ap.Running());
}

// The cycle job's own timeout is the sum of its steps' plus a minute, and it has one attempt:
// the next slot is the retry.
TEST_F(AutopilotProcessTest, ACycleJobHasOneAttemptAndItsStepsTimeoutsPlusAMinute) {
  std::string cycle = dir_ / "cycle.yaml";
  std::ofstream(cycle) << "steps:\n"
                       << "  - {name: sync, command: [git, pull], timeout: 2m}\n"
                       << "  - {name: index, command: [make, index]}\n";
  auto& ap = StartAutopilot({"--no-worker", "--cycle", cycle, "--interval", "1h"});
  ASSERT_TRUE(Eventually([&] { return CycleJobs(JobState::kWaiting).size() == 1; }, kSlack))
      << ap.Stderr();
  Job job = CycleJobs(JobState::kWaiting)[0];
  EXPECT_EQ(job.max_attempts, 1);
  EXPECT_EQ(job.timeout, Millis(120'000 + 600'000 + 60'000));
  json payload = json::parse(job.payload);
  EXPECT_EQ(payload["steps"][0]["timeout_ms"], 120'000);
  EXPECT_EQ(payload["steps"][1]["timeout_ms"], 600'000);  // the default step timeout, 10m
}

// Two autopilots of one repo and queue (or one restarted within a slot) dispatch each slot
// once: the slot's idempotency key finds the job the first made, even once it has run.
TEST_F(AutopilotProcessTest, TwoAutopilotsOfOneRepoDispatchASlotOnce) {
  constexpr int64_t kHour = 3'600'000;
  // Both within one slot of an hour: not in its last ten seconds.
  const int64_t into = NowUnixMillis() % kHour;
  if (into > kHour - 10'000) std::this_thread::sleep_for(Millis(kHour - into + 100));
  auto& first = StartAutopilot({"--no-worker", "--interval", "1h"});
  ASSERT_TRUE(Eventually([&] { return CycleJobs(JobState::kWaiting).size() == 1; }, kSlack))
      << first.Stderr();
  // The cycle runs and completes (played here), so the second autopilot finds nothing
  // pending when it starts: only the slot's key keeps it from dispatching again.
  const std::string id = testing::RunNextJobByHand(*queue_, true);
  ASSERT_FALSE(id.empty());

  auto& second = StartAutopilot({"--no-worker", "--interval", "1h"});
  const std::string slot = Events("dispatch")[0].fields["slot"];
  ASSERT_TRUE(second.WaitForOutput("slot " + slot + " was already dispatched as autopilot-cycle "
                                   "job " + id, kSlack))
      << second.Stderr();
  EXPECT_EQ(Events("dispatch").size(), 1u);
  EXPECT_EQ(records_->Stats().waiting, 0);
  EXPECT_EQ(CycleJobs(JobState::kCompleted).size(), 1u);
  EXPECT_TRUE(first.Running());
  EXPECT_TRUE(second.Running());
}

// Slots are aligned to the wall clock: an autopilot started in the middle of a slot
// dispatches the next cycle at the slot's boundary, not an interval after its start.
TEST_F(AutopilotProcessTest, SlotsAreAlignedToTheWallClockNotToTheStart) {
  constexpr int64_t kEvery = 3'000;
  // Waits on purpose (up to one interval) to start half-way into a slot, so that
  // start-aligned dispatches would come half-way too.
  const int64_t into = NowUnixMillis() % kEvery;
  std::this_thread::sleep_for(Millis((kEvery + kEvery / 2 - into) % kEvery));
  auto& ap = StartAutopilot({"--no-worker", "--interval", "3s"});
  ASSERT_TRUE(Eventually([&] { return Events("dispatch").size() == 1; }, kSlack)) << ap.Stderr();
  // The first cycle runs at once (played here): the next slot is not skipped for it.
  ASSERT_FALSE(testing::RunNextJobByHand(*queue_, true).empty());
  ASSERT_TRUE(Eventually([&] { return Events("dispatch").size() == 2; },
                         Millis(kEvery) + kSlack))
      << ap.Stderr();
  auto dispatches = Events("dispatch");
  for (auto& d : dispatches) {
    EXPECT_EQ(std::stoll(d.fields["slot"]), d.ts_ms / kEvery) << d.ts_ms;
    EXPECT_EQ(d.role, "autopilot");
  }
  EXPECT_EQ(std::stoll(dispatches[1].fields["slot"]), std::stoll(dispatches[0].fields["slot"]) + 1);
  // The loop ticks every 250 ms; a start-aligned one would dispatch ~1.5 s into the slot.
  EXPECT_LT(dispatches[1].ts_ms % kEvery, 750) << dispatches[1].ts_ms;
  auto started = Events("started");
  ASSERT_EQ(started.size(), 1u);
  EXPECT_EQ(started[0].fields["pid"], std::to_string(ap.pid()));
  EXPECT_EQ(started[0].fields["repo"], repo_);
  EXPECT_EQ(started[0].fields["interval_ms"], "3000");
  EXPECT_EQ(started[0].fields["no_worker"], "true");
}

// docs/autopilot.md: --repo is made absolute (the worker that runs the cycle may have another
// working directory); --interval is at least 1s; SIGINT stops it as SIGTERM does.
TEST_F(AutopilotProcessTest, ARelativeRepoIsMadeAbsoluteAndCtrlCStopsIt) {
  auto& ap = StartAutopilot({"--no-worker", "--repo", "."});
  ASSERT_TRUE(Eventually([&] { return CycleJobs(JobState::kWaiting).size() == 1; }, kSlack))
      << ap.Stderr();
  EXPECT_EQ(json::parse(CycleJobs(JobState::kWaiting)[0].payload)["repo"],
            std::filesystem::current_path().string());
  ASSERT_TRUE(ap.Signal(SIGINT));
  EXPECT_EQ(ap.Wait(kSlack), kExitOk) << ap.Stderr();
  EXPECT_FALSE(Record().has_value());
  EXPECT_EQ(Events("stopped").size(), 1u);
  auto fast = RunLanekeeper({"autopilot", "--redis", server_->url(), "--queue", queue_name_,
                             "--repo", repo_, "--interval", "500ms"});
  EXPECT_EQ(fast.exit_code, kExitUsage);
  EXPECT_EQ(fast.err, "lanekeeper: --interval must be at least 1s\n");
  AutopilotOptions o;
  EXPECT_EQ(o.interval, Millis(300'000));
  EXPECT_EQ(o.lease_ttl, Millis(15'000));
  EXPECT_EQ(o.lease_renew_every, Millis(5'000));
  EXPECT_EQ(o.owner_poll, Millis(2'000));
  EXPECT_EQ(o.concurrency, 1);
  EXPECT_EQ(o.drain_timeout, Millis(30'000));
}

TEST_F(AutopilotProcessTest, ABadCycleFileStopsItAtOnceNamingFileLineAndColumn) {
  std::string cycle = dir_ / "cycle.yaml";
  std::ofstream(cycle) << "steps:\n  - name: sync\n    command: [git, pull]\n    retries: 3\n";
  auto r = RunLanekeeper({"autopilot", "--redis", server_->url(), "--queue", queue_name_,
                          "--repo", repo_, "--cycle", cycle},
                         {}, kSlack);
  EXPECT_EQ(r.exit_code, kExitUsage);
  EXPECT_NE(r.err.find(cycle + ":4:5: steps[0].retries: unknown field"), std::string::npos)
      << r.err;
  EXPECT_TRUE(CycleJobs(JobState::kWaiting).empty());
  EXPECT_TRUE(records_->Events().empty());
}

}  // namespace
}  // namespace lk
