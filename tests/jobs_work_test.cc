// `lanekeeper jobs work` as a process: the real binary against a real redis-server, jobs
// submitted and inspected through JobQueue, handlers that are real programs.
#include <gtest/gtest.h>
#include <signal.h>
#include <stdlib.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "tests/support/child_process.h"
#include "tests/support/redis_server.h"
#include "worker/exit_codes.h"
#include "worker/job_queue.h"

namespace lk {
namespace {

using namespace std::chrono_literals;
using testing::ChildProcess;
using testing::ChildPids;
using testing::Eventually;
using testing::LanekeeperBinary;
using testing::ProcessAlive;
using testing::RedisServer;
using testing::RunLanekeeper;

constexpr char kWorkQueue[] = "work";


class JobsWork : public ::testing::Test {
 protected:
  void SetUp() override {
    auto server = RedisServer::Start();
    ASSERT_TRUE(server.ok()) << server.status().message();
    redis_ = std::move(server).value();
    auto queue = OpenJobQueue(redis_->url(), kWorkQueue);
    ASSERT_TRUE(queue.ok()) << queue.status().message();
    queue_ = std::move(queue).value();
    char tmpl[] = "/tmp/lk-jobs-work-XXXXXX";
    dir_ = mkdtemp(tmpl);
  }

