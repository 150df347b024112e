// Queue throughput, side by side with the BullMQ anchor on the same redis-server.
//
//   bench_queue_throughput [--jobs N] [--concurrency C] [--runs R] [--no-anchor]
//
// Starts a private redis-server (no persistence, as the anchor's), then per run:
//   1. enqueue N no-op jobs with EnqueueBatch, 1000 per call (as BullMQ's addBulk);
//   2. drain them with a JobRunner at concurrency C — the same runner `jobs work` uses,
//      with per-job leases, claim tokens and the epoch check on;
//   3. run ../shared/anchors/bullmq/run.sh PORT N C on the same server.
// Prints one JSON line per measurement and one with the ratios.
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstring>
#include <iostream>
#include <string>
#include <thread>

#include <nlohmann/json.hpp>
#include <spdlog/sinks/stdout_color_sinks.h>
#include <spdlog/spdlog.h>

#include "tests/support/child_process.h"
#include "tests/support/redis_server.h"
#include "worker/job_queue.h"
#include "worker/job_runner.h"

using namespace std::chrono_literals;
using SteadyClock = std::chrono::steady_clock;

namespace {

double Seconds(SteadyClock::duration d) { return std::chrono::duration<double>(d).count(); }

std::string RedisVersion(lk::RedisConnection& conn) {
  auto info = conn.Command({"INFO", "server"});
  if (!info.ok()) return "";
  auto pos = info->str.find("redis_version:");
  if (pos == std::string::npos) return "";
  auto end = info->str.find_first_of("\r\n", pos);
  return info->str.substr(pos + 14, end - pos - 14);
}

std::string CpuModel() {
  FILE* f = std::fopen("/proc/cpuinfo", "r");
  if (!f) return "";
  char line[512];
  std::string model;
  while (std::fgets(line, sizeof(line), f)) {
    if (std::strncmp(line, "model name", 10) == 0) {
      model = std::strchr(line, ':') + 2;
      model.pop_back();
      break;
    }
  }
  std::fclose(f);
  return model;
}

}  // namespace

int main(int argc, char** argv) {
  int jobs = 200'000, concurrency = 16, runs = 1;
  bool anchor = true;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    if (a == "--jobs" && i + 1 < argc) jobs = std::atoi(argv[++i]);
    else if (a == "--concurrency" && i + 1 < argc) concurrency = std::atoi(argv[++i]);
    else if (a == "--runs" && i + 1 < argc) runs = std::atoi(argv[++i]);
    else if (a == "--no-anchor") anchor = false;
    else {
      std::cerr << "usage: bench_queue_throughput [--jobs N] [--concurrency C] [--runs R] "
                   "[--no-anchor]\n";
      return 2;
    }
  }
  // stdout carries only the JSON lines; the runner's log goes to stderr.
  spdlog::set_default_logger(spdlog::stderr_color_mt("bench"));
  auto server = lk::testing::RedisServer::Start();
  if (!server.ok()) {
    std::cerr << server.status().message() << "\n";
    return 1;
  }
  auto q = lk::OpenJobQueue((*server)->url(), "bench");
  if (!q.ok()) {
    std::cerr << q.status().message() << "\n";
    return 1;
  }
  auto& queue = **q;
  nlohmann::json machine = {{"cpus", std::thread::hardware_concurrency()},
                            {"cpu", CpuModel()},
                            {"redis", RedisVersion(queue.connection())}};
  for (int run = 1; run <= runs; ++run) {
    queue.connection().Command({"FLUSHALL"});
    std::vector<lk::JobSpec> batch(1000);
    for (auto& s : batch) s.name = "noop";
    auto t0 = SteadyClock::now();
    for (int done = 0; done < jobs; done += 1000) {
      batch.resize(std::min(1000, jobs - done));
      auto r = queue.EnqueueBatch(batch);
      if (!r.ok()) {
        std::cerr << r.status().message() << "\n";
        return 1;
      }
    }
    double enqueue_s = Seconds(SteadyClock::now() - t0);

    lk::JobRunnerOptions options;
    options.redis_url = (*server)->url();
    options.queue = "bench";
    options.concurrency = concurrency;
    lk::JobRunner runner(options);
    t0 = SteadyClock::now();
    std::thread worker([&] { runner.Run(); });
    while (true) {
      auto s = queue.Stats();
      if (s.ok() && s->waiting == 0 && s->active == 0 && s->delayed == 0) break;
      std::this_thread::sleep_for(2ms);
    }
    double drain_s = Seconds(SteadyClock::now() - t0);
    runner.RequestStop();
    worker.join();
    auto stats = queue.Stats();
    nlohmann::json ours = {{"bench", "queue_throughput"},
                           {"system", "lanekeeper"},
                           {"run", run},
                           {"N", jobs},
                           {"C", concurrency},
                           {"enqueue_jobs_per_s", static_cast<int64_t>(jobs / enqueue_s)},
                           {"drain_jobs_per_s", static_cast<int64_t>(jobs / drain_s)},
                           {"dead", stats.ok() ? stats->dead : -1},
                           {"machine", machine}};
    std::cout << ours.dump() << std::endl;
    if (!anchor) continue;

    queue.connection().Command({"FLUSHALL"});
    auto r = lk::testing::Run({"bash", LK_ANCHOR_DIR "/bullmq/run.sh",
                               std::to_string((*server)->port()), std::to_string(jobs),
                               std::to_string(concurrency)},
                              {}, 600s);
    auto line = r.out.substr(0, r.out.find('\n'));
    auto theirs = nlohmann::json::parse(line, nullptr, false);
    if (r.exit_code != 0 || theirs.is_discarded()) {
      std::cerr << "the BullMQ anchor failed (exit " << r.exit_code << "): " << r.err << "\n";
      return 1;
    }
    theirs["run"] = run;
    std::cout << theirs.dump() << std::endl;
    nlohmann::json ratio = {
        {"bench", "queue_throughput_ratio"},
        {"run", run},
        {"enqueue_x_bullmq", static_cast<double>(ours["enqueue_jobs_per_s"]) /
                                 static_cast<double>(theirs["enqueue_jobs_per_s"])},
        {"drain_x_bullmq", static_cast<double>(ours["drain_jobs_per_s"]) /
                               static_cast<double>(theirs["drain_jobs_per_s"])}};
    std::cout << ratio.dump() << std::endl;
  }
  return 0;
}
