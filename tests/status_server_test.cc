// The status server over real HTTP on loopback, against a real redis-server and a real
// `jobs supervisor` that owns the lane's queue. The controller's snapshot is written by hand
// (the reconcile loop is tested in lane_controller_test.cc), so each test states exactly
// what the controller believes and checks what the server makes of it with Redis.
#include <cpprest/http_client.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <regex>
#include <set>
#include <sstream>

#include "controller/status/controller_state.h"
#include "controller/status/doctor.h"
#include "controller/status/lane_observer.h"
#include "controller/owner/owner_lease.h"
#include "controller/status/status_server.h"
#include "tests/support/child_process.h"
#include "tests/support/loopback_port.h"
#include "tests/support/proc_scan.h"
#include "tests/support/queue_records.h"
#include "tests/support/redis_server.h"
#include "tests/support/temp_dir.h"
#include "tests/support/worker_timeline.h"
#include "worker/job_queue.h"

namespace lk {
namespace {

using namespace std::chrono_literals;
using nlohmann::json;
using testing::ChildProcess;
using testing::CommandResult;
using testing::Eventually;

constexpr const char* kPassword = "pw-Zq7-never-shown";

struct HttpAnswer {
  int code = 0;
  std::string content_type;
  std::string allow;
  std::string cache_control;
  std::string body;
};

HttpAnswer Http(const std::string& base, const std::string& path,
                const std::string& method = "GET") {
  web::http::client::http_client_config config;
  config.set_timeout(std::chrono::seconds(10));
  web::http::client::http_client client(base, config);
  web::http::http_response r = client.request(method, path).get();
  HttpAnswer a;
  a.code = r.status_code();
  a.content_type = r.headers().content_type();
  if (r.headers().has("Allow")) a.allow = r.headers()["Allow"];
  if (r.headers().has("Cache-Control")) a.cache_control = r.headers()["Cache-Control"];
  a.body = r.extract_utf8string(true).get();
  return a;
}

// ---- the Prometheus text exposition format 0.0.4, checked line by line ------------------

struct Sample {
  std::string name;
  std::map<std::string, std::string> labels;
  double value = 0;
};

// Parses text per the format and returns what is wrong with it ("" when nothing): every
// sample's family has a # TYPE before its first sample, families are declared once and
// their samples are contiguous, label values use only the \\ \" \n escapes, histogram
// buckets are cumulative with a +Inf bucket equal to _count.
std::string CheckExposition(const std::string& text, std::vector<Sample>* samples) {
  static const std::regex kName("[a-zA-Z_:][a-zA-Z0-9_:]*");
  static const std::regex kLabelName("[a-zA-Z_][a-zA-Z0-9_]*");
  if (text.empty() || text.back() != '\n') return "does not end with a newline";
  std::map<std::string, std::string> types;
  std::set<std::string> helped, finished;
  std::string current;
  std::istringstream in(text);
  int n = 0;
  auto parse_value = [](const std::string& v, double* out) {
    if (v == "+Inf") *out = HUGE_VAL;
    else if (v == "-Inf") *out = -HUGE_VAL;
    else if (v == "NaN") *out = NAN;
    else {
      char* end = nullptr;
      *out = std::strtod(v.c_str(), &end);
      if (v.empty() || *end != '\0') return false;
    }
    return true;
  };
  for (std::string line; std::getline(in, line);) {
    ++n;
    std::string at = "line " + std::to_string(n) + " '" + line + "': ";
    if (line.empty()) continue;
    if (line[0] == '#') {
      std::istringstream words(line.substr(1));
      std::string keyword, name, rest;
      words >> keyword >> name;
      if (keyword != "HELP" && keyword != "TYPE") continue;  // a plain comment
      if (!std::regex_match(name, kName)) return at + "bad metric name";
      if (keyword == "TYPE") {
        words >> rest;
        static const std::set<std::string> kTypes = {"counter", "gauge", "histogram", "summary",
                                                     "untyped"};
        if (!kTypes.count(rest)) return at + "unknown type";
        if (types.count(name)) return at + "TYPE given twice";
        if (finished.count(name) || current == name) return at + "TYPE after samples";
        types[name] = rest;
      } else {
        if (helped.count(name)) return at + "HELP given twice";
        helped.insert(name);
      }
      continue;
    }
    Sample s;
    size_t i = 0;
    while (i < line.size() && line[i] != '{' && line[i] != ' ') ++i;
    s.name = line.substr(0, i);
    if (!std::regex_match(s.name, kName)) return at + "bad metric name";
    if (i < line.size() && line[i] == '{') {
      ++i;
      while (i < line.size() && line[i] != '}') {
        size_t eq = line.find('=', i);
        if (eq == std::string::npos) return at + "label without '='";
        std::string label = line.substr(i, eq - i);
        if (!std::regex_match(label, kLabelName)) return at + "bad label name";
        if (eq + 1 >= line.size() || line[eq + 1] != '"') return at + "label value not quoted";
        std::string value;
        size_t j = eq + 2;
        for (; j < line.size() && line[j] != '"'; ++j) {
          if (line[j] == '\\') {
            if (j + 1 >= line.size()) return at + "dangling backslash";
            char e = line[++j];
            if (e == '\\') value += '\\';
            else if (e == '"') value += '"';
            else if (e == 'n') value += '\n';
            else return at + "bad escape";
          } else {
            value += line[j];
          }
        }
        if (j >= line.size()) return at + "unterminated label value";
        if (s.labels.count(label)) return at + "label repeated";
        s.labels[label] = value;
        i = j + 1;
        if (i < line.size() && line[i] == ',') ++i;
      }
      if (i >= line.size()) return at + "unterminated labels";
      ++i;
    }
    if (i >= line.size() || line[i] != ' ') return at + "no space before the value";
    std::istringstream rest(line.substr(i + 1));
    std::string value, timestamp, extra;
    rest >> value >> timestamp >> extra;
    if (!extra.empty()) return at + "trailing text";
    if (!parse_value(value, &s.value)) return at + "bad value";
    std::string family = s.name;
    if (!types.count(family)) {
      for (const char* suffix : {"_bucket", "_sum", "_count"}) {
        if (s.name.ends_with(suffix)) {
          std::string base = s.name.substr(0, s.name.size() - std::strlen(suffix));
          if (types.count(base) && (types[base] == "histogram" || types[base] == "summary")) {
            family = base;
          }
        }
      }
    }
    if (!types.count(family)) return at + "sample without a # TYPE";
    if (family != current) {
      if (finished.count(family)) return at + "family's samples are not contiguous";
      if (!current.empty()) finished.insert(current);
      current = family;
    }
    if (s.name.ends_with("_bucket") && types[family] == "histogram" && !s.labels.count("le")) {
      return at + "bucket without le";
    }
    samples->push_back(s);
  }
  // Histograms: per label set without le, buckets cumulative, +Inf == _count.
  for (const auto& [family, type] : types) {
    if (type != "histogram") continue;
    std::map<std::map<std::string, std::string>, std::vector<std::pair<double, double>>> buckets;
    std::map<std::map<std::string, std::string>, double> counts;
    for (const auto& s : *samples) {
      auto labels = s.labels;
      if (s.name == family + "_bucket") {
        double le;
        if (!parse_value(labels["le"], &le)) return family + ": bad le '" + labels["le"] + "'";
        labels.erase("le");
        buckets[labels].emplace_back(le, s.value);
      } else if (s.name == family + "_count") {
        counts[labels] = s.value;
      }
    }
    if (buckets.empty()) return family + ": no buckets";
    for (auto& [labels, list] : buckets) {
      std::sort(list.begin(), list.end());
      for (size_t k = 1; k < list.size(); ++k) {
        if (list[k].second < list[k - 1].second) return family + ": buckets not cumulative";
      }
      if (list.back().first != HUGE_VAL) return family + ": no +Inf bucket";
      if (!counts.count(labels) || counts[labels] != list.back().second) {
        return family + ": +Inf bucket differs from _count";
      }
    }
  }
  return "";
}

const Sample* FindSample(const std::vector<Sample>& samples, const std::string& name,
                         const std::map<std::string, std::string>& labels) {
  for (const auto& s : samples) {
    if (s.name == name && s.labels == labels) return &s;
  }
  return nullptr;
}

// ---- the fixture -----------------------------------------------------------------------

class StatusServerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    testing::RedisServerOptions o;
    o.password = kPassword;
    o.appendonly = true;  // doctor's redis check is then ok, and the doctor exit codes tell
    auto server = testing::RedisServer::Start(o);
    ASSERT_TRUE(server.ok()) << server.status().message();
    redis_ = std::move(server).value();
    ASSERT_TRUE(temp_.ok());
    dir_ = temp_.path();
    queue_name_ = std::string(::testing::UnitTest::GetInstance()->current_test_info()->name())
                      .substr(0, 30) + "-" + std::to_string(getpid());
    auto q = OpenJobQueue(redis_->url(), queue_name_);
    ASSERT_TRUE(q.ok()) << q.status().message();
    queue_ = std::move(q).value();
    records_ = std::make_unique<testing::QueueRecords>(*queue_);
  }

