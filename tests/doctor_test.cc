// `lanekeeper doctor` against a real redis-server, with real supervisors, autopilots and
// workers where the situation can be produced for real; the few states that take hours to
// reach (a stale autopilot, two epochs' workers at once) are written through the same APIs
// the processes use, and where age matters it is backdated in Redis (a job's created_ms, a
// zset's scores) instead of slept past.
#include <cpprest/http_listener.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <unistd.h>

#include <filesystem>
#include <nlohmann/json.hpp>
#include <regex>
#include <sstream>

#include "controller/owner/autopilot_record.h"
#include "controller/owner/owner_lease.h"
#include "controller/owner/supervisor_status.h"
#include "tests/support/child_process.h"
#include "tests/support/loopback_port.h"
#include "tests/support/queue_records.h"
#include "tests/support/queue_under_test.h"
#include "tests/support/redis_server.h"
#include "tests/support/temp_dir.h"
#include "tests/support/worker_timeline.h"
#include "worker/job_queue.h"
#include "worker/worker_registry.h"

namespace lk {
namespace {

using namespace std::chrono_literals;
using testing::ChildProcess;
using testing::CommandResult;
using testing::Eventually;

testing::RedisServerOptions Aof(const std::string& extra_args = "") {
  testing::RedisServerOptions o;
  o.appendonly = true;
  o.extra_args = extra_args;
  return o;
}
testing::RedisServerOptions NoAof(const std::string& extra_args) {
  testing::RedisServerOptions o;
  o.extra_args = extra_args;
  return o;
}
// A worker as another host's process would register it ("host:pid").
WorkerInfo Worker(const std::string& id, int64_t epoch) {
  WorkerInfo w;
  w.id = id;
  w.host = id.substr(0, id.find(':'));
  w.pid = std::stoll(id.substr(id.find(':') + 1));
  w.epoch = epoch;
  return w;
}
AutopilotRecord Autopilot(int64_t interval_ms, int64_t last_dispatch_ms, int64_t updated_ms) {
  AutopilotRecord r;
  r.holder = "host:7";
  r.repo = "/srv/kb";
  r.mode = "dispatch-only";
  r.interval_ms = interval_ms;
  r.last_dispatch_ms = last_dispatch_ms;
  r.updated_ms = updated_ms;
  return r;
}

class DoctorTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_TRUE(temp_.ok());
    dir_ = temp_.path();
    ASSERT_TRUE(std::filesystem::create_directory(dir_ + "/repo"));
    queue_name_ = "dq-" +
                  std::string(::testing::UnitTest::GetInstance()->current_test_info()->name())
                      .substr(0, 30) + "-" + std::to_string(getpid());
  }

  void TearDown() override {
    // Supervisors and autopilots drain their workers on SIGTERM; whatever is left behind
    // (an orphan, an unmanaged worker) is killed with the test's other processes.
    for (auto& p : processes_) p->Signal(SIGTERM);
    for (auto& p : processes_) p->Wait(15s);
    // Whatever the test made of the owners, its record never shows two workers at once.
    if (!processes_.empty() && records_) {
      EXPECT_EQ(testing::FirstSecondWorker(records_->Events(), testing::OneAtATime::kStrict,
                                           /*allow_none=*/true),
                "");
    }
    processes_.clear();
    testing::KillProcessesOfThisTest();
  }

  void StartRedis(const testing::RedisServerOptions& options = {}) {
    auto server = testing::RedisServer::Start(options);
    ASSERT_TRUE(server.ok()) << server.status().message();
    server_ = std::move(server).value();
    auto q = OpenJobQueue(server_->url(), queue_name_);
    ASSERT_TRUE(q.ok()) << q.status().message();
    queue_ = std::move(q).value();
    records_ = std::make_unique<testing::QueueRecords>(*queue_);
  }
  RedisConnection& conn() { return queue_->connection(); }
  // Sets score of member in the queue's zset key (active: a lease deadline; completed: when
  // it finished): how the tests make time pass.
  void Backdate(const std::string& key, const std::string& member, int64_t score_ms) {
    auto r = conn().Command({"ZADD", JobQueue::KeyPrefix(queue_name_) + key, "XX", "CH",
                             std::to_string(score_ms), member});
    ASSERT_TRUE(r.ok()) << r.status().message();
    ASSERT_EQ(r->AsInt(), 1) << key << " " << member << ": " << r->str;
  }
  void BackdateCreated(const std::string& id, int64_t created_ms) {
    auto r = conn().Command({"HSET", JobQueue::KeyPrefix(queue_name_) + "job:" + id,
                             "created_ms", std::to_string(created_ms)});
    ASSERT_TRUE(r.ok() && !r->is_error()) << (r.ok() ? r->str : r.status().message());
  }

  CommandResult Doctor(std::vector<std::string> extra = {}) {
    std::vector<std::string> args = {"doctor", "--redis", server_->url(), "--queue", queue_name_};
    args.insert(args.end(), extra.begin(), extra.end());
    return testing::RunLanekeeper(args, {}, 30s);
  }

  // The line doctor printed for check, without the trailing newline; empty when absent.
  static std::string Line(const CommandResult& r, const std::string& check) {
    std::istringstream in(r.out);
    for (std::string line; std::getline(in, line);) {
      if (line.rfind(check + ": ", 0) == 0) return line;
    }
    return "";
  }

