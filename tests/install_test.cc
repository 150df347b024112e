// `lanekeeper install --target systemd`: the units it prints and writes, the inputs it
// refuses, and — with no systemd here — that the command lines it puts in ExecStart really
// run the production shape that doctor approves.
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <map>
#include <regex>
#include <set>
#include <sstream>

#include "controller/owner/autopilot_record.h"
#include "controller/owner/owner_lease.h"
#include "controller/install/systemd_units.h"
#include "tests/support/child_process.h"
#include "tests/support/proc_scan.h"
#include "tests/support/queue_records.h"
#include "tests/support/redis_server.h"
#include "tests/support/temp_dir.h"
#include "tests/support/worker_timeline.h"
#include "worker/job_queue.h"

namespace lk {
namespace {

using namespace std::chrono_literals;
using testing::CommandResult;
using testing::Eventually;

class InstallTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_TRUE(temp_.ok());
    dir_ = temp_.path();
    repo_ = dir_ + "/repo";
    units_ = dir_ + "/units";
    ASSERT_TRUE(std::filesystem::create_directory(repo_));
  }

  CommandResult Install(std::vector<std::string> extra, std::vector<std::string> env = {}) {
    std::vector<std::string> args = {"install", "--target", "systemd", "--repo", repo_,
                                     "--concurrency", "4", "--max-rss", "2048"};
    args.insert(args.end(), extra.begin(), extra.end());
    return testing::RunLanekeeper(args, env, 30s);
  }

  // The files of a --dry-run, keyed by the path in their "# file: PATH" header.
  static std::map<std::string, std::string> Files(const std::string& out) {
    std::map<std::string, std::string> files;
    std::string current;
    std::istringstream in(out);
    for (std::string line; std::getline(in, line);) {
      if (line.rfind("# file: ", 0) == 0) {
        current = line.substr(8);
        files[current];
      } else if (!current.empty()) {
        files[current] += line + "\n";
      }
    }
    // Units are separated by one blank line, which belongs to neither.
    for (auto& [path, text] : files) {
      if (text.ends_with("\n\n")) text.pop_back();
    }
    return files;
  }

  static std::string Setting(const std::string& unit, const std::string& key) {
    std::istringstream in(unit);
    for (std::string line; std::getline(in, line);) {
      if (line.rfind(key + "=", 0) == 0) return line.substr(key.size() + 1);
    }
    return "";
  }

  testing::TempDir temp_{"install-test"};
  std::string dir_, repo_, units_;
};