  void TearDown() override {
    std::error_code ec;
    std::filesystem::remove_all(dir_, ec);
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

  Job Get(const std::string& id) {
    auto job = queue_->Get(id);
    EXPECT_TRUE(job.ok()) << job.status().message();
    return job.ok() ? *job : Job{};
  }

  bool Reaches(const std::string& id, JobState state, std::chrono::milliseconds timeout) {
    return Eventually([&] { return Get(id).state == state; }, timeout);
  }

  std::unique_ptr<RedisServer> redis_;
  std::unique_ptr<JobQueue> queue_;
  std::string dir_;
};

TEST_F(JobsWork, AJobOfASigkilledWorkerIsReclaimedAfterItsLeaseAndCompletedByTheNextWorker) {
  std::string id = Submit("sleep", R"({"ms": 1500})", 3, kMinLease);
  auto first = StartWorker({"--concurrency", "1", "--max-rss", "0"});
  ASSERT_TRUE(Reaches(id, JobState::kActive, 30s)) << first->Stderr();
  first->Signal(SIGKILL);
  ASSERT_TRUE(first->Wait(10s).has_value());

  auto second = StartWorker({"--concurrency", "1", "--max-rss", "0"});
  ASSERT_TRUE(Reaches(id, JobState::kCompleted, 60s)) << second->Stderr();
  Job job = Get(id);
  EXPECT_EQ(job.stalls, 1);
  EXPECT_EQ(job.attempts, 2);
  second->Signal(SIGTERM);
  EXPECT_EQ(second->Wait(30s), kExitOk);
}

TEST_F(JobsWork, OverMaxRssItDrainsLetsTheRunningJobFinishAndExits12) {
  std::string handlers = WriteHandlers("handlers:\n  hog:\n    command: [" + testing::TestHelperBinary("hold_memory") +
                                       ", '300', '2500']\n");
  std::string id = Submit("hog");
  std::string queued = Submit("noop");  // behind the hog: must still be waiting afterwards
  auto worker = StartWorker({"--concurrency", "1", "--max-rss", "256", "--handlers", handlers});
  EXPECT_EQ(worker->Wait(60s), kExitMaxRss) << worker->Stderr();
  EXPECT_EQ(Get(id).state, JobState::kCompleted);
  EXPECT_EQ(Get(queued).state, JobState::kWaiting);
  EXPECT_NE(worker->Stderr().find("over --max-rss"), std::string::npos) << worker->Stderr();
}

TEST_F(JobsWork, SigtermLetsTheRunningJobFinishReturnsBufferedJobsToWaitingAndExits0) {
  // Fast noops first teach the worker to prefetch; the slow job then runs with claimed
  // noops buffered behind it. Claimed is not running (both are "active" in Redis), so the
  // slow job says when it has started.
  std::string started = dir_ + "/started";
  std::string handlers = WriteHandlers("handlers:\n  slow:\n    command: [sh, -c, 'touch " +
                                       started + "; sleep 2']\n");
  std::vector<JobSpec> specs(100);
  for (auto& s : specs) s.name = "noop";
  ASSERT_TRUE(queue_->EnqueueBatch(specs).ok());
  std::string slow = Submit("slow");
  ASSERT_TRUE(queue_->EnqueueBatch(std::vector<JobSpec>(300, specs[0])).ok());

  auto worker = StartWorker({"--concurrency", "1", "--max-rss", "0", "--handlers", handlers});
  ASSERT_TRUE(Eventually([&] { return std::filesystem::exists(started); }, 30s)) << worker->Stderr();
  worker->Signal(SIGTERM);
  EXPECT_EQ(worker->Wait(30s), kExitOk) << worker->Stderr();
  EXPECT_EQ(Get(slow).state, JobState::kCompleted) << worker->Stderr();
  auto stats = queue_->Stats();
  ASSERT_TRUE(stats.ok());
  EXPECT_EQ(stats->active, 0);
  EXPECT_GT(stats->waiting, 0);
  EXPECT_EQ(stats->waiting + stats->completed, 401);
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
  ASSERT_TRUE(Reaches(id, JobState::kCompleted, 30s)) << worker->Stderr();
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
  ASSERT_TRUE(Reaches(id, JobState::kDead, 30s)) << worker->Stderr();
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
  ASSERT_TRUE(Reaches(id, JobState::kDead, 30s)) << worker->Stderr();
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
  ASSERT_TRUE(Reaches(id, JobState::kCompleted, 30s)) << worker->Stderr();
  auto [child, grandchild] = ReadPids(pidfile);
  ASSERT_GT(grandchild, 0);
  EXPECT_TRUE(Eventually([&] { return !ProcessAlive(grandchild); }, 10s));
}

TEST_F(JobsWork, AJobWithNoHandlerGoesDeadWithAMessageNamingTheHandlerAndQueue) {
  std::string id = Submit("transcode", "{}", 5);
  auto worker = StartWorker({"--concurrency", "1", "--max-rss", "0"});
  ASSERT_TRUE(Reaches(id, JobState::kDead, 30s)) << worker->Stderr();
  Job job = Get(id);
  EXPECT_EQ(job.error, "no handler 'transcode' on queue 'work'");
  EXPECT_EQ(job.attempts, 1);
}

TEST_F(JobsWork, NeverRunsMoreThanConcurrencyJobsAtOnce) {
  std::string handlers = WriteHandlers("handlers:\n  nap:\n    command: [sleep, '0.3']\n");
  std::vector<JobSpec> specs(18);
  for (auto& s : specs) s.name = "nap";
  ASSERT_TRUE(queue_->EnqueueBatch(specs).ok());
  auto worker = StartWorker({"--concurrency", "3", "--max-rss", "0", "--handlers", handlers});
  size_t most = 0;
  bool all_done = Eventually(
      [&] {
        most = std::max(most, ChildPids(worker->pid()).size());
        auto stats = queue_->Stats();
        return stats.ok() && stats->completed == 18;
      },
      60s);
  ASSERT_TRUE(all_done) << worker->Stderr();
  EXPECT_LE(most, 3u);
  EXPECT_EQ(most, 3u);
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

TEST_F(JobsWork, AWorkerWhoseEpochIsNoLongerCurrentDrainsAndExits13) {
  std::string epoch_key = JobQueue::KeyPrefix(kWorkQueue) + "epoch";
  ASSERT_TRUE(queue_->connection().Command({"SET", epoch_key, "5"}).ok());
  auto worker = StartWorker({"--concurrency", "1", "--max-rss", "0", "--epoch", "5"});
  std::string first = Submit("noop");
  ASSERT_TRUE(Reaches(first, JobState::kCompleted, 30s)) << worker->Stderr();

  ASSERT_TRUE(queue_->connection().Command({"SET", epoch_key, "6"}).ok());
  EXPECT_EQ(worker->Wait(30s), kExitFenced) << worker->Stderr();
  EXPECT_NE(worker->Stderr().find("queue work is owned by epoch 6; this worker (epoch 5) is fenced"),
            std::string::npos)
      << worker->Stderr();
  std::string after = Submit("noop");
  EXPECT_EQ(Get(after).state, JobState::kWaiting);
}

}  // namespace
}  // namespace lk