  void TearDown() override {
    server_.reset();
    if (supervisor_) {
      supervisor_->Signal(SIGTERM);
      supervisor_->Wait(20s);
      // A supervisor ran: its record never shows two workers at once.
      EXPECT_EQ(testing::FirstSecondWorker(records_->Events(), testing::OneAtATime::kStrict), "");
    }
    testing::KillProcessesOfThisTest();
  }

  // A real supervisor owning the lane's queue; returns once it holds the lease.
  void StartSupervisor() {
    supervisor_ = std::make_unique<ChildProcess>(std::vector<std::string>{
        testing::LanekeeperBinary(), "jobs", "supervisor", "--redis", redis_->url(), "--queue",
        queue_name_, "--concurrency", "2", "--pid-file", dir_ + "/sup.pid", "--drain-timeout",
        "5s", "--lease-ttl", "3s", "--lease-renew", "1s"});
    ASSERT_TRUE(Eventually([&] { return Owner().has_value(); }, 15s))
        << supervisor_->Stderr();
  }

  std::optional<OwnerRecord> Owner() { return records_->Owner(); }

  // What a reconcile loop would publish for one lane whose supervisor runs.
  ControllerSnapshot Snapshot(bool ready = true) {
    ControllerSnapshot s;
    s.started_ms = NowUnixMillis() - 60'000;
    s.ready = ready;
    s.specs_dir = dir_ + "/specs";
    s.state_dir = dir_ + "/state";
    s.default_redis_url = redis_->url();
    LaneState lane;
    lane.name = "knowledge";
    lane.source = dir_ + "/specs/knowledge.yaml";
    lane.spec.name = "knowledge";
    lane.spec.queue = queue_name_;
    lane.spec.redis_url = redis_->url();
    lane.spec.supervisor.enabled = true;
    lane.spec.source = lane.source;
    lane.redis_url = redis_->url();
    lane.redis_url_redacted = ParseRedisUrl(redis_->url())->Redacted();
    lane.generation = 2;
    lane.observed_generation = 2;
    RoleState role;
    role.role = "supervisor";
    role.pid = supervisor_ ? supervisor_->pid() : 0;
    role.started_ms = NowUnixMillis() - 30'000;
    role.state = "running";
    role.generation = 2;
    lane.roles.push_back(role);
    lane.last_reconcile_ms = NowUnixMillis();
    s.lanes.push_back(lane);
    s.reconcile_total = 7;
    s.reconcile_errors_total = 1;
    s.reconcile_buckets = {0.001, 0.01, 0.1, 1, 10};
    s.reconcile_bucket_counts = {2, 5, 6, 7, 7};
    s.reconcile_seconds_sum = 0.4375;
    s.role_restarts[{"knowledge", "drift"}] = 2;
    return s;
  }

