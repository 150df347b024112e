// `lanekeeper jobs work` as a process: the real binary against a real redis-server, jobs
// submitted and inspected through JobQueue, handlers that are real programs. Runs are
// counted by tests/helpers/recorded_job (one line per start and end), so "once", "drains"
// and "at most N at a time" come from what ran, not from a job's final state or a sample;
// slow jobs run until the test releases them instead of for a time that is hoped long enough.
#include <gtest/gtest.h>
#include <signal.h>
#include <stdlib.h>

#include <algorithm>
#include <fstream>
#include <sstream>

#include "tests/support/child_process.h"
#include "tests/support/queue_records.h"
#include "tests/support/redis_server.h"
#include "tests/support/run_log.h"
#include "tests/support/temp_dir.h"
#include "worker/exit_codes.h"
#include "worker/job_queue.h"

namespace lk {
namespace {

using namespace std::chrono_literals;
using testing::ChildProcess;
using testing::Eventually;
using testing::LanekeeperBinary;
using testing::ProcessAlive;
using testing::RedisServer;
using testing::RunLanekeeper;

constexpr char kWorkQueue[] = "work";
constexpr auto kSlack = std::chrono::seconds(10);  // on top of the time under test: load, ASan

class JobsWork : public ::testing::Test {
 protected:
  void SetUp() override {
    auto server = RedisServer::Start();
    ASSERT_TRUE(server.ok()) << server.status().message();
    redis_ = std::move(server).value();
    auto queue = OpenJobQueue(redis_->url(), kWorkQueue);
    ASSERT_TRUE(queue.ok()) << queue.status().message();
    queue_ = std::move(queue).value();
    records_ = std::make_unique<testing::QueueRecords>(*queue_);
    ASSERT_TRUE(temp_.ok());
    dir_ = temp_.path();
  }

  std::unique_ptr<ChildProcess> StartWorker(const std::vector<std::string>& flags) {
    std::vector<std::string> argv = {LanekeeperBinary(), "jobs",  "work",  "--redis",
                                     redis_->url(),      "--queue", kWorkQueue};
    argv.insert(argv.end(), flags.begin(), flags.end());
    return std::make_unique<ChildProcess>(argv);
  }

  std::string WriteHandlers(const std::string& yaml) {
    std::string path = dir_ + "/handlers.yaml";
    std::ofstream(path) << yaml;
    return path;
  }

