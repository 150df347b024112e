// `lanekeeper controller`: apply-to-converged latency, and the idle controller's CPU and RSS.
// Real processes: a private redis-server, the real binary's controller, its supervisors
// and workers.
//
//   bench_controller [--applies N] [--lanes 1,10,100] [--idle-window 30s] [--settle 10s]
//                    [--scrape-every 15s|off] [--trickle 20ms] [--via-apply]
//                    [--only-apply|--only-idle]
//
// apply_converge: one lane (a supervisor, handler `whoami` = `sh -c 'echo $PPID'`, so a
//   completed job's result is the pid of the worker that ran it), a no-op job submitted
//   every --trickle. N times: write the lane's spec with the other concurrency (1 <-> 2)
//   the way `lanekeeper apply` writes it (a dot-named temp file in the specs dir renamed
//   into place; --via-apply runs `lanekeeper apply -f` instead), start the clock when the
//   rename is done (when `apply` has exited), and stop it at the claim (the job's
//   started_ms) of the first job completed by the NEW worker: a worker in the queue's
//   worker registry with an epoch above the owner epoch read before the write, whose
//   epoch is the owner's and whose concurrency is the new one. Only public APIs
//   (ReadOwner, ListLiveWorkers, JobQueue::List). Also printed, to see where the time
//   goes: apply_to_lease_ms (the new supervisor took the owner lease: its since_ms) and
//   apply_to_worker_start_ms (the new worker's registry started_ms). Bar: p99 <= 1 s.
// controller_idle: N lanes (each its own queue, a supervisor each), spec files written
//   before the controller starts; once every queue has an owner and a live worker (read
//   from Redis: the status server is never asked), wait --settle, then over --idle-window
//   sample the controller process alone (not its children): utime+stime from
//   /proc/PID/stat -> CPU % of one core; VmRSS (every second, last and max) and VmHWM
//   from /proc/PID/status. roles_cpu_pct (its descendants together: supervisors, workers)
//   is printed for context only. Then the same window again with GET /metrics every
//   --scrape-every (a Prometheus-like scrape), reported separately. Bar at 100 lanes:
//   <= 1 % CPU, <= 30 MB RSS (MiB here: the stricter reading would be 28.6 MiB).
// Prints one JSON line per run/measurement on stdout (progress on stderr), with the load
// average; then a summary line per measure. Every process it starts is stopped at the end
// (the controller by SIGTERM, which stops its lanes; leftovers of this run's queues are
// SIGKILLed by process group).
#include <arpa/inet.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <map>
#include <set>
#include <sstream>
#include <thread>

#include <nlohmann/json.hpp>

#include "bench/proc_stats.h"
#include "controller/owner/owner_lease.h"
#include "tests/support/child_process.h"
#include "tests/support/proc_scan.h"
#include "tests/support/redis_server.h"
#include "worker/duration.h"
#include "worker/job_queue.h"
#include "worker/worker_registry.h"

using namespace std::chrono_literals;
using lk::bench::CpuTicks;
using lk::bench::StatusField;
using lk::testing::ChildProcess;
namespace fs = std::filesystem;

