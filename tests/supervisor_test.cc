// The supervisor as a real process against a real redis-server: ownership, fencing,
// restarts. Timings use short leases (--lease-ttl 3s) so failover fits in seconds.
#include <gtest/gtest.h>
#include <signal.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <set>
#include <thread>

#include "controller/owner/lifecycle_events.h"
#include "controller/owner/owner_lease.h"
#include "controller/owner/supervisor_status.h"
#include "tests/support/child_process.h"
#include "tests/support/proc_scan.h"
#include "tests/support/redis_server.h"
#include "worker/job_queue.h"

namespace lk {
namespace {

using namespace std::chrono_literals;
using testing::ChildProcess;
using testing::Eventually;
using testing::FindProcesses;

class SupervisorTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto server = testing::RedisServer::Start();
    ASSERT_TRUE(server.ok()) << server.status().message();
    server_ = std::move(server).value();
    char tmpl[] = "/tmp/lk-sup-test-XXXXXX";
    dir_ = mkdtemp(tmpl);
    // Unique per test and process: leftovers of one test never count in another.
    queue_name_ = std::string(::testing::UnitTest::GetInstance()->current_test_info()->name())
                      .substr(0, 40) + "-" + std::to_string(getpid());
    auto q = OpenJobQueue(server_->url(), queue_name_);
    ASSERT_TRUE(q.ok());
    queue_ = std::move(q).value();
    auto ep = ParseRedisUrl(server_->url());
    conn_ = std::move(RedisConnection::Connect(*ep, 2000ms)).value();
    // whoami: prints the pid of the worker that ran it (the command's parent).
    std::ofstream(dir_ + "/handlers.yaml")
        << "handlers:\n"
        << "  whoami:\n    command: [sh, -c, 'echo $PPID']\n"
        << "  hold:\n    command: [" << LK_TEST_HELPER_DIR << "/hold_memory, '300', '1500']\n"
        << "    timeout: 30s\n";
  }
  void TearDown() override {
    // Stop supervisors the way an operator would, then make sure no worker outlives the
    // test (an orphan of a SIGKILLed supervisor would retry a dead redis forever).
    for (auto& s : supervisors_) s->Signal(SIGTERM);
    for (auto& s : supervisors_) s->Wait(15s);
    supervisors_.clear();
    for (pid_t w : Workers()) kill(w, SIGKILL);
    std::filesystem::remove_all(dir_);
  }

  ChildProcess& StartSupervisor(std::vector<std::string> extra = {}) {
    int n = static_cast<int>(supervisors_.size());
    std::vector<std::string> argv = {testing::LanekeeperBinary(), "jobs", "supervisor",
                                     "--redis", server_->url(), "--queue", queue_name_,
                                     "--concurrency", "2",
                                     "--pid-file", dir_ + "/sup" + std::to_string(n) + ".pid",
                                     "--handlers", dir_ + "/handlers.yaml",
                                     "--lease-ttl", "3s", "--lease-renew", "1s",
                                     "--drain-timeout", "5s"};
    argv.insert(argv.end(), extra.begin(), extra.end());
    supervisors_.push_back(std::make_unique<ChildProcess>(argv));
    return *supervisors_.back();
  }

  std::optional<OwnerRecord> Owner() {
    auto o = ReadOwner(*conn_, queue_name_);
    return o.ok() ? *o : std::nullopt;
  }

  std::vector<pid_t> Workers() {
    return FindProcesses({"jobs", "work", "--queue", queue_name_});
  }

  std::string Submit(const std::string& name, const std::string& payload = "{}") {
    JobSpec spec;
    spec.name = name;
    spec.payload = payload;
    auto r = queue_->Enqueue(spec);
    EXPECT_TRUE(r.ok());
    return r.ok() ? r->id : "";
  }

  bool WaitCompleted(const std::string& id, std::chrono::milliseconds timeout) {
    return Eventually([&] {
      auto j = queue_->Get(id);
      return j.ok() && j->state == JobState::kCompleted;
    }, timeout);
  }