  // On a port the kernel picks; url() says which.
  void StartServer() {
    StatusServerOptions o;
    o.addr = "127.0.0.1:0";
    auto s = StatusServer::Start(o, store_, observer_);
    ASSERT_TRUE(s.ok()) << s.status().message();
    server_ = std::move(s).value();
    base_ = server_->url();
  }

  json Status() {
    HttpAnswer a = Http(base_, "/status");
    EXPECT_EQ(a.code, 200);
    EXPECT_EQ(a.content_type, "application/json");
    return json::parse(a.body);
  }
  static json Condition(const json& lane, const std::string& type) {
    for (const auto& c : lane["conditions"]) {
      if (c["type"] == type) return c;
    }
    return json();
  }

  CommandResult Doctor(std::vector<std::string> extra) {
    std::vector<std::string> args = {"doctor", "--redis", redis_->url(), "--queue", queue_name_};
    args.insert(args.end(), extra.begin(), extra.end());
    return testing::RunLanekeeper(args, {}, 60s);
  }
  static std::string Line(const CommandResult& r, const std::string& prefix) {
    std::istringstream in(r.out);
    for (std::string line; std::getline(in, line);) {
      if (line.rfind(prefix, 0) == 0) return line;
    }
    return "";
  }

  // Waits until the supervisor's worker heartbeats under the current epoch.
  void WaitForWorker() {
    ASSERT_TRUE(Eventually([&] {
      auto owner = Owner();
      if (!owner) return false;
      for (const auto& w : records_->LiveWorkers()) {
        if (w.epoch == owner->epoch) return true;
      }
      return false;
    }, 20s));
  }

  testing::TempDir temp_{"status-test"};
  std::unique_ptr<testing::RedisServer> redis_;
  std::unique_ptr<JobQueue> queue_;
  std::unique_ptr<testing::QueueRecords> records_;
  std::unique_ptr<ChildProcess> supervisor_;
  std::string dir_, queue_name_, base_;
  ControllerStateStore store_;
  LaneObserver observer_;
  std::unique_ptr<StatusServer> server_;
};

TEST_F(StatusServerTest, HealthzIsOkAndReadyzWaitsForTheFirstReconcile) {
  store_.Set(Snapshot(/*ready=*/false));
  StartServer();
  HttpAnswer health = Http(base_, "/healthz");
  EXPECT_EQ(health.code, 200);
  EXPECT_EQ(health.body, "ok\n");
  HttpAnswer before = Http(base_, "/readyz");
  EXPECT_EQ(before.code, 503);
  EXPECT_EQ(before.body, "not ready: first reconcile not done\n");
  store_.Set(Snapshot(/*ready=*/true));
  HttpAnswer after = Http(base_, "/readyz");
  EXPECT_EQ(after.code, 200);
  EXPECT_EQ(after.body, "ready\n");
}

TEST_F(StatusServerTest, StatusNamesTheSupervisorThatHoldsTheLeaseAndItsEpoch) {
  StartSupervisor();
  auto owner = Owner();
  ASSERT_TRUE(owner);
  store_.Set(Snapshot());
  StartServer();
  WaitForWorker();

  json lane;
  // The worker registers a moment after the lease; the reading is cached for a second.
  ASSERT_TRUE(Eventually([&] {
    json s = Status();
    lane = s["lanes"][0];
    return !lane["workers"].empty();
  }, 10s));
  json s = Status();
  EXPECT_EQ(s["ready"], true);
  EXPECT_EQ(s["specsDir"], dir_ + "/specs");
  EXPECT_EQ(lane["name"], "knowledge");
  EXPECT_EQ(lane["source"], dir_ + "/specs/knowledge.yaml");
  EXPECT_EQ(lane["queue"], queue_name_);
  EXPECT_EQ(lane["redis"], "redis://:***@127.0.0.1:" + std::to_string(redis_->port()) + "/0");
  EXPECT_EQ(lane["generation"], 2);
  EXPECT_EQ(lane["observedGeneration"], 2);
  ASSERT_TRUE(lane["owner"].is_object());
  EXPECT_EQ(lane["owner"]["holder"], owner->holder);
  EXPECT_EQ(lane["owner"]["role"], "supervisor");
  EXPECT_EQ(lane["owner"]["epoch"], owner->epoch);
  EXPECT_TRUE(owner->holder.ends_with(":" + std::to_string(supervisor_->pid())));
  EXPECT_EQ(lane["workers"][0]["epoch"], owner->epoch);
  ASSERT_EQ(lane["supervisors"].size(), 1u);
  EXPECT_EQ(lane["supervisors"][0]["holder"], owner->holder);
  EXPECT_TRUE(lane["supervisors"][0]["workerRestarts"].is_object());
  ASSERT_EQ(lane["roles"].size(), 1u);
  EXPECT_EQ(lane["roles"][0]["role"], "supervisor");
  EXPECT_EQ(lane["roles"][0]["pid"], supervisor_->pid());
  EXPECT_EQ(lane["roles"][0]["state"], "running");

  json elected = Condition(lane, "OwnerElected");
  EXPECT_EQ(elected["status"], "True");
  EXPECT_EQ(elected["reason"], "Elected");
  EXPECT_EQ(elected["message"],
            "supervisor " + owner->holder + " holds epoch " + std::to_string(owner->epoch));
  EXPECT_EQ(Condition(lane, "SpecValid")["status"], "True");
  EXPECT_EQ(Condition(lane, "Degraded")["status"], "False");
  json ready = Condition(lane, "Ready");
  EXPECT_EQ(ready["status"], "True");
  EXPECT_EQ(ready["reason"], "RolesRunning");
  EXPECT_EQ(lane["ready"], true);
}

