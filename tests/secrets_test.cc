// Redis passwords stay secret: never in an error message, a unit file, a command line or a
// file others can read; and `get -o yaml` prints where a password is instead of the
// password, so that its output applies back without taking the lane down. Against real
// processes: the lanekeeper binary, a redis-server with requirepass, a controller and the
// roles it starts.
#include <cpprest/http_client.h>
#include <gtest/gtest.h>
#include <sys/stat.h>

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>
#include <vector>

#include "controller/owner/pid_file.h"
#include "controller/spec/redis_password.h"
#include "tests/support/child_process.h"
#include "tests/support/loopback_port.h"
#include "tests/support/proc_scan.h"
#include "tests/support/redis_server.h"
#include "tests/support/temp_dir.h"
#include "worker/job_queue.h"
#include "worker/redis_connection.h"

namespace lk {
namespace secrets_test {

using namespace std::chrono_literals;
using testing::ChildProcess;
using testing::Eventually;
using testing::RunLanekeeper;

constexpr const char* kPassword = "s3cret-Zq7";

unsigned ModeOf(const std::string& path) {
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0) return 07777;
  return st.st_mode & 0777;
}

std::string ReadAll(const std::string& path) {
  std::ifstream in(path);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// The NUL-separated command line of pid, NULs as spaces.
std::string CommandLine(pid_t pid) {
  std::string s = ReadAll("/proc/" + std::to_string(pid) + "/cmdline");
  for (char& c : s) c = c == '\0' ? ' ' : c;
  return s;
}

TEST(SecretRedaction, AMalformedUrlIsNeverEchoedWithItsPassword) {
  for (const std::string& url : {"redis://user:" + std::string(kPassword) + "@host:notaport/0",
                                "http://:" + std::string(kPassword) + "@host",
                                "redis//:" + std::string(kPassword) + "@host",
                                "redis://" + std::string(kPassword) + "@host:99999"}) {
    auto ep = ParseRedisUrl(url);
    ASSERT_FALSE(ep.ok()) << url;
    EXPECT_EQ(ep.status().message().find(kPassword), std::string::npos) << ep.status().message();
    EXPECT_NE(ep.status().message().find("***@host"), std::string::npos) << ep.status().message();
  }
  auto ep = ParseRedisUrl("redis://user:" + std::string(kPassword) + "@host:notaport/0");
  EXPECT_NE(ep.status().message().find("'redis://user:***@host:notaport/0'"), std::string::npos)
      << ep.status().message();
  auto r = RunLanekeeper(
      {"--redis", "redis://u:" + std::string(kPassword) + "@127.0.0.1:x/0", "jobs", "stats"});
  EXPECT_NE(r.exit_code, 0);
  EXPECT_EQ((r.out + r.err).find(kPassword), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("redis://u:***@127.0.0.1:x/0"), std::string::npos) << r.err;
}

TEST(SecretRedaction, PasswordsSpliceIntoAndOutOfUrls) {
  EXPECT_EQ(UrlWithoutPassword("redis://:pw@h:1/2"), "redis://h:1/2");
  EXPECT_EQ(UrlWithoutPassword("redis://u:pw@h"), "redis://u:@h");
  EXPECT_EQ(UrlWithoutPassword("unix://:pw@/run/r.sock?db=3"), "unix:///run/r.sock?db=3");
  EXPECT_EQ(UrlWithoutPassword("redis://h"), "redis://h");
  EXPECT_EQ(UrlWithPassword("redis://h:1/2", "p@ss/w:rd"), "redis://:p%40ss%2Fw%3Ard@h:1/2");
  EXPECT_EQ(UrlWithPassword("redis://u:@h", "pw"), "redis://u:pw@h");
  EXPECT_EQ(UrlWithPassword("unix:///r.sock", "pw"), "unix://:pw@/r.sock");
  auto ep = ParseRedisUrl(UrlWithPassword("redis://u:@h", "p@ss/w:rd"));
  ASSERT_TRUE(ep.ok()) << ep.status().message();
  EXPECT_EQ(ep->username, "u");
  EXPECT_EQ(ep->password, "p@ss/w:rd");
}

TEST(SecretFiles, InstallKeepsTheUrlInA0600EnvironmentFileOnly) {
  testing::TempDir dir("install-secret");
  std::string units = dir / "units", repo = dir / "repo";
  std::filesystem::create_directories(repo);
  std::string url = "redis://:" + std::string(kPassword) + "@10.0.0.5:6380/2";
  auto lane = RunLanekeeper({"--redis", url, "install", "--target", "systemd", "--repo", repo,
                             "--concurrency", "1", "--max-rss", "0", "--unit-dir", units});
  ASSERT_EQ(lane.exit_code, 0) << lane.err;
  EXPECT_EQ((lane.out + lane.err).find(kPassword), std::string::npos) << lane.out << lane.err;
  auto ctl = RunLanekeeper({"--redis", url, "install", "--target", "systemd", "--controller",
                            "--specs", repo, "--unit-dir", units});
  ASSERT_EQ(ctl.exit_code, 0) << ctl.err;
  auto dry = RunLanekeeper({"--redis", url, "install", "--target", "systemd", "--controller",
                            "--specs", repo, "--unit-dir", units, "--dry-run"});
  EXPECT_EQ(dry.out.find(kPassword), std::string::npos) << dry.out;

  for (const char* unit : {"lanekeeper-supervisor-default.service",
                           "lanekeeper-autopilot-default.service", "lanekeeper-controller.service"}) {
    std::string text = ReadAll(units + "/" + unit);
    EXPECT_EQ(text.find(kPassword), std::string::npos) << unit << ":\n" << text;
    EXPECT_EQ(text.find("--redis"), std::string::npos) << unit << ":\n" << text;
    std::string env = std::string(unit) == "lanekeeper-controller.service"
                          ? "lanekeeper-controller.env" : "lanekeeper-default.env";
    EXPECT_NE(text.find("\nEnvironmentFile=" + units + "/" + env + "\n"), std::string::npos)
        << unit << ":\n" << text;
    EXPECT_EQ(ModeOf(units + "/" + unit), 0644u) << unit;
  }
  for (const char* env : {"lanekeeper-default.env", "lanekeeper-controller.env"}) {
    EXPECT_EQ(ModeOf(units + "/" + env), 0600u) << env;
    EXPECT_NE(ReadAll(units + "/" + env).find("\nLANEKEEPER_REDIS_URL=\"" + url + "\"\n"),
              std::string::npos) << ReadAll(units + "/" + env);
  }
  std::string enable = lane.out.substr(lane.out.find("enable --now"));
  EXPECT_EQ(enable.substr(0, enable.find('\n')).find(".env"), std::string::npos)
      << "not a unit to enable:\n" << lane.out;
}

TEST(SecretFiles, PidFilesAreTheOwnersAlone) {
  testing::TempDir dir("pid-mode");
  auto pid = PidFile::Acquire(dir / "supervisor.pid");
  ASSERT_TRUE(pid.ok()) << pid.status().message();
  EXPECT_EQ(ModeOf(dir / "supervisor.pid"), 0600u);
}

// ---- a controller running a lane on a Redis with requirepass ------------------------

class SecretRoundTrip : public ::testing::Test {
 protected:
  void SetUp() override {
    testing::RedisServerOptions o;
    o.password = kPassword;
    auto server = testing::RedisServer::Start(o);
    ASSERT_TRUE(server.ok()) << server.status().message();
    server_ = std::move(server).value();
    ASSERT_TRUE(dir_.ok());
    specs_ = dir_ / "specs";
    std::filesystem::create_directories(specs_);
    queue_ = "secret-" + std::to_string(getpid());
    url_ = "redis://:" + std::string(kPassword) + "@127.0.0.1:" +
           std::to_string(server_->port()) + "/0";
  }
  void TearDown() override {
    if (controller_ && controller_->Running()) {
      controller_->Signal(SIGTERM);
      controller_->Wait(40s);
    }
  }

  void StartController() {
    auto port = testing::LoopbackPort::ForServer();
    ASSERT_TRUE(port.ok()) << port.status().message();
    port_ = std::move(port).value();
    // The controller's own default Redis comes from the environment, as in a unit.
    controller_ = std::make_unique<ChildProcess>(
        std::vector<std::string>{testing::LanekeeperBinary(), "controller", "--specs", specs_,
                                 "--state-dir", dir_ / "state", "--status-addr",
                                 port_->address(), "--rescan", "1s"},
        std::vector<std::string>{"LANEKEEPER_REDIS_URL=" + url_});
  }

  testing::CommandResult Apply(const std::string& text) {
    std::string file = dir_ / ("apply-" + std::to_string(applies_++) + ".yaml");
    std::ofstream(file) << text;
    return RunLanekeeper({"apply", "-f", file, "--specs", specs_});
  }

  std::vector<pid_t> Role(const char* role) {
    return testing::FindProcesses({"jobs", role, "--queue", queue_});
  }

  // Submits a job through the password-protected Redis and waits for it to complete.
  bool RunsAJob() {
    auto q = OpenJobQueue(url_, queue_);
    if (!q.ok()) return false;
    JobSpec spec;
    spec.name = "hello";
    auto id = (*q)->Enqueue(spec);
    return id.ok() && Eventually([&] {
             auto j = (*q)->Get(id->id);
             return j.ok() && j->state == JobState::kCompleted;
           }, 30s);
  }

  // The body of GET path from the controller's status server, or "" without an answer.
  std::string Fetch(const std::string& path) {
    try {
      web::http::client::http_client client("http://" + port_->address());
      return client.request(web::http::methods::GET, path).get().extract_string().get();
    } catch (const std::exception&) {
      return "";
    }
  }

  // lanekeeper_reconcile_total from the controller's /metrics, or -1.
  int64_t Reconciles() {
    try {
      std::istringstream in(Fetch("/metrics"));
      std::string line;
      while (std::getline(in, line)) {
        if (line.starts_with("lanekeeper_reconcile_total ")) return std::stoll(line.substr(27));
      }
    } catch (const std::exception&) {
    }
    return -1;
  }

  testing::TempDir dir_{"secrets"};
  std::unique_ptr<testing::RedisServer> server_;
  std::unique_ptr<testing::LoopbackPort> port_;
  std::unique_ptr<ChildProcess> controller_;
  std::string specs_, queue_, url_;
  int applies_ = 0;
};

TEST_F(SecretRoundTrip, GetYamlAppliesBackAndTheLaneKeepsRunningOnItsPassword) {
  StartController();
  auto r = Apply("apiVersion: lanekeeper.dev/v1alpha1\nkind: Lane\nmetadata: {name: kb}\n"
                 "spec:\n  queue: " + queue_ + "\n  redis: {url: '" + url_ + "'}\n"
                 "  supervisor: {concurrency: 1, drainTimeout: 5s}\n"
                 "  handlers:\n    hello: {command: [sh, -c, 'cat > /dev/null'], timeout: 10s}\n");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.out, "lane/kb created\n");
  ASSERT_TRUE(RunsAJob()) << controller_->Stderr();
  ASSERT_EQ(Role("supervisor").size(), 1u);
  ASSERT_EQ(Role("work").size(), 1u);
  const pid_t supervisor = Role("supervisor")[0], worker = Role("work")[0];

  // Nobody reads the password: not on a command line, not in a file others can read.
  for (pid_t p : {controller_->pid(), supervisor, worker}) {
    EXPECT_EQ(CommandLine(p).find(kPassword), std::string::npos) << CommandLine(p);
  }
  EXPECT_EQ(ModeOf(specs_ + "/kb.yaml"), 0600u);
  EXPECT_EQ(ModeOf(specs_ + "/.secrets"), 0700u);
  EXPECT_EQ(ModeOf(KeptPasswordPath(specs_, "kb")), 0600u);
  EXPECT_EQ(ModeOf(dir_ / "state"), 0700u);
  EXPECT_EQ(ModeOf(dir_ / "state/lanes"), 0700u);
  EXPECT_EQ(ModeOf(dir_ / "state/lanes/kb/state.json"), 0600u);
  // ... nor in what the controller logs and serves, nor in doctor's answers.
  for (const char* path : {"/status", "/doctor", "/metrics", "/"}) {
    std::string body = Fetch(path);
    EXPECT_FALSE(body.empty()) << path;
    EXPECT_EQ(body.find(kPassword), std::string::npos) << path << ":\n" << body;
  }
  auto doctor = RunLanekeeper({"doctor", "--queue", queue_, "--controller",
                               "http://" + port_->address()}, {"LANEKEEPER_REDIS_URL=" + url_});
  EXPECT_FALSE(doctor.out.empty()) << doctor.err;
  EXPECT_EQ((doctor.out + doctor.err).find(kPassword), std::string::npos) << doctor.out;
  EXPECT_EQ(controller_->Stderr().find(kPassword), std::string::npos) << controller_->Stderr();

  // get prints where the password is, not the password.
  auto got = RunLanekeeper({"get", "kb", "-o", "yaml", "--specs", specs_, "--controller",
                            "http://" + port_->address()});
  ASSERT_EQ(got.exit_code, 0) << got.err;
  EXPECT_EQ(got.out.find(kPassword), std::string::npos) << got.out;
  // (The controller's status, which get adds, names the server redacted: not a spec field.)
  const std::string spec = got.out.substr(0, got.out.find("\nstatus:"));
  EXPECT_EQ(spec.find("***"), std::string::npos) << got.out;
  EXPECT_NE(got.out.find("passwordFile: " + KeptPasswordPath(specs_, "kb")), std::string::npos)
      << got.out;

  // ... and it applies back: the same lane, whose roles keep running on the same password.
  auto again = Apply(got.out);
  ASSERT_EQ(again.exit_code, 0) << again.err;
  EXPECT_EQ(again.out, "lane/kb configured\n");
  EXPECT_EQ(ModeOf(specs_ + "/kb.yaml"), 0644u) << "no password left in it";
  EXPECT_EQ(ReadAll(specs_ + "/kb.yaml").find(kPassword), std::string::npos);
  EXPECT_EQ(Apply(got.out).out, "lane/kb unchanged\n");
  // Two reconciles later (--rescan 1s) nothing was restarted, and jobs still run.
  int64_t start = Reconciles();
  ASSERT_GE(start, 0);
  ASSERT_TRUE(Eventually([&] { return Reconciles() >= start + 2; }, 20s));
  EXPECT_EQ(Role("supervisor"), std::vector<pid_t>{supervisor});
  EXPECT_EQ(Role("work"), std::vector<pid_t>{worker});
  EXPECT_TRUE(RunsAJob()) << controller_->Stderr();
  auto status = nlohmann::json::parse(
      RunLanekeeper({"get", "kb", "-o", "json", "--specs", specs_, "--controller",
                     "http://" + port_->address()}).out);
  EXPECT_EQ(status["spec"]["queue"], queue_);
  EXPECT_EQ(status.dump().find(kPassword), std::string::npos);
}

TEST_F(SecretRoundTrip, APasswordFileThatCannotBeReadIsASpecErrorNamingIt) {
  auto r = Apply("apiVersion: lanekeeper.dev/v1alpha1\nkind: Lane\nmetadata: {name: kb}\n"
                 "spec:\n  queue: q\n  redis: {url: 'redis://127.0.0.1:1/0', passwordFile: " +
                 (dir_ / "missing") + "}\n");
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_NE(r.err.find(":6:"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("spec.redis.passwordFile: cannot read the Redis password from " +
                       (dir_ / "missing")), std::string::npos) << r.err;
  r = Apply("apiVersion: lanekeeper.dev/v1alpha1\nkind: Lane\nmetadata: {name: kb}\n"
            "spec:\n  queue: q\n  redis: {url: '" + url_ + "', passwordFile: /x}\n");
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_NE(r.err.find("url carries a password too"), std::string::npos) << r.err;
  EXPECT_EQ(r.err.find(kPassword), std::string::npos) << r.err;
}

}  // namespace secrets_test
}  // namespace lk