  ChildProcess& Start(std::vector<std::string> args) {
    args.insert(args.begin(), testing::LanekeeperBinary());
    processes_.push_back(std::make_unique<ChildProcess>(args));
    return *processes_.back();
  }
  ChildProcess& StartSupervisor(std::vector<std::string> extra = {}) {
    std::vector<std::string> args = {"jobs", "supervisor", "--redis", server_->url(),
                                     "--queue", queue_name_, "--concurrency", "2",
                                     "--max-rss", "512",
                                     "--pid-file", dir_ + "/sup" +
                                         std::to_string(processes_.size()) + ".pid",
                                     "--drain-timeout", "5s"};
    args.insert(args.end(), extra.begin(), extra.end());
    return Start(args);
  }
  ChildProcess& StartAutopilot(std::vector<std::string> extra = {}) {
    std::vector<std::string> args = {"autopilot", "--redis", server_->url(), "--queue",
                                     queue_name_, "--repo", dir_ + "/repo", "--interval", "2s",
                                     "--drain-timeout", "5s"};
    args.insert(args.end(), extra.begin(), extra.end());
    return Start(args);
  }

  std::string Submit(const std::string& name, int max_attempts = 3) {
    JobSpec spec;
    spec.name = name;
    spec.max_attempts = max_attempts;
    auto r = queue_->Enqueue(spec);
    EXPECT_TRUE(r.ok()) << r.status().message();
    return r.ok() ? r->id : "";
  }
  bool WaitState(const std::string& id, JobState state, std::chrono::milliseconds timeout) {
    return Eventually([&] {
      auto j = queue_->Get(id);
      return j.ok() && j->state == state;
    }, timeout);
  }
  // Plays a worker by hand: claims one job (unfenced) and records outcome for it.
  void ClaimAndFinish(bool success, std::string* id = nullptr) {
    std::string ran = testing::RunNextJobByHand(*queue_, success);
    ASSERT_FALSE(ran.empty());
    if (id) *id = ran;
  }

  std::optional<OwnerRecord> Owner() { return records_->Owner(); }
  std::vector<WorkerInfo> LiveWorkers() { return records_->LiveWorkers(); }
  std::vector<SupervisorStatus> Supervisors() { return records_->Supervisors(); }
  std::string Host() {
    char host[256] = {0};
    gethostname(host, sizeof(host) - 1);
    return host;
  }

  testing::TempDir temp_{"doctor-test"};
  std::string dir_;
  std::string queue_name_;
  std::unique_ptr<testing::RedisServer> server_;
  std::unique_ptr<JobQueue> queue_;
  std::unique_ptr<testing::QueueRecords> records_;
  std::vector<std::unique_ptr<ChildProcess>> processes_;
};

// --- redis ---

TEST_F(DoctorTest, RedisWithoutPersistenceWarnsThatJobsWouldBeLost) {
  StartRedis();  // the test server runs with save "" and appendonly no
  auto r = Doctor();
  EXPECT_EQ(Line(r, "redis"),
            "redis: warn  neither AOF nor RDB persistence is on: jobs would be lost if Redis "
            "restarts; set appendonly yes")
      << r.out << r.err;
}

TEST_F(DoctorTest, RedisWithAofIsOkAndNamesVersionAndUrl) {
  StartRedis(Aof());
  auto r = Doctor();
  std::regex want("redis: ok  Redis \\d+\\.\\d+\\.\\d+ at " +
                  std::regex_replace(server_->url(), std::regex("[/.:]"), "\\$&") + ", AOF on");
  EXPECT_TRUE(std::regex_match(Line(r, "redis"), want)) << r.out;
}

TEST_F(DoctorTest, RedisWithRdbSnapshotsIsOk) {
  StartRedis(NoAof("--save 3600 1"));
  auto r = Doctor();
  EXPECT_TRUE(Line(r, "redis").starts_with("redis: ok  Redis ")) << r.out;
  EXPECT_TRUE(Line(r, "redis").ends_with(", RDB snapshots on")) << r.out;
}

TEST_F(DoctorTest, RedisThatMayEvictJobKeysWarns) {
  StartRedis(Aof("--maxmemory 100mb --maxmemory-policy allkeys-lru"));
  auto r = Doctor();
  EXPECT_EQ(Line(r, "redis"),
            "redis: warn  maxmemory-policy is allkeys-lru with maxmemory 100.00M: Redis may "
            "evict job keys when full; set maxmemory-policy noeviction")
      << r.out;
}

TEST_F(DoctorTest, UnreachableRedisFailsAloneAndSaysTheOtherChecksWereSkipped) {
  auto nothing = testing::LoopbackPort::Refusing();  // bound, never listening
  ASSERT_TRUE(nothing.ok()) << nothing.status().message();
  std::string url = "redis://" + (*nothing)->address() + "/0";
  auto r = testing::RunLanekeeper({"doctor", "--redis", url, "--queue", "q"}, {}, 30s);
  EXPECT_EQ(r.exit_code, 2);
  std::regex want("redis: fail  cannot connect to Redis at " +
                  std::regex_replace(url, std::regex("[/.:]"), "\\$&") +
                  ": .*; the other checks need Redis and were skipped\n");
  EXPECT_TRUE(std::regex_match(r.out, want)) << r.out;
}

// --- worker_owner, supervisor ---

TEST_F(DoctorTest, NoWorkerOwnerWithWaitingJobsFailsWithExitCode2) {
  StartRedis(Aof());
  for (int i = 0; i < 3; ++i) Submit("noop");
  auto r = Doctor();
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_EQ(Line(r, "worker_owner"), "worker_owner: fail  no worker owner for queue " +
                                         queue_name_ + ": 3 jobs waiting will not run")
      << r.out;
  EXPECT_EQ(Line(r, "supervisor"), "supervisor: fail  supervisor not running") << r.out;
}