namespace {

std::atomic<bool> g_interrupted{false};
void OnSignal(int) { g_interrupted = true; }

// Polls pred every interval until it holds, timeout passes or the bench is interrupted.
template <typename Pred>
bool Until(Pred pred, std::chrono::milliseconds timeout,
           std::chrono::milliseconds interval = 5ms) {
  auto deadline = std::chrono::steady_clock::now() + timeout;
  while (!g_interrupted) {
    if (pred()) return true;
    if (std::chrono::steady_clock::now() >= deadline) return false;
    std::this_thread::sleep_for(interval);
  }
  return false;
}

void SleepFor(std::chrono::milliseconds d) {
  Until([] { return false; }, d, std::min<std::chrono::milliseconds>(d, 100ms));
}

// ---- /proc ------------------------------------------------------------------------------

nlohmann::json LoadAverage() {
  std::ifstream in("/proc/loadavg");
  double a = 0, b = 0, c = 0;
  in >> a >> b >> c;
  return nlohmann::json::array({a, b, c});
}

// pid's descendants (not pid itself).
std::vector<pid_t> Descendants(pid_t pid) {
  std::vector<pid_t> out;
  for (pid_t c : lk::testing::ChildPids(pid)) {
    out.push_back(c);
    for (pid_t d : Descendants(c)) out.push_back(d);
  }
  return out;
}

double Round(double v, int digits = 2) {
  double m = std::pow(10.0, digits);
  return std::round(v * m) / m;
}

// ---- HTTP -------------------------------------------------------------------------------

// GET path from 127.0.0.1:port over a fresh connection (as a scraper does); the HTTP status
// code, or 0 when it fails. body gets the whole response.
int HttpGet(int port, const std::string& path, std::string* body) {
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return 0;
  timeval tv{10, 0};
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
  setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<uint16_t>(port));
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0) {
    close(fd);
    return 0;
  }
  std::string req = "GET " + path + " HTTP/1.1\r\nHost: 127.0.0.1:" + std::to_string(port) +
                    "\r\nAccept: text/plain\r\nConnection: close\r\n\r\n";
  if (write(fd, req.data(), req.size()) != static_cast<ssize_t>(req.size())) {
    close(fd);
    return 0;
  }
  std::string resp;
  char buf[65536];
  for (ssize_t n; (n = read(fd, buf, sizeof(buf))) > 0;) resp.append(buf, n);
  close(fd);
  if (body) *body = resp;
  if (resp.rfind("HTTP/1.1 ", 0) != 0 || resp.size() < 12) return 0;
  return std::atoi(resp.c_str() + 9);
}

// ---- the environment --------------------------------------------------------------------