TEST_F(StatusServerTest, CountsFollowTheQueue) {
  StartSupervisor();
  store_.Set(Snapshot());
  StartServer();
  // Delayed jobs stay put whatever the worker does; one of them cancelled.
  std::vector<std::string> ids;
  for (int i = 0; i < 3; ++i) {
    JobSpec spec;
    spec.name = "later";
    spec.delay = 1h;
    ids.push_back(queue_->Enqueue(spec)->id);
  }
  ASSERT_TRUE(queue_->Cancel(ids[0]).ok());

  json lane;
  ASSERT_TRUE(Eventually([&] {
    lane = Status()["lanes"][0];
    return lane["counts"].is_object() && lane["counts"]["delayed"] == 2;
  }, 10s)) << lane.dump();
  EXPECT_EQ(lane["counts"]["cancelled"], 1);
  EXPECT_EQ(lane["counts"]["waiting"], 0);
  EXPECT_EQ(lane["counts"]["active"], 0);
  EXPECT_EQ(lane["counts"]["dead"], 0);
  EXPECT_TRUE(lane["oldestWaitingSeconds"].is_null());

  std::vector<Sample> samples;
  HttpAnswer metrics = Http(base_, "/metrics");
  ASSERT_EQ(CheckExposition(metrics.body, &samples), "");
  const Sample* delayed = FindSample(
      samples, "lanekeeper_queue_jobs",
      {{"lane", "knowledge"}, {"queue", queue_name_}, {"state", "delayed"}});
  ASSERT_NE(delayed, nullptr) << metrics.body;
  EXPECT_EQ(delayed->value, 2);
  const Sample* cancelled = FindSample(
      samples, "lanekeeper_queue_jobs",
      {{"lane", "knowledge"}, {"queue", queue_name_}, {"state", "cancelled"}});
  ASSERT_NE(cancelled, nullptr);
  EXPECT_EQ(cancelled->value, 1);
}

TEST_F(StatusServerTest, AnInvalidEditIsSpecValidFalseWithTheFirstErrorAndTheRest) {
  ControllerSnapshot snap = Snapshot();
  SpecError first{snap.lanes[0].source, 7, 5, "spec.supervisor.maxRSS",
                  "bad size \"2 GB\": expected megabytes like 2048, 2048Mi or 2Gi"};
  SpecError second{snap.lanes[0].source, 9, 3, "spec.frobnicate", "unknown field"};
  snap.lanes[0].spec_errors = {first, second};
  snap.errors = {SpecError{dir_ + "/specs/broken.yaml", 3, 1, "", "mapping values are not allowed"}};
  store_.Set(snap);
  StartServer();

  json s = Status();
  json valid = Condition(s["lanes"][0], "SpecValid");
  EXPECT_EQ(valid["status"], "False");
  EXPECT_EQ(valid["reason"], "InvalidSpec");
  EXPECT_EQ(valid["message"], first.ToString() +
                                  " (+1 more); the last good spec (generation 2) keeps running");
  ASSERT_EQ(s["errors"].size(), 1u);
  EXPECT_EQ(s["errors"][0], dir_ + "/specs/broken.yaml:3:1: mapping values are not allowed");
}

TEST_F(StatusServerTest, ReadyIsFalseWhileTheRolesRunAnOlderGeneration) {
  StartSupervisor();
  ControllerSnapshot snap = Snapshot();
  snap.lanes[0].generation = 3;  // an edit the roles have not caught up with
  store_.Set(snap);
  StartServer();
  json ready = Condition(Status()["lanes"][0], "Ready");
  EXPECT_EQ(ready["status"], "False");
  EXPECT_EQ(ready["reason"], "GenerationPending");
  EXPECT_EQ(ready["message"], "the roles run generation 2, the spec is generation 3: converging");

  std::vector<Sample> samples;
  ASSERT_EQ(CheckExposition(Http(base_, "/metrics").body, &samples), "");
  const Sample* lane_ready = FindSample(samples, "lanekeeper_lane_ready", {{"lane", "knowledge"}});
  ASSERT_NE(lane_ready, nullptr);
  EXPECT_EQ(lane_ready->value, 0);
}

TEST_F(StatusServerTest, WithoutAnOwnerTheLaneIsNotReady) {
  store_.Set(Snapshot());  // the snapshot says the supervisor runs, but nobody took the lease
  StartServer();
  json lane = Status()["lanes"][0];
  json elected = Condition(lane, "OwnerElected");
  EXPECT_EQ(elected["status"], "False");
  EXPECT_EQ(elected["reason"], "NoOwner");
  EXPECT_EQ(elected["message"], "nobody holds the owner lease of queue " + queue_name_);
  EXPECT_TRUE(lane["owner"].is_null());
  json ready = Condition(lane, "Ready");
  EXPECT_EQ(ready["status"], "False");
  EXPECT_EQ(ready["reason"], "NoOwner");
}

TEST_F(StatusServerTest, ADeadRedisIsUnknownNotAHungRequest) {
  store_.Set(Snapshot());
  StartServer();
  redis_->Kill();
  auto start = std::chrono::steady_clock::now();
  json lane = Status()["lanes"][0];
  EXPECT_LT(std::chrono::steady_clock::now() - start, 3s);
  json elected = Condition(lane, "OwnerElected");
  EXPECT_EQ(elected["status"], "Unknown");
  EXPECT_EQ(elected["reason"], "RedisUnreachable");
  EXPECT_NE(elected["message"].get<std::string>().find("cannot connect to Redis at redis://:***@"),
            std::string::npos)
      << elected["message"];
  EXPECT_TRUE(lane["counts"].is_null());
  EXPECT_EQ(Condition(lane, "Ready")["reason"], "RedisUnreachable");
  // No queue series for a lane whose queue cannot be read; the rest still parses.
  std::vector<Sample> samples;
  HttpAnswer metrics = Http(base_, "/metrics");
  ASSERT_EQ(CheckExposition(metrics.body, &samples), "");
  EXPECT_EQ(metrics.body.find("lanekeeper_queue_jobs{"), std::string::npos);
  for (const char* path : {"/", "/status", "/doctor", "/metrics"}) {
    EXPECT_EQ(Http(base_, path).body.find(kPassword), std::string::npos) << path;
  }
}

