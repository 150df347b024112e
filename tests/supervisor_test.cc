// The supervisor as a real process against a real redis-server: ownership, fencing,
// restarts. Timings use short leases (--lease-ttl 3s) so failover fits in seconds; every
// bound below is the lease, the backoff or the drain under test plus kSlack, which covers
// the sanitizer pass (-O0 with ASan and UBSan, 2-5x slower).
//
// What never happens is proven from the record: the lifecycle events of the queue, read whole
// (QueueRecords::Events), checked by FirstSecondWorker; the /proc sampler is a second
// witness. What happens exactly once is counted by tests/helpers/recorded_job, which appends
// each run of a job to a file.
#include <gtest/gtest.h>
#include <signal.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <map>
#include <regex>
#include <sstream>

#include "controller/owner/owner_lease.h"
#include "tests/support/child_process.h"
#include "tests/support/proc_scan.h"
#include "tests/support/queue_records.h"
#include "tests/support/redis_server.h"
#include "tests/support/run_log.h"
#include "tests/support/temp_dir.h"
#include "tests/support/worker_timeline.h"
#include "worker/job_queue.h"

namespace lk {
namespace {

using namespace std::chrono_literals;
using testing::ChildProcess;
using testing::Eventually;
using testing::FindProcesses;
using testing::OneAtATime;

constexpr auto kLeaseTtl = 3s;
constexpr auto kLeaseRenew = 1s;
constexpr auto kStandbyPoll = 500ms;  // the supervisor's default --standby-poll
constexpr auto kSlack = 10s;

class SupervisorTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_TRUE(dir_.ok());
    auto server = testing::RedisServer::Start();
    ASSERT_TRUE(server.ok()) << server.status().message();
    server_ = std::move(server).value();
    // Unique per test and process: leftovers of one test never count in another.
    queue_name_ = std::string(::testing::UnitTest::GetInstance()->current_test_info()->name())
                      .substr(0, 40) + "-" + std::to_string(getpid());
    auto q = OpenJobQueue(server_->url(), queue_name_);
    ASSERT_TRUE(q.ok()) << q.status().message();
    queue_ = std::move(q).value();
    records_ = std::make_unique<testing::QueueRecords>(*queue_);
    // whoami: prints the pid of the worker that ran it (the command's parent).
    // slow: recorded, runs until the test creates the release file.
    // hog: the same, holding 300 MB meanwhile.
    const std::string recorded = testing::TestHelperBinary("recorded_job") + ", " + Runs().path();
    std::ofstream(dir_ / "handlers.yaml")
        << "handlers:\n"
        << "  whoami:\n    command: [sh, -c, 'echo $PPID']\n"
        << "  slow:\n    command: [" << recorded << ", --hold-until, " << Release() << "]\n"
        << "  hog:\n    command: [" << recorded << ", --rss-mb, '300', --hold-until, "
        << Release() << "]\n";
  }

  void TearDown() override {
    // Stop supervisors the way an operator would; then nothing of the test may outlive it
    // (an orphan of a SIGKILLed supervisor would retry a dead redis forever).
    for (auto& s : supervisors_) s->Signal(SIGTERM);
    for (auto& s : supervisors_) s->Wait(kSlack);
    supervisors_.clear();
    testing::KillProcessesOfThisTest();
  }

  // The supervisor's flags: these defaults, overridden or extended by extra.
  ChildProcess& StartSupervisor(std::map<std::string, std::string> extra = {}) {
    int n = static_cast<int>(supervisors_.size());
    std::map<std::string, std::string> flags = {
        {"--concurrency", "2"},
        {"--pid-file", dir_ / ("sup" + std::to_string(n) + ".pid")},
        {"--handlers", dir_ / "handlers.yaml"},
        {"--lease-ttl", "3s"},
        {"--lease-renew", "1s"},
        {"--drain-timeout", "30s"}};
    for (auto& [k, v] : extra) flags[k] = v;
    std::vector<std::string> argv = {testing::LanekeeperBinary(), "jobs", "supervisor",
                                     "--redis", server_->url(), "--queue", queue_name_};
    for (auto& [k, v] : flags) {
      argv.push_back(k);
      argv.push_back(v);
    }
    supervisors_.push_back(std::make_unique<ChildProcess>(argv));
    return *supervisors_.back();
  }

  std::optional<OwnerRecord> Owner() { return records_->Owner(); }
  std::vector<LifecycleEvent> Events(const std::string& type) { return records_->Events(type); }
  std::vector<pid_t> Workers() { return FindProcesses({"jobs", "work", "--queue", queue_name_}); }
  testing::RunLog Runs() const { return testing::RunLog(dir_ / "runs"); }
  std::string Release() const { return dir_ / "release"; }
  void ReleaseJobs() { std::ofstream(Release()) << "go\n"; }