TEST_F(DoctorTest, NoWorkerOwnerAndNothingWaitingOnlyWarns) {
  StartRedis(Aof());
  auto r = Doctor();
  EXPECT_EQ(Line(r, "worker_owner"),
            "worker_owner: warn  no worker owner for queue " + queue_name_ + " (nothing waiting)")
      << r.out;
}

TEST_F(DoctorTest, TheProductionShapeIsAllOk) {
  StartRedis(Aof());
  auto& sup = StartSupervisor();
  auto& ap = StartAutopilot({"--no-worker"});
  ASSERT_TRUE(Eventually([&] { return Owner() && Owner()->role == "supervisor"; }, 15s))
      << sup.Stderr();
  std::vector<std::string> ids;
  for (int i = 0; i < 3; ++i) ids.push_back(Submit("noop"));
  for (const auto& id : ids) ASSERT_TRUE(WaitState(id, JobState::kCompleted, 20s)) << sup.Stderr();
  ASSERT_TRUE(Eventually([&] {
    auto rec = records_->Autopilot();
    return rec && rec->last_dispatch_ms > 0;
  }, 15s)) << ap.Stderr();

  auto r = Doctor();
  EXPECT_EQ(r.exit_code, 0) << r.out;
  std::string sup_pid = std::to_string(sup.pid());
  EXPECT_TRUE(std::regex_match(Line(r, "worker_owner"),
                               std::regex("worker_owner: ok  owned by supervisor .*:" + sup_pid +
                                          " \\(epoch 1, up \\d+s\\)")))
      << r.out;
  EXPECT_EQ(Line(r, "supervisor"),
            "supervisor: ok  running=true pid=" + sup_pid + " crashes_24h=0 rss_restarts_24h=0")
      << r.out;
  // The autopilot's next cycle job may be waiting or running at this instant.
  EXPECT_TRUE(std::regex_match(Line(r, "queue_health"),
                               std::regex("queue_health: ok  waiting=[01] active=[01] delayed=0 "
                                          "dead_24h=0")))
      << r.out;
  EXPECT_TRUE(std::regex_match(Line(r, "autopilot"),
                               std::regex("autopilot: ok  last dispatch \\d+s ago \\(interval "
                                          "2s, repo " + dir_ + "/repo\\)")))
      << r.out;
  EXPECT_TRUE(Line(r, "wedged_queue").starts_with("wedged_queue: ok  ")) << r.out;
}

TEST_F(DoctorTest, AutopilotOwningTheWorkerIsToldApartFromNoOwnerAtAll) {
  StartRedis(Aof());
  auto& ap = StartAutopilot();
  int worker_pid = 0;
  ASSERT_TRUE(Eventually([&] {
    auto rec = records_->Autopilot();
    if (!rec) return false;
    worker_pid = rec->worker_pid;
    return worker_pid > 0 && !LiveWorkers().empty();
  }, 15s)) << ap.Stderr();

  auto r = Doctor();
  EXPECT_EQ(r.exit_code, 1) << r.out;
  EXPECT_EQ(Line(r, "worker_owner"),
            "worker_owner: warn  no supervisor: queue " + queue_name_ +
                " is owned by autopilot's child worker (pid " + std::to_string(worker_pid) +
                "); for production run `autopilot --no-worker` with `jobs supervisor`")
      << r.out;
  // Not "supervisor not running": that the worker is autopilot's is said once, above.
  EXPECT_EQ(Line(r, "supervisor"),
            "supervisor: info  not running; queue " + queue_name_ +
                " is owned by autopilot's child worker (see worker_owner)")
      << r.out;

  // A supervisor started now waits in standby, and doctor says why.
  auto& sup = StartSupervisor();
  ASSERT_TRUE(Eventually([&] { return !Supervisors().empty(); }, 15s)) << sup.Stderr();
  r = Doctor();
  EXPECT_TRUE(std::regex_match(
      Line(r, "supervisor"),
      std::regex("supervisor: warn  running=true pid=" + std::to_string(sup.pid()) +
                 " crashes_24h=0 rss_restarts_24h=0 state=standby: queue " + queue_name_ +
                 " is owned by autopilot .* \\(epoch 1\\), so the supervisor waits; stop that "
                 "owner \\(an autopilot: restart it with --no-worker\\) and the supervisor "
                 "takes over")))
      << r.out;
}

TEST_F(DoctorTest, AHandStartedWorkerOwnsTheQueueAndDoctorWarnsNobodySupervisesIt) {
  StartRedis(Aof());
  auto& w = Start({"jobs", "work", "--redis", server_->url(), "--queue", queue_name_,
                   "--concurrency", "1", "--max-rss", "0"});
  ASSERT_TRUE(Eventually([&] { return LiveWorkers().size() == 1; }, 15s)) << w.Stderr();
  auto r = Doctor();
  EXPECT_TRUE(std::regex_match(
      Line(r, "worker_owner"),
      std::regex("worker_owner: warn  queue " + queue_name_ + " is owned by worker " + Host() +
                 ":" + std::to_string(w.pid()) +
                 " \\(epoch 1, up .*\\), a `jobs work` started by hand: it is fenced, but "
                 "nobody restarts it or watches its memory; for production run `jobs "
                 "supervisor` instead")))
      << r.out;
  EXPECT_EQ(Line(r, "supervisor"),
            "supervisor: info  not running; queue " + queue_name_ +
                " is owned by a `jobs work` started by hand (see worker_owner)")
      << r.out;
}