TEST_F(StatusServerTest, ManyRequestsReadRedisAtMostOnceASecond) {
  store_.Set(Snapshot());
  StartServer();
  auto conn = RedisConnection::Connect(*ParseRedisUrl(redis_->url()), 2000ms);
  ASSERT_TRUE(conn.ok());
  ASSERT_FALSE((*conn)->Command({"CONFIG", "RESETSTAT"})->is_error());
  auto start = std::chrono::steady_clock::now();
  int requests = 0;
  for (; requests < 30; ++requests) {
    Http(base_, requests % 3 == 0 ? "/status" : requests % 3 == 1 ? "/metrics" : "/");
  }
  auto elapsed = std::chrono::steady_clock::now() - start;
  // Each reading of the lane does one HGETALL of its supervisors hash, and nothing else in
  // this test calls HGETALL.
  auto info = (*conn)->Command({"INFO", "commandstats"});
  ASSERT_TRUE(info.ok());
  std::smatch m;
  ASSERT_TRUE(std::regex_search(info->str, m, std::regex("cmdstat_hgetall:calls=(\\d+)")))
      << info->str;
  int64_t seconds = std::chrono::duration_cast<std::chrono::seconds>(elapsed).count();
  EXPECT_LE(std::stoll(m[1]), seconds + 1) << requests << " requests in " << seconds << " s";
}

TEST_F(StatusServerTest, DoctorEndpointRunsTheSameChecksAsTheCli) {
  StartSupervisor();
  store_.Set(Snapshot());
  StartServer();
  WaitForWorker();
  std::vector<std::pair<std::string, std::string>> cli, server;
  json doc;
  // Checks that depend on time (a worker heartbeat, a dispatch) can differ for an instant
  // between two readings; the same state must give the same checks.
  ASSERT_TRUE(Eventually([&] {
    DoctorReport report = RunDoctor(redis_->url(), queue_name_, DoctorOptions{});
    HttpAnswer a = Http(base_, "/doctor");
    if (a.code != 200) return false;
    doc = json::parse(a.body);
    cli.clear();
    server.clear();
    for (const auto& c : report.checks) cli.emplace_back(c.name, CheckLevelName(c.level));
    for (const auto& c : doc["lanes"][0]["checks"]) {
      server.emplace_back(c["name"].get<std::string>(), c["status"].get<std::string>());
    }
    return cli == server;
  }, 20s)) << doc.dump(2);
  EXPECT_EQ(doc["lanes"][0]["lane"], "knowledge");
  EXPECT_EQ(doc["lanes"][0]["queue"], queue_name_);
  std::vector<std::string> names;
  for (const auto& [name, level] : server) names.push_back(name);
  EXPECT_EQ(names, (std::vector<std::string>{"redis", "worker_owner", "supervisor",
                                             "queue_health", "autopilot", "wedged_queue"}));
  EXPECT_EQ(doc["status"], doc["lanes"][0]["status"]);
}

TEST_F(StatusServerTest, DoctorOfOneLaneIsSelectedByNameAndAnUnknownLaneIs404) {
  StartSupervisor();
  store_.Set(Snapshot());
  StartServer();
  HttpAnswer one = Http(base_, "/doctor?lane=knowledge");
  ASSERT_EQ(one.code, 200) << one.body;
  json doc = json::parse(one.body);
  ASSERT_EQ(doc["lanes"].size(), 1u) << one.body;
  EXPECT_EQ(doc["lanes"][0]["lane"], "knowledge");
  HttpAnswer none = Http(base_, "/doctor?lane=nope");
  EXPECT_EQ(none.code, 404) << none.body;
  EXPECT_NE(none.body.find("no lane nope"), std::string::npos) << none.body;
}

TEST_F(StatusServerTest, MetricsFollowTheExpositionFormat) {
  StartSupervisor();
  ControllerSnapshot snap = Snapshot();
  // A label value with every character the format escapes.
  snap.role_restarts[{"knowledge", "odd \"reason\" \\ with\nnewline"}] = 1;
  store_.Set(snap);
  StartServer();
  WaitForWorker();

  HttpAnswer a = Http(base_, "/metrics");
  EXPECT_EQ(a.code, 200);
  EXPECT_EQ(a.content_type, "text/plain; version=0.0.4; charset=utf-8");
  std::vector<Sample> samples;
  ASSERT_EQ(CheckExposition(a.body, &samples), "") << a.body;
  EXPECT_NE(a.body.find("lanekeeper_role_restarts_total{lane=\"knowledge\",reason=\"odd "
                        "\\\"reason\\\" \\\\ with\\nnewline\"} 1\n"),
            std::string::npos)
      << a.body;

  auto value = [&](const std::string& name, const std::map<std::string, std::string>& labels) {
    const Sample* s = FindSample(samples, name, labels);
    EXPECT_NE(s, nullptr) << name << " missing in\n" << a.body;
    return s ? s->value : -1;
  };
  EXPECT_EQ(value("lanekeeper_reconcile_total", {}), 7);
  EXPECT_EQ(value("lanekeeper_reconcile_errors_total", {}), 1);
  EXPECT_EQ(value("lanekeeper_reconcile_duration_seconds_bucket", {{"le", "0.01"}}), 5);
  EXPECT_EQ(value("lanekeeper_reconcile_duration_seconds_bucket", {{"le", "+Inf"}}), 7);
  EXPECT_EQ(value("lanekeeper_reconcile_duration_seconds_count", {}), 7);
  EXPECT_EQ(value("lanekeeper_reconcile_duration_seconds_sum", {}), 0.4375);
  EXPECT_EQ(value("lanekeeper_lanes", {}), 1);
  EXPECT_EQ(value("lanekeeper_lane_ready", {{"lane", "knowledge"}}), 1);
  EXPECT_EQ(value("lanekeeper_role_restarts_total", {{"lane", "knowledge"}, {"reason", "drift"}}), 2);
  auto owner = Owner();
  ASSERT_TRUE(owner);
  EXPECT_EQ(value("lanekeeper_owner_epoch", {{"lane", "knowledge"}, {"queue", queue_name_}}),
            owner->epoch);
  for (const char* reason : {"crash", "rss", "wedge", "lease_lost"}) {
    EXPECT_EQ(value("lanekeeper_worker_restarts_total",
                    {{"lane", "knowledge"}, {"queue", queue_name_}, {"reason", reason}}),
              0);
  }
  for (const char* state : {"waiting", "delayed", "active", "completed", "dead", "cancelled"}) {
    value("lanekeeper_queue_jobs", {{"lane", "knowledge"}, {"queue", queue_name_}, {"state", state}});
  }
}