  std::vector<LifecycleEvent> Events(const std::string& type) {
    std::vector<LifecycleEvent> out;
    auto all = ReadEvents(*conn_, queue_name_, 0, 10000);
    if (!all.ok()) return out;
    for (auto& e : *all) {
      if (e.type == type) out.push_back(e);
    }
    return out;
  }

  std::unique_ptr<testing::RedisServer> server_;
  std::string dir_;
  std::string queue_name_;
  std::unique_ptr<JobQueue> queue_;
  std::unique_ptr<RedisConnection> conn_;
  std::vector<std::unique_ptr<ChildProcess>> supervisors_;
};

TEST_F(SupervisorTest, TakesTheLeaseStartsOneWorkerAndRunsJobs) {
  auto& sup = StartSupervisor();
  ASSERT_TRUE(Eventually([&] { return Owner().has_value(); }, 10s)) << sup.Stderr();
  EXPECT_EQ(Owner()->role, "supervisor");
  EXPECT_EQ(Owner()->holder.substr(Owner()->holder.rfind(':') + 1), std::to_string(sup.pid()));
  std::string id = Submit("whoami");
  ASSERT_TRUE(WaitCompleted(id, 20s)) << sup.Stderr();
  auto workers = Workers();
  ASSERT_EQ(workers.size(), 1u);
  EXPECT_EQ(std::stoi(queue_->Get(id)->result), workers[0]);
  EXPECT_EQ(testing::ChildPids(sup.pid()), workers);
}

