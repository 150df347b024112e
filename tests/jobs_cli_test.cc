// The queue from the command line: the real lanekeeper binary against a real redis-server.
// Behaviour is checked in what the binary prints and in the queue it leaves behind.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>
#include <sstream>

#include "tests/support/child_process.h"
#include "tests/support/redis_server.h"
#include "worker/exit_codes.h"
#include "worker/job_queue.h"

namespace lk {
namespace {

using ::testing::ContainsRegex;
using ::testing::HasSubstr;
using ::testing::MatchesRegex;
using ::testing::Not;
using ::testing::StartsWith;
using nlohmann::json;
using testing::CommandResult;
using testing::RedisServer;
using testing::RedisServerOptions;
using testing::RunLanekeeper;

std::vector<std::string> Lines(const std::string& text) {
  std::vector<std::string> lines;
  std::istringstream in(text);
  for (std::string line; std::getline(in, line);) lines.push_back(line);
  return lines;
}

std::string Trimmed(const std::string& s) {
  return s.substr(0, s.find_last_not_of("\n") + 1);
}

RedisServerOptions WithPassword(const std::string& password) {
  RedisServerOptions options;
  options.password = password;
  return options;
}

class JobsCli : public ::testing::Test {
 protected:
  void SetUp() override { StartRedis({}); }

  void StartRedis(const RedisServerOptions& options) {
    auto server = RedisServer::Start(options);
    ASSERT_TRUE(server.ok()) << server.status().message();
    server_ = std::move(server).value();
  }

  // Runs lanekeeper with --redis pointing at this test's server, after the subcommand.
  CommandResult Lk(std::vector<std::string> args, int db = 0) {
    args.push_back("--redis");
    args.push_back(server_->url(db));
    return RunLanekeeper(std::move(args));
  }

  // Submits and returns the printed id, failing the test if the command did not succeed.
  std::string Submit(std::vector<std::string> args) {
    args.insert(args.begin(), {"jobs", "submit"});
    CommandResult r = Lk(args);
    EXPECT_EQ(r.exit_code, kExitOk) << r.err;
    EXPECT_THAT(r.out, MatchesRegex("[0-9]+\n"));
    return Trimmed(r.out);
  }

  std::unique_ptr<JobQueue> Queue(const std::string& name = "default", int db = 0) {
    auto q = OpenJobQueue(server_->url(db), name);
    EXPECT_TRUE(q.ok()) << q.status().message();
    return q.ok() ? std::move(q).value() : nullptr;
  }

  long long DbSize(int db = 0) {
    auto q = Queue("default", db);
    auto r = q->connection().Command({"DBSIZE"});
    EXPECT_TRUE(r.ok());
    return r.ok() ? r->integer : -1;
  }

  // Claims the next job (id) and finishes it with error, as a worker whose handler failed.
  void ClaimAndFail(const std::string& id, const std::string& error) {
    auto q = Queue();
    auto claim = q->ClaimBatch(1, 0);
    ASSERT_TRUE(claim.ok() && claim->jobs.size() == 1);
    ASSERT_EQ(claim->jobs[0].id, id);
    JobOutcome failure;
    failure.id = id;
    failure.token = claim->jobs[0].token;
    failure.success = false;
    failure.error = error;
    EXPECT_TRUE(q->FinishBatch({failure}).ok());
  }

  // A job that failed its only attempt: claimed and finished with an error.
  std::string DeadJob() {
    std::string id = Submit({"flaky", "--max-attempts", "1"});
    ClaimAndFail(id, "boom");
    EXPECT_EQ(Queue()->Get(id)->state, JobState::kDead);
    return id;
  }