TEST_F(StatusServerTest, WorkerRestartsByReasonComeFromTheSupervisor) {
  StartSupervisor();
  store_.Set(Snapshot());
  StartServer();
  WaitForWorker();
  // A worker killed behind the supervisor's back is a crash it restarts.
  auto workers = testing::FindProcesses({"jobs", "work", "--queue", queue_name_});
  ASSERT_EQ(workers.size(), 1u);
  ASSERT_TRUE(testing::SignalProcess(workers[0], SIGKILL));
  std::vector<Sample> samples;
  ASSERT_TRUE(Eventually([&] {
    samples.clear();
    if (!CheckExposition(Http(base_, "/metrics").body, &samples).empty()) return false;
    const Sample* crash = FindSample(
        samples, "lanekeeper_worker_restarts_total",
        {{"lane", "knowledge"}, {"queue", queue_name_}, {"reason", "crash"}});
    return crash != nullptr && crash->value == 1;
  }, 15s));
  json sup = Status()["lanes"][0]["supervisors"][0];
  EXPECT_EQ(sup["workerRestarts"]["crash"], 1);
}

TEST_F(StatusServerTest, NoAnswerEverShowsTheRedisPassword) {
  StartSupervisor();
  ControllerSnapshot snap = Snapshot();
  snap.lanes[0].last_reconcile_error = "could not start autopilot";
  store_.Set(snap);
  StartServer();
  WaitForWorker();
  for (const char* path : {"/", "/status", "/doctor", "/metrics", "/healthz", "/readyz", "/nope"}) {
    HttpAnswer a = Http(base_, path);
    EXPECT_EQ(a.body.find(kPassword), std::string::npos) << path << ":\n" << a.body;
  }
  CommandResult doctor = Doctor({"--controller", base_, "--json"});
  EXPECT_EQ(doctor.out.find(kPassword), std::string::npos) << doctor.out;
}

TEST_F(StatusServerTest, UnknownPathsAre404AndOtherMethods405) {
  store_.Set(Snapshot());
  StartServer();
  HttpAnswer missing = Http(base_, "/statuz");
  EXPECT_EQ(missing.code, 404);
  EXPECT_EQ(missing.content_type, "application/json");
  EXPECT_EQ(json::parse(missing.body)["error"],
            "no such path: /statuz; try /, /status, /doctor, /metrics, /healthz or /readyz");
  HttpAnswer post = Http(base_, "/status", "POST");
  EXPECT_EQ(post.code, 405);
  EXPECT_EQ(post.allow, "GET, HEAD");
  EXPECT_EQ(post.body, "method not allowed; use GET or HEAD\n");
  EXPECT_EQ(Http(base_, "/healthz", "DELETE").code, 405);
}

TEST_F(StatusServerTest, APortOfZeroListensOnAPortTheKernelChoseAndTheUrlNamesIt) {
  store_.Set(Snapshot());
  StatusServerOptions o;
  o.addr = "127.0.0.1:0";
  auto s = StatusServer::Start(o, store_, observer_);
  ASSERT_TRUE(s.ok()) << s.status().message();
  std::smatch m;
  std::string url = (*s)->url();
  ASSERT_TRUE(std::regex_match(url, m, std::regex("http://127\\.0\\.0\\.1:([0-9]+)"))) << url;
  EXPECT_GT(std::stoi(m[1]), 0) << url;
  HttpAnswer health = Http(url, "/healthz");
  EXPECT_EQ(health.code, 200);
  EXPECT_EQ(health.body, "ok\n");
}

TEST_F(StatusServerTest, APortInUseIsAClearError) {
  auto taken = testing::LoopbackPort::Listening();
  ASSERT_TRUE(taken.ok()) << taken.status().message();
  std::string where = (*taken)->address();

  StatusServerOptions o;
  o.addr = where;
  auto s = StatusServer::Start(o, store_, observer_);
  ASSERT_FALSE(s.ok());
  EXPECT_TRUE(s.status().IsUnavailable());
  EXPECT_EQ(s.status().message(),
            "status server: cannot listen on " + where + ": bind: Address already in use");

  o.addr = "127.0.0.1";
  auto bad = StatusServer::Start(o, store_, observer_);
  ASSERT_FALSE(bad.ok());
  EXPECT_EQ(bad.status().message(),
            "status server: bad address '127.0.0.1': expected host:port, e.g. 127.0.0.1:8081");
}

TEST_F(StatusServerTest, DoctorWithControllerSaysAllReady) {
  StartSupervisor();
  store_.Set(Snapshot());
  StartServer();
  WaitForWorker();
  CommandResult r = Doctor({"--controller", base_ + "/"});
  EXPECT_EQ(Line(r, "controller: "),
            "controller: ok  controller at " + base_ + ": 1 lane(s), all ready")
      << r.out << r.err;
  EXPECT_EQ(r.exit_code, 0) << r.out << r.err;

  CommandResult j = Doctor({"--controller", base_, "--json"});
  json report = json::parse(j.out);
  json last = report["checks"].back();
  EXPECT_EQ(last["name"], "controller");
  EXPECT_EQ(last["status"], "ok");
  EXPECT_EQ(last["details"]["lanes"], "1");
}