TEST_F(SupervisorTest, TenSupervisorsAtOnceElectOneOwnerNineStandByAndNeverRunTwoWorkers) {
  for (int i = 0; i < 10; ++i) StartSupervisor();
  ASSERT_TRUE(Eventually([&] { return Owner().has_value() && Workers().size() == 1; }, 20s));
  size_t max_workers = 0;
  auto until = std::chrono::steady_clock::now() + 3s;
  while (std::chrono::steady_clock::now() < until) {
    max_workers = std::max(max_workers, Workers().size());
    usleep(20'000);
  }
  EXPECT_EQ(max_workers, 1u);
  EXPECT_TRUE(Eventually([&] { return Events("standby").size() >= 9; }, 10s));
  EXPECT_EQ(Events("lease_acquired").size(), 1u);
  auto live = ReadLiveSupervisors(*conn_, queue_name_);
  ASSERT_TRUE(live.ok());
  int standby = 0, running = 0;
  for (const auto& s : *live) {
    standby += s.state == "standby";
    running += s.state == "running";
  }
  EXPECT_EQ(running, 1);
  EXPECT_EQ(standby, 9);
}

TEST_F(SupervisorTest, AStandbyTakesOverAfterTheOwnerIsKilledAndTheOrphanedWorkerIsFenced) {
  auto& first = StartSupervisor();
  ASSERT_TRUE(Eventually([&] { return Workers().size() == 1; }, 10s));
  pid_t orphan = Workers()[0];
  int64_t first_epoch = Owner()->epoch;
  auto& second = StartSupervisor();
  ASSERT_TRUE(Eventually([&] { return !Events("standby").empty(); }, 10s));

  first.Signal(SIGKILL);
  auto killed_at = std::chrono::steady_clock::now();
  ASSERT_TRUE(Eventually([&] {
    auto o = Owner();
    return o && o->epoch > first_epoch &&
           o->holder.ends_with(":" + std::to_string(second.pid()));
  }, 3s + 2s)) << second.Stderr();
  EXPECT_LE(std::chrono::steady_clock::now() - killed_at, 5s);

  // The orphan claims nothing more and exits on its own (fenced: exit 13).
  ASSERT_TRUE(Eventually([&] { return !testing::ProcessAlive(orphan); }, 10s));
  ASSERT_TRUE(Eventually([&] { return Workers().size() == 1; }, 10s));
  pid_t successor = Workers()[0];
  EXPECT_NE(successor, orphan);
  std::vector<std::string> ids;
  for (int i = 0; i < 5; ++i) ids.push_back(Submit("whoami"));
  for (const auto& id : ids) {
    ASSERT_TRUE(WaitCompleted(id, 20s));
    EXPECT_EQ(std::stoi(queue_->Get(id)->result), successor);
  }
}

TEST_F(SupervisorTest, AKilledWorkerIsRestartedAndItsInFlightJobCompletes) {
  auto& sup = StartSupervisor();
  ASSERT_TRUE(Eventually([&] { return Workers().size() == 1; }, 10s));
  pid_t worker = Workers()[0];
  JobSpec spec;
  spec.name = "sleep";
  spec.payload = R"({"ms": 3000})";
  spec.lease = 5s;
  std::string id = queue_->Enqueue(spec)->id;
  ASSERT_TRUE(Eventually([&] { return queue_->Get(id)->state == JobState::kActive; }, 10s));
  kill(worker, SIGKILL);
  ASSERT_TRUE(Eventually([&] {
    auto w = Workers();
    return w.size() == 1 && w[0] != worker;
  }, 10s)) << sup.Stderr();
  // Reclaimed after its 5 s lease by the new worker, then it completes.
  ASSERT_TRUE(WaitCompleted(id, 30s));
  auto job = queue_->Get(id);
  EXPECT_EQ(job->stalls, 1);
  EXPECT_EQ(Events("crash").size(), 1u);
}

TEST_F(SupervisorTest, AnRssBreachDrainsAndRestartsTheWorkerWithoutCountingACrash) {
  auto& sup = StartSupervisor({"--max-rss", "256"});
  ASSERT_TRUE(Eventually([&] { return Workers().size() == 1; }, 10s));
  pid_t worker = Workers()[0];
  std::string id = Submit("hold");
  ASSERT_TRUE(Eventually([&] { return !Events("rss_restart").empty(); }, 20s)) << sup.Stderr();
  ASSERT_TRUE(Eventually([&] {
    auto w = Workers();
    return w.size() == 1 && w[0] != worker;
  }, 20s));
  EXPECT_TRUE(WaitCompleted(id, 30s));
  EXPECT_TRUE(Events("crash").empty());
  auto exits = Events("worker_exited");
  ASSERT_FALSE(exits.empty());
  EXPECT_EQ(exits[0].fields["reason"], "max_rss");
}

TEST_F(SupervisorTest, ACrashLoopBacksOffLongerEachTimeAndReportsDegraded) {
  // A handlers file the worker refuses: every worker start exits 2 at once.
  std::ofstream(dir_ + "/handlers.yaml") << "handlers: [not, a, map]\n";
  auto& sup = StartSupervisor({"--max-crashes", "2"});
  ASSERT_TRUE(Eventually([&] { return !Events("degraded").empty(); }, 30s)) << sup.Stderr();
  auto crashes = Events("crash");
  ASSERT_GE(crashes.size(), 3u);
  int64_t b1 = std::stoll(crashes[0].fields["backoff_ms"]);
  int64_t b2 = std::stoll(crashes[1].fields["backoff_ms"]);
  int64_t b3 = std::stoll(crashes[2].fields["backoff_ms"]);
  EXPECT_GE(b1, 900);
  EXPECT_LE(b1, 1100);
  EXPECT_GT(b2, b1);
  EXPECT_GE(b3, 54'000);  // past --max-crashes: the maximum backoff
  auto live = ReadLiveSupervisors(*conn_, queue_name_);
  ASSERT_TRUE(Eventually([&] {
    live = ReadLiveSupervisors(*conn_, queue_name_);
    return live.ok() && live->size() == 1 && (*live)[0].degraded;
  }, 5s));
}

TEST_F(SupervisorTest, SigtermDrainsTheWorkerReleasesTheLeaseAndRemovesThePidFile) {
  auto& sup = StartSupervisor();
  ASSERT_TRUE(Eventually([&] { return Workers().size() == 1; }, 10s));
  JobSpec spec;
  spec.name = "sleep";
  spec.payload = R"({"ms": 1500})";
  std::string id = queue_->Enqueue(spec)->id;
  ASSERT_TRUE(Eventually([&] { return queue_->Get(id)->state == JobState::kActive; }, 10s));
  sup.Signal(SIGTERM);
  auto code = sup.Wait(20s);
  ASSERT_TRUE(code.has_value());
  EXPECT_EQ(*code, 0);
  EXPECT_EQ(queue_->Get(id)->state, JobState::kCompleted);
  EXPECT_TRUE(Workers().empty());
  EXPECT_FALSE(Owner().has_value());
  EXPECT_FALSE(std::filesystem::exists(dir_ + "/sup0.pid"));
  EXPECT_FALSE(Events("stopped").empty());
}

TEST_F(SupervisorTest, ASecondSupervisorOnTheSamePidFileExitsTwoNamingTheHolder) {
  auto& first = StartSupervisor();
  ASSERT_TRUE(Eventually([&] { return std::filesystem::exists(dir_ + "/sup0.pid"); }, 10s));
  auto r = testing::RunLanekeeper({"jobs", "supervisor", "--redis", server_->url(), "--queue",
                                   queue_name_, "--pid-file", dir_ + "/sup0.pid"});
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_NE(r.err.find("held by running process " + std::to_string(first.pid())),
            std::string::npos) << r.err;
}

TEST_F(SupervisorTest, StopReturnsOnlyOnceTheWorkerIsGone) {
  StartSupervisor();
  ASSERT_TRUE(Eventually([&] { return Workers().size() == 1; }, 10s));
  ASSERT_TRUE(Eventually([&] {
    auto live = ReadLiveSupervisors(*conn_, queue_name_);
    return live.ok() && live->size() == 1 && (*live)[0].worker_pid > 0;
  }, 10s));
  pid_t worker = Workers()[0];
  auto r = testing::RunLanekeeper({"jobs", "supervisor", "stop", "--redis", server_->url(),
                                   "--queue", queue_name_, "--pid-file", dir_ + "/sup0.pid"});
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_FALSE(testing::ProcessAlive(worker));
  EXPECT_NE(r.out.find("its worker " + std::to_string(worker)), std::string::npos) << r.out;
  auto status = testing::RunLanekeeper({"jobs", "supervisor", "status", "--redis",
                                        server_->url(), "--queue", queue_name_, "--pid-file",
                                        dir_ + "/sup0.pid"});
  EXPECT_EQ(status.exit_code, 3);
  EXPECT_NE(status.out.find("not running"), std::string::npos);
}

TEST_F(SupervisorTest, AWedgedWorkerIsDrainedAndRestartedWithoutCountingACrash) {
  auto& sup = StartSupervisor({"--wedge-time", "1s", "--wedge-check-every", "300ms"});
  ASSERT_TRUE(Eventually([&] { return Workers().size() == 1; }, 10s));
  pid_t worker = Workers()[0];
  kill(worker, SIGSTOP);  // alive but doing nothing: the wedge
  for (int i = 0; i < 3; ++i) Submit("whoami");
  ASSERT_TRUE(Eventually([&] { return !Events("wedge_restart").empty(); }, 20s)) << sup.Stderr();
  kill(worker, SIGCONT);
  ASSERT_TRUE(Eventually([&] {
    auto w = Workers();
    return w.size() == 1 && w[0] != worker;
  }, 20s));
  ASSERT_TRUE(Eventually([&] { return queue_->Stats()->completed == 3; }, 20s));
  EXPECT_TRUE(Events("crash").empty());
}

}  // namespace
}  // namespace lk

namespace lk {
namespace {

TEST(SupervisorFlags, AMalformedRedisUrlExitsTwoNamingIt) {
  auto r = testing::RunLanekeeper({"jobs", "supervisor", "--redis", "http://x", "--pid-file",
                                   "/tmp/lk-bad-url-" + std::to_string(getpid()) + ".pid"});
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_NE(r.err.find("bad Redis URL 'http://x'"), std::string::npos) << r.err;
}

}  // namespace
}  // namespace lk
