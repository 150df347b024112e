// Promises of README.md, docs/queue.md and docs/architecture.md about the command line as a
// whole and about where a queue lives in Redis: every command documents itself, the global
// options' defaults, --log-level, durations, and the keys docs/architecture.md lists, with
// the types it gives them, written through the same APIs the processes use.
#include <gtest/gtest.h>
#include <signal.h>
#include <stdlib.h>

#include <map>
#include <optional>
#include <spdlog/spdlog.h>
#include <string>
#include <vector>

#include "controller/owner/autopilot_record.h"
#include "controller/owner/lifecycle_events.h"
#include "controller/owner/owner_lease.h"
#include "controller/owner/supervisor_status.h"
#include "controller/status/doctor.h"
#include "tests/support/child_process.h"
#include "tests/support/queue_records.h"
#include "tests/support/queue_under_test.h"
#include "tests/support/redis_server.h"
#include "worker/exit_codes.h"
#include "worker/job_queue.h"
#include "worker/worker_registry.h"

namespace lk {
namespace promises_cli_test {

using namespace std::chrono_literals;
using testing::Eventually;

TEST(CommandLine, EveryCommandDocumentsItselfWithHelp) {
  const std::vector<std::vector<std::string>> commands = {
      {},
      {"jobs"},
      {"jobs", "submit"},
      {"jobs", "get"},
      {"jobs", "list"},
      {"jobs", "stats"},
      {"jobs", "retry"},
      {"jobs", "cancel"},
      {"jobs", "work"},
      {"jobs", "supervisor"},
      {"jobs", "supervisor", "status"},
      {"jobs", "supervisor", "stop"},
      {"autopilot"},
      {"doctor"},
      {"install"},
      {"validate"},
      {"controller"},
      {"apply"},
      {"get"},
      {"delete"},
      {"up"}};
  for (auto args : commands) {
    std::string name = "lanekeeper";
    for (const auto& a : args) name += " " + a;
    args.push_back("--help");
    auto r = testing::RunLanekeeper(args);
    EXPECT_EQ(r.exit_code, 0) << name << ": " << r.err;
    EXPECT_NE(r.out.find("Usage: " + name + " [OPTIONS]"), std::string::npos) << r.out;
    EXPECT_NE(r.out.find("-h,--help"), std::string::npos) << name;
  }
}

// Restores an environment variable when it goes out of scope.
class ScopedEnv {
 public:
  ScopedEnv(const char* name, const char* value) : name_(name) {
    if (const char* old = std::getenv(name)) old_ = old;
    value ? setenv(name, value, 1) : unsetenv(name);
  }
  ~ScopedEnv() { old_ ? setenv(name_, old_->c_str(), 1) : unsetenv(name_); }