TEST_F(DoctorTest, TwoUnmanagedWorkersOfAnOlderVersionOnOneQueueFail) {
  StartRedis(Aof());
  // Workers of epoch 0 without an owner: what `jobs work` of a version before the worker's
  // own lease registered (a current one takes the lease and runs under its epoch).
  WorkerRegistry a(queue_name_, Worker("hostA:1", 0));
  WorkerRegistry b(queue_name_, Worker("hostB:2", 0));
  ASSERT_TRUE(a.Register(conn()).ok());
  ASSERT_TRUE(b.Register(conn()).ok());
  auto r = Doctor();
  EXPECT_EQ(r.exit_code, 2);
  std::string line = Line(r, "worker_owner");
  EXPECT_TRUE(line.starts_with("worker_owner: fail  2 live workers serve queue " + queue_name_ +
                               ": "))
      << r.out;
  EXPECT_NE(line.find("hostA:1 (epoch 0)"), std::string::npos) << line;
  EXPECT_NE(line.find("hostB:2 (epoch 0)"), std::string::npos) << line;
  EXPECT_TRUE(line.ends_with("; unmanaged workers are not fenced, so each claims — only `jobs "
                             "work` of a lanekeeper older than the worker's own owner lease runs "
                             "so: upgrade, stop all but one and run it under `jobs supervisor`"))
      << r.out;
}

TEST_F(DoctorTest, WorkersOfTwoEpochsFailAndNameBoth) {
  StartRedis(Aof());
  // A stale owner's worker still heartbeating beside the current one (it is fenced at its
  // next claim, but until it exits two processes believe they serve the queue).
  WorkerRegistry stale(queue_name_, Worker("hostA:1", 3));
  WorkerRegistry current(queue_name_, Worker("hostB:2", 4));
  ASSERT_TRUE(stale.Register(conn()).ok());
  ASSERT_TRUE(current.Register(conn()).ok());
  auto r = Doctor();
  EXPECT_EQ(r.exit_code, 2);
  std::string line = Line(r, "worker_owner");
  EXPECT_TRUE(
      line.starts_with("worker_owner: fail  2 live workers serve queue " + queue_name_ + ": "))
      << r.out;
  EXPECT_NE(line.find("hostA:1 (epoch 3)"), std::string::npos) << line;
  EXPECT_NE(line.find("hostB:2 (epoch 4)"), std::string::npos) << line;
  EXPECT_TRUE(line.ends_with("; only the current epoch's may claim — stop the stale one"))
      << line;
}

TEST_F(DoctorTest, ACrashedWorkerAndItsReplacementOfOneEpochCountAsOne) {
  StartRedis(Aof());
  WorkerInfo gone = Worker("host:10", 5);
  gone.started_ms = NowUnixMillis() - 60'000;  // it started a minute ago and crashed
  WorkerRegistry crashed(queue_name_, gone);
  ASSERT_TRUE(crashed.Register(conn()).ok());
  WorkerRegistry replacement(queue_name_, Worker("host:11", 5));
  ASSERT_TRUE(replacement.Register(conn()).ok());
  auto r = Doctor();
  EXPECT_EQ(Line(r, "worker_owner").find("live workers serve"), std::string::npos) << r.out;
}

TEST_F(DoctorTest, AWorkerOrphanedByAKilledSupervisorIsNamed) {
  StartRedis(Aof());
  auto& sup = StartSupervisor({"--lease-ttl", "2s", "--lease-renew", "500ms"});
  ASSERT_TRUE(Eventually([&] { return LiveWorkers().size() == 1; }, 15s)) << sup.Stderr();
  int64_t worker_pid = LiveWorkers()[0].pid;
  sup.Signal(SIGKILL);  // the worker is not tied to it and keeps its (still current) epoch
  ASSERT_TRUE(Eventually([&] { return !Owner().has_value(); }, 10s));
  auto r = Doctor();
  EXPECT_EQ(Line(r, "worker_owner"),
            "worker_owner: warn  queue " + queue_name_ + " is served by worker " + Host() + ":" +
                std::to_string(worker_pid) +
                " of epoch 1, whose owner's lease expired (was its supervisor killed?); start "
                "`jobs supervisor`, which takes over and fences it")
      << r.out;
}

TEST_F(DoctorTest, ACrashingWorkerMakesTheSupervisorWarn) {
  StartRedis(Aof());
  // The worker cannot read its handlers file and exits 2 each time: a crash to the supervisor.
  auto& sup = StartSupervisor({"--handlers", dir_ + "/missing.yaml"});
  ASSERT_TRUE(Eventually([&] {
    auto s = Supervisors();
    return !s.empty() && s[0].crashes_in_window >= 1;
  }, 15s)) << sup.Stderr();
  auto r = Doctor();
  EXPECT_TRUE(std::regex_match(
      Line(r, "supervisor"),
      std::regex("supervisor: warn  running=true pid=" + std::to_string(sup.pid()) +
                 " crashes_24h=(\\d+) rss_restarts_24h=0: the worker crashed \\1 times? in 24h; "
                 "see `lanekeeper jobs supervisor status` and the logs")))
      << r.out;
}

TEST_F(DoctorTest, ADegradedSupervisorFails) {
  StartRedis(Aof());
  // More than --max-crashes 1 crashes within 10 minutes: degraded after the second (backoff 1 s).
  auto& sup = StartSupervisor({"--handlers", dir_ + "/missing.yaml", "--max-crashes", "1"});
  ASSERT_TRUE(Eventually([&] {
    auto s = Supervisors();
    return !s.empty() && s[0].degraded;
  }, 20s)) << sup.Stderr();
  auto r = Doctor();
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_TRUE(std::regex_match(
      Line(r, "supervisor"),
      std::regex("supervisor: fail  running=true pid=" + std::to_string(sup.pid()) +
                 " crashes_24h=\\d+ rss_restarts_24h=0: degraded: the worker crashed \\d+ times "
                 "within 10m \\(more than --max-crashes\\), last exit code 2.*; see `lanekeeper "
                 "jobs supervisor status` and the logs")))
      << r.out;
}

