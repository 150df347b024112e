// JobRunner in-process against a real redis-server: timeouts, cancellation, Redis
// outages, bulk draining; and the process-tree primitives under it.
#include "worker/job_runner.h"

#include <gtest/gtest.h>
#include <signal.h>
#include <unistd.h>

#include <condition_variable>
#include <cstdlib>
#include <memory>
#include <mutex>
#include <optional>
#include <thread>

#include "tests/support/child_process.h"
#include "tests/support/redis_server.h"
#include "worker/exit_codes.h"
#include "worker/handler_config.h"
#include "worker/process_tree.h"
#include "worker/worker_registry.h"

namespace lk {
namespace {

using namespace std::chrono_literals;
using testing::ChildProcess;
using testing::Eventually;
using testing::RedisServer;
using testing::RedisServerOptions;

constexpr char kRunnerQueue[] = "runner";


// A JobRunner on its own thread; stopped (and its exit code kept) on Stop or destruction.
class RunningWorker {
 public:
  explicit RunningWorker(JobRunnerOptions options) : runner_(std::move(options)) {
    thread_ = std::thread([this] { exit_code_ = runner_.Run(); });
  }
  ~RunningWorker() { Stop(); }
  int Stop() {
    if (thread_.joinable()) {
      runner_.RequestStop();
      thread_.join();
    }
    return exit_code_;
  }

 private:
  JobRunner runner_;
  std::thread thread_;
  int exit_code_ = -1;
};

class JobRunnerTest : public ::testing::Test {
 protected:
  void StartRedis(RedisServerOptions options = {}) {
    auto server = RedisServer::Start(options);
    ASSERT_TRUE(server.ok()) << server.status().message();
    redis_ = std::move(server).value();
    auto queue = OpenJobQueue(redis_->url(), kRunnerQueue);
    ASSERT_TRUE(queue.ok()) << queue.status().message();
    queue_ = std::move(queue).value();
  }
  void SetUp() override { StartRedis(); }

  JobRunnerOptions Options(int concurrency) {
    JobRunnerOptions o;
    o.redis_url = redis_->url();
    o.queue = kRunnerQueue;
    o.concurrency = concurrency;
    return o;
  }

  std::string Submit(JobSpec spec) {
    auto r = queue_->Enqueue(spec);
    EXPECT_TRUE(r.ok()) << r.status().message();
    return r.ok() ? r->id : "";
  }

  Job Get(const std::string& id) {
    auto job = queue_->Get(id);
    return job.ok() ? *job : Job{};
  }

  bool Reaches(const std::string& id, JobState state, std::chrono::milliseconds timeout) {
    return Eventually([&] { return Get(id).state == state; }, timeout);
  }