  std::unique_ptr<RedisServer> server_;
};

TEST_F(JobsCli, SubmitPrintsTheNewJobsIdAndStoresItWaiting) {
  CommandResult r = Lk({"jobs", "submit", "send-email", "--payload", R"({"to":"a@example.org"})"});
  ASSERT_EQ(r.exit_code, kExitOk) << r.err;
  EXPECT_THAT(r.out, MatchesRegex("[0-9]+\n"));
  EXPECT_EQ(r.err, "");
  auto job = Queue()->Get(Trimmed(r.out));
  ASSERT_TRUE(job.ok()) << job.status().message();
  EXPECT_EQ(job->name, "send-email");
  EXPECT_EQ(job->state, JobState::kWaiting);
  EXPECT_EQ(json::parse(job->payload), json({{"to", "a@example.org"}}));
}

TEST_F(JobsCli, SubmitStoresEveryFlag) {
  std::string id = Submit({"report", "--priority", "-5", "--delay", "5m", "--max-attempts", "7",
                           "--timeout", "90s", "--lease", "2m", "--idempotency-key", "r-1",
                           "--idempotency-window", "7d", "--max-backoff", "10m"});
  auto q = Queue();
  EXPECT_EQ(q->connection().Command({"HGET", "lk:{default}:job:" + id, "max_backoff_ms"})->str,
            "600000");
  EXPECT_EQ(q->connection().Command({"HGET", "lk:{default}:job:" + id, "idem_window_ms"})->str,
            "604800000");
  auto job = q->Get(id);
  ASSERT_TRUE(job.ok());
  EXPECT_EQ(job->state, JobState::kDelayed);
  EXPECT_EQ(job->priority, -5);
  EXPECT_EQ(job->max_attempts, 7);
  EXPECT_EQ(job->timeout, Millis(90'000));
  EXPECT_EQ(job->lease, Millis(120'000));
  EXPECT_EQ(job->idempotency_key, "r-1");
  EXPECT_EQ(job->payload, "{}");
  EXPECT_GE(job->run_at_ms - job->created_ms, 300'000 - 1'000);
}

TEST_F(JobsCli, ResubmitWithTheSameIdempotencyKeyPrintsTheExistingJobAndAddsNothing) {
  std::string first = Submit({"charge", "--idempotency-key", "order-17"});
  CommandResult again = Lk({"jobs", "submit", "charge", "--idempotency-key", "order-17"});
  ASSERT_EQ(again.exit_code, kExitOk) << again.err;
  EXPECT_EQ(Trimmed(again.out), first);
  EXPECT_THAT(again.err, HasSubstr("existing job " + first));
  EXPECT_EQ(Queue()->Stats()->waiting, 1);
}

TEST_F(JobsCli, GetShowsAJobForPeopleAndAsJson) {
  std::string id = Submit({"resize", "--payload", R"({"w":640})", "--priority", "3"});
  CommandResult text = Lk({"jobs", "get", id});
  ASSERT_EQ(text.exit_code, kExitOk) << text.err;
  EXPECT_THAT(text.out, ContainsRegex("name +resize\n"));
  EXPECT_THAT(text.out, ContainsRegex("state +waiting\n"));
  EXPECT_THAT(text.out, HasSubstr(R"({"w":640})"));

  CommandResult js = Lk({"jobs", "get", id, "--json"});
  ASSERT_EQ(js.exit_code, kExitOk) << js.err;
  json j = json::parse(js.out);
  EXPECT_EQ(j["id"], id);
  EXPECT_EQ(j["name"], "resize");
  EXPECT_EQ(j["state"], "waiting");
  EXPECT_EQ(j["priority"], 3);
  EXPECT_EQ(j["max_attempts"], 3);
  EXPECT_EQ(j["payload"], json({{"w", 640}}));
}

TEST_F(JobsCli, GetShowsEachAttemptsErrorAndWholeNumbers) {
  std::string id = Submit({"flaky", "--max-attempts", "100"});
  // As if it had failed 59 times: an uncapped backoff would be due in 10^13 years.
  Queue()->connection().Command({"HSET", "lk:{default}:job:" + id, "attempts", "59"});
  ClaimAndFail(id, "upstream timed out");

  CommandResult js = Lk({"jobs", "get", id, "--json"});
  ASSERT_EQ(js.exit_code, kExitOk) << js.err;
  json j = json::parse(js.out);
  ASSERT_TRUE(j["run_at_ms"].is_number_integer()) << js.out;
  EXPECT_GT(j["run_at_ms"].get<int64_t>(), NowUnixMillis());
  EXPECT_LE(j["run_at_ms"].get<int64_t>(), NowUnixMillis() + 3'600'000);
  ASSERT_EQ(j["attempt_errors"].size(), 1u) << js.out;
  EXPECT_EQ(j["attempt_errors"][0]["attempt"], 60);
  EXPECT_EQ(j["attempt_errors"][0]["error"], "upstream timed out");
  EXPECT_TRUE(j["attempt_errors"][0]["at_ms"].is_number_integer());

  CommandResult text = Lk({"jobs", "get", id});
  EXPECT_THAT(text.out, ContainsRegex("attempt 60 +[0-9-]+T[0-9:.]+Z  upstream timed out\n"));
}

TEST_F(JobsCli, ListShowsTheJobsOfOneStateUpToTheLimit) {
  std::string a = Submit({"a"});
  std::string b = Submit({"b"});
  std::string c = Submit({"c", "--delay", "1h"});

  CommandResult waiting = Lk({"jobs", "list", "--state", "waiting", "--json"});
  ASSERT_EQ(waiting.exit_code, kExitOk) << waiting.err;
  json w = json::parse(waiting.out);
  ASSERT_EQ(w.size(), 2u);
  EXPECT_EQ(w[0]["id"], a);
  EXPECT_EQ(w[1]["id"], b);

  json limited = json::parse(Lk({"jobs", "list", "--state", "waiting", "--limit", "1", "--json"}).out);
  ASSERT_EQ(limited.size(), 1u);
  EXPECT_EQ(limited[0]["id"], a);

  CommandResult delayed = Lk({"jobs", "list", "--state", "delayed"});
  ASSERT_EQ(delayed.exit_code, kExitOk) << delayed.err;
  auto lines = Lines(delayed.out);
  ASSERT_EQ(lines.size(), 2u) << delayed.out;  // header and one job
  EXPECT_THAT(lines[0], StartsWith("ID"));
  EXPECT_THAT(lines[1], StartsWith(c + " "));
  EXPECT_THAT(lines[1], HasSubstr("due in 59m"));

  CommandResult none = Lk({"jobs", "list", "--state", "dead"});
  EXPECT_EQ(none.exit_code, kExitOk);
  EXPECT_EQ(none.out, "no dead jobs in queue 'default'\n");
  EXPECT_EQ(json::parse(Lk({"jobs", "list", "--state", "dead", "--json"}).out), json::array());
}

TEST_F(JobsCli, StatsCountsJobsPerStateAndTheOldestWaitingAge) {
  CommandResult empty = Lk({"jobs", "stats", "--json"});
  ASSERT_EQ(empty.exit_code, kExitOk) << empty.err;
  EXPECT_TRUE(json::parse(empty.out)["oldest_waiting_age_ms"].is_null());

  DeadJob();
  Submit({"a"});
  Submit({"b"});
  Submit({"c", "--delay", "1h"});
  json s = json::parse(Lk({"jobs", "stats", "--json"}).out);
  EXPECT_EQ(s["queue"], "default");
  EXPECT_EQ(s["waiting"], 2);
  EXPECT_EQ(s["delayed"], 1);
  EXPECT_EQ(s["active"], 0);
  EXPECT_EQ(s["dead"], 1);
  EXPECT_EQ(s["completed"], 0);
  EXPECT_EQ(s["cancelled"], 0);
  EXPECT_GE(s["oldest_waiting_age_ms"].get<int64_t>(), 0);

  CommandResult text = Lk({"jobs", "stats"});
  ASSERT_EQ(text.exit_code, kExitOk) << text.err;
  EXPECT_THAT(text.out, ContainsRegex("waiting +2  \\(oldest waiting [0-9]+m?s\\)\n"));
  EXPECT_THAT(text.out, ContainsRegex("dead +1\n"));
}

TEST_F(JobsCli, RetrySendsADeadJobBackToWaiting) {
  std::string id = DeadJob();
  CommandResult r = Lk({"jobs", "retry", id});
  ASSERT_EQ(r.exit_code, kExitOk) << r.err;
  EXPECT_EQ(r.out, "job " + id + ": waiting again\n");
  auto job = Queue()->Get(id);
  EXPECT_EQ(job->state, JobState::kWaiting);
  EXPECT_EQ(job->attempts, 0);
}

TEST_F(JobsCli, RetryRefusesAJobThatIsNotDeadAndLeavesIt) {
  std::string id = Submit({"a"});
  CommandResult r = Lk({"jobs", "retry", id});
  EXPECT_EQ(r.exit_code, kExitFailure);
  EXPECT_EQ(r.out, "");
  EXPECT_EQ(r.err, "lanekeeper: job '" + id + "' is waiting, only dead jobs can be retried\n");
  EXPECT_EQ(Queue()->Get(id)->state, JobState::kWaiting);
}

TEST_F(JobsCli, CancelStopsAWaitingJobAndRefusesTwice) {
  std::string id = Submit({"a"});
  CommandResult r = Lk({"jobs", "cancel", id});
  ASSERT_EQ(r.exit_code, kExitOk) << r.err;
  EXPECT_EQ(r.out, "job " + id + ": cancelled\n");
  EXPECT_EQ(Queue()->Get(id)->state, JobState::kCancelled);
  json cancelled = json::parse(Lk({"jobs", "list", "--state", "cancelled", "--json"}).out);
  ASSERT_EQ(cancelled.size(), 1u);
  EXPECT_EQ(cancelled[0]["id"], id);

  CommandResult again = Lk({"jobs", "cancel", id});
  EXPECT_EQ(again.exit_code, kExitFailure);
  EXPECT_EQ(again.err, "lanekeeper: job '" + id + "' is already cancelled\n");
}

TEST_F(JobsCli, GlobalOptionsWorkBeforeAndAfterTheSubcommand) {
  CommandResult before =
      RunLanekeeper({"--redis", server_->url(), "--queue", "mail", "jobs", "submit", "a"});
  ASSERT_EQ(before.exit_code, kExitOk) << before.err;
  CommandResult after =
      RunLanekeeper({"jobs", "submit", "b", "--queue", "mail", "--redis", server_->url()});
  ASSERT_EQ(after.exit_code, kExitOk) << after.err;
  CommandResult between =
      RunLanekeeper({"jobs", "--queue", "mail", "submit", "c", "--redis", server_->url()});
  ASSERT_EQ(between.exit_code, kExitOk) << between.err;
  EXPECT_EQ(Queue("mail")->Stats()->waiting, 3);
  EXPECT_EQ(Queue("default")->Stats()->waiting, 0);
}

TEST_F(JobsCli, RedisUrlWithPasswordAndDbNumberReachesThatDb) {
  StartRedis(WithPassword("s3cret"));
  ASSERT_THAT(server_->url(3), HasSubstr(":s3cret@"));
  std::string id = Trimmed(Lk({"jobs", "submit", "a"}, /*db=*/3).out);
  ASSERT_THAT(id, MatchesRegex("[0-9]+"));
  EXPECT_EQ(Queue("default", 3)->Get(id)->name, "a");
  EXPECT_EQ(DbSize(0), 0);
  CommandResult stats = Lk({"jobs", "stats", "--json"}, 3);
  ASSERT_EQ(stats.exit_code, kExitOk) << stats.err;
  EXPECT_EQ(json::parse(stats.out)["waiting"], 1);
}

TEST_F(JobsCli, LanekeeperRedisUrlIsTheDefault) {
  CommandResult r =
      RunLanekeeper({"jobs", "submit", "a"}, {"LANEKEEPER_REDIS_URL=" + server_->url(2)});
  ASSERT_EQ(r.exit_code, kExitOk) << r.err;
  EXPECT_EQ(Queue("default", 2)->Get(Trimmed(r.out))->name, "a");
  EXPECT_EQ(DbSize(0), 0);
}

TEST_F(JobsCli, JsonLogFormatWritesOneObjectPerLineWithTsLevelAndMsg) {
  CommandResult r = Lk({"--log-format", "json", "--log-level", "debug", "jobs", "stats"});
  ASSERT_EQ(r.exit_code, kExitOk) << r.err;
  auto lines = Lines(r.err);
  ASSERT_FALSE(lines.empty());
  for (const std::string& line : lines) {
    json record = json::parse(line, nullptr, false);
    ASSERT_TRUE(record.is_object()) << line;
    EXPECT_THAT(record["ts"].get<std::string>(), MatchesRegex("[0-9-]+T[0-9:.]+Z"));
    EXPECT_EQ(record["level"], "debug");
    EXPECT_THAT(record["msg"].get<std::string>(), HasSubstr("queue 'default'"));
  }
}

TEST_F(JobsCli, VersionPrintsTheVersion) {
  CommandResult r = RunLanekeeper({"--version"});
  EXPECT_EQ(r.exit_code, kExitOk);
  EXPECT_THAT(r.out, MatchesRegex("lanekeeper [0-9]+\\.[0-9]+\\.[0-9]+\n"));
}

// Bad input: one line on stderr that names what was wrong, nothing on stdout, a nonzero
// exit, and the queue exactly as it was.
struct BadCase {
  const char* what;
  std::vector<std::string> args;
  int exit_code;
  std::string words;
};

// gtest prints the parameter after the test's index; CMake's test discovery turns
// ".../0  # GetParam() = MalformedPayload" into the ctest name ".../MalformedPayload".
void PrintTo(const BadCase& c, std::ostream* os) { *os << c.what; }

class BadInput : public JobsCli, public ::testing::WithParamInterface<BadCase> {};

TEST_P(BadInput, IsRefusedInOneLineAndChangesNothing) {
  Submit({"existing"});
  const long long before = DbSize();
  CommandResult r = Lk(GetParam().args);
  EXPECT_EQ(r.exit_code, GetParam().exit_code) << r.err;
  EXPECT_EQ(r.out, "");
  auto lines = Lines(r.err);
  ASSERT_EQ(lines.size(), 1u) << r.err;
  EXPECT_THAT(lines[0], StartsWith("lanekeeper: "));
  EXPECT_THAT(lines[0], HasSubstr(GetParam().words));
  EXPECT_EQ(DbSize(), before);
  EXPECT_EQ(Queue()->Stats()->waiting, 1);
}

INSTANTIATE_TEST_SUITE_P(
    JobsCli, BadInput,
    ::testing::Values(
        BadCase{"MalformedPayload", {"jobs", "submit", "a", "--payload", R"({"to":)"}, kExitUsage,
                 "invalid --payload: parse error at line 1, column 7"},
        BadCase{"PayloadNotJson", {"jobs", "submit", "a", "--payload", "to=me"}, kExitUsage,
                 "invalid --payload: "},
        BadCase{"DelayWithoutUnit", {"jobs", "submit", "a", "--delay", "30"}, kExitUsage,
                 "--delay: bad duration '30'"},
        BadCase{"TimeoutUnknownUnit", {"jobs", "submit", "a", "--timeout", "5x"}, kExitUsage,
                 "--timeout: bad duration '5x'"},
        BadCase{"LeaseFraction", {"jobs", "submit", "a", "--lease", "1.5s"}, kExitUsage,
                 "--lease: bad duration '1.5s'"},
        BadCase{"PriorityOutOfRange", {"jobs", "submit", "a", "--priority", "5000"}, kExitUsage,
                 "--priority: must be at most 1000"},
        BadCase{"PriorityNotANumber", {"jobs", "submit", "a", "--priority", "high"}, kExitUsage,
                 "--priority: 'high' is not a whole number"},
        BadCase{"ZeroAttempts", {"jobs", "submit", "a", "--max-attempts", "0"}, kExitUsage,
                 "--max-attempts: must be at least 1"},
        BadCase{"EmptyJobName", {"jobs", "submit", ""}, kExitUsage, "job name must not be empty"},
        BadCase{"MissingJobName", {"jobs", "submit"}, kExitUsage, "name is required"},
        BadCase{"UnknownState", {"jobs", "list", "--state", "finished"}, kExitUsage,
                 "unknown job state 'finished'"},
        BadCase{"UnknownJobIdGet", {"jobs", "get", "999"}, kExitFailure,
                 "no job '999' in queue 'default'"},
        BadCase{"UnknownJobIdRetry", {"jobs", "retry", "999"}, kExitFailure,
                 "no job '999' in queue 'default'"},
        BadCase{"UnknownJobIdCancel", {"jobs", "cancel", "999"}, kExitFailure,
                 "no job '999' in queue 'default'"},
        BadCase{"JobIdNotANumber", {"jobs", "get", "latest"}, kExitUsage, "bad job id 'latest'"},
        BadCase{"UnknownFlag", {"jobs", "submit", "a", "--priorty", "1"}, kExitUsage,
                 "--priorty"},
        BadCase{"UnknownCommand", {"jobs", "sumbit", "a"}, kExitUsage,
                 "jobs: unknown command 'sumbit'; expected submit, get"},
        BadCase{"UnknownLogFormat", {"--log-format", "xml", "jobs", "stats"}, kExitUsage,
                 "--log-format: xml not in {text,json}"},
        BadCase{"BadQueueName", {"jobs", "submit", "a", "--queue", "a{b}"}, kExitUsage,
                 "bad queue name 'a{b}'"}));

TEST_F(JobsCli, UnreachableRedisIsOneLineNamingTheAddress) {
  int port = testing::FreeLoopbackPort();
  std::string url = "redis://127.0.0.1:" + std::to_string(port) + "/0";
  for (std::vector<std::string> args : std::vector<std::vector<std::string>>{
           {"jobs", "submit", "a"}, {"jobs", "stats"}, {"jobs", "get", "1"}}) {
    args.insert(args.end(), {"--redis", url});
    CommandResult r = RunLanekeeper(args);
    EXPECT_EQ(r.exit_code, kExitFailure);
    EXPECT_EQ(r.out, "");
    EXPECT_EQ(r.err, "lanekeeper: cannot connect to Redis at " + url + ": Connection refused\n");
  }
}

TEST_F(JobsCli, BadInputIsReportedBeforeRedisIsTried) {
  int port = testing::FreeLoopbackPort();
  CommandResult r = RunLanekeeper({"jobs", "submit", "a", "--payload", "{", "--redis",
                                   "redis://127.0.0.1:" + std::to_string(port)});
  EXPECT_EQ(r.exit_code, kExitUsage);
  EXPECT_THAT(r.err, StartsWith("lanekeeper: invalid --payload"));
}

TEST_F(JobsCli, WrongPasswordIsOneLineWithoutThePassword) {
  StartRedis(WithPassword("s3cret"));
  CommandResult r = RunLanekeeper(
      {"jobs", "stats", "--redis", "redis://:guess@127.0.0.1:" + std::to_string(server_->port())});
  EXPECT_NE(r.exit_code, kExitOk);
  auto lines = Lines(r.err);
  ASSERT_EQ(lines.size(), 1u) << r.err;
  EXPECT_THAT(lines[0], HasSubstr("refused the password"));
  EXPECT_THAT(lines[0], Not(HasSubstr("guess")));
}

}  // namespace
}  // namespace lk