TEST_F(InstallTest, DryRunPrintsTheSupervisorAndAutopilotUnitsAndWritesNothing) {
  auto r = Install({"--queue", "emails", "--redis", "redis://10.0.0.5:6380/2", "--unit-dir",
                    units_, "--dry-run"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  auto files = Files(r.out);
  const std::string sup_path = units_ + "/lanekeeper-supervisor-emails.service";
  const std::string ap_path = units_ + "/lanekeeper-autopilot-emails.service";
  const std::string env_path = units_ + "/lanekeeper-emails.env";
  ASSERT_EQ(files.size(), 3u) << r.out;
  ASSERT_TRUE(files.count(sup_path) && files.count(ap_path)) << r.out;
  EXPECT_EQ(files[env_path + " (mode 0600)"],
            "# Written by `lanekeeper install`: the Redis URL of the units that name this\n"
            "# file in EnvironmentFile=. Mode 0600: it may carry a password.\n"
            "LANEKEEPER_REDIS_URL=\"redis://10.0.0.5:6380/2\"\n") << r.out;
  EXPECT_FALSE(std::filesystem::exists(units_));

  const std::string bin = testing::LanekeeperBinary();
  const std::string& sup = files[sup_path];
  EXPECT_EQ(Setting(sup, "ExecStart"),
            bin + " jobs supervisor --queue emails "
                  "--concurrency 4 --max-rss 2048 --drain-timeout 30s "
                  "--pid-file %t/lanekeeper-supervisor-emails.pid");
  EXPECT_EQ(Setting(sup, "EnvironmentFile"), env_path);
  EXPECT_EQ(Setting(sup, "Restart"), "always");
  EXPECT_EQ(Setting(sup, "RestartSec"), "2");
  EXPECT_EQ(Setting(sup, "TimeoutStopSec"), "60s");  // twice the 30 s drain
  EXPECT_EQ(Setting(sup, "KillMode"), "mixed");
  EXPECT_EQ(Setting(sup, "After"), "network-online.target redis-server.service");
  EXPECT_EQ(Setting(sup, "Wants"), "network-online.target");
  EXPECT_EQ(Setting(sup, "WantedBy"), "multi-user.target");

  const std::string& ap = files[ap_path];
  EXPECT_EQ(Setting(ap, "ExecStart"),
            bin + " autopilot --queue emails --repo " + repo_ +
                " --no-worker --interval 5m");
  EXPECT_EQ(Setting(ap, "WorkingDirectory"), repo_);
  EXPECT_EQ(Setting(ap, "EnvironmentFile"), env_path);
  EXPECT_EQ(Setting(ap, "After"),
            "network-online.target redis-server.service lanekeeper-supervisor-emails.service");
  EXPECT_EQ(Setting(ap, "Restart"), "always");
  EXPECT_EQ(Setting(ap, "RestartSec"), "2");
  EXPECT_EQ(Setting(ap, "WantedBy"), "multi-user.target");
}

TEST_F(InstallTest, TwoQueuesGetUnitsThatNeverOverwriteEachOther) {
  auto a = Install({"--queue", "emails", "--unit-dir", units_, "--dry-run"});
  auto b = Install({"--queue", "reports", "--unit-dir", units_, "--dry-run"});
  ASSERT_EQ(a.exit_code, 0) << a.err;
  ASSERT_EQ(b.exit_code, 0) << b.err;
  std::set<std::string> paths;
  for (const auto& [p, t] : Files(a.out)) paths.insert(p);
  for (const auto& [p, t] : Files(b.out)) paths.insert(p);
  EXPECT_EQ(paths.size(), 4u);
  EXPECT_NE(Setting(Files(b.out)[units_ + "/lanekeeper-supervisor-reports.service"], "ExecStart")
                .find("--pid-file %t/lanekeeper-supervisor-reports.pid"),
            std::string::npos);
}

TEST_F(InstallTest, WithoutARedisUrlTheUnitsUseTheBuiltInDefaultAndNoEnvironment) {
  auto r = Install({"--unit-dir", units_, "--dry-run"}, {"LANEKEEPER_REDIS_URL="});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const auto sup = Files(r.out)[units_ + "/lanekeeper-supervisor-default.service"];
  EXPECT_NE(Setting(sup, "ExecStart").find("--redis redis://127.0.0.1:6379/0 --queue default"),
            std::string::npos)
      << sup;
  EXPECT_EQ(Setting(sup, "Environment"), "");
  EXPECT_EQ(Setting(sup, "EnvironmentFile"), "");
}

TEST_F(InstallTest, UserUnitsGoToTheUserConfigDirectoryAndDefaultTarget) {
  auto r = Install({"--user", "--dry-run"}, {"HOME=" + dir_, "XDG_CONFIG_HOME="});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  auto files = Files(r.out);
  const std::string sup_path = dir_ + "/.config/systemd/user/lanekeeper-supervisor-default.service";
  const std::string ap_path = dir_ + "/.config/systemd/user/lanekeeper-autopilot-default.service";
  ASSERT_TRUE(files.count(sup_path) && files.count(ap_path)) << r.out;
  EXPECT_EQ(Setting(files[sup_path], "WantedBy"), "default.target");
  // A user manager cannot order itself after system units.
  EXPECT_EQ(Setting(files[sup_path], "After"), "");
  EXPECT_EQ(Setting(files[ap_path], "After"), "lanekeeper-supervisor-default.service");
}

TEST_F(InstallTest, PathsWithSpacesAndPercentSignsAreQuotedAndEscaped) {
  repo_ = dir_ + "/my repo%1";
  std::filesystem::create_directory(repo_);
  auto r = Install({"--unit-dir", units_, "--dry-run"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const auto ap = Files(r.out)[units_ + "/lanekeeper-autopilot-default.service"];
  EXPECT_EQ(Setting(ap, "WorkingDirectory"), dir_ + "/my repo%%1");
  EXPECT_NE(Setting(ap, "ExecStart").find("--repo \"" + dir_ + "/my repo%%1\" --no-worker"),
            std::string::npos)
      << ap;
}

TEST_F(InstallTest, WritingCreatesBothFilesAndPrintsTheSystemctlCommands) {
  auto dry = Install({"--queue", "emails", "--unit-dir", units_, "--dry-run"});
  auto r = Install({"--queue", "emails", "--unit-dir", units_});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  for (const auto& [path, text] : Files(dry.out)) {
    std::ifstream in(path);
    std::stringstream written;
    written << in.rdbuf();
    EXPECT_EQ(written.str(), text) << path;
  }
  EXPECT_EQ(std::distance(std::filesystem::directory_iterator(units_),
                          std::filesystem::directory_iterator{}),
            2);  // no temporary files left behind
  EXPECT_NE(r.out.find("systemctl daemon-reload && systemctl enable --now "
                       "lanekeeper-supervisor-emails.service lanekeeper-autopilot-emails.service"),
            std::string::npos)
      << r.out;
}

TEST_F(InstallTest, BadInputsAreRejectedAndNothingIsWritten) {
  struct Case {
    std::vector<std::string> args;
    std::string error;
  };
  std::vector<Case> cases = {
      {{"install", "--target", "launchd", "--repo", repo_, "--concurrency", "1", "--max-rss", "0"},
       "--target launchd is not supported"},
      {{"install", "--target", "systemd", "--repo", "relative/repo", "--concurrency", "1",
        "--max-rss", "0"},
       "--repo must be an absolute path"},
      {{"install", "--target", "systemd", "--repo", dir_ + "/missing", "--concurrency", "1",
        "--max-rss", "0"},
       "is not a directory"},
      {{"install", "--target", "systemd", "--repo", repo_, "--concurrency", "1", "--max-rss",
        "100"},
       "looks like a GB/MB mix-up"},
      {{"install", "--target", "systemd", "--repo", repo_, "--concurrency", "0", "--max-rss", "0"},
       "--concurrency must be 1..4096"},
      {{"install", "--target", "systemd", "--repo", repo_, "--concurrency", "1", "--max-rss", "0",
        "--queue", "a/b"},
       "cannot name a systemd unit"},
      {{"install", "--target", "systemd", "--repo", repo_, "--concurrency", "1", "--max-rss", "0",
        "--interval", "5"},
       "--interval"},
      {{"install", "--target", "systemd", "--repo", repo_, "--concurrency", "1", "--max-rss", "0",
        "--handlers", "handlers.yaml"},
       "--handlers must be an absolute path"},
  };
  for (auto& c : cases) {
    c.args.insert(c.args.end(), {"--unit-dir", units_});
    auto r = testing::RunLanekeeper(c.args, {}, 30s);
    EXPECT_EQ(r.exit_code, 2) << c.error;
    EXPECT_NE(r.err.find(c.error), std::string::npos) << "want '" << c.error << "', got " << r.err;
  }
  EXPECT_FALSE(std::filesystem::exists(units_));
}

TEST_F(InstallTest, ReRunningInstallWithOtherFlagsReplacesTheUnits) {
  ASSERT_EQ(Install({"--queue", "kb", "--unit-dir", units_}).exit_code, 0);
  auto again = testing::RunLanekeeper({"install", "--target", "systemd", "--repo", repo_,
                                       "--concurrency", "8", "--max-rss", "0", "--interval",
                                       "10m", "--queue", "kb", "--unit-dir", units_},
                                      {}, 30s);
  ASSERT_EQ(again.exit_code, 0) << again.err;
  std::ifstream sup(units_ + "/lanekeeper-supervisor-kb.service");
  std::stringstream text;
  text << sup.rdbuf();
  EXPECT_NE(Setting(text.str(), "ExecStart").find("--concurrency 8 --max-rss 0 "),
            std::string::npos)
      << text.str();
  std::ifstream ap(units_ + "/lanekeeper-autopilot-kb.service");
  std::stringstream ap_text;
  ap_text << ap.rdbuf();
  EXPECT_TRUE(Setting(ap_text.str(), "ExecStart").ends_with("--no-worker --interval 10m"))
      << ap_text.str();
  EXPECT_EQ(std::distance(std::filesystem::directory_iterator(units_),
                          std::filesystem::directory_iterator{}),
            2);
}

TEST_F(InstallTest, UserUnitsGoUnderXdgConfigHomeAndItPrintsUserCommandsAndLinger) {
  const std::string xdg = dir_ + "/xdg";
  auto r = Install({"--user"}, {"HOME=" + dir_ + "/home", "XDG_CONFIG_HOME=" + xdg});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const std::string sup = xdg + "/systemd/user/lanekeeper-supervisor-default.service";
  EXPECT_TRUE(std::filesystem::exists(sup));
  EXPECT_TRUE(std::filesystem::exists(xdg + "/systemd/user/lanekeeper-autopilot-default.service"));
  EXPECT_FALSE(std::filesystem::exists(dir_ + "/home"));
  EXPECT_NE(r.out.find("wrote " + sup + "\n"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("  systemctl --user daemon-reload && systemctl --user enable --now "
                       "lanekeeper-supervisor-default.service "
                       "lanekeeper-autopilot-default.service\n"),
            std::string::npos)
      << r.out;
  EXPECT_NE(r.out.find("  loginctl enable-linger \"$USER\"\n"), std::string::npos) << r.out;
  std::ifstream in(sup);
  std::stringstream text;
  text << in.rdbuf();
  EXPECT_EQ(Setting(text.str(), "WantedBy"), "default.target");
}

TEST_F(InstallTest, TheUnitsNeverGiveUpRestartingAndCarryHandlersCycleAndTheDrainTimeout) {
  const std::string handlers = dir_ + "/handlers.yaml", cycle = dir_ + "/cycle.yaml";
  std::ofstream(handlers) << "handlers: {}\n";
  std::ofstream(cycle) << "steps: []\n";
  auto r = Install({"--unit-dir", units_, "--dry-run", "--drain-timeout", "45s", "--handlers",
                    handlers, "--cycle", cycle});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  auto files = Files(r.out);
  const std::string& sup = files[units_ + "/lanekeeper-supervisor-default.service"];
  const std::string& ap = files[units_ + "/lanekeeper-autopilot-default.service"];
  EXPECT_EQ(Setting(sup, "StartLimitIntervalSec"), "0");
  EXPECT_EQ(Setting(ap, "StartLimitIntervalSec"), "0");
  EXPECT_EQ(Setting(sup, "TimeoutStopSec"), "90s");
  EXPECT_NE(Setting(sup, "ExecStart").find("--drain-timeout 45s "), std::string::npos) << sup;
  EXPECT_TRUE(Setting(sup, "ExecStart").ends_with("--handlers " + handlers)) << sup;
  EXPECT_TRUE(Setting(ap, "ExecStart").ends_with("--cycle " + cycle)) << ap;
  EXPECT_EQ(Setting(ap, "Wants"), "network-online.target lanekeeper-supervisor-default.service");
}

// systemd's own parser (scripts/setup installs it): no warnings about our files, and the awkward
// values (a space and a % in the repo path, a % in the Redis password) come out intact.
TEST_F(InstallTest, SystemdAnalyzeAcceptsTheUnitsAndReadsTheValuesBack) {
  ASSERT_TRUE(std::filesystem::exists("/usr/bin/systemd-analyze"))
      << "systemd-analyze is missing: run scripts/setup (Debian package systemd)";
  repo_ = dir_ + "/my repo%1";
  std::filesystem::create_directory(repo_);
  auto r = Install({"--queue", "emails", "--redis", "redis://:pa%t@10.0.0.5:6380/2",
                    "--unit-dir", units_});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  auto verify = testing::Run({"/usr/bin/systemd-analyze", "verify",
                              units_ + "/lanekeeper-supervisor-emails.service",
                              units_ + "/lanekeeper-autopilot-emails.service"},
                             {"SYSTEMD_LOG_LEVEL=debug"}, 60s);
  ASSERT_EQ(verify.exit_code, 0) << verify.err;
  std::string all = verify.out + verify.err;
  std::istringstream lines(all);
  for (std::string line; std::getline(lines, line);) {
    // A complaint names the file and line: "UNITS/lanekeeper-x.service:12: Unknown key ...".
    EXPECT_EQ(line.rfind(units_ + "/", 0), std::string::npos) << line;
  }
  EXPECT_NE(all.find("WorkingDirectory: " + repo_ + "\n"), std::string::npos) << all;
  EXPECT_NE(all.find("EnvironmentFile: " + units_ + "/lanekeeper-emails.env"),
            std::string::npos) << all;
  EXPECT_EQ(all.find("pa%t"), std::string::npos) << all;
  EXPECT_NE(all.find("--repo \"" + repo_ + "\" --no-worker"), std::string::npos);
  EXPECT_NE(all.find("--pid-file /run/lanekeeper-supervisor-emails.pid"), std::string::npos);
  EXPECT_NE(all.find("KillMode: mixed"), std::string::npos);
  EXPECT_NE(all.find("TimeoutStopSec: 1min\n"), std::string::npos);
}

// systemd would run ExecStart after expanding %t, with LANEKEEPER_REDIS_URL from the
// EnvironmentFile; doing the same by hand proves the flags are ones the commands accept, and that the two units
// together are the shape doctor calls healthy.
TEST_F(InstallTest, TheUnitsCommandLinesRunTheProductionShapeDoctorApproves) {
  testing::RedisServerOptions aof;
  aof.appendonly = true;
  auto server = testing::RedisServer::Start(aof);
  ASSERT_TRUE(server.ok()) << server.status().message();
  const std::string url = (*server)->url();
  const std::string queue = "inst" + std::to_string(getpid());
  auto r = Install({"--queue", queue, "--redis", url, "--interval", "2s", "--unit-dir", units_,
                    "--dry-run"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  auto files = Files(r.out);
  auto argv_of = [&](const std::string& unit) {
    std::string line = Setting(files[units_ + "/" + unit], "ExecStart");
    line = std::regex_replace(line, std::regex("%t"), dir_);
    std::vector<std::string> argv;
    std::istringstream in(line);
    for (std::string a; in >> a;) argv.push_back(a);
    return argv;
  };
  const std::vector<std::string> env = {"LANEKEEPER_REDIS_URL=" + url};
  auto sup = std::make_unique<testing::ChildProcess>(argv_of(SupervisorUnitName(queue)), env);
  auto ap = std::make_unique<testing::ChildProcess>(argv_of(AutopilotUnitName(queue)), env);

  auto jobs = OpenJobQueue(url, queue);
  ASSERT_TRUE(jobs.ok());
  testing::QueueRecords records(**jobs);
  ASSERT_TRUE(Eventually([&] {
    auto rec = records.Autopilot();
    auto owner = records.Owner();
    return rec && rec->last_dispatch_ms > 0 && owner && owner->role == "supervisor" &&
           records.Stats().completed > 0;
  }, 30s)) << sup->Stderr() << ap->Stderr();
  EXPECT_TRUE(std::filesystem::exists(dir_ + "/lanekeeper-supervisor-" + queue + ".pid"));

  auto doctor = testing::RunLanekeeper({"doctor", "--redis", url, "--queue", queue}, {}, 30s);
  EXPECT_EQ(doctor.exit_code, 0) << doctor.out;
  EXPECT_NE(doctor.out.find("supervisor: ok  "), std::string::npos) << doctor.out;
  EXPECT_NE(doctor.out.find("queue_health: ok  "), std::string::npos) << doctor.out;

  // systemctl stop: SIGTERM to the main process; the supervisor drains its worker and both
  // exit well within TimeoutStopSec.
  ap->Signal(SIGTERM);
  sup->Signal(SIGTERM);
  EXPECT_EQ(ap->Wait(30s), 0);
  EXPECT_EQ(sup->Wait(60s), 0);
  EXPECT_TRUE(testing::FindProcesses({"jobs", "work", "--queue", queue}).empty());
  EXPECT_EQ(testing::FirstSecondWorker(records.Events(), testing::OneAtATime::kStrict), "");
}

}  // namespace
}  // namespace lk

namespace lk {
namespace {

class InstallControllerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_TRUE(temp_.ok());
    dir_ = temp_.path();
    specs_ = dir_ + "/lanes";
    ASSERT_TRUE(std::filesystem::create_directory(specs_));
  }
  testing::TempDir temp_{"install-ctl"};
  std::string dir_, specs_;
};

// The controller's unit, read back by systemd's own parser: KillMode=process (the
// controller stops its lanes itself and adopts them after a crash) and a stop timeout that
// covers a drain.
TEST_F(InstallControllerTest, WritesOneControllerUnitSystemdAccepts) {
  auto r = testing::RunLanekeeper({"--redis", "redis://127.0.0.1:6390/1", "install", "--target",
                                   "systemd", "--controller", "--specs", specs_, "--state-dir",
                                   dir_ + "/state", "--unit-dir", dir_ + "/units",
                                   "--drain-timeout", "45s"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  std::string unit = dir_ + "/units/lanekeeper-controller.service";
  EXPECT_NE(r.out.find("wrote " + unit), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("systemctl daemon-reload && systemctl enable --now "
                       "lanekeeper-controller.service"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("lanekeeper doctor --controller http://127.0.0.1:8081"),
            std::string::npos) << r.out;
  auto verify = testing::Run({"/usr/bin/systemd-analyze", "verify", unit},
                             {"SYSTEMD_LOG_LEVEL=debug"}, 60s);
  ASSERT_EQ(verify.exit_code, 0) << verify.err;
  std::string all = verify.out + verify.err;
  std::istringstream lines(all);
  for (std::string line; std::getline(lines, line);) {
    EXPECT_EQ(line.rfind(unit, 0), std::string::npos) << line;
  }
  EXPECT_NE(all.find("controller --specs " + specs_ + " --state-dir " + dir_ +
                     "/state --status-addr 127.0.0.1:8081"), std::string::npos) << all;
  EXPECT_NE(all.find("EnvironmentFile: " + dir_ + "/units/lanekeeper-controller.env"),
            std::string::npos) << all;
  EXPECT_NE(all.find("KillMode: process"), std::string::npos) << all;
  EXPECT_NE(all.find("TimeoutStopSec: 2min\n"), std::string::npos) << all;
}

// The status server's access goes into the unit as the controller's flags: the token
// file's path (never the token) or --insecure; off loopback, one of them is required, as
// the controller itself requires it.
TEST_F(InstallControllerTest, TheStatusServersTokenFileOrInsecureGoesIntoTheUnitNeverTheToken) {
  const std::string token = dir_ + "/token";
  std::ofstream(token) << "tok-Unit9\n";
  ::chmod(token.c_str(), 0600);
  const std::vector<std::string> base = {"install", "--target", "systemd", "--controller",
                                         "--specs", specs_, "--state-dir", dir_ + "/state",
                                         "--unit-dir", dir_ + "/units", "--status-addr",
                                         "0.0.0.0:8081"};
  auto r = testing::RunLanekeeper(base);
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_NE(r.err.find("--status-addr 0.0.0.0:8081 is not a loopback address"),
            std::string::npos) << r.err;
  EXPECT_NE(r.err.find("give --auth-token-file FILE (mode 0600), or --insecure"),
            std::string::npos) << r.err;
  EXPECT_FALSE(std::filesystem::exists(dir_ + "/units"));

  auto args = base;
  args.insert(args.end(), {"--auth-token-file", token});
  r = testing::RunLanekeeper(args);
  ASSERT_EQ(r.exit_code, 0) << r.err;
  std::ifstream in(dir_ + "/units/lanekeeper-controller.service");
  std::string unit((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  EXPECT_NE(unit.find("--status-addr 0.0.0.0:8081 --auth-token-file " + token + "\n"),
            std::string::npos) << unit;
  EXPECT_EQ(unit.find("tok-Unit9"), std::string::npos) << unit;
  EXPECT_NE(r.out.find("lanekeeper doctor --controller http://0.0.0.0:8081 --auth-token-file " +
                       token), std::string::npos) << r.out;

  args = base;
  args.push_back("--insecure");
  r = testing::RunLanekeeper(args);
  ASSERT_EQ(r.exit_code, 0) << r.err;
  std::ifstream again(dir_ + "/units/lanekeeper-controller.service");
  unit.assign(std::istreambuf_iterator<char>(again), std::istreambuf_iterator<char>());
  EXPECT_NE(unit.find("--status-addr 0.0.0.0:8081 --insecure\n"), std::string::npos) << unit;

  args.insert(args.end(), {"--auth-token-file", token});
  r = testing::RunLanekeeper(args);
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_NE(r.err.find("--auth-token-file and --insecure: give one"), std::string::npos) << r.err;
  ::chmod(token.c_str(), 0644);
  args = base;
  args.insert(args.end(), {"--auth-token-file", token});
  r = testing::RunLanekeeper(args);
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_NE(r.err.find("is readable by group or others (mode 0644)"), std::string::npos) << r.err;
}

TEST_F(InstallControllerTest, BadInputsAreRejectedAndLaneFlagsStayRequiredWithoutIt) {
  auto r = testing::RunLanekeeper({"install", "--target", "systemd", "--controller", "--specs",
                                   dir_ + "/nope", "--unit-dir", dir_ + "/units"});
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_EQ(r.err, "lanekeeper: --specs " + dir_ + "/nope is not a directory\n");
  r = testing::RunLanekeeper({"install", "--target", "systemd", "--controller", "--specs",
                              specs_, "--state-dir", "relative", "--unit-dir", dir_ + "/units"});
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_EQ(r.err, "lanekeeper: --state-dir must be an absolute path, got 'relative'\n");
  r = testing::RunLanekeeper({"install", "--target", "systemd", "--unit-dir", dir_ + "/units"});
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_EQ(r.err,
            "lanekeeper: --repo is required (or --controller for the controller's unit)\n");
  EXPECT_FALSE(std::filesystem::exists(dir_ + "/units"));
}

}  // namespace
}  // namespace lk
