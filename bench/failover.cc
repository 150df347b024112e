// Failover and RSS-breach reaction times of `jobs supervisor`, real processes.
//
//   bench_failover [--runs N] [--lease-ttl D]
//
// failover: two supervisors on one queue, jobs submitted every 20 ms; SIGKILL the owner;
//   measure from the kill to the claim (the job's started_ms, Redis's clock) of the first
//   job run by the standby's new worker. Bar: <= TTL + 1 s with the default 15 s TTL.
// rss_breach: a supervisor with --max-rss 256 runs a job that allocates 400 MB; measure
//   from the moment this program sees the worker tree pass 256 MB (sampled every 5 ms) to
//   the supervisor's rss_restart event (the drain start). Bar: <= 1 s.
// Prints one JSON line per run, then one summary line per measure (median, max).
#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <thread>

#include <nlohmann/json.hpp>

#include "controller/owner/lifecycle_events.h"
#include "controller/owner/owner_lease.h"
#include "tests/support/child_process.h"
#include "tests/support/redis_server.h"
#include "worker/job_queue.h"
#include "worker/process_tree.h"

using namespace std::chrono_literals;
using lk::testing::ChildProcess;
using lk::testing::Eventually;

namespace {

struct Env {
  std::unique_ptr<lk::testing::RedisServer> server;
  std::string dir;
  std::string ttl = "15s";
};

std::unique_ptr<ChildProcess> StartSupervisor(const Env& env, const std::string& queue,
                                              const std::string& tag,
                                              std::vector<std::string> extra = {}) {
  std::vector<std::string> argv = {lk::testing::LanekeeperBinary(), "jobs", "supervisor",
                                   "--redis", env.server->url(), "--queue", queue,
                                   "--concurrency", "4", "--lease-ttl", env.ttl,
                                   "--pid-file", env.dir + "/" + queue + tag + ".pid",
                                   "--handlers", env.dir + "/handlers.yaml",
                                   "--drain-timeout", "10s", "--log-level", "warn"};
  if (env.ttl != "15s") {  // a shorter TTL needs a renewal of at most half of it
    argv.push_back("--lease-renew");
    argv.push_back("1s");
  }
  argv.insert(argv.end(), extra.begin(), extra.end());
  return std::make_unique<ChildProcess>(argv);
}

pid_t OnlyChild(pid_t parent) {
  auto kids = lk::testing::ChildPids(parent);
  return kids.size() == 1 ? kids[0] : 0;
}

double Median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v.empty() ? 0 : v[v.size() / 2];
}

// Returns the failover time in ms, or -1.
double FailoverRun(const Env& env, int run) {
  std::string queue = "failover" + std::to_string(run);
  auto q = std::move(lk::OpenJobQueue(env.server->url(), queue)).value();
  auto a = StartSupervisor(env, queue, "a");
  if (!Eventually([&] { return OnlyChild(a->pid()) != 0; }, 20s)) return -1;
  auto b = StartSupervisor(env, queue, "b");
  auto conn = std::move(lk::RedisConnection::Connect(
      *lk::ParseRedisUrl(env.server->url()), 2000ms)).value();
  if (!Eventually([&] {
        auto ev = lk::ReadEvents(*conn, queue, 0);
        return ev.ok() && std::any_of(ev->begin(), ev->end(),
                                      [](const auto& e) { return e.type == "standby"; });
      }, 20s)) {
    return -1;
  }
  std::atomic<bool> submitting{true};
  std::thread submitter([&] {
    auto sq = std::move(lk::OpenJobQueue(env.server->url(), queue)).value();
    lk::JobSpec spec;
    spec.name = "whoami";
    while (submitting) {
      (void)sq->Enqueue(spec);
      std::this_thread::sleep_for(20ms);
    }
  });
  std::this_thread::sleep_for(500ms);
  int64_t killed_ms = lk::NowUnixMillis();
  a->Signal(SIGKILL);
  pid_t successor = 0;
  double result = -1;
  bool ok = Eventually([&] {
    if (successor == 0) successor = OnlyChild(b->pid());
    if (successor == 0) return false;
    auto done = q->List(lk::JobState::kCompleted, 1000);
    if (!done.ok()) return false;
    int64_t first = INT64_MAX;
    for (const auto& j : *done) {
      if (std::atoi(j.result.c_str()) == successor) first = std::min(first, j.started_ms);
    }
    if (first == INT64_MAX) return false;
    result = static_cast<double>(first - killed_ms);
    return true;
  }, 60s);
  submitting = false;
  submitter.join();
  b->Signal(SIGTERM);
  b->Wait(30s);
  return ok ? result : -1;
}

