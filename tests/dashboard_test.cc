// The dashboard (/) loads in a real browser: headless Chromium (Debian's `chromium`, which
// scripts/setup installs) fetches it from the status server and dumps the DOM it built,
// which must show the lane and the supervisor that really owns its queue.
#include <gtest/gtest.h>
#include <signal.h>
#include <unistd.h>

#include <cstdlib>
#include <sstream>

#include "controller/status/controller_state.h"
#include "controller/status/lane_observer.h"
#include "controller/owner/owner_lease.h"
#include "controller/status/status_server.h"
#include "tests/support/child_process.h"
#include "tests/support/queue_records.h"
#include "tests/support/redis_server.h"
#include "tests/support/temp_dir.h"
#include "worker/job_queue.h"

namespace lk {
namespace {

using namespace std::chrono_literals;
using testing::ChildProcess;
using testing::Eventually;

// The first executable named `name` on PATH; empty when there is none.
std::string FindOnPath(const std::string& name) {
  const char* path = std::getenv("PATH");
  std::istringstream dirs(path ? path : "");
  for (std::string dir; std::getline(dirs, dir, ':');) {
    std::string candidate = (dir.empty() ? "." : dir) + "/" + name;
    if (access(candidate.c_str(), X_OK) == 0) return candidate;
  }
  return "";
}

class DashboardTest : public ::testing::Test {
 protected:
  void SetUp() override {
    testing::RedisServerOptions o;
    o.password = "dash-pw-never-shown";
    auto server = testing::RedisServer::Start(o);
    ASSERT_TRUE(server.ok()) << server.status().message();
    redis_ = std::move(server).value();
    ASSERT_TRUE(temp_.ok());
    dir_ = temp_.path();
    queue_name_ = "dash-" + std::to_string(getpid());
    auto q = OpenJobQueue(redis_->url(), queue_name_);
    ASSERT_TRUE(q.ok()) << q.status().message();
    queue_ = std::move(q).value();
  }

  void TearDown() override {
    server_.reset();
    if (supervisor_) {
      supervisor_->Signal(SIGTERM);
      supervisor_->Wait(20s);
    }
    testing::KillProcessesOfThisTest();
  }

  testing::TempDir temp_{"dashboard-test"};
  std::unique_ptr<testing::RedisServer> redis_;
  std::unique_ptr<JobQueue> queue_;
  std::unique_ptr<ChildProcess> supervisor_;
  std::string dir_, queue_name_;
  ControllerStateStore store_;
  LaneObserver observer_;
  std::unique_ptr<StatusServer> server_;
};

TEST_F(DashboardTest, HeadlessChromiumShowsTheLaneAndItsOwner) {
  std::string chromium = FindOnPath("chromium");
  ASSERT_FALSE(chromium.empty())
      << "chromium is not installed (not found on PATH); run scripts/setup, which installs "
         "Debian's chromium package for this test";

  supervisor_ = std::make_unique<ChildProcess>(std::vector<std::string>{
      testing::LanekeeperBinary(), "jobs", "supervisor", "--redis", redis_->url(), "--queue",
      queue_name_, "--concurrency", "1", "--pid-file", dir_ + "/sup.pid", "--drain-timeout",
      "5s"});
  testing::QueueRecords records(*queue_);
  std::optional<OwnerRecord> owner;
  ASSERT_TRUE(Eventually([&] {
    owner = records.Owner();
    return owner.has_value();
  }, 15s)) << supervisor_->Stderr();

  ControllerSnapshot snap;
  snap.ready = true;
  snap.specs_dir = dir_ + "/specs";
  LaneState lane;
  lane.name = "knowledge";
  lane.source = dir_ + "/specs/knowledge.yaml";
  lane.spec.name = lane.name;
  lane.spec.queue = queue_name_;
  lane.redis_url = redis_->url();
  lane.redis_url_redacted = ParseRedisUrl(redis_->url())->Redacted();
  lane.generation = lane.observed_generation = 1;
  RoleState role;
  role.role = "supervisor";
  role.pid = supervisor_->pid();
  role.state = "running";
  role.generation = 1;
  role.started_ms = NowUnixMillis();
  lane.roles.push_back(role);
  snap.lanes.push_back(lane);
  store_.Set(snap);

  StatusServerOptions o;
  o.addr = "127.0.0.1:0";  // the kernel picks the port; url() names it
  auto s = StatusServer::Start(o, store_, observer_);
  ASSERT_TRUE(s.ok()) << s.status().message();
  server_ = std::move(s).value();

  // The browser leads its own process group (every ChildProcess does), so it goes with every
  // helper process it started, whatever happens here.
  ChildProcess browser({chromium, "--headless=new", "--no-sandbox", "--disable-gpu",
                        "--disable-dev-shm-usage", "--no-first-run",
                        "--user-data-dir=" + dir_ + "/chromium", "--dump-dom",
                        server_->url() + "/"});
  auto code = browser.Wait(60s);
  ASSERT_TRUE(code.has_value()) << "chromium did not finish within 60 s:\n" << browser.Stderr();
  ASSERT_EQ(*code, 0) << browser.Stderr();
  std::string dom = browser.Stdout();

  EXPECT_NE(dom.find("<h2>knowledge"), std::string::npos) << dom;
  EXPECT_NE(dom.find("<code class=\"holder\">" + owner->holder + "</code>"), std::string::npos)
      << dom;
  EXPECT_NE(dom.find("<span class=\"epoch\">epoch " + std::to_string(owner->epoch) + "</span>"),
            std::string::npos)
      << dom;
  EXPECT_NE(dom.find("<span class=\"badge ok\">Ready</span>"), std::string::npos) << dom;
  EXPECT_NE(dom.find("http-equiv=\"refresh\" content=\"2\""), std::string::npos) << dom;
  EXPECT_EQ(dom.find("dash-pw-never-shown"), std::string::npos);
  // docs/status.md: server-rendered, no scripts or external assets.
  EXPECT_EQ(dom.find("<script"), std::string::npos) << dom;
  for (const char* external : {"src=\"http", "href=\"http", "@import", "url(http"}) {
    EXPECT_EQ(dom.find(external), std::string::npos) << external << " in " << dom;
  }
}

}  // namespace
}  // namespace lk