 private:
  const char* name_;
  std::optional<std::string> old_;
};

TEST(CommandLine, TheDefaultRedisIsLanekeeperRedisUrlElseLocal6379Db0) {
  {
    ScopedEnv none("LANEKEEPER_REDIS_URL", nullptr);
    EXPECT_EQ(DefaultRedisUrl(), "redis://127.0.0.1:6379/0");
  }
  {
    ScopedEnv empty("LANEKEEPER_REDIS_URL", "");
    EXPECT_EQ(DefaultRedisUrl(), "redis://127.0.0.1:6379/0");
  }
  ScopedEnv set("LANEKEEPER_REDIS_URL", "unix:///run/redis.sock?db=3");
  EXPECT_EQ(DefaultRedisUrl(), "unix:///run/redis.sock?db=3");
}

TEST(CommandLine, LogLevelIsTheLowestLevelLoggedAndAnUnknownOneIsRefused) {
  auto server = testing::RedisServer::Start();
  ASSERT_TRUE(server.ok()) << server.status().message();
  auto queue = OpenJobQueue((*server)->url(), "levels");
  ASSERT_TRUE(queue.ok()) << queue.status().message();
  testing::QueueRecords records(**queue);
  // The worker logs "worker H started: ..." at info once it is in the registry.
  auto run = [&](const std::string& level) {
    testing::ChildProcess w({testing::LanekeeperBinary(), "--log-level", level, "jobs", "work",
                             "--redis", (*server)->url(), "--queue", "levels", "--concurrency",
                             "1", "--max-rss", "0"});
    EXPECT_TRUE(Eventually([&] { return records.LiveWorkers().size() == 1; }, 10s)) << w.Stderr();
    w.Signal(SIGTERM);
    EXPECT_EQ(w.Wait(10s), kExitOk);
    EXPECT_TRUE(Eventually([&] { return records.LiveWorkers().empty(); }, 10s));
    return w.Stderr();
  };
  EXPECT_NE(run("info").find(" started: queue 'levels'"), std::string::npos);
  EXPECT_EQ(run("warn").find(" started: queue 'levels'"), std::string::npos);
  EXPECT_EQ(run("off"), "");
  auto bad = testing::RunLanekeeper({"--log-level", "chatty", "jobs", "stats"});
  EXPECT_EQ(bad.exit_code, kExitUsage);
  EXPECT_NE(bad.err.find("--log-level: chatty not in"), std::string::npos) << bad.err;
}

TEST(Durations, TakeDaysAndAtMostTwelveDigitsAndNeverAFractionOrSpace) {
  EXPECT_EQ(*ParseDuration("2d"), Millis(2 * 86'400'000LL));
  EXPECT_EQ(*ParseDuration("999999999999ms"), Millis(999'999'999'999LL));
  for (const char* bad : {"1000000000000ms", "1.5h", " 5s", "5s ", "5 s", "+5s", "5S"}) {
    auto d = ParseDuration(bad);
    ASSERT_FALSE(d.ok()) << bad;
    EXPECT_EQ(d.status().message(), "bad duration '" + std::string(bad) +
                                        "': expected a number with a unit, like 500ms, 30s, 5m "
                                        "or 1h");
  }
  auto r = testing::RunLanekeeper({"jobs", "submit", "x", "--delay", "30", "--redis",
                                   "redis://127.0.0.1:1/0"});
  EXPECT_EQ(r.exit_code, kExitUsage);
  EXPECT_EQ(r.err, "lanekeeper: --delay: bad duration '30': expected a number with a unit, like "
                   "500ms, 30s, 5m or 1h\n");
}

// docs/architecture.md's table: every key of a queue is lk:{QUEUE}:NAME, of the type it says.
TEST(RedisKeys, AQueueLivesInTheKeysAndTypesArchitectureMdLists) {
  auto server = testing::RedisServer::Start();
  ASSERT_TRUE(server.ok()) << server.status().message();
  const std::string q = "keys";
  auto opened = OpenJobQueue((*server)->url(), q);
  ASSERT_TRUE(opened.ok()) << opened.status().message();
  JobQueue& queue = **opened;
  RedisConnection& conn = queue.connection();
  auto submit = [&](const std::string& key, Millis delay = Millis(0)) {
    JobSpec spec;
    spec.name = "noop";
    spec.idempotency_key = key;
    spec.delay = delay;
    spec.max_attempts = 1;
    auto r = queue.Enqueue(spec);
    EXPECT_TRUE(r.ok()) << r.status().message();
    return r.ok() ? r->id : "";
  };
  // One job in each state.
  std::string done = submit("done"), dead = submit("dead"), active = submit("active");
  ASSERT_EQ(testing::RunNextJobByHand(queue, true), done);
  ASSERT_EQ(testing::RunNextJobByHand(queue, false), dead);
  auto claim = queue.ClaimBatch(1, 0);
  ASSERT_TRUE(claim.ok() && claim->jobs.size() == 1);
  std::string cancelled = submit("cancelled");
  ASSERT_TRUE(queue.Cancel(cancelled).ok());
  std::string waiting = submit("waiting");
  std::string delayed = submit("delayed", Millis(3'600'000));
  // The roles' records, through the APIs the supervisor, autopilot and worker use.
  OwnerLease lease(conn, q, OwnerRole::kSupervisor, "h:1", 1, 0);
  ASSERT_TRUE(lease.TryAcquire().ok());
  WorkerInfo self;
  self.epoch = lease.epoch();
  WorkerRegistry registry(q, self);
  ASSERT_TRUE(registry.Register(conn).ok());
  SupervisorStatus sup;
  sup.holder = "h:1";
  sup.state = "running";
  sup.updated_ms = NowUnixMillis();
  ASSERT_TRUE(PublishSupervisorStatus(conn, q, sup).ok());
  AutopilotRecord rec;
  rec.holder = "h:2";
  rec.updated_ms = NowUnixMillis();
  ASSERT_TRUE(PublishAutopilotRecord(conn, q, rec).ok());
  LifecycleEvents events(conn, q, "supervisor", "h:1");
  ASSERT_TRUE(events.Emit("started").ok());

  const std::map<std::string, std::string> want = {
      {"job:" + done, "hash"},   {"job:" + dead, "hash"},     {"job:" + active, "hash"},
      {"job:" + waiting, "hash"}, {"job:" + delayed, "hash"}, {"job:" + cancelled, "hash"},
      {"claim:" + active, "string"},
      {"waiting", "zset"},       {"delayed", "zset"},         {"active", "zset"},
      {"completed", "zset"},     {"dead", "zset"},            {"cancelled", "zset"},
      {"idem", "hash"},          {"wake", "list"},            {"seq", "string"},
      {"claimseq", "string"},    {"owner", "hash"},           {"epoch", "string"},
      {"workers", "zset"},       {"workers:info", "hash"},    {"supervisors", "hash"},
      {"autopilot", "hash"},     {"events", "stream"}};
  for (const auto& [name, type] : want) {
    auto r = conn.Command({"TYPE", "lk:{" + q + "}:" + name});
    ASSERT_TRUE(r.ok()) << r.status().message();
    EXPECT_EQ(r->str, type) << name;
  }
  // A claim exists exactly while its job is active; the owner lease has a TTL.
  for (const auto& id : {done, dead, waiting, delayed, cancelled}) {
    EXPECT_EQ(conn.Command({"EXISTS", "lk:{" + q + "}:claim:" + id})->AsInt(), 0) << id;
  }
  EXPECT_GT(conn.Command({"PTTL", "lk:{" + q + "}:owner"})->AsInt(), 0);
  // Scores: due time, lease deadline, finish time (Unix ms).
  auto score = [&](const std::string& set, const std::string& id) {
    auto r = conn.Command({"ZSCORE", "lk:{" + q + "}:" + set, id});
    return r.ok() ? std::stoll(r->str) : -1;
  };
  EXPECT_EQ(score("delayed", delayed), queue.Get(delayed)->run_at_ms);
  EXPECT_EQ(score("active", active), queue.Get(active)->deadline_ms);
  EXPECT_EQ(score("completed", done), queue.Get(done)->finished_ms);
  EXPECT_EQ(score("dead", dead), queue.Get(dead)->finished_ms);
  EXPECT_EQ(score("cancelled", cancelled), queue.Get(cancelled)->finished_ms);
}

// The events stream is capped at about 10 000 entries (trimmed in whole macro nodes).
TEST(RedisKeys, TheEventsStreamIsCappedAtAboutTenThousand) {
  auto server = testing::RedisServer::Start();
  ASSERT_TRUE(server.ok()) << server.status().message();
  auto conn = RedisConnection::Connect(*ParseRedisUrl((*server)->url()), 2s);
  ASSERT_TRUE(conn.ok());
  LifecycleEvents events(**conn, "capped", "supervisor", "h:1");
  auto level = spdlog::get_level();
  spdlog::set_level(spdlog::level::off);  // each event is also a log line
  for (int i = 0; i < 10'500; ++i) {
    ASSERT_TRUE(events.Emit("dispatch", {{"n", std::to_string(i)}}).ok());
  }
  spdlog::set_level(level);
  int64_t len = (*conn)->Command({"XLEN", "lk:{capped}:events"})->AsInt();
  EXPECT_GE(len, kEventStreamMaxLen);
  EXPECT_LE(len, kEventStreamMaxLen + 200);
}

TEST(CommandLine, DoctorAndSupervisorDefaultsAreTheDocumentedOnes) {
  DoctorOptions o;
  EXPECT_EQ(o.waiting_threshold, 1000);
  EXPECT_EQ(o.wedge_time, Millis(15 * 60'000));
  EXPECT_EQ(o.worker_live_within, Millis(5'000));
  auto doctor = testing::RunLanekeeper({"doctor", "--help"});
  EXPECT_NE(doctor.out.find("--waiting-threshold INT:NONNEGATIVE=1000"), std::string::npos)
      << doctor.out;
  EXPECT_NE(doctor.out.find("--wedge-time TEXT=15m"), std::string::npos) << doctor.out;
  // The pid file: $LANEKEEPER_RUN_DIR, else $XDG_RUNTIME_DIR, else /tmp.
  auto pid = [](std::vector<std::string> env) {
    return testing::RunLanekeeper({"jobs", "supervisor", "--help"}, env).out;
  };
  EXPECT_NE(pid({"LANEKEEPER_RUN_DIR=/run", "XDG_RUNTIME_DIR=/run/user/7"})
                .find("(default: /run/lanekeeper-supervisor-QUEUE.pid)"),
            std::string::npos);
  EXPECT_NE(pid({"LANEKEEPER_RUN_DIR=", "XDG_RUNTIME_DIR=/run/user/7"})
                .find("(default: /run/user/7/lanekeeper-supervisor-QUEUE.pid)"),
            std::string::npos);
  EXPECT_NE(pid({"LANEKEEPER_RUN_DIR=", "XDG_RUNTIME_DIR="})
                .find("(default: /tmp/lanekeeper-supervisor-QUEUE.pid)"),
            std::string::npos);
}
}  // namespace promises_cli_test
}  // namespace lk