  std::string Submit(const std::string& name, Millis lease = Millis(30'000)) {
    JobSpec spec;
    spec.name = name;
    spec.lease = lease;
    auto r = queue_->Enqueue(spec);
    EXPECT_TRUE(r.ok()) << r.status().message();
    return r.ok() ? r->id : "";
  }

  bool WaitCompleted(const std::string& id, std::chrono::milliseconds timeout) {
    return Eventually([&] { return records_->Get(id).state == JobState::kCompleted; }, timeout);
  }

  // The record of the queue has no second worker (see FirstSecondWorker).
  void ExpectOneWorkerAtATime(OneAtATime rule) {
    EXPECT_EQ(testing::FirstSecondWorker(records_->Events(), rule), "");
  }

  testing::TempDir dir_{"sup-test"};
  std::unique_ptr<testing::RedisServer> server_;
  std::string queue_name_;
  std::unique_ptr<JobQueue> queue_;
  std::unique_ptr<testing::QueueRecords> records_;
  std::vector<std::unique_ptr<ChildProcess>> supervisors_;
};

TEST_F(SupervisorTest, TakesTheLeaseStartsOneWorkerAndRunsJobs) {
  auto& sup = StartSupervisor();
  ASSERT_TRUE(Eventually([&] { return Owner().has_value(); }, kSlack)) << sup.Stderr();
  EXPECT_EQ(Owner()->role, "supervisor");
  EXPECT_EQ(Owner()->holder.substr(Owner()->holder.rfind(':') + 1), std::to_string(sup.pid()));
  std::string id = Submit("whoami");
  ASSERT_TRUE(WaitCompleted(id, kSlack)) << sup.Stderr();
  auto workers = Workers();
  ASSERT_EQ(workers.size(), 1u);
  EXPECT_EQ(std::stoi(records_->Get(id).result), workers[0]);
  EXPECT_EQ(testing::ChildPids(sup.pid()), workers);
  auto started = Events("worker_started");
  ASSERT_EQ(started.size(), 1u);
  EXPECT_EQ(started[0].fields["worker_pid"], std::to_string(workers[0]));
  EXPECT_EQ(started[0].fields["epoch"], std::to_string(Owner()->epoch));
  ExpectOneWorkerAtATime(OneAtATime::kStrict);
}

TEST_F(SupervisorTest, TenSupervisorsAtOnceElectOneOwnerNineStandByAndNeverRunTwoWorkers) {
  // The second witness watches from before the first launch.
  testing::ProcessSampler sampler({"jobs", "work", "--queue", queue_name_});
  for (int i = 0; i < 10; ++i) StartSupervisor();
  // Every one of them has tried for the lease: one took it, nine stand by.
  ASSERT_TRUE(Eventually([&] { return Events("standby").size() >= 9; }, kSlack));
  ASSERT_TRUE(Eventually([&] { return !Events("worker_started").empty(); }, kSlack));
  sampler.Stop();
  EXPECT_EQ(Events("lease_acquired").size(), 1u);
  EXPECT_EQ(Events("worker_started").size(), 1u);
  ExpectOneWorkerAtATime(OneAtATime::kStrict);
  EXPECT_GT(sampler.samples(), 0) << sampler.Describe();
  EXPECT_GT(sampler.samples_seeing_any(), 0) << sampler.Describe();
  EXPECT_EQ(sampler.most(), 1u) << sampler.Describe();
  int standby = 0, running = 0;
  ASSERT_TRUE(Eventually([&] {
    auto live = records_->Supervisors();
    standby = running = 0;
    for (const auto& s : live) {
      standby += s.state == "standby";
      running += s.state == "running";
    }
    return standby + running == 10;
  }, kSlack));
  EXPECT_EQ(running, 1);
  EXPECT_EQ(standby, 9);
}

TEST_F(SupervisorTest, AStandbyTakesOverAfterTheOwnersLeaseExpiresAndTheOrphanedWorkerIsFenced) {
  auto& first = StartSupervisor();
  ASSERT_TRUE(Eventually([&] { return Events("worker_started").size() == 1; }, kSlack))
      << first.Stderr();
  pid_t orphan = std::stoi(Events("worker_started")[0].fields["worker_pid"]);
  int64_t first_epoch = Owner()->epoch;
  auto& second = StartSupervisor();
  ASSERT_TRUE(Eventually([&] { return !Events("standby").empty(); }, kSlack));

  ASSERT_TRUE(first.Signal(SIGKILL));
  const int64_t killed_ms = NowUnixMillis();
  ASSERT_TRUE(Eventually([&] { return Events("lease_acquired").size() == 2; },
                         kLeaseTtl + kStandbyPoll + kSlack))
      << second.Stderr();
  auto taken = Events("lease_acquired")[1];
  EXPECT_EQ(taken.holder, Owner()->holder);
  EXPECT_TRUE(taken.holder.ends_with(":" + std::to_string(second.pid())));
  EXPECT_EQ(std::stoll(taken.fields["epoch"]), first_epoch + 1);
  // Not while the lease lived (renewed at most kLeaseRenew before the kill), and soon after.
  EXPECT_GE(taken.ts_ms - killed_ms,
            std::chrono::duration_cast<Millis>(kLeaseTtl - kLeaseRenew).count());
  EXPECT_LE(taken.ts_ms - killed_ms,
            std::chrono::duration_cast<Millis>(kLeaseTtl + kStandbyPoll + 2s).count());

  // The orphan claims nothing more and exits on its own (fenced: exit 13).
  ASSERT_TRUE(Eventually([&] { return !testing::ProcessAlive(orphan); }, kSlack));
  ASSERT_TRUE(Eventually([&] { return Events("worker_started").size() == 2; }, kSlack));
  pid_t successor = std::stoi(Events("worker_started")[1].fields["worker_pid"]);
  EXPECT_NE(successor, orphan);
  EXPECT_EQ(Workers(), std::vector<pid_t>{successor});
  std::vector<std::string> ids;
  for (int i = 0; i < 5; ++i) ids.push_back(Submit("whoami"));
  for (const auto& id : ids) {
    ASSERT_TRUE(WaitCompleted(id, kSlack));
    EXPECT_EQ(std::stoi(records_->Get(id).result), successor);
  }
  // The killed owner never logged its worker's exit: an orphan of the old epoch overlapped
  // the new owner's worker, fenced; never two of one epoch.
  ExpectOneWorkerAtATime(OneAtATime::kFencedOverlap);
}

TEST_F(SupervisorTest, AKilledWorkerIsRestartedAndItsInFlightJobIsRunAgainAfterItsLease) {
  auto& sup = StartSupervisor();
  ASSERT_TRUE(Eventually([&] { return Events("worker_started").size() == 1; }, kSlack))
      << sup.Stderr();
  pid_t worker = std::stoi(Events("worker_started")[0].fields["worker_pid"]);
  std::string id = Submit("slow", kMinLease);
  ASSERT_TRUE(Eventually([&] { return Runs().Started(id); }, kSlack)) << sup.Stderr();
  ASSERT_TRUE(testing::SignalProcess(worker, SIGKILL));
  ASSERT_TRUE(Eventually([&] { return Events("worker_started").size() == 2; }, kSlack))
      << sup.Stderr();
  // Reclaimed by the new worker once its lease expired: a second run, on the new worker.
  ASSERT_TRUE(Eventually([&] { return Runs().RunsOf(id).size() == 2; }, kMinLease + kSlack))
      << sup.Stderr();
  ReleaseJobs();
  ASSERT_TRUE(WaitCompleted(id, kSlack));
  Job job = records_->Get(id);
  EXPECT_EQ(job.stalls, 1);
  EXPECT_EQ(job.attempts, 2);
  auto runs = Runs().RunsOf(id);
  EXPECT_EQ(runs[0].parent, worker);
  EXPECT_EQ(runs[1].attempt, 2);
  EXPECT_EQ(std::to_string(runs[1].parent), Events("worker_started")[1].fields["worker_pid"]);
  EXPECT_EQ(Events("crash").size(), 1u);
  auto exits = Events("worker_exited");
  ASSERT_EQ(exits.size(), 1u);
  EXPECT_EQ(exits[0].fields["detail"], "killed by signal 9");
  ExpectOneWorkerAtATime(OneAtATime::kStrict);
}

TEST_F(SupervisorTest, AnRssBreachDrainsTheWorkerLettingItsJobFinishOnceAndNoCrashIsCounted) {
  auto& sup = StartSupervisor({{"--max-rss", "256"}});
  ASSERT_TRUE(Eventually([&] { return Events("worker_started").size() == 1; }, kSlack))
      << sup.Stderr();
  std::string id = Submit("hog");
  ASSERT_TRUE(Eventually([&] { return !Events("rss_restart").empty(); }, kSlack))
      << sup.Stderr();
  // Draining: the job still runs on the old worker (the breach may come while it is still
  // touching its memory, before it records its start), and no second worker has started.
  ASSERT_TRUE(Eventually([&] { return Runs().Started(id); }, kSlack));
  EXPECT_FALSE(Runs().Ended(id));
  EXPECT_EQ(Events("worker_started").size(), 1u);
  ReleaseJobs();
  ASSERT_TRUE(WaitCompleted(id, kSlack)) << sup.Stderr();
  ASSERT_TRUE(Eventually([&] { return Events("worker_started").size() == 2; }, kSlack))
      << sup.Stderr();
  ExpectOneWorkerAtATime(OneAtATime::kStrict);
  Job job = records_->Get(id);
  EXPECT_EQ(job.attempts, 1);
  EXPECT_EQ(job.stalls, 0);
  EXPECT_EQ(Runs().EachRanOnce({id}), "");
  EXPECT_TRUE(Events("crash").empty());
  auto exits = Events("worker_exited");
  ASSERT_EQ(exits.size(), 1u);
  EXPECT_EQ(exits[0].fields["reason"], "max_rss");
}

// Waits on purpose at the end: that a degraded supervisor does not restart the worker at
// its next backoff step can only be seen by letting that step pass.
TEST_F(SupervisorTest, ACrashLoopBacksOffLongerEachTimeAndOnceDegradedWaitsPastTheNextStep) {
  // A handlers file the worker refuses: every worker start exits 2 at once.
  std::ofstream(dir_ / "handlers.yaml") << "handlers: [not, a, map]\n";
  auto& sup = StartSupervisor({{"--max-crashes", "2"}});
  ASSERT_TRUE(Eventually([&] { return !Events("degraded").empty(); }, 3s + kSlack))
      << sup.Stderr();
  auto events = records_->Events();
  // Backoff 1 s, then 2 s (each x0.9..1.1), measured between what happened: a worker's exit
  // and the next start, and start to start.
  auto gaps = testing::ExitToStartGaps(events);
  auto starts = testing::StartToStartGaps(events);
  ASSERT_EQ(gaps.size(), 2u) << testing::DescribeEvents(events);
  ASSERT_EQ(starts.size(), 2u) << testing::DescribeEvents(events);
  const int64_t tick = 250, slack = 1000;  // the supervisor's loop tick, and load
  EXPECT_GE(gaps[0], 900) << testing::DescribeEvents(events);
  EXPECT_LE(gaps[0], 1100 + tick + slack) << testing::DescribeEvents(events);
  EXPECT_GE(gaps[1], 1800) << testing::DescribeEvents(events);
  EXPECT_LE(gaps[1], 2200 + tick + slack) << testing::DescribeEvents(events);
  EXPECT_GE(starts[0], 900);
  EXPECT_GE(starts[1], 1800);
  EXPECT_GT(starts[1], starts[0]);
  // The third crash is past --max-crashes: degraded, and the next start waits the maximum
  // backoff (60 s) instead of the next step (4 s x1.1). Let that step pass.
  ASSERT_EQ(Events("worker_exited").size(), 3u);
  // docs/production.md's details: crash {code, detail, backoff_ms, consecutive}, degraded
  // {crashes, max_crashes}.
  auto crashes = Events("crash");
  ASSERT_EQ(crashes.size(), 3u);
  for (size_t i = 0; i < crashes.size(); ++i) {
    EXPECT_EQ(crashes[i].fields["code"], "2");
    EXPECT_FALSE(crashes[i].fields["detail"].empty());
    EXPECT_EQ(crashes[i].fields["consecutive"], std::to_string(i + 1));
    EXPECT_GT(std::stoll(crashes[i].fields["backoff_ms"]), 0);
  }
  auto degraded = Events("degraded");
  ASSERT_EQ(degraded.size(), 1u);
  EXPECT_EQ(degraded[0].fields["crashes"], "3");
  EXPECT_EQ(degraded[0].fields["max_crashes"], "2");
  const int64_t third_exit = Events("worker_exited")[2].ts_ms;
  const int64_t next_step = 4400 + tick + slack;
  ASSERT_TRUE(Eventually([&] { return NowUnixMillis() - third_exit >= next_step; },
                         Millis(next_step) + kSlack));
  EXPECT_EQ(Events("worker_started").size(), 3u) << testing::DescribeEvents(records_->Events());
  ASSERT_TRUE(Eventually([&] {
    auto live = records_->Supervisors();
    return live.size() == 1 && live[0].degraded;
  }, kSlack));
  ExpectOneWorkerAtATime(OneAtATime::kStrict);
}

// --restart-backoff-max caps the doubling: 1 s, then the cap (x0.9..1.1) every time after.
TEST_F(SupervisorTest, RestartBackoffMaxCapsTheWaitBetweenCrashes) {
  std::ofstream(dir_ / "handlers.yaml") << "handlers: [not, a, map]\n";
  auto& sup = StartSupervisor({{"--max-crashes", "100"}, {"--restart-backoff-max", "1500ms"}});
  ASSERT_TRUE(Eventually([&] { return Events("crash").size() >= 4; }, 8s + kSlack)) << sup.Stderr();
  auto crashes = Events("crash");
  std::vector<int64_t> backoff;
  for (auto& c : crashes) backoff.push_back(std::stoll(c.fields["backoff_ms"]));
  EXPECT_GE(backoff[0], 900);
  EXPECT_LE(backoff[0], 1100);
  for (size_t i = 1; i < 4; ++i) {
    EXPECT_GE(backoff[i], 1350) << i;  // without the cap: 2 s, 4 s, 8 s (x0.9..1.1)
    EXPECT_LE(backoff[i], 1650) << i;
  }
  EXPECT_TRUE(Events("degraded").empty());
}

TEST_F(SupervisorTest, ARestartBackoffMaxBelow100msIsAUsageError) {
  auto r = testing::RunLanekeeper({"--redis", server_->url(), "--queue", queue_name_, "jobs",
                                   "supervisor", "--restart-backoff-max", "10ms"});
  EXPECT_EQ(r.exit_code, 2) << r.err;
  EXPECT_NE(r.err.find("--restart-backoff-max must be at least 100ms"), std::string::npos) << r.err;
}

TEST_F(SupervisorTest, SigtermDrainsTheRunningJobHoldingTheLeaseThenReleasesItAndExitsZero) {
  auto& sup = StartSupervisor();
  ASSERT_TRUE(Eventually([&] { return Events("worker_started").size() == 1; }, kSlack))
      << sup.Stderr();
  pid_t worker = std::stoi(Events("worker_started")[0].fields["worker_pid"]);
  std::string id = Submit("slow");
  ASSERT_TRUE(Eventually([&] { return Runs().Started(id); }, kSlack)) << sup.Stderr();
  ASSERT_TRUE(sup.Signal(SIGTERM));
  ASSERT_TRUE(sup.WaitForOutput("draining worker " + std::to_string(worker), kSlack))
      << sup.Stderr();
  // Draining: the job runs on, the worker lives, and the lease is still held so that no
  // standby could start a second worker meanwhile.
  EXPECT_TRUE(sup.Running());
  EXPECT_TRUE(testing::ProcessAlive(worker));
  EXPECT_FALSE(Runs().Ended(id));
  ASSERT_TRUE(Owner().has_value());
  EXPECT_TRUE(Owner()->holder.ends_with(":" + std::to_string(sup.pid())));
  ReleaseJobs();
  auto code = sup.Wait(kSlack);
  ASSERT_TRUE(code.has_value()) << sup.Stderr();
  EXPECT_EQ(*code, 0);
  Job job = records_->Get(id);
  EXPECT_EQ(job.state, JobState::kCompleted);
  EXPECT_EQ(job.attempts, 1);
  EXPECT_EQ(Runs().EachRanOnce({id}), "");
  EXPECT_TRUE(Workers().empty());
  EXPECT_FALSE(Owner().has_value());
  EXPECT_FALSE(std::filesystem::exists(dir_ / "sup0.pid"));
  EXPECT_EQ(Events("stopped").size(), 1u);
  auto exits = Events("worker_exited");
  ASSERT_EQ(exits.size(), 1u);
  EXPECT_EQ(exits[0].fields["reason"], "stopped");
  ExpectOneWorkerAtATime(OneAtATime::kStrict);
}

TEST_F(SupervisorTest, ASecondSupervisorOnTheSamePidFileExitsTwoNamingTheHolder) {
  auto& first = StartSupervisor();
  ASSERT_TRUE(Eventually([&] { return std::filesystem::exists(dir_ / "sup0.pid"); }, kSlack));
  auto r = testing::RunLanekeeper({"jobs", "supervisor", "--redis", server_->url(), "--queue",
                                   queue_name_, "--pid-file", dir_ / "sup0.pid"});
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_NE(r.err.find("held by running process " + std::to_string(first.pid())),
            std::string::npos) << r.err;
}

TEST_F(SupervisorTest, StopReturnsOnlyOnceTheWorkerIsGone) {
  StartSupervisor();
  ASSERT_TRUE(Eventually([&] {
    auto live = records_->Supervisors();
    return live.size() == 1 && live[0].worker_pid > 0;
  }, kSlack));
  pid_t worker = records_->Supervisors()[0].worker_pid;
  auto r = testing::RunLanekeeper({"jobs", "supervisor", "stop", "--redis", server_->url(),
                                   "--queue", queue_name_, "--pid-file", dir_ / "sup0.pid"});
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_FALSE(testing::ProcessAlive(worker));
  EXPECT_NE(r.out.find("its worker " + std::to_string(worker)), std::string::npos) << r.out;
  auto status = testing::RunLanekeeper({"jobs", "supervisor", "status", "--redis",
                                        server_->url(), "--queue", queue_name_, "--pid-file",
                                        dir_ / "sup0.pid"});
  EXPECT_EQ(status.exit_code, 3);
  EXPECT_NE(status.out.find("not running"), std::string::npos);
}

TEST_F(SupervisorTest, AWedgedWorkerIsDrainedAndRestartedWithoutCountingACrash) {
  auto& sup = StartSupervisor({{"--wedge-time", "1s"}, {"--wedge-check-every", "300ms"}});
  ASSERT_TRUE(Eventually([&] { return Events("worker_started").size() == 1; }, kSlack))
      << sup.Stderr();
  pid_t worker = std::stoi(Events("worker_started")[0].fields["worker_pid"]);
  ASSERT_TRUE(testing::SignalProcess(worker, SIGSTOP));  // alive but doing nothing: the wedge
  std::vector<std::string> ids;
  for (int i = 0; i < 3; ++i) ids.push_back(Submit("whoami"));
  ASSERT_TRUE(Eventually([&] { return !Events("wedge_restart").empty(); }, kSlack))
      << sup.Stderr();
  ASSERT_TRUE(testing::SignalProcess(worker, SIGCONT));
  ASSERT_TRUE(Eventually([&] { return Events("worker_started").size() == 2; }, kSlack))
      << sup.Stderr();
  pid_t successor = std::stoi(Events("worker_started")[1].fields["worker_pid"]);
  // Each job runs once: on the successor, or on the old worker if, woken, it claimed before
  // it read the SIGTERM that drains it.
  for (const auto& id : ids) {
    ASSERT_TRUE(WaitCompleted(id, kSlack));
    Job job = records_->Get(id);
    EXPECT_EQ(job.attempts, 1);
    EXPECT_EQ(job.stalls, 0);
    pid_t ran_on = std::stoi(job.result);
    EXPECT_TRUE(ran_on == successor || ran_on == worker) << ran_on;
  }
  EXPECT_TRUE(Events("crash").empty());
  auto exits = Events("worker_exited");
  ASSERT_EQ(exits.size(), 1u);
  EXPECT_EQ(exits[0].fields["reason"], "wedged");
  ExpectOneWorkerAtATime(OneAtATime::kStrict);
}

// Someone else takes the queue while the supervisor's worker runs a job (as after a long
// pause of the supervisor): at its next renewal the supervisor sees its epoch moved on,
// drains the worker (the running job finishes, once) and waits as standby; once the other
// owner lets go, it takes the queue back under a new epoch.
TEST_F(SupervisorTest, ALostLeaseDrainsTheWorkerAndTheSupervisorWaitsAsStandbyThenTakesOver) {
  auto& sup = StartSupervisor();
  ASSERT_TRUE(Eventually([&] { return Events("worker_started").size() == 1; }, kSlack))
      << sup.Stderr();
  pid_t worker = std::stoi(Events("worker_started")[0].fields["worker_pid"]);
  const int64_t first_epoch = Owner()->epoch;
  std::string id = Submit("slow");
  ASSERT_TRUE(Eventually([&] { return Runs().Started(id); }, kSlack)) << sup.Stderr();

  ASSERT_TRUE(queue_->connection().Command({"DEL", JobQueue::KeyPrefix(queue_name_) + "owner"}).ok());
  OwnerLease other(queue_->connection(), queue_name_, OwnerRole::kSupervisor, "elsewhere:1", 1, 0,
                   Millis(60'000));
  auto taken = other.TryAcquire();
  ASSERT_TRUE(taken.ok() && taken->acquired);

  // At its next renewal (every kLeaseRenew) it notices, and drains.
  ASSERT_TRUE(Eventually([&] { return !Events("lease_lost").empty(); }, kLeaseRenew + kSlack))
      << sup.Stderr();
  auto lost = Events("lease_lost");
  ASSERT_EQ(lost.size(), 1u);
  EXPECT_EQ(lost[0].role, "supervisor");
  EXPECT_EQ(lost[0].fields["epoch"], std::to_string(first_epoch));
  // Draining: the job it was running goes on, and no second worker starts.
  EXPECT_TRUE(testing::ProcessAlive(worker));
  EXPECT_FALSE(Runs().Ended(id));
  ReleaseJobs();
  ASSERT_TRUE(Eventually([&] { return !testing::ProcessAlive(worker); }, kSlack)) << sup.Stderr();
  // Its worker gone, it looks at the lease again: someone else's, so it waits.
  ASSERT_TRUE(Eventually([&] { return !Events("standby").empty(); }, kSlack)) << sup.Stderr();
  auto standby = Events("standby");
  EXPECT_EQ(standby.back().fields["owner"], "elsewhere:1");
  EXPECT_EQ(standby.back().fields["owner_role"], "supervisor");
  EXPECT_EQ(standby.back().fields["owner_epoch"], std::to_string(other.epoch()));
  ASSERT_TRUE(WaitCompleted(id, kSlack));
  EXPECT_EQ(records_->Get(id).attempts, 1);
  EXPECT_EQ(Runs().EachRanOnce({id}), "");
  auto exits = Events("worker_exited");
  ASSERT_EQ(exits.size(), 1u);
  // Whichever saw it first: the worker at its next claim (fenced), or the supervisor at its
  // next renewal (it drains the worker).
  EXPECT_TRUE(exits[0].fields["reason"] == "lease lost" || exits[0].fields["reason"] == "fenced")
      << exits[0].fields["reason"];
  EXPECT_EQ(Events("worker_started").size(), 1u);
  EXPECT_TRUE(Events("crash").empty());
  ASSERT_TRUE(Eventually([&] {
    auto live = records_->Supervisors();
    return live.size() == 1 && live[0].state == "standby" &&
           live[0].worker_restarts["lease_lost"] == 1;
  }, kSlack));

  // The other owner lets go: the supervisor takes the queue back, under a new epoch.
  ASSERT_TRUE(other.Release().ok());
  ASSERT_TRUE(Eventually([&] { return Events("worker_started").size() == 2; },
                         kStandbyPoll + kSlack))
      << sup.Stderr();
  EXPECT_EQ(Events("lease_acquired").size(), 2u);
  EXPECT_EQ(Events("worker_started")[1].fields["epoch"], std::to_string(other.epoch() + 1));
  // Every event carries its type, role, holder and time (docs/production.md).
  for (const auto& e : records_->Events()) {
    EXPECT_EQ(e.role, "supervisor") << e.type;
    EXPECT_EQ(e.holder, Owner()->holder) << e.type;
    EXPECT_GT(e.ts_ms, 0) << e.type;
  }
  ExpectOneWorkerAtATime(OneAtATime::kStrict);
}

// Each breach drains and restarts the worker (not a crash); the fourth within 10 minutes is
// a restart loop, which the supervisor records and doctor warns about.
TEST_F(SupervisorTest, MoreThanThreeRssRestartsWithinTenMinutesAreARestartLoopDoctorWarnsAbout) {
  // spike: recorded, holds 300 MB for a second (four RSS samples), then finishes.
  std::ofstream(dir_ / "handlers.yaml")
      << "handlers:\n  spike:\n    command: [" << testing::TestHelperBinary("recorded_job")
      << ", " << Runs().path() << ", --rss-mb, '300', --ms, '1000']\n";
  auto& sup = StartSupervisor({{"--max-rss", "256"}, {"--concurrency", "1"}});
  ASSERT_TRUE(Eventually([&] { return Events("worker_started").size() == 1; }, kSlack))
      << sup.Stderr();
  std::vector<std::string> ids;
  for (int i = 0; i < 4; ++i) ids.push_back(Submit("spike"));
  for (const auto& id : ids) ASSERT_TRUE(WaitCompleted(id, 4 * kSlack)) << sup.Stderr();
  ASSERT_TRUE(Eventually([&] { return !Events("rss_restart_loop").empty(); }, kSlack))
      << sup.Stderr();
  auto restarts = Events("rss_restart");
  EXPECT_GE(restarts.size(), 4u);
  for (auto& e : restarts) {
    EXPECT_EQ(e.fields["max_rss_mb"], "256");
    // The supervisor's sample names the worker and its size; the worker that saw it first
    // and exited 12 itself says so.
    EXPECT_TRUE(e.fields.count("worker_pid") ? std::stoi(e.fields["rss_mb"]) > 256
                                             : e.fields["by"] == "worker")
        << testing::DescribeEvents(records_->Events());
  }
  auto loop = Events("rss_restart_loop");
  ASSERT_EQ(loop.size(), 1u) << testing::DescribeEvents(records_->Events());
  EXPECT_EQ(loop[0].fields["restarts"], "4");
  EXPECT_EQ(loop[0].fields["window"], "10m");
  EXPECT_TRUE(Events("crash").empty());
  for (auto& e : Events("worker_exited")) EXPECT_EQ(e.fields["reason"], "max_rss");
  EXPECT_EQ(Runs().EachRanOnce(ids), "");
  ExpectOneWorkerAtATime(OneAtATime::kStrict);

  auto doctor = testing::RunLanekeeper({"doctor", "--redis", server_->url(), "--queue",
                                        queue_name_}, {}, 30s);
  std::string line;
  std::istringstream out(doctor.out);
  for (std::string l; std::getline(out, l);) {
    if (l.starts_with("supervisor: ")) line = l;
  }
  EXPECT_TRUE(std::regex_match(
      line, std::regex("supervisor: warn  running=true pid=" + std::to_string(sup.pid()) +
                       " crashes_24h=0 rss_restarts_24h=\\d+: the worker passed --max-rss more "
                       "than 3 times within 10m \\(rss_restart_loop\\); raise --max-rss or find "
                       "what grows")))
      << doctor.out;
}

// Waits on purpose at the end: that a fourth wedge is not restarted can only be seen by
// letting the checks that would restart it pass.
TEST_F(SupervisorTest, AWedgedQueueIsRestartedAtMostThreeTimesWithinThirtyMinutes) {
  constexpr Millis kWedgeTime{1000}, kCheckEvery{200};
  auto& sup = StartSupervisor({{"--wedge-time", "1s"}, {"--wedge-check-every", "200ms"},
                               {"--drain-timeout", "1s"}});
  std::vector<std::string> waiting;
  for (size_t round = 1; round <= 4; ++round) {
    ASSERT_TRUE(Eventually([&] { return Events("worker_started").size() == round; }, kSlack))
        << sup.Stderr();
    pid_t worker = std::stoi(Events("worker_started")[round - 1].fields["worker_pid"]);
    // Alive but claiming nothing, with work waiting: the wedge. The job is submitted only
    // once the worker is stopped, so that it cannot run.
    ASSERT_TRUE(testing::SignalProcess(worker, SIGSTOP));
    waiting.push_back(Submit("whoami"));
    if (round == 4) break;
    ASSERT_TRUE(Eventually([&] { return Events("wedge_restart").size() == round; },
                           kWedgeTime + 4 * kCheckEvery + kSlack))
        << sup.Stderr();
    auto e = Events("wedge_restart").back();
    EXPECT_EQ(e.fields["worker_pid"], std::to_string(worker));
    EXPECT_EQ(e.fields["waiting"], "1");
    // Cancelled before the next worker starts (the stopped one is killed after its 1 s
    // drain), so that the next worker finds nothing to run either.
    ASSERT_TRUE(queue_->Cancel(waiting.back()).ok());
  }
  // The fourth wedge: its checks pass, and it is not restarted.
  const auto until = std::chrono::steady_clock::now() + kWedgeTime + 8 * kCheckEvery;
  ASSERT_TRUE(Eventually([&] { return std::chrono::steady_clock::now() >= until; },
                         kWedgeTime + 8 * kCheckEvery + kSlack));
  EXPECT_EQ(Events("wedge_restart").size(), 3u) << testing::DescribeEvents(records_->Events());
  EXPECT_EQ(Events("worker_started").size(), 4u);
  EXPECT_TRUE(Events("crash").empty());
  for (auto& e : Events("worker_exited")) EXPECT_EQ(e.fields["reason"], "wedged");
  EXPECT_TRUE(sup.Running());
  ExpectOneWorkerAtATime(OneAtATime::kStrict);
  // Nobody restarts anything now, and doctor says the queue is wedged.
  auto doctor = testing::RunLanekeeper({"doctor", "--redis", server_->url(), "--queue",
                                        queue_name_, "--wedge-time", "1s"}, {}, 30s);
  EXPECT_NE(doctor.out.find("wedged_queue: fail  queue " + queue_name_ + " is wedged: 1 job "
                            "waiting, none active, nothing finished for "),
            std::string::npos)
      << doctor.out;
  std::vector<pid_t> stopped = Workers();
  for (pid_t p : stopped) testing::SignalProcess(p, SIGCONT);
}

// A supervisor started before its Redis waits for it instead of exiting (systemd would
// otherwise restart it in a loop at boot), and one stopped meanwhile exits 0. Waits on
// purpose: the outage must outlast several of its attempts (100 ms doubling).
TEST_F(SupervisorTest, ItWaitsForRedisAtStartAndTakesTheQueueOnceRedisAnswers) {
  server_->Kill();
  const auto outage_until = std::chrono::steady_clock::now() + 1500ms;
  auto& sup = StartSupervisor();
  auto& stopped = StartSupervisor();
  ASSERT_TRUE(sup.WaitForOutput("cannot connect to Redis at " +
                                    ParseRedisUrl(server_->url())->Redacted() + ": ",
                                kSlack))
      << sup.Stderr();
  ASSERT_TRUE(stopped.WaitForOutput("; retrying", kSlack)) << stopped.Stderr();
  EXPECT_TRUE(sup.Running());
  ASSERT_TRUE(stopped.Signal(SIGTERM));
  EXPECT_EQ(stopped.Wait(kSlack), 0) << stopped.Stderr();
  ASSERT_TRUE(Eventually([&] { return std::chrono::steady_clock::now() >= outage_until; },
                         1500ms + kSlack));
  EXPECT_TRUE(sup.Running()) << sup.Stderr();

  ASSERT_TRUE(server_->Restart().ok());
  ASSERT_TRUE(queue_->connection().Reconnect().ok());
  // Its retries back off to at most 5 s.
  ASSERT_TRUE(Eventually([&] { return Events("worker_started").size() == 1; }, 5s + kSlack))
      << sup.Stderr();
  EXPECT_NE(sup.Stderr().find("Redis at " + ParseRedisUrl(server_->url())->Redacted() +
                              " is back"),
            std::string::npos)
      << sup.Stderr();
  EXPECT_TRUE(Owner()->holder.ends_with(":" + std::to_string(sup.pid())));
  auto started = Events("started");
  ASSERT_EQ(started.size(), 1u);
  EXPECT_EQ(started[0].fields["pid"], std::to_string(sup.pid()));
  EXPECT_EQ(started[0].fields["concurrency"], "2");
  EXPECT_EQ(started[0].fields["max_rss_mb"], "0");
  std::string id = Submit("whoami");
  ASSERT_TRUE(WaitCompleted(id, kSlack)) << sup.Stderr();
  ExpectOneWorkerAtATime(OneAtATime::kStrict);
}

TEST(SupervisorFlags, AMalformedRedisUrlExitsTwoNamingIt) {
  testing::TempDir dir("sup-flags");
  ASSERT_TRUE(dir.ok());
  auto r = testing::RunLanekeeper(
      {"jobs", "supervisor", "--redis", "http://x", "--pid-file", dir / "sup.pid"});
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_NE(r.err.find("bad Redis URL 'http://x'"), std::string::npos) << r.err;
}

}  // namespace
}  // namespace lk