TEST_F(StatusServerTest, DoctorWithControllerNamesTheLaneThatIsNotReady) {
  StartSupervisor();
  ControllerSnapshot snap = Snapshot();
  snap.lanes[0].generation = 3;
  store_.Set(snap);
  StartServer();
  WaitForWorker();
  CommandResult r = Doctor({"--controller", base_});
  EXPECT_EQ(Line(r, "controller: "),
            "controller: warn  controller at " + base_ +
                ": lane knowledge is not ready: GenerationPending: the roles run generation 2, "
                "the spec is generation 3: converging")
      << r.out;
  EXPECT_EQ(r.exit_code, 1) << r.out;

  store_.Set(Snapshot(/*ready=*/false));
  CommandResult early = Doctor({"--controller", base_});
  EXPECT_EQ(Line(early, "controller: "),
            "controller: warn  controller at " + base_ +
                " is not ready: first reconcile not done; run doctor again in a few seconds, "
                "and if it persists see the controller's log");
}

// Caches and proxies must never serve an old state as the current one.
TEST_F(StatusServerTest, EveryAnswerSaysCacheControlNoStore) {
  store_.Set(Snapshot(/*ready=*/false));
  StartServer();
  struct Case {
    std::string path, method;
    int code;
  };
  for (const Case& c : std::vector<Case>{{"/healthz", "GET", 200},
                                         {"/readyz", "GET", 503},
                                         {"/status", "GET", 200},
                                         {"/doctor", "GET", 200},
                                         {"/metrics", "GET", 200},
                                         {"/", "GET", 200},
                                         {"/statuz", "GET", 404},
                                         {"/status", "POST", 405}}) {
    HttpAnswer a = Http(base_, c.path, c.method);
    EXPECT_EQ(a.code, c.code) << c.method << " " << c.path;
    EXPECT_EQ(a.cache_control, "no-store") << c.method << " " << c.path;
  }
  store_.Set(Snapshot(/*ready=*/true));
  HttpAnswer ready = Http(base_, "/readyz");
  EXPECT_EQ(ready.code, 200);
  EXPECT_EQ(ready.cache_control, "no-store");
}

TEST_F(StatusServerTest, DoctorWithControllerNamesAnInvalidEditAndTheSpecsThatDoNotRun) {
  StartSupervisor();
  ControllerSnapshot snap = Snapshot();
  SpecError first{snap.lanes[0].source, 7, 5, "spec.supervisor.maxRSS",
                  "bad size '2GB': expected megabytes like 2048, 2048Mi or 2Gi"};
  SpecError second{snap.lanes[0].source, 9, 3, "spec.frobnicate",
                   "unknown field 'frobnicate' (expected queue, redis, autopilot, supervisor or "
                   "handlers)"};
  snap.lanes[0].spec_errors = {first, second};
  SpecError broken{dir_ + "/specs/broken.yaml", 3, 1, "", "invalid YAML: end of sequence flow "
                                                          "not found"};
  SpecError twice{dir_ + "/specs/copy.yaml", 3, 17, "metadata.name",
                  "lane 'knowledge' is already defined at " + snap.lanes[0].source + ":3:17"};
  snap.errors = {broken, twice};
  store_.Set(snap);
  StartServer();
  WaitForWorker();
  CommandResult r = Doctor({"--controller", base_});
  std::vector<std::string> lines;
  std::istringstream in(r.out);
  for (std::string line; std::getline(in, line);) {
    if (line.starts_with("controller: ")) lines.push_back(line);
  }
  EXPECT_EQ(lines, (std::vector<std::string>{
                       "controller: warn  controller at " + base_ +
                           ": lane knowledge runs, but its spec is invalid: InvalidSpec: " +
                           first.ToString() +
                           " (+1 more); the last good spec (generation 2) keeps running",
                       "controller: warn  controller at " + base_ +
                           ": 2 spec error(s) keep lanes from running: " + broken.ToString() +
                           " (+1 more); see `lanekeeper validate -f DIR`"}))
      << r.out;
  EXPECT_EQ(r.exit_code, 1) << r.out;
}

// docs/controller.md: `get` adds READY and OWNER from the controller, and -o json|yaml the
// controller's status of each lane.
TEST_F(StatusServerTest, GetShowsWhatTheControllerSaysOfEachLane) {
  StartSupervisor();
  store_.Set(Snapshot());
  StartServer();
  WaitForWorker();
  std::filesystem::create_directories(dir_ + "/specs");
  std::ofstream(dir_ + "/specs/knowledge.yaml")
      << "apiVersion: lanekeeper.dev/v1alpha1\nkind: Lane\nmetadata: {name: knowledge}\n"
         "spec:\n  queue: " << queue_name_ << "\n";
  auto table = testing::RunLanekeeper({"--redis", redis_->url(), "get", "--specs", dir_ + "/specs",
                                       "--controller", base_});
  ASSERT_EQ(table.exit_code, 0) << table.err;
  auto owner = Owner();
  ASSERT_TRUE(owner);
  EXPECT_TRUE(std::regex_search(table.out, std::regex("\\bknowledge .* True +" + owner->holder +
                                                     " \\(epoch " +
                                                     std::to_string(owner->epoch) + "\\)\n")))
      << table.out;
  EXPECT_EQ(table.out.find(kPassword), std::string::npos) << table.out;
  auto got = testing::RunLanekeeper({"--redis", redis_->url(), "get", "knowledge", "-o", "json",
                                     "--specs", dir_ + "/specs", "--controller", base_});
  ASSERT_EQ(got.exit_code, 0) << got.err;
  json lane = json::parse(got.out);
  EXPECT_EQ(lane["status"]["ready"], true) << got.out;
  EXPECT_EQ(Condition(lane["status"], "Ready")["reason"], "RolesRunning");
  EXPECT_FALSE(lane["status"].contains("name"));
}