// --- queue_health ---

TEST_F(DoctorTest, JobsThatWentDeadMakeQueueHealthWarn) {
  StartRedis(Aof());
  for (int i = 0; i < 3; ++i) {
    Submit("flaky", 1);
    ClaimAndFinish(false);
  }
  auto r = Doctor();
  EXPECT_EQ(Line(r, "queue_health"),
            "queue_health: warn  waiting=0 active=0 delayed=0 dead_24h=3: 3 jobs went dead in "
            "the last 24h; see `lanekeeper jobs list --state dead`")
      << r.out;
}

TEST_F(DoctorTest, ABacklogOverTheThresholdMakesQueueHealthWarn) {
  StartRedis(Aof());
  for (int i = 0; i < 3; ++i) Submit("noop");
  auto r = Doctor({"--waiting-threshold", "2"});
  EXPECT_EQ(Line(r, "queue_health"),
            "queue_health: warn  waiting=3 active=0 delayed=0 dead_24h=0: 3 jobs waiting, more "
            "than 2 (--waiting-threshold): the worker is not keeping up; raise --concurrency or "
            "find what slows the jobs")
      << r.out;
}

TEST_F(DoctorTest, AnActiveJobPastItsLeaseMakesQueueHealthWarn) {
  StartRedis(Aof());
  JobSpec spec;
  spec.name = "noop";
  spec.lease = kMinLease;
  ASSERT_TRUE(queue_->Enqueue(spec).ok());
  auto claim = queue_->ClaimBatch(1, 0);  // claimed by a "worker" that then dies silently
  ASSERT_TRUE(claim.ok() && claim->jobs.size() == 1);
  // Its lease deadline passed a second ago.
  Backdate("active", claim->jobs[0].id, NowUnixMillis() - 1000);
  auto r = Doctor();
  EXPECT_EQ(Line(r, "queue_health"),
            "queue_health: warn  waiting=0 active=1 delayed=0 dead_24h=0: 1 active job past the "
            "lease deadline: the worker holding it stopped renewing (crashed or hung); a live "
            "worker's next claim returns such jobs to waiting")
      << r.out;
}

// --- autopilot ---

TEST_F(DoctorTest, AnAutopilotThatStoppedDispatchingWarns) {
  StartRedis(Aof());
  int64_t now = NowUnixMillis();
  AutopilotRecord rec = Autopilot(300'000, now - 20 * 60'000, now);
  ASSERT_TRUE(PublishAutopilotRecord(conn(), queue_name_, rec).ok());
  auto r = Doctor();
  EXPECT_EQ(Line(r, "autopilot"),
            "autopilot: warn  last dispatch 20m ago, more than 3 × its interval 5m (repo "
            "/srv/kb); see the autopilot's logs")
      << r.out;
}