  std::string Submit(const std::string& name, const std::string& payload = "{}",
                     int max_attempts = 3, Millis lease = Millis(30'000)) {
    JobSpec spec;
    spec.name = name;
    spec.payload = payload;
    spec.max_attempts = max_attempts;
    spec.lease = lease;
    auto r = queue_->Enqueue(spec);
    EXPECT_TRUE(r.ok()) << r.status().message();
    return r.ok() ? r->id : "";
  }

  Job Get(const std::string& id) { return records_->Get(id); }

  // A handler that records each run in Runs() and keeps running until ReleaseJobs(), with
  // the given recorded_job flags.
  std::string Recorded(const std::string& name, const std::string& flags = "") {
    return "  " + name + ":\n    command: [" + testing::TestHelperBinary("recorded_job") + ", " +
           Runs().path() + ", --hold-until, " + Release() + (flags.empty() ? "" : ", ") + flags +
           "]\n";
  }
  testing::RunLog Runs() const { return testing::RunLog(dir_ + "/runs"); }
  std::string Release() const { return dir_ + "/release"; }
  void ReleaseJobs() { std::ofstream(Release()) << "go\n"; }

  bool Reaches(const std::string& id, JobState state, std::chrono::milliseconds timeout) {
    return Eventually([&] { return Get(id).state == state; }, timeout);
  }

  testing::TempDir temp_{"jobs-work"};
  std::unique_ptr<RedisServer> redis_;
  std::unique_ptr<JobQueue> queue_;
  std::unique_ptr<testing::QueueRecords> records_;
  std::string dir_;
};

TEST_F(JobsWork, AJobOfASigkilledWorkerIsReclaimedAfterItsLeaseAndCompletedByTheNextWorker) {
  std::string handlers = WriteHandlers("handlers:\n" + Recorded("slow"));
  std::string id = Submit("slow", "{}", 3, kMinLease);
  auto first = StartWorker({"--concurrency", "1", "--max-rss", "0", "--handlers", handlers,
                            "--lease-ttl", "2s"});
  ASSERT_TRUE(Eventually([&] { return Runs().Started(id); }, kSlack)) << first->Stderr();
  // The machine loses the worker and the command it ran.
  const int64_t killed_ms = NowUnixMillis();
  ASSERT_TRUE(first->Signal(SIGKILL));
  ASSERT_TRUE(testing::SignalProcess(Runs().RunsOf(id)[0].pid, SIGKILL));
  ASSERT_TRUE(first->Wait(kSlack).has_value());

  // The killed worker's owner lease lasts its TTL: the next one waits for it (--standby).
  auto second = StartWorker({"--concurrency", "1", "--max-rss", "0", "--handlers", handlers,
                             "--standby"});
  ASSERT_TRUE(Eventually([&] { return Runs().RunsOf(id).size() == 2; }, kMinLease + kSlack))
      << second->Stderr();
  ReleaseJobs();
  ASSERT_TRUE(Reaches(id, JobState::kCompleted, kSlack)) << second->Stderr();
  Job job = Get(id);
  EXPECT_EQ(job.stalls, 1);
  EXPECT_EQ(job.attempts, 2);
  auto runs = Runs().RunsOf(id);
  ASSERT_EQ(runs.size(), 2u);
  EXPECT_EQ(runs[0].end_ms, 0) << "the killed run never finished";
  EXPECT_EQ(runs[1].attempt, 2);
  EXPECT_EQ(runs[1].parent, second->pid());
  EXPECT_GT(runs[1].end_ms, 0);
  // Not taken back while its lease could still have been renewed.
  EXPECT_GE(runs[1].start_ms - killed_ms, kMinLease.count() / 2);
  second->Signal(SIGTERM);
  EXPECT_EQ(second->Wait(kSlack), kExitOk);
}
TEST_F(JobsWork, OverMaxRssItDrainsLetsTheRunningJobFinishOnceAndExits12) {
  std::string handlers = WriteHandlers("handlers:\n" + Recorded("hog", "--rss-mb, '300'"));
  std::string id = Submit("hog");
  std::string queued = Submit("noop");  // behind the hog: must still be waiting afterwards
  auto worker = StartWorker({"--concurrency", "1", "--max-rss", "256", "--handlers", handlers});
  ASSERT_TRUE(worker->WaitForOutput("draining (", kSlack)) << worker->Stderr();
  EXPECT_NE(worker->Stderr().find("over --max-rss"), std::string::npos) << worker->Stderr();
  // Draining: the job still runs (the breach may come while it is still touching its memory,
  // before it records its start), and the worker waits for it.
  ASSERT_TRUE(Eventually([&] { return Runs().Started(id); }, kSlack));
  EXPECT_FALSE(Runs().Ended(id));
  EXPECT_TRUE(worker->Running());
  ReleaseJobs();
  EXPECT_EQ(worker->Wait(kSlack), kExitMaxRss) << worker->Stderr();
  Job job = Get(id);
  EXPECT_EQ(job.state, JobState::kCompleted);
  EXPECT_EQ(job.attempts, 1);
  EXPECT_EQ(job.stalls, 0);
  EXPECT_EQ(Runs().EachRanOnce({id}), "");
  EXPECT_EQ(Get(queued).state, JobState::kWaiting);
}
TEST_F(JobsWork, SigtermLetsTheRunningJobFinishReturnsBufferedJobsToWaitingAndExits0) {
  // Fast noops first teach the worker to prefetch; the slow job then runs with claimed
  // noops buffered behind it. Claimed is not running (both are "active" in Redis), so the
  // slow job's record says when it has started.
  std::string handlers = WriteHandlers("handlers:\n" + Recorded("slow"));
  std::vector<JobSpec> specs(100);
  for (auto& s : specs) s.name = "noop";
  ASSERT_TRUE(queue_->EnqueueBatch(specs).ok());
  std::string slow = Submit("slow");
  ASSERT_TRUE(queue_->EnqueueBatch(std::vector<JobSpec>(300, specs[0])).ok());

  auto worker = StartWorker({"--concurrency", "1", "--max-rss", "0", "--handlers", handlers});
  ASSERT_TRUE(Eventually([&] { return Runs().Started(slow); }, kSlack)) << worker->Stderr();
  ASSERT_TRUE(worker->Signal(SIGTERM));
  ASSERT_TRUE(worker->WaitForOutput("draining (", kSlack)) << worker->Stderr();
  EXPECT_TRUE(worker->Running());
  EXPECT_FALSE(Runs().Ended(slow));
  ReleaseJobs();
  EXPECT_EQ(worker->Wait(kSlack), kExitOk) << worker->Stderr();
  Job job = Get(slow);
  EXPECT_EQ(job.state, JobState::kCompleted) << worker->Stderr();
  EXPECT_EQ(job.attempts, 1);
  EXPECT_EQ(Runs().EachRanOnce({slow}), "");
  auto stats = records_->Stats();
  EXPECT_EQ(stats.active, 0);
  EXPECT_GT(stats.waiting, 0);
  EXPECT_EQ(stats.waiting + stats.completed, 401);
}
TEST_F(JobsWork, ACommandsStdoutIsTheResultAndItGetsThePayloadAndJobEnvironment) {
  std::string handlers = WriteHandlers(R"(handlers:
  echo:
    command:
      - sh
      - -c
      - 'printf "%s %s %s %s " "$LANEKEEPER_JOB_NAME" "$LANEKEEPER_JOB_ATTEMPT" "$LANEKEEPER_QUEUE" "$LANEKEEPER_JOB_ID"; cat'
)");
  std::string id = Submit("echo", R"({"x": 1})");
  auto worker = StartWorker({"--concurrency", "2", "--max-rss", "0", "--handlers", handlers});
  ASSERT_TRUE(Reaches(id, JobState::kCompleted, kSlack)) << worker->Stderr();
  EXPECT_EQ(Get(id).result, "echo 1 work " + id + " {\"x\": 1}");
}

TEST_F(JobsWork, AFailingCommandsErrorHasItsExitCodeAndStderrTail) {
  std::string handlers = WriteHandlers(R"(handlers:
  broken:
    command: [sh, -c, 'echo progress; echo "disk full" >&2; exit 3']
    maxAttempts: 1
)");
  std::string id = Submit("broken");
  auto worker = StartWorker({"--concurrency", "1", "--max-rss", "0", "--handlers", handlers});
  ASSERT_TRUE(Reaches(id, JobState::kDead, kSlack)) << worker->Stderr();
  EXPECT_EQ(Get(id).error, "exit code 3: disk full");
}

std::pair<pid_t, pid_t> ReadPids(const std::string& path) {
  std::ifstream in(path);
  int a = 0, b = 0;
  in >> a >> b;
  return {a, b};
}

TEST_F(JobsWork, ACommandPastItsTimeoutFailsAndItsWholeProcessGroupIsGone) {
  std::string pidfile = dir_ + "/pids";
  std::string handlers = WriteHandlers("handlers:\n  slow:\n    command: [" + testing::TestHelperBinary("spawn_grandchild") +
                                       ", " + pidfile + ", '60000']\n    timeout: 1s\n    maxAttempts: 1\n");
  std::string id = Submit("slow");
  auto worker = StartWorker({"--concurrency", "1", "--max-rss", "0", "--handlers", handlers});
  ASSERT_TRUE(Reaches(id, JobState::kDead, kSlack)) << worker->Stderr();
  EXPECT_EQ(Get(id).error, "timed out after 1s");
  auto [child, grandchild] = ReadPids(pidfile);
  ASSERT_GT(child, 0);
  ASSERT_GT(grandchild, 0);
  // The grandchild ignores SIGTERM: only the group SIGKILL after the command ended gets it.
  EXPECT_TRUE(Eventually([&] { return !ProcessAlive(child) && !ProcessAlive(grandchild); }, 10s));
}

TEST_F(JobsWork, ACommandThatSucceedsLeavesNoStrayProcessesBehind) {
  std::string pidfile = dir_ + "/pids";
  std::string handlers = WriteHandlers("handlers:\n  quick:\n    command: [" +
                                       testing::TestHelperBinary("spawn_grandchild") + ", " + pidfile + ", '0']\n");
  std::string id = Submit("quick");
  auto worker = StartWorker({"--concurrency", "1", "--max-rss", "0", "--handlers", handlers});
  ASSERT_TRUE(Reaches(id, JobState::kCompleted, kSlack)) << worker->Stderr();
  auto [child, grandchild] = ReadPids(pidfile);
  ASSERT_GT(grandchild, 0);
  EXPECT_TRUE(Eventually([&] { return !ProcessAlive(grandchild); }, 10s));
}

TEST_F(JobsWork, AJobWithNoHandlerGoesDeadWithAMessageNamingTheHandlerAndQueue) {
  std::string id = Submit("transcode", "{}", 5);
  auto worker = StartWorker({"--concurrency", "1", "--max-rss", "0"});
  ASSERT_TRUE(Reaches(id, JobState::kDead, kSlack)) << worker->Stderr();
  Job job = Get(id);
  EXPECT_EQ(job.error, "no handler 'transcode' on queue 'work'");
  EXPECT_EQ(job.attempts, 1);
}

TEST_F(JobsWork, NeverRunsMoreThanConcurrencyJobsAtOnce) {
  std::string handlers = WriteHandlers("handlers:\n  nap:\n    command: [" +
                                       testing::TestHelperBinary("recorded_job") + ", " +
                                       Runs().path() + ", --ms, '300']\n");
  std::vector<JobSpec> specs(18);
  for (auto& s : specs) s.name = "nap";
  auto ids = queue_->EnqueueBatch(specs);
  ASSERT_TRUE(ids.ok());
  auto worker = StartWorker({"--concurrency", "3", "--max-rss", "0", "--handlers", handlers});
  ASSERT_TRUE(Eventually([&] { return records_->Stats().completed == 18; }, 6 * 300ms + kSlack))
      << worker->Stderr();
  std::vector<std::string> all;
  for (const auto& r : *ids) all.push_back(r.id);
  ASSERT_EQ(Runs().EachRanOnce(all), "");
  // From the record: each run's [start, end] lies inside the worker's slot for it, so no
  // more runs overlap than slots were busy. An end and a start in the same millisecond do
  // not overlap.
  std::vector<std::pair<int64_t, int>> edges;
  for (const auto& r : Runs().Runs()) {
    edges.emplace_back(r.start_ms, +1);
    edges.emplace_back(r.end_ms, -1);
  }
  std::sort(edges.begin(), edges.end());
  int running = 0, most = 0;
  for (const auto& [ms, delta] : edges) most = std::max(most, running += delta);
  EXPECT_LE(most, 3);
  EXPECT_EQ(most, 3) << "the worker never used its three slots at once";
}
TEST_F(JobsWork, HandlersFileErrorsNameFileLineColumnAndField) {
  std::string handlers = WriteHandlers(R"(handlers:
  embed:
    command: [python3, embed.py]
    timeout: 10x
)");
  auto r = RunLanekeeper({"jobs", "work", "--redis", redis_->url(), "--queue", kWorkQueue,
                          "--concurrency", "1", "--max-rss", "0", "--handlers", handlers});
  EXPECT_EQ(r.exit_code, kExitUsage);
  EXPECT_NE(r.err.find(handlers + ":4:14: handlers.embed.timeout: bad duration '10x': expected"),
            std::string::npos)
      << r.err;
}

TEST_F(JobsWork, KeepDeadAndKeepCompletedBoundWhatTheWorkerKeeps) {
  std::vector<std::string> dead, completed;
  for (int i = 0; i < 3; ++i) dead.push_back(Submit("fail", "{}", 1));
  for (int i = 0; i < 3; ++i) completed.push_back(Submit("noop"));
  auto worker = StartWorker(
      {"--concurrency", "1", "--max-rss", "0", "--keep-dead", "1", "--keep-completed", "2"});
  ASSERT_TRUE(Reaches(completed.back(), JobState::kCompleted, 30s)) << worker->Stderr();
  auto stats = queue_->Stats();
  ASSERT_TRUE(stats.ok());
  EXPECT_EQ(stats->dead, 1);
  EXPECT_EQ(stats->completed, 2);
  EXPECT_TRUE(queue_->Get(dead.front()).status().IsNotFound());
  EXPECT_TRUE(queue_->Get(completed.front()).status().IsNotFound());
  worker->Signal(SIGTERM);
  EXPECT_EQ(worker->Wait(30s), kExitOk);
}

TEST_F(JobsWork, MaxRssUnder256IsRejectedAsAUnitMixUp) {
  auto r = RunLanekeeper({"jobs", "work", "--redis", redis_->url(), "--queue", kWorkQueue,
                          "--concurrency", "1", "--max-rss", "100"});
  EXPECT_EQ(r.exit_code, kExitUsage);
  EXPECT_NE(r.err.find("--max-rss 100 looks like a GB/MB mix-up: the value is in MB; use 0 to "
                       "disable or at least 256"),
            std::string::npos)
      << r.err;
  EXPECT_EQ(std::count(r.err.begin(), r.err.end(), '\n'), 1) << r.err;
}

TEST_F(JobsWork, ConcurrencyBelowOneIsRejected) {
  auto r = RunLanekeeper({"jobs", "work", "--redis", redis_->url(), "--concurrency", "0",
                          "--max-rss", "0"});
  EXPECT_EQ(r.exit_code, kExitUsage);
  EXPECT_NE(r.err.find("--concurrency must be at least 1"), std::string::npos) << r.err;
}

TEST_F(JobsWork, AWorkerWhoseEpochIsNoLongerCurrentFinishesItsRunningJobOnceAndExits13) {
  std::string epoch_key = JobQueue::KeyPrefix(kWorkQueue) + "epoch";
  ASSERT_TRUE(queue_->connection().Command({"SET", epoch_key, "5"}).ok());
  std::string handlers = WriteHandlers("handlers:\n" + Recorded("slow"));
  auto worker = StartWorker(
      {"--concurrency", "1", "--max-rss", "0", "--epoch", "5", "--handlers", handlers});
  std::string first = Submit("noop");
  ASSERT_TRUE(Reaches(first, JobState::kCompleted, kSlack)) << worker->Stderr();
  std::string slow = Submit("slow");
  ASSERT_TRUE(Eventually([&] { return Runs().Started(slow); }, kSlack)) << worker->Stderr();

  // A new owner's epoch while the slow job runs: it may finish, once; nothing more is claimed.
  ASSERT_TRUE(queue_->connection().Command({"SET", epoch_key, "6"}).ok());
  std::string after = Submit("noop");
  ReleaseJobs();
  EXPECT_EQ(worker->Wait(kSlack), kExitFenced) << worker->Stderr();
  EXPECT_NE(worker->Stderr().find("queue work is owned by epoch 6; this worker (epoch 5) is fenced"),
            std::string::npos)
      << worker->Stderr();
  Job job = Get(slow);
  EXPECT_EQ(job.state, JobState::kCompleted) << worker->Stderr();
  EXPECT_EQ(job.attempts, 1);
  EXPECT_EQ(job.stalls, 0);
  EXPECT_EQ(Runs().EachRanOnce({slow}), "");
  EXPECT_EQ(Get(after).state, JobState::kWaiting);
}

TEST_F(JobsWork, AFailedAttemptIsRetriedAfterABackoffThatDoublesEachTime) {
  // Attempts 1 and 2 fail, the third succeeds; backoff 1 s then 2 s, each x0.8..1.2.
  std::string handlers = WriteHandlers("handlers:\n  flaky:\n    command: [" +
                                       testing::TestHelperBinary("recorded_job") + ", " +
                                       Runs().path() + ", --fail-attempts, '2']\n");
  std::string id = Submit("flaky", "{}", 3);
  auto worker = StartWorker({"--concurrency", "1", "--max-rss", "0", "--handlers", handlers});
  ASSERT_TRUE(Reaches(id, JobState::kCompleted, 3s + kSlack)) << worker->Stderr();
  auto runs = Runs().RunsOf(id);
  ASSERT_EQ(runs.size(), 3u) << Runs().EachRanOnce({id});
  for (int i = 0; i < 3; ++i) {
    EXPECT_EQ(runs[i].attempt, i + 1);
    EXPECT_GT(runs[i].end_ms, 0);
  }
  // Between one attempt's end and the next one's start: the backoff, measured. The failure
  // is recorded after the end, so the gap is at least the shortest backoff; the worker
  // claims a due job within its wake-up, well inside the slack.
  const int64_t gap1 = runs[1].start_ms - runs[0].end_ms;
  const int64_t gap2 = runs[2].start_ms - runs[1].end_ms;
  EXPECT_GE(gap1, 800);
  EXPECT_LE(gap1, 1200 + 1000);
  EXPECT_GE(gap2, 1600);
  EXPECT_LE(gap2, 2400 + 1000);
  Job job = Get(id);
  EXPECT_EQ(job.attempts, 3);
  EXPECT_EQ(job.stalls, 0);
}
// Ctrl-C in the terminal is SIGINT: the same drain as SIGTERM.
TEST_F(JobsWork, CtrlCLetsTheRunningJobFinishAndExits0) {
  std::string handlers = WriteHandlers("handlers:\n" + Recorded("slow"));
  std::string slow = Submit("slow");
  auto worker = StartWorker({"--concurrency", "2", "--max-rss", "0", "--handlers", handlers});
  ASSERT_TRUE(Eventually([&] { return Runs().Started(slow); }, kSlack)) << worker->Stderr();
  ASSERT_TRUE(worker->Signal(SIGINT));
  ASSERT_TRUE(worker->WaitForOutput("draining (", kSlack)) << worker->Stderr();
  EXPECT_TRUE(worker->Running());
  ReleaseJobs();
  EXPECT_EQ(worker->Wait(kSlack), kExitOk) << worker->Stderr();
  EXPECT_EQ(Get(slow).state, JobState::kCompleted);
  EXPECT_EQ(Runs().EachRanOnce({slow}), "");
}

// A worker has no retry limit: it rides out a Redis that is down when it starts and one
// that goes away under it, and works again once Redis is back — it never exits over Redis
// (so a supervisor never counts an outage as crashes). Waits on purpose: the outage must
// outlast several of the worker's reconnect attempts (100 ms doubling).
TEST_F(JobsWork, ItRidesOutRedisBeingDownAtStartAndGoingAwayAndNeverExitsOverIt) {
  const std::string url = ParseRedisUrl(redis_->url())->Redacted();
  redis_->Kill();
  auto worker = StartWorker({"--concurrency", "1", "--max-rss", "0"});
  ASSERT_TRUE(worker->WaitForOutput("cannot reach Redis at " + url + ": ", kSlack))
      << worker->Stderr();
  const auto outage = 1s;
  auto until = std::chrono::steady_clock::now() + outage;
  ASSERT_TRUE(Eventually([&] { return std::chrono::steady_clock::now() >= until; },
                         outage + kSlack));
  EXPECT_TRUE(worker->Running()) << worker->Stderr();
  ASSERT_TRUE(redis_->Restart().ok());
  ASSERT_TRUE(queue_->connection().Reconnect().ok());
  ASSERT_TRUE(worker->WaitForOutput("Redis at " + url + " is back", 5s + kSlack))
      << worker->Stderr();
  std::string first = Submit("noop");
  ASSERT_TRUE(Reaches(first, JobState::kCompleted, kSlack)) << worker->Stderr();

  // Now under it: the worker notices at its next heartbeat (every second).
  redis_->Kill();
  ASSERT_TRUE(worker->WaitForOutput("lost Redis at " + url, 1s + kSlack)) << worker->Stderr();
  until = std::chrono::steady_clock::now() + outage;
  ASSERT_TRUE(Eventually([&] { return std::chrono::steady_clock::now() >= until; },
                         outage + kSlack));
  EXPECT_TRUE(worker->Running()) << worker->Stderr();
  ASSERT_TRUE(redis_->Restart().ok());
  ASSERT_TRUE(queue_->connection().Reconnect().ok());
  std::string second = Submit("noop");
  ASSERT_TRUE(Reaches(second, JobState::kCompleted, 5s + kSlack)) << worker->Stderr();
  ASSERT_TRUE(worker->Signal(SIGTERM));
  EXPECT_EQ(worker->Wait(kSlack), kExitOk) << worker->Stderr();
}
// docs/queue.md: a handler's lease and max attempts replace the job's; its timeout applies
// to jobs that set none — a job's own timeout wins (docs/lanes.md).
TEST_F(JobsWork, AHandlersLeaseAndMaxAttemptsReplaceTheJobsButAJobsOwnTimeoutWins) {
  std::string handlers = WriteHandlers("handlers:\n" + Recorded("hold") +
                                       "    lease: 1m\n"
                                       "  flaky:\n    command: ['false']\n    maxAttempts: 1\n"
                                       "  nap:\n    command: [sleep, '30']\n    timeout: 1m\n");
  std::string hold = Submit("hold", "{}", 3, Millis(6'000));
  std::string flaky = Submit("flaky", "{}", 3);
  JobSpec nap;
  nap.name = "nap";
  nap.max_attempts = 1;
  nap.timeout = Millis(300);
  auto napped = queue_->Enqueue(nap);
  ASSERT_TRUE(napped.ok());
  auto worker = StartWorker({"--concurrency", "3", "--max-rss", "0", "--handlers", handlers});
  ASSERT_TRUE(Reaches(flaky, JobState::kDead, kSlack)) << worker->Stderr();
  EXPECT_EQ(Get(flaky).attempts, 1);
  ASSERT_TRUE(Reaches(napped->id, JobState::kDead, kSlack)) << worker->Stderr();
  EXPECT_EQ(Get(napped->id).error, "timed out after 300ms");
  // The first renewal (a third into the job's 6 s lease) reaches a minute ahead.
  ASSERT_TRUE(Eventually([&] { return Get(hold).deadline_ms - NowUnixMillis() > 30'000; },
                         2s + kSlack))
      << worker->Stderr();
  ReleaseJobs();
  ASSERT_TRUE(Reaches(hold, JobState::kCompleted, kSlack)) << worker->Stderr();
}
}  // namespace
}  // namespace lk