TEST_F(StatusServerTest, DoctorWithControllerFailsWhenNothingListens) {
  auto nothing = testing::LoopbackPort::Refusing();  // bound, never listening
  ASSERT_TRUE(nothing.ok()) << nothing.status().message();
  std::string url = "http://" + (*nothing)->address();
  CommandResult r = Doctor({"--controller", url});
  std::string line = Line(r, "controller: ");
  EXPECT_TRUE(line.starts_with("controller: fail  controller at " + url + " unreachable: "))
      << r.out;
  EXPECT_TRUE(line.ends_with("; is `lanekeeper controller` running?")) << line;
  EXPECT_EQ(r.exit_code, 2);

  CommandResult bad = Doctor({"--controller", "127.0.0.1:8081"});
  EXPECT_EQ(bad.exit_code, 2);
  EXPECT_NE(bad.err.find("--controller: bad URL '127.0.0.1:8081'"), std::string::npos) << bad.err;
}

// ---- conditions, from states that take long to reach for real ---------------------------

class LaneConditionsTest : public ::testing::Test {
 protected:
  LaneConditionsTest() {
    lane_.name = "kb";
    lane_.source = "/specs/kb.yaml";
    lane_.spec.queue = "kb";
    lane_.spec.supervisor.enabled = true;
    lane_.generation = lane_.observed_generation = 1;
    RoleState role;
    role.role = "supervisor";
    role.pid = 42;
    role.state = "running";
    role.started_ms = now_ - 3'600'000;
    lane_.roles.push_back(role);
    queue_.owner = OwnerRecord{"supervisor", "host:42", 5, now_ - 60'000, 2, 0, 10'000};
  }
  LaneCondition Get(const std::string& type) {
    for (auto& c : ComputeLaneConditions(lane_, queue_, now_)) {
      if (c.type == type) return c;
    }
    return {};
  }
  int64_t now_ = NowUnixMillis();
  LaneState lane_;
  QueueView queue_;
};

TEST_F(LaneConditionsTest, AHealthyLaneIsReady) {
  EXPECT_EQ(Get("Ready").status, "True");
  EXPECT_EQ(Get("Ready").message, "supervisor running generation 1; supervisor host:42 holds epoch 5");
  EXPECT_EQ(Get("Degraded").status, "False");
  EXPECT_EQ(Get("Degraded").reason, "NotDegraded");
}

TEST_F(LaneConditionsTest, ADegradedSupervisorMakesTheLaneDegradedAndNotReady) {
  SupervisorStatus s;
  s.holder = "host:42";
  s.degraded = true;
  s.crashes_in_window = 11;
  s.last_exit = "exit code 2 (usage error)";
  queue_.supervisors.push_back(s);
  LaneCondition d = Get("Degraded");
  EXPECT_EQ(d.status, "True");
  EXPECT_EQ(d.reason, "SupervisorDegraded");
  EXPECT_EQ(d.message, "supervisor host:42 reports degraded: its worker crashed 11 times within "
                       "10m, last exit code 2 (usage error)");
  EXPECT_EQ(Get("Ready").reason, "SupervisorDegraded");
}

TEST_F(LaneConditionsTest, AFailedRoleIsDegradedAndNotRunning) {
  lane_.roles[0].state = "failed";
  lane_.roles[0].last_exit = "cannot exec lanekeeper: No such file or directory";
  LaneCondition d = Get("Degraded");
  EXPECT_EQ(d.reason, "RoleFailed");
  EXPECT_EQ(d.message, "role supervisor failed: cannot exec lanekeeper: No such file or directory");
  EXPECT_EQ(Get("Ready").reason, "RoleNotRunning");
}

TEST_F(LaneConditionsTest, ARoleRestartedOftenAndRecentlyIsDegradedUntilItStaysUp) {
  lane_.roles[0].restarts = 4;
  lane_.roles[0].started_ms = now_ - 12'000;
  lane_.roles[0].last_exit = "killed by signal 9";
  LaneCondition d = Get("Degraded");
  EXPECT_EQ(d.reason, "RoleRestarting");
  EXPECT_EQ(d.message, "role supervisor was restarted 4 times by the controller, the last 12s ago "
                       "(last exit: killed by signal 9)");
  lane_.roles[0].started_ms = now_ - kRoleRestartLoopWindow.count();
  EXPECT_EQ(Get("Degraded").status, "False");
}

TEST_F(LaneConditionsTest, AFailedReconcileIsDegraded) {
  lane_.last_reconcile_error = "cannot write /state/kb/handlers.yaml: No space left on device";
  LaneCondition d = Get("Degraded");
  EXPECT_EQ(d.reason, "ReconcileFailed");
  EXPECT_EQ(Get("Ready").status, "False");
}

TEST_F(LaneConditionsTest, AMissingDesiredRoleIsNotRunning) {
  lane_.spec.autopilot.mode = AutopilotMode::kDispatchOnly;
  LaneCondition r = Get("Ready");
  EXPECT_EQ(r.reason, "RoleNotRunning");
  EXPECT_EQ(r.message, "role autopilot is not started");
}

TEST(SupervisorStatusJson, WorkerRestartsRoundTripAndOldJsonWithoutThemStillReads) {
  SupervisorStatus s;
  s.holder = "host:7";
  s.worker_restarts = {{"crash", 2}, {"rss", 1}};
  auto back = SupervisorStatus::FromJson(s.ToJson());
  ASSERT_TRUE(back.ok());
  EXPECT_EQ(back->worker_restarts, s.worker_restarts);
  auto old = SupervisorStatus::FromJson(R"({"holder": "host:7", "state": "running", "epoch": 3})");
  ASSERT_TRUE(old.ok());
  EXPECT_EQ(old->epoch, 3);
  EXPECT_TRUE(old->worker_restarts.empty());
}

}  // namespace
}  // namespace lk