struct Options {
  int applies = 50;
  std::vector<int> lanes = {1, 10, 100};
  lk::Millis idle_window{30'000};
  lk::Millis settle{10'000};
  lk::Millis scrape_every{15'000};  // 0: no scrape run
  lk::Millis trickle{20};
  bool via_apply = false;
  bool do_apply = true, do_idle = true;
};

struct Bench {
  std::unique_ptr<lk::testing::RedisServer> server;
  std::string dir;
  std::string prefix;  // of every queue this run uses: "lkb<pid>-"
  std::set<std::string> queues;
};

std::string HandlersYaml() {
  return "  handlers:\n"
         "    whoami: {command: [sh, -c, 'echo $PPID'], timeout: 10s}\n";
}

std::string LaneYaml(const std::string& name, const std::string& queue, int concurrency) {
  return "apiVersion: lanekeeper.dev/v1alpha1\n"
         "kind: Lane\n"
         "metadata: {name: " + name + "}\n"
         "spec:\n"
         "  queue: " + queue + "\n"
         "  supervisor: {concurrency: " + std::to_string(concurrency) +
         ", drainTimeout: 10s}\n" + HandlersYaml();
}

// As `lanekeeper apply` writes (controller/spec/spec_dir.cc): a dot-named temp file in the
// directory, renamed into place. Returns when rename(2) has returned.
bool WriteSpec(const std::string& specs, const std::string& name, const std::string& text) {
  std::string tmp = specs + "/." + name + ".yaml.tmp-" + std::to_string(getpid());
  {
    std::ofstream out(tmp, std::ios::binary | std::ios::trunc);
    out << text;
    out.flush();
    if (!out) return false;
  }
  return std::rename(tmp.c_str(), (specs + "/" + name + ".yaml").c_str()) == 0;
}

// One `lanekeeper controller` with its own specs and state dirs, stopped (and every role
// process of this run's queues with it) on destruction.
class Controller {
 public:
  Controller(Bench& b, const std::string& tag) : b_(b) {
    base_ = b.dir + "/" + tag;
    specs_ = base_ + "/specs";
    fs::create_directories(specs_);
    fs::create_directories(base_ + "/state");
  }
  ~Controller() { Stop(); }

  const std::string& specs() const { return specs_; }
  int port() const { return port_; }
  pid_t pid() const { return proc_ ? proc_->pid() : -1; }

  void Start() {
    port_ = lk::testing::FreeLoopbackPort();
    proc_ = std::make_unique<ChildProcess>(std::vector<std::string>{
        lk::testing::LanekeeperBinary(), "--redis", b_.server->url(), "--log-level", "warn",
        "controller", "--specs", specs_, "--state-dir", base_ + "/state", "--status-addr",
        "127.0.0.1:" + std::to_string(port_)});
  }

  std::string Stderr() const { return proc_ ? proc_->Stderr() : ""; }

  void Stop() {
    if (!proc_) return;
    if (proc_->Running()) {
      proc_->Signal(SIGTERM);  // stops every lane: each supervisor drains its worker
      if (!proc_->Wait(120s)) {
        std::cerr << "bench_controller: the controller did not stop within 120 s; killing it\n";
        proc_->Signal(SIGKILL);
        proc_->Wait(10s);
      }
    }
    proc_.reset();
    KillLeftovers(b_);
  }

  // Role processes (supervisors, workers) of this run's queues still alive: SIGKILLed with
  // their process groups. Returns how many there were.
  static int KillLeftovers(const Bench& b) {
    int n = 0;
    for (const char* what : {"supervisor", "work"}) {
      for (pid_t p : lk::testing::FindProcesses({"jobs", what})) {
        auto args = lk::testing::ProcessArgs(p);
        auto q = std::find(args.begin(), args.end(), "--queue");
        if (q == args.end() || q + 1 == args.end() || !b.queues.count(*(q + 1))) continue;
        pid_t pgid = getpgid(p);
        if (pgid > 1 && pgid != getpgrp()) kill(-pgid, SIGKILL);
        kill(p, SIGKILL);
        ++n;
      }
    }
    if (n > 0) std::cerr << "bench_controller: killed " << n << " leftover role process(es)\n";
    return n;
  }

 private:
  Bench& b_;
  std::string base_, specs_;
  int port_ = 0;
  std::unique_ptr<ChildProcess> proc_;
};

std::unique_ptr<lk::RedisConnection> Connect(const Bench& b) {
  return std::move(lk::RedisConnection::Connect(*lk::ParseRedisUrl(b.server->url()), 2000ms))
      .value();
}

double Percentile(std::vector<double> v, double q) {  // nearest rank
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  size_t rank = static_cast<size_t>(std::ceil(q * v.size()));
  return v[std::clamp<size_t>(rank, 1, v.size()) - 1];
}

// ---- apply -> converged -----------------------------------------------------------------

void ApplyBench(Bench& b, const Options& o) {
  const std::string lane = "applybench";
  const std::string queue = b.prefix + "apply";
  b.queues.insert(queue);
  Controller ctl(b, "apply");
  auto conn = Connect(b);
  auto q = std::move(lk::OpenJobQueue(b.server->url(), queue)).value();
  int applies_file = 0;
  auto write = [&](int concurrency) {
    std::string text = LaneYaml(lane, queue, concurrency);
    if (!o.via_apply) return WriteSpec(ctl.specs(), lane, text);
    std::string file = b.dir + "/apply-" + std::to_string(applies_file++) + ".yaml";
    std::ofstream(file) << text;
    auto r = lk::testing::RunLanekeeper(
        {"--redis", b.server->url(), "apply", "-f", file, "--specs", ctl.specs()});
    if (r.exit_code != 0) std::cerr << "apply: " << r.err;
    return r.exit_code == 0;
  };
  int concurrency = 1;
  write(concurrency);
  ctl.Start();
  std::cerr << "apply: controller pid " << ctl.pid() << ", waiting for the lane's worker\n";
  if (!Until([&] {
        auto w = lk::ListLiveWorkers(*conn, queue, 5s);
        return w.ok() && w->size() == 1;
      }, 60s, 50ms)) {
    std::cerr << "apply: the lane never got a worker\n" << ctl.Stderr();
    return;
  }
  std::atomic<bool> submitting{true};
  std::thread submitter([&] {
    auto sq = std::move(lk::OpenJobQueue(b.server->url(), queue)).value();
    lk::JobSpec spec;
    spec.name = "whoami";
    while (submitting) {
      (void)sq->Enqueue(spec);
      std::this_thread::sleep_for(o.trickle);
    }
  });
  // Warm: the first worker runs jobs.
  Until([&] {
    auto done = q->List(lk::JobState::kCompleted, 1);
    return done.ok() && !done->empty();
  }, 30s, 20ms);

  std::vector<double> latencies;
  int failed = 0;
  for (int run = 1; run <= o.applies && !g_interrupted; ++run) {
    auto before = lk::ReadOwner(*conn, queue);
    auto old_workers = lk::ListLiveWorkers(*conn, queue, 5s);
    if (!before.ok() || !*before || !old_workers.ok()) {
      std::cerr << "apply: cannot read the owner before run " << run << "\n";
      ++failed;
      SleepFor(1s);
      continue;
    }
    int64_t old_epoch = (*before)->epoch;
    std::set<int64_t> old_pids;
    for (const auto& w : *old_workers) old_pids.insert(w.pid);
    concurrency = concurrency == 1 ? 2 : 1;
    auto load = LoadAverage();
    if (!write(concurrency)) {
      std::cerr << "apply: cannot write the spec\n";
      ++failed;
      continue;
    }
    int64_t t0 = lk::NowUnixMillis();  // the rename is done (or `apply` has exited)
    lk::WorkerInfo fresh;
    int64_t first_claim = INT64_MAX;
    bool ok = Until([&] {
      if (fresh.pid == 0) {
        auto ws = lk::ListLiveWorkers(*conn, queue, 5s);
        if (!ws.ok()) return false;
        for (const auto& w : *ws) {
          if (w.epoch > old_epoch && !old_pids.count(w.pid) && w.concurrency == concurrency) {
            fresh = w;
          }
        }
        if (fresh.pid == 0) return false;
      }
      auto done = q->List(lk::JobState::kCompleted, 1000);
      if (!done.ok()) return false;
      for (const auto& j : *done) {
        if (std::atoll(j.result.c_str()) == fresh.pid) {
          first_claim = std::min(first_claim, j.started_ms);
        }
      }
      return first_claim != INT64_MAX;
    }, 60s);
    auto after = lk::ReadOwner(*conn, queue);
    nlohmann::json line{{"bench", "apply_converge"}, {"run", run},
                        {"concurrency", concurrency}, {"via", o.via_apply ? "apply" : "rename"},
                        {"old_epoch", old_epoch}, {"load_avg", load}};
    if (!ok) {
      ++failed;
      line["apply_to_claim_ms"] = -1;
      line["error"] = "no job claimed by a new worker within 60 s";
      std::cerr << ctl.Stderr();
    } else {
      double ms = static_cast<double>(first_claim - t0);
      latencies.push_back(ms);
      line["apply_to_claim_ms"] = ms;
      line["new_epoch"] = fresh.epoch;
      line["worker_pid"] = fresh.pid;
      // Where the time went: the new supervisor took the lease, its worker started.
      if (after.ok() && *after && (*after)->epoch == fresh.epoch) {
        line["apply_to_lease_ms"] = (*after)->since_ms - t0;
      } else {
        line["owner_epoch_mismatch"] = true;  // the owner moved on again: should not happen
      }
      line["apply_to_worker_start_ms"] = fresh.started_ms - t0;
    }
    std::cout << line.dump() << std::endl;
    SleepFor(200ms);
  }
  submitting = false;
  submitter.join();
  double p99 = Percentile(latencies, 0.99);
  std::cout << nlohmann::json{{"bench", "apply_converge_summary"},
                              {"via", o.via_apply ? "apply" : "rename"},
                              {"runs", latencies.size()},
                              {"failed", failed},
                              {"median_ms", Percentile(latencies, 0.5)},
                              {"p90_ms", Percentile(latencies, 0.9)},
                              {"p99_ms", p99},
                              {"max_ms", latencies.empty() ? 0 : *std::max_element(
                                                                     latencies.begin(),
                                                                     latencies.end())},
                              {"bar_p99_ms", 1000},
                              {"pass", failed == 0 && !latencies.empty() && p99 <= 1000},
                              {"load_avg", LoadAverage()}}
                   .dump()
            << std::endl;
}

// ---- idle controller --------------------------------------------------------------------

struct Sample {
  double cpu_pct = -1;
  double cpu_ms = 0;
  double wall_s = 0;
  double roles_cpu_pct = -1;  // the controller's descendants (supervisors, workers), together
  double rss_mb = 0, rss_max_mb = 0, hwm_mb = 0;
  int64_t threads = 0;
  int scrapes = 0, scrape_failures = 0;
  double scrape_ms_max = 0, scrape_ms_sum = 0;
  size_t scrape_bytes = 0;
};

// Samples the controller over window; with scrape_every > 0, GETs /metrics that often
// (the first at the start of the window).
Sample Measure(const Controller& ctl, lk::Millis window, lk::Millis scrape_every) {
  Sample s;
  pid_t pid = ctl.pid();
  const double tick = static_cast<double>(sysconf(_SC_CLK_TCK));
  std::atomic<bool> stop{false};
  std::thread scraper;
  if (scrape_every.count() > 0) {
    scraper = std::thread([&] {
      auto next = std::chrono::steady_clock::now();
      while (!stop && !g_interrupted) {
        if (std::chrono::steady_clock::now() >= next) {
          auto t = std::chrono::steady_clock::now();
          std::string body;
          int code = HttpGet(ctl.port(), "/metrics", &body);
          double ms = std::chrono::duration<double, std::milli>(
                          std::chrono::steady_clock::now() - t).count();
          s.scrapes++;
          if (code != 200) s.scrape_failures++;
          s.scrape_ms_sum += ms;
          s.scrape_ms_max = std::max(s.scrape_ms_max, ms);
          s.scrape_bytes = body.size();
          next += scrape_every;
        }
        std::this_thread::sleep_for(20ms);
      }
    });
  }
  std::map<pid_t, int64_t> roles0;
  for (pid_t d : Descendants(pid)) roles0[d] = CpuTicks(d);
  auto t0 = std::chrono::steady_clock::now();
  int64_t c0 = CpuTicks(pid);
  auto end = t0 + window;
  while (!g_interrupted && std::chrono::steady_clock::now() < end) {
    s.rss_max_mb = std::max(s.rss_max_mb, StatusField(pid, "VmRSS") / 1024.0);
    std::this_thread::sleep_for(std::min<std::chrono::nanoseconds>(
        1s, end - std::chrono::steady_clock::now()));
  }
  int64_t c1 = CpuTicks(pid);
  auto t1 = std::chrono::steady_clock::now();
  int64_t roles_ticks = 0;
  for (auto [d, ticks] : roles0) {
    int64_t now = CpuTicks(d);
    if (ticks >= 0 && now >= ticks) roles_ticks += now - ticks;
  }
  stop = true;
  if (scraper.joinable()) scraper.join();
  s.wall_s = std::chrono::duration<double>(t1 - t0).count();
  if (c0 >= 0 && c1 >= 0) {
    s.cpu_ms = (c1 - c0) / tick * 1000.0;
    s.cpu_pct = s.cpu_ms / 1000.0 / s.wall_s * 100.0;
  }
  s.roles_cpu_pct = roles_ticks / tick / s.wall_s * 100.0;
  s.rss_mb = StatusField(pid, "VmRSS") / 1024.0;
  s.rss_max_mb = std::max(s.rss_max_mb, s.rss_mb);
  s.hwm_mb = StatusField(pid, "VmHWM") / 1024.0;
  s.threads = StatusField(pid, "Threads");
  return s;
}

// Every lane's queue has an owner and a live worker, read from Redis.
int LanesWithWorker(lk::RedisConnection& conn, const std::vector<std::string>& queues) {
  int n = 0;
  for (const auto& q : queues) {
    auto owner = lk::ReadOwner(conn, q);
    auto workers = lk::ListLiveWorkers(conn, q, 5s);
    if (owner.ok() && *owner && workers.ok() && workers->size() == 1 &&
        (*workers)[0].epoch == (*owner)->epoch) {
      ++n;
    }
  }
  return n;
}

struct IdleResult {
  int lanes = 0;
  bool scrape = false;
  Sample s;
};

std::vector<IdleResult> IdleBench(Bench& b, const Options& o, int lanes) {
  std::vector<IdleResult> out;
  Controller ctl(b, "idle" + std::to_string(lanes));
  std::vector<std::string> queues;
  for (int i = 0; i < lanes; ++i) {
    char name[32];
    snprintf(name, sizeof(name), "lane%03d", i);
    std::string queue = b.prefix + "idle" + std::to_string(lanes) + "-" + name;
    b.queues.insert(queue);
    queues.push_back(queue);
    WriteSpec(ctl.specs(), name, LaneYaml(name, queue, 1));
  }
  auto conn = Connect(b);
  auto started = std::chrono::steady_clock::now();
  ctl.Start();
  std::cerr << "idle " << lanes << ": controller pid " << ctl.pid()
            << ", waiting for every lane's owner and worker\n";
  int ready = 0;
  if (!Until([&] { return (ready = LanesWithWorker(*conn, queues)) == lanes; }, 300s, 500ms)) {
    std::cerr << "idle " << lanes << ": only " << ready << " lane(s) settled\n" << ctl.Stderr();
    return out;
  }
  double settle_s =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
  std::cerr << "idle " << lanes << ": all lanes up after " << Round(settle_s, 1)
            << " s; settling " << o.settle.count() / 1000.0 << " s more\n";
  SleepFor(o.settle);
  conn.reset();  // this bench's own connection stays out of the window
  std::vector<std::pair<bool, lk::Millis>> passes = {{false, lk::Millis(0)}};
  if (o.scrape_every.count() > 0) passes.push_back({true, o.scrape_every});
  for (auto [scrape, every] : passes) {
    if (g_interrupted) break;
    std::cerr << "idle " << lanes << ": measuring " << o.idle_window.count() / 1000.0 << " s"
              << (scrape ? " with a /metrics scrape every " + lk::FormatDuration(every) : "")
              << "\n";
    auto load = LoadAverage();
    Sample s = Measure(ctl, o.idle_window, every);
    auto check = Connect(b);
    int still = LanesWithWorker(*check, queues);
    size_t children = lk::testing::ChildPids(ctl.pid()).size();
    nlohmann::json line{{"bench", "controller_idle"},
                        {"lanes", lanes},
                        {"scrape", scrape ? "/metrics every " + lk::FormatDuration(every)
                                          : std::string("none")},
                        {"window_s", Round(s.wall_s, 1)},
                        {"cpu_ms", Round(s.cpu_ms, 0)},
                        {"cpu_pct", Round(s.cpu_pct, 3)},
                        {"rss_mb", Round(s.rss_mb, 1)},
                        {"rss_max_mb", Round(s.rss_max_mb, 1)},
                        {"hwm_mb", Round(s.hwm_mb, 1)},
                        {"threads", s.threads},
                        {"roles_cpu_pct", Round(s.roles_cpu_pct, 1)},
                        {"roles_running", children},
                        {"lanes_with_worker", still},
                        {"settled_after_s", Round(settle_s, 1)},
                        {"load_avg_before", load},
                        {"load_avg_after", LoadAverage()}};
    if (scrape) {
      line["scrapes"] = s.scrapes;
      line["scrape_failures"] = s.scrape_failures;
      line["scrape_ms_avg"] = s.scrapes ? Round(s.scrape_ms_sum / s.scrapes, 1) : 0.0;
      line["scrape_ms_max"] = Round(s.scrape_ms_max, 1);
      line["scrape_bytes"] = s.scrape_bytes;
    }
    if (lanes == 100) {
      line["pass"] = s.cpu_pct >= 0 && s.cpu_pct <= 1.0 && s.rss_mb <= 30.0 &&
                     s.rss_max_mb <= 30.0;
    }
    std::cout << line.dump() << std::endl;
    out.push_back({lanes, scrape, s});
  }
  std::cerr << "idle " << lanes << ": stopping the controller and its " << lanes
            << " lane(s)\n";
  ctl.Stop();
  return out;
}

std::vector<int> ParseList(const std::string& text) {
  std::vector<int> out;
  std::istringstream in(text);
  for (std::string part; std::getline(in, part, ',');) {
    int n = std::atoi(part.c_str());
    if (n > 0) out.push_back(n);
  }
  return out;
}

int Usage() {
  std::cerr << "usage: bench_controller [--applies N] [--lanes 1,10,100] [--idle-window 30s]\n"
               "                        [--settle 10s] [--scrape-every 15s|off] [--trickle 20ms]\n"
               "                        [--via-apply] [--only-apply|--only-idle]\n";
  return 2;
}

}  // namespace

int main(int argc, char** argv) {
  Options o;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    auto duration = [&](lk::Millis& out) {
      if (i + 1 >= argc) return false;
      std::string v = argv[++i];
      if (v == "off" || v == "0") {
        out = lk::Millis(0);
        return true;
      }
      auto d = lk::ParseDuration(v);
      if (!d.ok()) return false;
      out = *d;
      return true;
    };
    if (a == "--applies" && i + 1 < argc) {
      o.applies = std::atoi(argv[++i]);
    } else if (a == "--lanes" && i + 1 < argc) {
      o.lanes = ParseList(argv[++i]);
    } else if (a == "--idle-window") {
      if (!duration(o.idle_window) || o.idle_window.count() <= 0) return Usage();
    } else if (a == "--settle") {
      if (!duration(o.settle)) return Usage();
    } else if (a == "--scrape-every") {
      if (!duration(o.scrape_every)) return Usage();
    } else if (a == "--trickle") {
      if (!duration(o.trickle) || o.trickle.count() <= 0) return Usage();
    } else if (a == "--via-apply") {
      o.via_apply = true;
    } else if (a == "--only-apply") {
      o.do_idle = false;
    } else if (a == "--only-idle") {
      o.do_apply = false;
    } else {
      return Usage();
    }
  }
  struct sigaction sa{};
  sa.sa_handler = OnSignal;
  sigaction(SIGINT, &sa, nullptr);
  sigaction(SIGTERM, &sa, nullptr);

  Bench b;
  auto server = lk::testing::RedisServer::Start();
  if (!server.ok()) {
    std::cerr << server.status().message() << "\n";
    return 1;
  }
  b.server = std::move(server).value();
  char tmpl[] = "/tmp/lk-bench-controller-XXXXXX";
  b.dir = mkdtemp(tmpl);
  b.prefix = "lkb" + std::to_string(getpid()) + "-";
  std::cerr << "bench_controller: redis on port " << b.server->port() << ", dir " << b.dir
            << "\n";

  if (o.do_apply) ApplyBench(b, o);
  std::vector<IdleResult> idle;
  if (o.do_idle) {
    for (int n : o.lanes) {
      if (g_interrupted) break;
      for (auto& r : IdleBench(b, o, n)) idle.push_back(r);
    }
  }
  if (!idle.empty()) {
    nlohmann::json rows = nlohmann::json::array();
    for (const auto& r : idle) {
      rows.push_back({{"lanes", r.lanes}, {"scrape", r.scrape}, {"cpu_pct", Round(r.s.cpu_pct, 3)},
                      {"rss_mb", Round(r.s.rss_mb, 1)}, {"hwm_mb", Round(r.s.hwm_mb, 1)}});
    }
    std::cout << nlohmann::json{{"bench", "controller_idle_summary"},
                                {"bar_at_100_lanes", {{"cpu_pct", 1.0}, {"rss_mb", 30}}},
                                {"rows", rows}}
                     .dump()
              << std::endl;
  }
  Controller::KillLeftovers(b);
  b.server.reset();
  std::filesystem::remove_all(b.dir);
  return g_interrupted ? 130 : 0;
}