double RssRun(const Env& env, int run) {
  std::string queue = "rss" + std::to_string(run);
  auto q = std::move(lk::OpenJobQueue(env.server->url(), queue)).value();
  auto sup = StartSupervisor(env, queue, "r", {"--max-rss", "256"});
  pid_t worker = 0;
  if (!Eventually([&] { return (worker = OnlyChild(sup->pid())) != 0; }, 20s)) return -1;
  auto conn = std::move(lk::RedisConnection::Connect(
      *lk::ParseRedisUrl(env.server->url()), 2000ms)).value();
  lk::JobSpec spec;
  spec.name = "hold";
  (void)q->Enqueue(spec);
  int64_t breach_ms = 0;
  Eventually([&] {
    if (lk::RssOfProcessTree(worker) > 256LL * 1024 * 1024) breach_ms = lk::NowUnixMillis();
    return breach_ms != 0;
  }, 20s);
  double result = -1;
  Eventually([&] {
    auto ev = lk::ReadEvents(*conn, queue, 0);
    if (!ev.ok()) return false;
    for (const auto& e : *ev) {
      if (e.type == "rss_restart") {
        result = static_cast<double>(e.ts_ms - breach_ms);
        return true;
      }
    }
    return false;
  }, 20s);
  sup->Signal(SIGTERM);
  sup->Wait(30s);
  return breach_ms ? result : -1;
}

}  // namespace

int main(int argc, char** argv) {
  int runs = 20;
  Env env;
  bool do_failover = true, do_rss = true;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    if (a == "--runs" && i + 1 < argc) runs = std::atoi(argv[++i]);
    else if (a == "--lease-ttl" && i + 1 < argc) env.ttl = argv[++i];
    else if (a == "--only-failover") do_rss = false;
    else if (a == "--only-rss") do_failover = false;
    else {
      std::cerr << "usage: bench_failover [--runs N] [--lease-ttl D] [--only-failover|--only-rss]\n";
      return 2;
    }
  }
  auto server = lk::testing::RedisServer::Start();
  if (!server.ok()) {
    std::cerr << server.status().message() << "\n";
    return 1;
  }
  env.server = std::move(server).value();
  char tmpl[] = "/tmp/lk-bench-failover-XXXXXX";
  env.dir = mkdtemp(tmpl);
  std::ofstream(env.dir + "/handlers.yaml")
      << "handlers:\n"
      << "  whoami:\n    command: [sh, -c, 'echo $PPID']\n"
      << "  hold:\n    command: [" << LK_TEST_HELPER_DIR << "/hold_memory, '400', '3000']\n";
  std::vector<double> failovers, rss;
  for (int run = 1; run <= runs; ++run) {
    if (do_failover) {
      double ms = FailoverRun(env, run);
      std::cout << nlohmann::json{{"bench", "failover"}, {"run", run}, {"lease_ttl", env.ttl},
                                  {"failover_ms", ms}}.dump() << std::endl;
      if (ms >= 0) failovers.push_back(ms);
    }
    if (do_rss) {
      double ms = RssRun(env, run);
      std::cout << nlohmann::json{{"bench", "rss_breach"}, {"run", run},
                                  {"breach_to_drain_ms", ms}}.dump() << std::endl;
      if (ms >= 0) rss.push_back(ms);
    }
  }
  if (do_failover) {
    std::cout << nlohmann::json{{"bench", "failover_summary"}, {"lease_ttl", env.ttl},
                                {"runs", failovers.size()}, {"median_ms", Median(failovers)},
                                {"max_ms", failovers.empty() ? 0 : *std::max_element(failovers.begin(), failovers.end())}}.dump()
              << std::endl;
  }
  if (do_rss) {
    std::cout << nlohmann::json{{"bench", "rss_breach_summary"}, {"runs", rss.size()},
                                {"median_ms", Median(rss)},
                                {"max_ms", rss.empty() ? 0 : *std::max_element(rss.begin(), rss.end())}}.dump()
              << std::endl;
  }
  std::filesystem::remove_all(env.dir);
  return 0;
}