TEST_F(DoctorTest, AnAutopilotThatStoppedReportingWarns) {
  StartRedis(Aof());
  int64_t now = NowUnixMillis();
  AutopilotRecord rec = Autopilot(60'000, now - 2 * 3'600'000, now - 2 * 3'600'000);
  ASSERT_TRUE(PublishAutopilotRecord(conn(), queue_name_, rec).ok());
  auto r = Doctor();
  EXPECT_EQ(Line(r, "autopilot"),
            "autopilot: warn  autopilot host:7 (repo /srv/kb) stopped reporting 2h ago: it is "
            "not running; start `lanekeeper autopilot --repo /srv/kb --no-worker` (or its "
            "systemd unit)")
      << r.out;
}

TEST_F(DoctorTest, NoAutopilotIsInformationNotAProblem) {
  StartRedis(Aof());
  auto r = Doctor();
  EXPECT_EQ(Line(r, "autopilot"), "autopilot: info  no autopilot runs on queue " + queue_name_)
      << r.out;
}

// --- wedged_queue ---

TEST_F(DoctorTest, WorkWaitingWithNothingFinishingForTheWedgeTimeFails) {
  StartRedis(Aof());
  Submit("noop");
  std::string done;
  ClaimAndFinish(true, &done);  // something finished once, then nothing more
  std::string waiting = Submit("noop");
  // 90 s ago, both: 1m of the wedge time and 29 s to spare for a slow doctor.
  const int64_t then = NowUnixMillis() - 90'000;
  Backdate("completed", done, then);
  BackdateCreated(waiting, then);
  auto r = Doctor({"--wedge-time", "1m"});
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_EQ(Line(r, "wedged_queue"),
            "wedged_queue: fail  queue " + queue_name_ +
                " is wedged: 1 job waiting, none active, nothing finished for 1m (--wedge-time "
                "1m); see worker_owner and the worker's logs")
      << r.out;
}

TEST_F(DoctorTest, AFreshSubmissionToAQueueIdleForLongIsNotWedged) {
  StartRedis(Aof());
  Submit("noop");
  std::string done;
  ClaimAndFinish(true, &done);
  Backdate("completed", done, NowUnixMillis() - 90'000);  // idle for longer than the wedge time...
  Submit("noop");  // ...then work arrives: it has not waited the wedge time yet
  auto r = Doctor({"--wedge-time", "1m"});
  std::smatch m;
  std::string line = Line(r, "wedged_queue");
  ASSERT_TRUE(std::regex_match(line, m, std::regex("wedged_queue: ok  1 waiting, none active for "
                                                   "(\\d+)s, under --wedge-time 1m; last "
                                                   "finished 1m ago")))
      << r.out;
  EXPECT_LT(std::stoi(m[1]), 60);
}

// --- output ---

TEST_F(DoctorTest, JsonOutputHasEveryCheckInOrderAndTheWorstStatus) {
  StartRedis(Aof());
  Submit("noop");
  auto r = Doctor({"--json"});
  EXPECT_EQ(r.exit_code, 2);
  auto j = nlohmann::json::parse(r.out);
  EXPECT_EQ(j["queue"], queue_name_);
  EXPECT_EQ(j["status"], "fail");
  std::vector<std::string> names;
  for (const auto& c : j["checks"]) {
    names.push_back(c["name"]);
    EXPECT_TRUE(c.contains("status") && c.contains("message") && c["details"].is_object());
  }
  EXPECT_EQ(names, (std::vector<std::string>{"redis", "worker_owner", "supervisor", "queue_health",
                                             "autopilot", "wedged_queue"}));
  EXPECT_EQ(j["checks"][1]["details"]["current_epoch"], "0");
}

// --- messages of docs/production.md that need a state only Redis can show quickly ---

TEST_F(DoctorTest, ARefusedPasswordFailsTheRedisCheckAloneWithoutPrintingThePassword) {
  testing::RedisServerOptions o = Aof();
  o.password = "doctor-pw-Zq7";
  StartRedis(o);
  const std::string wrong = "wrong-pw-Kx4";
  const std::string url = "redis://:" + wrong + "@127.0.0.1:" + std::to_string(server_->port()) + "/0";
  auto r = testing::RunLanekeeper({"doctor", "--redis", url, "--queue", queue_name_}, {}, 30s);
  EXPECT_EQ(r.exit_code, 2);
  std::regex want("redis: fail  Redis at redis://:\\*\\*\\*@127\\.0\\.0\\.1:" +
                  std::to_string(server_->port()) +
                  "/0 refused the password: .*; the other checks need Redis and were skipped\n");
  EXPECT_TRUE(std::regex_match(r.out, want)) << r.out;
  EXPECT_EQ((r.out + r.err).find(wrong), std::string::npos) << r.out << r.err;
}

TEST_F(DoctorTest, AMalformedRedisUrlExitsTwoBeforeAnyCheck) {
  auto r = testing::RunLanekeeper({"doctor", "--redis", "http://127.0.0.1:6379", "--queue", "q"},
                                  {}, 30s);
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_EQ(r.out, "");
  EXPECT_NE(r.err.find("lanekeeper: bad Redis URL 'http://127.0.0.1:6379': unknown scheme"),
            std::string::npos)
      << r.err;
}

TEST_F(DoctorTest, ARedisThatRefusesInfoFailsTheRedisCheckAndTheOthersStillRun) {
  // As an ACL without +info would: the command is not there for this client.
  StartRedis(Aof("--rename-command INFO lk-info-renamed"));
  auto r = Doctor();
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_TRUE(Line(r, "redis").starts_with("redis: fail  INFO refused: ERR unknown command 'INFO'"))
      << r.out;
  EXPECT_EQ(Line(r, "worker_owner"),
            "worker_owner: warn  no worker owner for queue " + queue_name_ + " (nothing waiting)")
      << r.out;
}

TEST_F(DoctorTest, ARedisThatRefusesConfigWithoutAofWarnsThatRdbCannotBeTold) {
  StartRedis(NoAof("--rename-command CONFIG lk-config-renamed"));
  auto r = Doctor();
  std::string line = Line(r, "redis");
  EXPECT_TRUE(line.starts_with("redis: warn  AOF is off and CONFIG GET save was refused (ERR "
                               "unknown command 'CONFIG'"))
      << r.out;
  EXPECT_TRUE(line.ends_with("): cannot tell whether RDB snapshots are on; make sure jobs "
                             "survive a Redis restart (appendonly yes)"))
      << r.out;
}

TEST_F(DoctorTest, AnOwnerWithoutALiveWorkerOfItsEpochPastTheGraceWarns) {
  StartRedis(Aof());
  OwnerLease lease(conn(), queue_name_, OwnerRole::kSupervisor, "web-1:4242", 2, 0);
  auto taken = lease.TryAcquire();
  ASSERT_TRUE(taken.ok() && taken->acquired);
  // It took the lease a minute ago (past doctor's 15 s grace) and has no worker since.
  auto r0 = conn().Command({"HSET", JobQueue::KeyPrefix(queue_name_) + "owner", "since_ms",
                            std::to_string(NowUnixMillis() - 60'000)});
  ASSERT_TRUE(r0.ok() && !r0->is_error());
  auto r = Doctor();
  EXPECT_EQ(Line(r, "worker_owner"),
            "worker_owner: warn  owned by supervisor web-1:4242 (epoch " +
                std::to_string(lease.epoch()) + ", up 1m), but no worker of epoch " +
                std::to_string(lease.epoch()) + " is live; see the supervisor check")
      << r.out;
  // Within the grace the same owner is fine: it is starting its worker.
  ASSERT_TRUE(conn().Command({"HSET", JobQueue::KeyPrefix(queue_name_) + "owner", "since_ms",
                              std::to_string(NowUnixMillis())}).ok());
  r = Doctor();
  EXPECT_TRUE(Line(r, "worker_owner").starts_with("worker_owner: ok  owned by supervisor "
                                                   "web-1:4242"))
      << r.out;
}

TEST_F(DoctorTest, ASupervisorInStandbyWithNobodyOwningTheQueueSaysSo) {
  StartRedis(Aof());
  SupervisorStatus s;
  s.holder = "web-2:77";
  s.host = "web-2";
  s.pid = 77;
  s.state = "standby";
  s.updated_ms = NowUnixMillis();
  ASSERT_TRUE(PublishSupervisorStatus(conn(), queue_name_, s).ok());
  auto r = Doctor();
  EXPECT_EQ(Line(r, "supervisor"),
            "supervisor: warn  running=true pid=77 crashes_24h=0 rss_restarts_24h=0 "
            "state=standby: nobody owns queue " + queue_name_ +
                " yet; the supervisor should take the lease within a second — if this "
                "persists, see its logs")
      << r.out;
}

TEST_F(DoctorTest, AnActiveJobRunningOverAnHourMakesQueueHealthWarnNamingIt) {
  StartRedis(Aof());
  std::string id = Submit("report");
  auto claim = queue_->ClaimBatch(1, 0);
  ASSERT_TRUE(claim.ok() && claim->jobs.size() == 1);
  // Claimed three hours ago (its claim token holds the start: attempt:started_ms:seq.id),
  // and renewed since: its lease is not past.
  const std::string key = JobQueue::KeyPrefix(queue_name_) + "claim:" + id;
  auto token = conn().Command({"GET", key});
  ASSERT_TRUE(token.ok() && !token->is_nil()) << key;
  std::smatch m;
  ASSERT_TRUE(std::regex_match(token->str, m, std::regex("([0-9]+):([0-9]+):(.*)"))) << token->str;
  const std::string backdated = m[1].str() + ":" + std::to_string(NowUnixMillis() - 3 * 3'600'000) +
                                ":" + m[3].str();
  ASSERT_TRUE(conn().Command({"SET", key, backdated}).ok());
  auto r = Doctor();
  EXPECT_EQ(Line(r, "queue_health"),
            "queue_health: warn  waiting=0 active=1 delayed=0 dead_24h=0: 1 active job running "
            "over 1h (job " + id + " for 3h); see `lanekeeper jobs get " + id + "`")
      << r.out;
}

// docs/production.md: "If a Redis command fails half-way, the check that met it fails with
// `cannot read WHAT from Redis: ERROR`, and the other checks still run."
TEST_F(DoctorTest, ARedisCommandThatFailsFailsOnlyTheCheckThatMetIt) {
  StartRedis(Aof());
  const std::string key = JobQueue::KeyPrefix(queue_name_) + "autopilot";
  ASSERT_TRUE(conn().Command({"SET", key, "not a hash"}).ok());
  auto r = Doctor();
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_EQ(Line(r, "autopilot"), "autopilot: fail  cannot read the autopilot record from Redis: "
                                  "HGETALL " + key + ": WRONGTYPE Operation against a key holding "
                                  "the wrong kind of value")
      << r.out;
  for (const char* check : {"redis", "worker_owner", "supervisor", "queue_health", "wedged_queue"}) {
    EXPECT_FALSE(Line(r, check).empty()) << check << "\n" << r.out;
  }
}

TEST_F(DoctorTest, SeveralProblemsOfOneCheckAreJoinedWithSemicolons) {
  StartRedis(NoAof("--maxmemory 100mb --maxmemory-policy volatile-lru"));
  for (int i = 0; i < 3; ++i) Submit("noop");
  Submit("flaky", 1);
  auto claim = queue_->ClaimBatch(1, 0);  // the oldest noop, claimed and left to expire
  ASSERT_TRUE(claim.ok() && claim->jobs.size() == 1);
  Backdate("active", claim->jobs[0].id, NowUnixMillis() - 1000);
  auto r = Doctor({"--waiting-threshold", "1"});
  EXPECT_EQ(Line(r, "redis"),
            "redis: warn  neither AOF nor RDB persistence is on: jobs would be lost if Redis "
            "restarts; set appendonly yes; maxmemory-policy is volatile-lru with maxmemory "
            "100.00M: Redis may evict job keys when full; set maxmemory-policy noeviction")
      << r.out;
  EXPECT_EQ(Line(r, "queue_health"),
            "queue_health: warn  waiting=3 active=1 delayed=0 dead_24h=0: 3 jobs waiting, more "
            "than 1 (--waiting-threshold): the worker is not keeping up; raise --concurrency or "
            "find what slows the jobs; 1 active job past the lease deadline: the worker holding "
            "it stopped renewing (crashed or hung); a live worker's next claim returns such jobs "
            "to waiting")
      << r.out;
}

TEST_F(DoctorTest, RedisWithAofAndRdbIsOkNamingBoth) {
  StartRedis(Aof("--save 3600 1"));
  auto r = Doctor();
  EXPECT_TRUE(Line(r, "redis").ends_with(", AOF on, RDB snapshots on")) << r.out;
}

TEST_F(DoctorTest, OnlyJobsThatWentDeadInTheLast24hCountAsDead24h) {
  StartRedis(Aof());
  Submit("flaky", 1);
  std::string old_dead;
  ClaimAndFinish(false, &old_dead);
  Backdate("dead", old_dead, NowUnixMillis() - 25 * 3'600'000LL);
  auto r = Doctor();
  EXPECT_EQ(Line(r, "queue_health"), "queue_health: ok  waiting=0 active=0 delayed=0 dead_24h=0")
      << r.out;
}

TEST_F(DoctorTest, TheQuietMessagesSayWhatDoctorSaw) {
  StartRedis(Aof());
  int64_t now = NowUnixMillis();
  ASSERT_TRUE(PublishAutopilotRecord(conn(), queue_name_, Autopilot(300'000, 0, now)).ok());
  auto r = Doctor();
  EXPECT_EQ(Line(r, "autopilot"), "autopilot: ok  no dispatch yet (interval 5m, repo /srv/kb)")
      << r.out;
  EXPECT_EQ(Line(r, "wedged_queue"), "wedged_queue: ok  nothing waiting; nothing finished yet")
      << r.out;
  for (int i = 0; i < 3; ++i) Submit("noop");
  std::string done;
  ClaimAndFinish(true, &done);
  Backdate("completed", done, now - 42'000);
  ASSERT_TRUE(queue_->ClaimBatch(1, 0).ok());  // one running
  r = Doctor();
  EXPECT_EQ(Line(r, "wedged_queue"), "wedged_queue: ok  1 active, 1 waiting; last finished 42s ago")
      << r.out;
}

TEST_F(DoctorTest, StandbySupervisorsAreInTheDetailsAndEveryDetailIsAString) {
  StartRedis(Aof());
  OwnerLease lease(conn(), queue_name_, OwnerRole::kSupervisor, "web-1:1", 1, 0);
  ASSERT_TRUE(lease.TryAcquire().ok());
  for (const auto& [holder, state] : {std::pair<std::string, std::string>{"web-1:1", "running"},
                                      {"web-2:2", "standby"},
                                      {"web-3:3", "standby"}}) {
    SupervisorStatus s;
    s.holder = holder;
    s.pid = std::stoi(holder.substr(holder.find(':') + 1));
    s.state = state;
    s.epoch = state == "running" ? lease.epoch() : 0;
    s.updated_ms = NowUnixMillis();
    ASSERT_TRUE(PublishSupervisorStatus(conn(), queue_name_, s).ok());
  }
  auto r = Doctor({"--json"});
  auto j = nlohmann::json::parse(r.out);
  for (const auto& check : j["checks"]) {
    for (const auto& [name, value] : check["details"].items()) {
      EXPECT_TRUE(value.is_string()) << check["name"] << "." << name << " = " << value;
    }
    if (check["name"] == "supervisor") {
      EXPECT_EQ(check["details"]["holder"], "web-1:1");
      std::string standby = check["details"]["standby"];
      EXPECT_TRUE(standby == "web-2:2 (standby), web-3:3 (standby)" ||
                  standby == "web-3:3 (standby), web-2:2 (standby)")
          << standby;
    }
  }
}

// A supervisor counts as running while its status is at most 5 s old.
TEST_F(DoctorTest, ASupervisorSilentForMoreThanFiveSecondsIsNotRunning) {
  StartRedis(Aof());
  SupervisorStatus s;
  s.holder = "web-2:77";
  s.pid = 77;
  s.state = "running";
  s.updated_ms = NowUnixMillis() - 4'000;
  ASSERT_TRUE(PublishSupervisorStatus(conn(), queue_name_, s).ok());
  EXPECT_TRUE(Line(Doctor(), "supervisor").starts_with("supervisor: ok  running=true pid=77 "));
  s.updated_ms = NowUnixMillis() - 6'000;
  ASSERT_TRUE(PublishSupervisorStatus(conn(), queue_name_, s).ok());
  EXPECT_EQ(Line(Doctor(), "supervisor"), "supervisor: fail  supervisor not running");
}

// A worker counts as live while its heartbeat is at most 5 s old.
TEST_F(DoctorTest, AWorkerSilentForMoreThanFiveSecondsIsNotLive) {
  StartRedis(Aof());
  WorkerRegistry worker(queue_name_, Worker("hostA:1", 0));
  ASSERT_TRUE(worker.Register(conn()).ok());
  EXPECT_TRUE(Line(Doctor(), "worker_owner").find("unmanaged worker hostA:1") != std::string::npos);
  Backdate("workers", "hostA:1", NowUnixMillis() - 6'000);
  EXPECT_EQ(Line(Doctor(), "worker_owner"),
            "worker_owner: warn  no worker owner for queue " + queue_name_ + " (nothing waiting)");
}

// --- the controller check against something that is not a controller ---

// An HTTP server on a held loopback port that answers every request with code and body.
class FixedAnswerServer {
 public:
  FixedAnswerServer(int code, std::string body) {
    auto port = testing::LoopbackPort::ForServer();
    EXPECT_TRUE(port.ok()) << port.status().message();
    if (!port.ok()) return;
    port_ = std::move(port).value();
    url_ = "http://" + port_->address();
    listener_ = std::make_unique<web::http::experimental::listener::http_listener>(url_);
    listener_->support([code, body](web::http::http_request request) {
      request.reply(static_cast<web::http::status_code>(code), body, "text/plain");
    });
    listener_->open().wait();
  }
  ~FixedAnswerServer() {
    if (listener_) listener_->close().wait();
  }
  const std::string& url() const { return url_; }

 private:
  std::unique_ptr<testing::LoopbackPort> port_;
  std::string url_;
  std::unique_ptr<web::http::experimental::listener::http_listener> listener_;
};

TEST_F(DoctorTest, SomethingElseAtTheControllerUrlIsAnUnexpectedAnswer) {
  StartRedis(Aof());
  struct Case {
    int code;
    std::string body, path, why;
  };
  // A proxy whose backend is down; a web server that is not a controller.
  for (const Case& c : {Case{502, "Bad Gateway", "/readyz", "HTTP 502"},
                        Case{200, "<html>hello</html>", "/status", "not the status JSON"}}) {
    FixedAnswerServer other(c.code, c.body);
    auto r = Doctor({"--controller", other.url()});
    EXPECT_EQ(r.exit_code, 2);
    EXPECT_EQ(Line(r, "controller"),
              "controller: fail  controller at " + other.url() + " gave an unexpected answer to " +
                  c.path + ": " + c.why + "; is it a `lanekeeper controller` status address?")
        << r.out;
  }
}

}  // namespace
}  // namespace lk