  std::unique_ptr<RedisServer> redis_;
  std::unique_ptr<JobQueue> queue_;
};

JobSpec Spec(const std::string& name, const std::string& payload = "{}") {
  JobSpec s;
  s.name = name;
  s.payload = payload;
  return s;
}

TEST_F(JobRunnerTest, BuiltinJobsSucceedOrFailAsTheirPayloadSays) {
  JobSpec fail = Spec("fail", R"({"error": "bad input"})");
  fail.max_attempts = 1;
  std::string failed = Submit(fail);
  JobSpec fail_default = Spec("fail");
  fail_default.max_attempts = 1;
  std::string failed_default = Submit(fail_default);
  std::string ok = Submit(Spec("noop"));
  std::string slept = Submit(Spec("sleep", R"({"ms": 50})"));
  RunningWorker worker(Options(2));
  EXPECT_TRUE(Reaches(ok, JobState::kCompleted, 30s));
  EXPECT_TRUE(Reaches(slept, JobState::kCompleted, 30s));
  ASSERT_TRUE(Reaches(failed, JobState::kDead, 30s));
  EXPECT_EQ(Get(failed).error, "bad input");
  ASSERT_TRUE(Reaches(failed_default, JobState::kDead, 30s));
  EXPECT_EQ(Get(failed_default).error, "failed on purpose");
  EXPECT_EQ(worker.Stop(), kExitOk);
}

TEST_F(JobRunnerTest, AFailedJobIsRetriedWithBackoffUntilItsAttemptsRunOut) {
  JobSpec fail = Spec("fail");
  fail.max_attempts = 2;
  std::string id = Submit(fail);
  RunningWorker worker(Options(1));
  // First failure: delayed about 1 s (x0.8..1.2), then claimed again and dead.
  ASSERT_TRUE(Reaches(id, JobState::kDead, 30s));
  EXPECT_EQ(Get(id).attempts, 2);
}

TEST_F(JobRunnerTest, AJobPastItsTimeoutFailsWithTimedOutAfterItsTimeout) {
  JobSpec spec = Spec("sleep", R"({"ms": 60000})");
  spec.timeout = Millis(300);
  spec.max_attempts = 1;
  std::string id = Submit(spec);
  RunningWorker worker(Options(1));
  ASSERT_TRUE(Reaches(id, JobState::kDead, 30s));
  EXPECT_EQ(Get(id).error, "timed out after 300ms");
}

TEST_F(JobRunnerTest, AHandlersTimeoutAppliesWhenTheJobSetsNone) {
  JobRunnerOptions options = Options(1);
  options.handlers["sleep"].timeout = Millis(200);
  JobSpec spec = Spec("sleep", R"({"ms": 60000})");
  spec.max_attempts = 1;
  std::string id = Submit(spec);
  RunningWorker worker(std::move(options));
  ASSERT_TRUE(Reaches(id, JobState::kDead, 30s));
  EXPECT_EQ(Get(id).error, "timed out after 200ms");
}

TEST_F(JobRunnerTest, CancellingARunningJobStopsItsHandlerAndFreesTheSlot) {
  JobSpec spec = Spec("sleep", R"({"ms": 120000})");
  spec.lease = kMinLease;  // renewed every ~2 s: that is when the worker learns of the cancel
  std::string id = Submit(spec);
  RunningWorker worker(Options(1));
  ASSERT_TRUE(Reaches(id, JobState::kActive, 30s));
  ASSERT_TRUE(queue_->Cancel(id).ok());
  std::string next = Submit(Spec("noop"));
  EXPECT_TRUE(Reaches(next, JobState::kCompleted, 30s));
  EXPECT_EQ(Get(id).state, JobState::kCancelled);
}

// A handler that runs until it is told to stop, and says when it started and stopped.
class UntilStopped : public Handler {
 public:
  HandlerOutcome Run(const JobContext& ctx) override {
    Signal([&] { started_ = true; });
    while (!ctx.stop.stop_requested()) ctx.stop.SleepFor(Millis(60'000));
    Signal([&] { stopped_at_ = std::chrono::steady_clock::now(); });
    return {true, "finished anyway", ""};
  }
  bool WaitStarted(std::chrono::milliseconds timeout) {
    std::unique_lock lk(mu_);
    return cv_.wait_for(lk, timeout, [&] { return started_; });
  }
  std::optional<std::chrono::steady_clock::time_point> WaitStopped(
      std::chrono::milliseconds timeout) {
    std::unique_lock lk(mu_);
    cv_.wait_for(lk, timeout, [&] { return stopped_at_.has_value(); });
    return stopped_at_;
  }

 private:
  template <typename F>
  void Signal(F change) {
    {
      std::lock_guard lk(mu_);
      change();
    }
    cv_.notify_all();
  }
  std::mutex mu_;
  std::condition_variable cv_;
  bool started_ = false;
  std::optional<std::chrono::steady_clock::time_point> stopped_at_;
};

TEST_F(JobRunnerTest, CancellingARunningJobStopsItsHandlerWithinASecond) {
  auto handler = std::make_shared<UntilStopped>();
  JobRunnerOptions options = Options(1);
  options.handlers["until-stopped"].handler = handler;
  std::string id = Submit(Spec("until-stopped"));  // the default 30 s lease: renewed every 10 s
  RunningWorker worker(std::move(options));
  ASSERT_TRUE(handler->WaitStarted(30s));
  auto cancelled_at = std::chrono::steady_clock::now();
  ASSERT_TRUE(queue_->Cancel(id).ok());
  auto stopped_at = handler->WaitStopped(30s);
  ASSERT_TRUE(stopped_at.has_value()) << "the handler was never stopped";
  EXPECT_LT(*stopped_at - cancelled_at, 1s);
  std::printf("handler stopped %lld ms after the cancel\n",
              static_cast<long long>(std::chrono::duration_cast<std::chrono::milliseconds>(
                                         *stopped_at - cancelled_at).count()));
  // The worker reports the stop, which ends the claim; the outcome is not recorded.
  EXPECT_TRUE(Eventually([&] { return Get(id).state == JobState::kCancelled && Get(id).result.empty() &&
                                      queue_->Stats()->active == 0; }, 10s));
}

TEST_F(JobRunnerTest, LongJobsKeepTheirLeaseWhileTheyRun) {
  JobSpec spec = Spec("sleep", R"({"ms": 8000})");
  spec.lease = kMinLease;
  std::string id = Submit(spec);
  RunningWorker worker(Options(1));
  ASSERT_TRUE(Reaches(id, JobState::kCompleted, 60s));
  Job job = Get(id);
  EXPECT_EQ(job.stalls, 0);
  EXPECT_EQ(job.attempts, 1);
}

TEST_F(JobRunnerTest, OutcomesOfJobsThatFinishWhileRedisIsDownAreRecordedWhenItIsBack) {
  redis_.reset();
  StartRedis({.appendonly = true, .password = "", .extra_args = "--appendfsync always"});
  std::string id = Submit(Spec("sleep", R"({"ms": 1500})"));
  RunningWorker worker(Options(1));
  ASSERT_TRUE(Reaches(id, JobState::kActive, 30s));
  redis_->Kill();
  // The job finishes while Redis is away; its outcome waits in the worker.
  std::this_thread::sleep_for(2500ms);
  ASSERT_TRUE(redis_->Restart().ok());
  auto queue = OpenJobQueue(redis_->url(), kRunnerQueue);
  ASSERT_TRUE(queue.ok());
  queue_ = std::move(queue).value();
  ASSERT_TRUE(Reaches(id, JobState::kCompleted, 30s));
  EXPECT_EQ(Get(id).attempts, 1);
  std::string after = Submit(Spec("noop"));
  EXPECT_TRUE(Reaches(after, JobState::kCompleted, 30s));
}

TEST_F(JobRunnerTest, DrainsManyFastJobsCompletingEachExactlyOnce) {
  constexpr int kJobs = 20'000;
  std::vector<JobSpec> specs(1'000, Spec("noop"));
  for (int i = 0; i < kJobs; i += 1'000) ASSERT_TRUE(queue_->EnqueueBatch(specs).ok());
  JobRunnerOptions options = Options(16);
  options.queue_options.keep_completed = kJobs;
  auto start = std::chrono::steady_clock::now();
  RunningWorker worker(std::move(options));
  ASSERT_TRUE(Eventually(
      [&] {
        auto s = queue_->Stats();
        return s.ok() && s->completed == kJobs;
      },
      120s));
  double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  auto stats = queue_->Stats();
  ASSERT_TRUE(stats.ok());
  EXPECT_EQ(stats->waiting, 0);
  EXPECT_EQ(stats->active, 0);
  EXPECT_EQ(stats->dead, 0);
  std::printf("drained %d noop jobs in %.2f s: %.0f jobs/s\n", kJobs, secs, kJobs / secs);
}

TEST_F(JobRunnerTest, AStopInTheMiddleOfAFastDrainLosesNoJobAndRunsNoneTwice) {
  constexpr int kJobs = 20'000;
  std::vector<JobSpec> specs(1'000, Spec("noop"));
  for (int i = 0; i < kJobs; i += 1'000) ASSERT_TRUE(queue_->EnqueueBatch(specs).ok());
  JobRunnerOptions options = Options(16);
  options.queue_options.keep_completed = kJobs;
  RunningWorker worker(std::move(options));
  ASSERT_TRUE(Eventually(
      [&] {
        auto s = queue_->Stats();
        return s.ok() && s->completed >= 3'000;
      },
      120s));
  // Stopped with claims in flight on both connections (dispatcher and pump): every job
  // ends up completed once or back in waiting, none left active or claimed.
  EXPECT_EQ(worker.Stop(), kExitOk);
  auto stats = queue_->Stats();
  ASSERT_TRUE(stats.ok());
  EXPECT_EQ(stats->active, 0);
  EXPECT_EQ(stats->dead, 0);
  EXPECT_EQ(stats->waiting + stats->completed, kJobs);
  auto claims = queue_->connection().Command({"KEYS", JobQueue::KeyPrefix(kRunnerQueue) + "claim:*"});
  ASSERT_TRUE(claims.ok());
  EXPECT_TRUE(claims->elements.empty());
  auto completed = queue_->List(JobState::kCompleted, kJobs);
  ASSERT_TRUE(completed.ok()) << completed.status().message();
  EXPECT_EQ(static_cast<int64_t>(completed->size()), stats->completed);
  for (const Job& job : *completed) ASSERT_EQ(job.attempts, 1) << "job " << job.id;
  auto waiting = queue_->List(JobState::kWaiting, kJobs);
  ASSERT_TRUE(waiting.ok());
  for (const Job& job : *waiting) ASSERT_EQ(job.attempts, 0) << "job " << job.id;
}

TEST_F(JobRunnerTest, ARunningWorkerIsListedInTheRegistryUntilItStops) {
  RunningWorker worker(Options(3));
  std::vector<WorkerInfo> live;
  ASSERT_TRUE(Eventually(
      [&] {
        auto r = ListLiveWorkers(queue_->connection(), kRunnerQueue, Millis(10'000));
        if (r.ok()) live = *r;
        return live.size() == 1;
      },
      30s));
  EXPECT_EQ(live[0].pid, getpid());
  EXPECT_EQ(live[0].concurrency, 3);
  EXPECT_GT(live[0].rss_mb, 0);
  worker.Stop();
  auto after = ListLiveWorkers(queue_->connection(), kRunnerQueue, Millis(10'000));
  ASSERT_TRUE(after.ok());
  EXPECT_TRUE(after->empty());
}

TEST_F(JobRunnerTest, AStopRequestedBeforeRunMakesItReturnZero) {
  JobRunner runner(Options(1));
  runner.RequestStop();
  EXPECT_EQ(runner.Run(), kExitOk);
}

TEST(JobRunnerProcessTree, RssOfAProcessTreeCountsItsDescendants) {
  int64_t before = RssOfProcessTree(getpid());
  ChildProcess hog({testing::TestHelperBinary("hold_memory"), "128", "30000"});
  EXPECT_TRUE(Eventually([&] { return RssOfProcessTree(getpid()) - before > 100LL * 1024 * 1024; },
                         30s));
  EXPECT_GT(RssOfProcessTree(hog.pid()), 100LL * 1024 * 1024);
  EXPECT_EQ(RssOfProcessTree(999'999'999), 0);
}

// Both ways of finding descendants count the same tree: a grandchild (through a shell)
// and a child forked by another thread than the main one, whose parent in the children
// lists is that thread.
TEST(JobRunnerProcessTree, BothWalksCountGrandchildrenAndChildrenOfOtherThreads) {
  const int64_t mib = 1024 * 1024;
  int64_t before = RssOfProcessTree(getpid(), ProcessWalk::kScanProc);
  ChildProcess shell({"/bin/sh", "-c", testing::TestHelperBinary("hold_memory") + " 96 30000 & wait"});
  std::unique_ptr<ChildProcess> from_thread;
  std::thread([&] {
    from_thread = std::make_unique<ChildProcess>(
        std::vector<std::string>{testing::TestHelperBinary("hold_memory"), "64", "30000"});
  }).join();
  // Each holds its memory once it has touched all of it (the scan, the old way, says when).
  ASSERT_TRUE(Eventually([&] {
    return RssOfProcessTree(shell.pid(), ProcessWalk::kScanProc) > 90 * mib &&
           RssOfProcessTree(from_thread->pid(), ProcessWalk::kScanProc) > 60 * mib;
  }, 30s));
  // Whichever walk this kernel gets counts the whole tree, the shell's child included.
  EXPECT_GT(RssOfProcessTree(getpid()) - before, 150 * mib);
  EXPECT_GT(RssOfProcessTree(shell.pid()), 90 * mib);
  // The lists exist on Debian's kernels; where they do, both walks agree.
  std::string lists = "/proc/self/task/" + std::to_string(::gettid()) + "/children";
  if (::access(lists.c_str(), R_OK) == 0) {
    int64_t walked = RssOfProcessTree(getpid(), ProcessWalk::kChildrenLists);
    int64_t scanned = RssOfProcessTree(getpid(), ProcessWalk::kScanProc);
    EXPECT_GT(walked - before, 150 * mib);
    EXPECT_LT(std::abs(walked - scanned), 16 * mib) << walked << " vs " << scanned;
    EXPECT_GT(RssOfProcessTree(shell.pid(), ProcessWalk::kChildrenLists), 90 * mib);
  }
  EXPECT_EQ(RssOfProcessTree(999'999'999, ProcessWalk::kChildrenLists), 0);
  EXPECT_EQ(RssOfProcessTree(999'999'999, ProcessWalk::kScanProc), 0);
}

TEST(JobRunnerProcessTree, ACommandStoppedThroughItsStopFdEndsPromptly) {
  StopToken stop;
  stop.Reset(std::chrono::steady_clock::time_point::max());
  GroupCommand command;
  command.argv = {"sleep", "60"};
  command.stop_fd = stop.fd();
  std::thread stopper([&] {
    std::this_thread::sleep_for(200ms);
    stop.Request(StopReason::kShutdown);
  });
  auto start = std::chrono::steady_clock::now();
  auto r = RunInProcessGroup(command);
  stopper.join();
  ASSERT_TRUE(r.ok()) << r.status().message();
  EXPECT_TRUE(r->stopped);
  EXPECT_EQ(r->term_signal, SIGTERM);
  EXPECT_LT(std::chrono::steady_clock::now() - start, 10s);
}

TEST(JobRunnerProcessTree, ACommandThatIgnoresSigtermIsKilledAfterTheGrace) {
  GroupCommand command;
  command.argv = {"sh", "-c", "trap '' TERM; sleep 60"};
  command.deadline = std::chrono::steady_clock::now() + 200ms;
  command.kill_grace = Millis(300);
  auto r = RunInProcessGroup(command);
  ASSERT_TRUE(r.ok());
  EXPECT_TRUE(r->timed_out);
  EXPECT_EQ(r->term_signal, SIGKILL);
}

TEST(JobRunnerProcessTree, OutputTailsKeepTheLastBytes) {
  GroupCommand command;
  command.argv = {"sh", "-c", "seq 1 100000; seq 1 5000 >&2"};
  command.stdout_limit = 16;
  command.stderr_limit = 10;
  auto r = RunInProcessGroup(command);
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->exit_code, 0);
  EXPECT_EQ(r->stdout_tail, "98\n99999\n100000\n");
  EXPECT_EQ(r->stderr_tail, "4999\n5000\n");
}

TEST(JobRunnerProcessTree, AMissingProgramIsAnErrorNamingIt) {
  GroupCommand command;
  command.argv = {"/nonexistent/lanekeeper-handler"};
  auto r = RunInProcessGroup(command);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find("cannot run '/nonexistent/lanekeeper-handler'"),
            std::string::npos);
}

TEST(JobRunnerHandlersFile, ParsesCommandsAndTheirSettings) {
  auto specs = ParseHandlerConfig(R"(handlers:
  embed:
    command: [python3, embed.py]
    timeout: 10m
    lease: 300s
    maxAttempts: 4
  thumb:
    command:
      - convert
)",
                                  "handlers.yaml");
  ASSERT_TRUE(specs.ok()) << specs.status().message();
  ASSERT_EQ(specs->size(), 2u);
  EXPECT_EQ((*specs)[0].name, "embed");
  EXPECT_EQ((*specs)[0].command, (std::vector<std::string>{"python3", "embed.py"}));
  EXPECT_EQ((*specs)[0].timeout, Millis(600'000));
  EXPECT_EQ((*specs)[0].lease, Millis(300'000));
  EXPECT_EQ((*specs)[0].max_attempts, 4);
  EXPECT_EQ((*specs)[1].command, (std::vector<std::string>{"convert"}));
  EXPECT_EQ((*specs)[1].timeout, Millis(0));
}

TEST(JobRunnerHandlersFile, ErrorsNameFileLineColumnAndFieldPath) {
  struct Case {
    const char* yaml;
    const char* error;
  };
  const Case cases[] = {
      {"handlers:\n  embed:\n    command: [python3]\n    timeout: 10x\n",
       "handlers.yaml:4:14: handlers.embed.timeout: bad duration '10x': expected"},
      {"handlers:\n  embed:\n    command: [python3]\n    retries: 3\n",
       "handlers.yaml:4:5: handlers.embed.retries: unknown field"},
      {"handlers:\n  embed:\n    timeout: 1s\n", "handlers.yaml:3:5: handlers.embed.command: missing"},
      {"handlers:\n  embed:\n    command: python3 embed.py\n",
       "handlers.yaml:3:14: handlers.embed.command: expected a non-empty list"},
      {"handlers:\n  embed:\n    command: [python3]\n    lease: 1s\n",
       "handlers.yaml:4:12: handlers.embed.lease: must be 5s to 1h, got '1s'"},
      {"handlers:\n  embed:\n    command: [python3]\n    maxAttempts: 0\n",
       "handlers.yaml:4:18: handlers.embed.maxAttempts: must be 1 to 1000, got 0"},
      {"handler:\n  embed: {}\n", "handlers.yaml:1:1: handler: unknown field"},
      {"handlers:\n  embed: [\n", "handlers.yaml:3:1: invalid YAML"},
      {"handlers:\n  embed: {command: [a]}\n---\nhandlers:\n  more: {command: [b]}\n",
       "handlers.yaml:4:1: a second YAML document: this file holds one"},
  };
  for (const Case& c : cases) {
    auto r = ParseHandlerConfig(c.yaml, "handlers.yaml");
    ASSERT_FALSE(r.ok()) << c.yaml;
    EXPECT_EQ(r.status().message().rfind(c.error, 0), 0u)
        << "got: " << r.status().message() << "\nwant prefix: " << c.error;
  }
}

TEST(JobRunnerHandlersFile, EmptyDocumentsAroundTheOneDocumentAreFine) {
  auto r = ParseHandlerConfig("# handlers of the kb lane\n---\nhandlers:\n  a: {command: [x]}\n---\n",
                              "handlers.yaml");
  ASSERT_TRUE(r.ok()) << r.status().message();
  ASSERT_EQ(r->size(), 1u);
  EXPECT_EQ((*r)[0].name, "a");
}

TEST(JobRunnerHandlersFile, AnUnreadableFileIsAnErrorNamingIt) {
  auto r = LoadHandlerConfig("/nonexistent/handlers.yaml");
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find("/nonexistent/handlers.yaml"), std::string::npos);
}

}  // namespace
}  // namespace lk
