// `lanekeeper controller --kube` at scale, against the fake API server of tests/kube (no
// kubelet: the Deployments are objects only, no pod runs) and a private redis-server.
//
//   bench_kube_controller [--lanes 1000] [--edits 100] [--creators 8] [--binary PATH]
//                         [--workers N]
//
// --binary: the lanekeeper to measure (default: this build's), so that an older build can
//   run side by side with the same bench; --workers N passes --workers to the controller
//   (default: none, the controller's own default).
//
// burst: the controller starts on an empty namespace; then --lanes Lanes (each its own
//   queue, its Redis URL from one Secret) are created at once by --creators threads. Done
//   when every Lane has its Deployment and a status with observedGeneration == generation,
//   as a watch of this program sees them. Printed: wall_ms (first create -> last lane
//   reconciled), create_ms (how long the creates themselves took), the controller's peak
//   RSS (VmHWM) and CPU seconds (utime+stime) over the burst, the fake API server's and
//   this bench's own CPU seconds beside it (all three share the machine's cores), and
//   event -> status per lane (created -> its status written, as seen by the same watch:
//   median, p99), which includes the wait behind the other lanes of the burst.
// edits: then --edits times, one at a time: a Lane's spec.supervisor.concurrency patched,
//   and the clock stopped when its status with the new observedGeneration is seen: the
//   event -> status latency of one change on a controller with --lanes lanes, median/p99.
// One JSON line per phase on stdout; progress on stderr. Bars: wall <= 10 s, RSS <= 100 MB,
// event -> status p99 <= 200 ms.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>
#include <signal.h>

#include <algorithm>
#include <atomic>
#include <cctype>
#include <cstdlib>
#include <fstream>
#include <iostream>
#include <map>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include <nlohmann/json.hpp>

#include "bench/proc_stats.h"
#include "controller/kube/informer.h"
#include "controller/kube/kube_client.h"
#include "controller/kube/kube_config.h"
#include "tests/support/child_process.h"
#include "tests/support/fake_apiserver.h"
#include "tests/support/redis_server.h"

namespace lk::kube_controller_bench {

using namespace std::chrono_literals;
using kube::Json;
using Steady = std::chrono::steady_clock;

double Seconds(int64_t ticks) { return static_cast<double>(ticks) / static_cast<double>(sysconf(_SC_CLK_TCK)); }

double Percentile(std::vector<double> v, double p) {
  if (v.empty()) return -1;
  std::sort(v.begin(), v.end());
  size_t i = static_cast<size_t>(p * static_cast<double>(v.size() - 1) + 0.5);
  return v[std::min(i, v.size() - 1)];
}

std::string LaneName(int i) {
  char buf[16];
  std::snprintf(buf, sizeof(buf), "b%04d", i);
  return buf;
}

Json LaneObject(int i, const std::string& queue_prefix) {
  return {{"apiVersion", "lanekeeper.dev/v1alpha1"},
          {"kind", "Lane"},
          {"metadata", {{"name", LaneName(i)}, {"namespace", "default"}}},
          {"spec",
           {{"queue", queue_prefix + LaneName(i)},
            {"redis", {{"urlFrom", {{"secretKeyRef", {{"name", "bench-redis"}, {"key", "url"}}}}}}},
            {"supervisor", {{"concurrency", 1}}},
            {"handlers", {{"noop", {{"command", {"true"}}, {"timeout", "10s"}}}}}}}};
}

// The creators' client: one keep-alive connection, a blocking POST and its whole answer read
// back (Content-Length; the fake answers every create so). Not cpprestsdk, on purpose: on a
// 2-core machine a load generator's CPU is taken from the controller and the fake, and
// cpprestsdk's thread hops cost the bench ~3 s of CPU for 1000 creates. A real burst comes
// from kubectl on other machines.
class PlainPoster {
 public:
  explicit PlainPoster(const std::string& server) {
    // http://127.0.0.1:PORT
    const auto colon = server.rfind(':');
    port_ = std::atoi(server.c_str() + colon + 1);
    host_ = server.substr(server.find("//") + 2, colon - server.find("//") - 2);
  }
  ~PlainPoster() { Close(); }

  // The HTTP status of POST path with body (0 when the connection failed).
  int Post(const std::string& path, const std::string& body) {
    if (fd_ < 0 && !Connect()) return 0;
    std::string req = "POST " + path + " HTTP/1.1\r\nHost: " + host_ + ":" + std::to_string(port_) +
                      "\r\nContent-Type: application/json\r\nAccept: application/json\r\n"
                      "Content-Length: " + std::to_string(body.size()) + "\r\n\r\n" + body;
    for (size_t off = 0; off < req.size();) {
      ssize_t n = ::send(fd_, req.data() + off, req.size() - off, MSG_NOSIGNAL);
      if (n <= 0) return Close(), 0;
      off += static_cast<size_t>(n);
    }
    std::string in;
    size_t header_end;
    while ((header_end = in.find("\r\n\r\n")) == std::string::npos) {
      if (!Read(in)) return Close(), 0;
    }
    const int code = in.size() > 12 ? std::atoi(in.c_str() + 9) : 0;
    size_t length = 0;
    std::string headers = in.substr(0, header_end);
    for (auto& c : headers) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    if (auto at = headers.find("content-length:"); at != std::string::npos) {
      length = std::strtoul(headers.c_str() + at + 15, nullptr, 10);
    }
    while (in.size() < header_end + 4 + length) {
      if (!Read(in)) return Close(), 0;
    }
    return code;
  }

 private:
  bool Connect() {
    fd_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_port = htons(static_cast<uint16_t>(port_));
    if (fd_ < 0 || ::inet_pton(AF_INET, host_.c_str(), &addr.sin_addr) != 1 ||
        ::connect(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0) {
      Close();
      return false;
    }
    int one = 1;
    ::setsockopt(fd_, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    return true;
  }
  bool Read(std::string& in) {
    char buf[16384];
    ssize_t n = ::recv(fd_, buf, sizeof(buf), 0);
    if (n <= 0) return false;
    in.append(buf, static_cast<size_t>(n));
    return true;
  }
  void Close() {
    if (fd_ >= 0) ::close(fd_);
    fd_ = -1;
  }

  std::string host_;
  int port_ = 0;
  int fd_ = -1;
};

// What the bench's own watch has seen of the Lanes and Deployments.
struct Seen {
  std::map<std::string, Steady::time_point> created;     // lane key -> first seen
  std::map<std::string, Steady::time_point> reconciled;  // lane key -> status at generation
  std::map<std::string, int64_t> observed;               // lane key -> observedGeneration
  std::map<std::string, int64_t> generation;
  std::map<std::string, bool> deployment;                // "default/bNNNN" -> its supervisor's
};

class Watcher {
 public:
  explicit Watcher(kube::KubeClient& client)
      : lanes_(client, {.resource = kube::LanesRef("default")}),
        deployments_(client, {.resource = kube::DeploymentsRef("default")}) {}
  Status Start() {
    lanes_.Start();
    deployments_.Start();
    LK_RETURN_IF_ERROR(lanes_.WaitForSync(Millis(30'000)));
    return deployments_.WaitForSync(Millis(30'000));
  }
  // Takes what the watches delivered within timeout.
  void Pump(Seen& seen, Millis timeout) {
    pollfd p[2] = {{lanes_.wake_fd(), POLLIN, 0}, {deployments_.wake_fd(), POLLIN, 0}};
    ::poll(p, 2, static_cast<int>(timeout.count()));
    auto now = Steady::now();
    for (const auto& c : lanes_.TakeChanges()) {
      auto o = lanes_.Get(c.key);
      if (!o) continue;
      seen.created.emplace(c.key, now);
      int64_t gen = (*o)["metadata"].value("generation", int64_t{0});
      int64_t obs = o->contains("status") ? (*o)["status"].value("observedGeneration", int64_t{-1}) : -1;
      seen.generation[c.key] = gen;
      if (obs != seen.observed[c.key]) {
        seen.observed[c.key] = obs;
        if (obs == gen) seen.reconciled[c.key] = now;
      }
    }
    for (const auto& c : deployments_.TakeChanges()) {
      const std::string name = c.key.substr(c.key.find('/') + 1);  // lk-bNNNN-supervisor
      if (name.size() < 9) continue;
      seen.deployment["default/" + name.substr(3, 5)] = deployments_.Get(c.key).has_value();
    }
  }

 private:
  kube::Informer lanes_;
  kube::Informer deployments_;
};

int Run(int lanes, int edits, int creators, const std::string& binary, int workers) {
  auto redis = testing::RedisServer::Start();
  if (!redis.ok()) return std::cerr << redis.status().message() << "\n", 1;
  auto fake = testing::FakeApiServer::Start();
  if (!fake.ok()) return std::cerr << fake.status().message() << "\n", 1;
  const std::string kubeconfig = (*fake)->WriteKubeconfig();
  auto config = kube::LoadKubeconfig(kubeconfig);
  if (!config.ok()) return std::cerr << config.status().message() << "\n", 1;
  auto client = kube::NewKubeClient(*config, {.timeout = Millis(30'000)});
  if (!client.ok()) return std::cerr << client.status().message() << "\n", 1;
  auto crd = testing::ReadYamlManifests(testing::SourceDir() + "/crds/lane.yaml");
  if (!crd.ok()) return std::cerr << crd.status().message() << "\n", 1;
  auto made = (*client)->Create({"apiextensions.k8s.io", "v1", "customresourcedefinitions"}, crd->front());
  if (!made.ok()) return std::cerr << "CRD: " << made.status().message() << "\n", 1;
  Json secret = {{"apiVersion", "v1"}, {"kind", "Secret"},
                 {"metadata", {{"name", "bench-redis"}, {"namespace", "default"}}},
                 {"stringData", {{"url", (*redis)->url()}}}};
  if (auto s = (*client)->Create({"", "v1", "secrets", "default"}, secret); !s.ok()) {
    return std::cerr << "Secret: " << s.status().message() << "\n", 1;
  }

  std::vector<std::string> argv{binary.empty() ? testing::LanekeeperBinary() : binary,
                                "--log-level", "warn", "controller", "--kube", "--kubeconfig", kubeconfig,
                                "--namespace", "default", "--image", "lanekeeper:bench", "--status-addr", "off"};
  if (workers > 0) {
    argv.push_back("--workers");
    argv.push_back(std::to_string(workers));
  }
  testing::ChildProcess controller(argv);
  Watcher watcher(**client);
  if (Status s = watcher.Start(); !s.ok()) return std::cerr << s.message() << "\n", 1;
  Seen seen;
  // The controller is up once it has listed (it acts on nothing yet): give it its start.
  std::this_thread::sleep_for(2s);
  if (!controller.Running()) return std::cerr << "controller exited:\n" << controller.Stderr(), 1;
  const pid_t cpid = controller.pid();
  const int64_t c0 = bench::CpuTicks(cpid), f0 = bench::CpuTicks((*fake)->pid());
  const int64_t b0 = bench::CpuTicks(getpid());

  const std::string prefix = "bk" + std::to_string(getpid()) + "-";
  auto t0 = Steady::now();
  std::atomic<int> next{0}, failed{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < creators; ++t) {
    threads.emplace_back([&] {
      PlainPoster poster(config->server);
      const std::string path = "/apis/lanekeeper.dev/v1alpha1/namespaces/default/lanes";
      for (int i; (i = next++) < lanes;) {
        if (poster.Post(path, LaneObject(i, prefix).dump()) != 201) ++failed;
      }
    });
  }
  for (auto& t : threads) t.join();
  auto created = Steady::now();
  auto done = [&] {
    if (static_cast<int>(seen.reconciled.size()) < lanes) return false;
    for (const auto& [k, at] : seen.reconciled) {
      if (!seen.deployment[k]) return false;
    }
    return true;
  };
  auto deadline = t0 + 120s;
  while (!done() && Steady::now() < deadline && controller.Running()) watcher.Pump(seen, Millis(50));
  auto t1 = Steady::now();
  const int64_t c1 = bench::CpuTicks(cpid), f1 = bench::CpuTicks((*fake)->pid());
  const int64_t b1 = bench::CpuTicks(getpid());
  std::vector<double> burst_ms;
  for (const auto& [k, at] : seen.reconciled) {
    burst_ms.push_back(std::chrono::duration<double, std::milli>(at - seen.created[k]).count());
  }
  int deployments = 0;
  for (const auto& [k, has] : seen.deployment) deployments += has;
  Json burst = {{"bench", "kube_controller"}, {"phase", "burst"}, {"lanes", lanes},
                {"create_failed", failed.load()}, {"reconciled", seen.reconciled.size()},
                {"deployments", deployments}, {"all_reconciled", done()},
                {"wall_ms", std::chrono::duration_cast<std::chrono::milliseconds>(t1 - t0).count()},
                {"create_ms", std::chrono::duration_cast<std::chrono::milliseconds>(created - t0).count()},
                {"controller_cpu_s", Seconds(c1 - c0)}, {"fake_cpu_s", Seconds(f1 - f0)},
                {"bench_cpu_s", Seconds(b1 - b0)},
                {"controller_rss_peak_mb", bench::StatusField(cpid, "VmHWM") / 1024.0},
                {"event_to_status_median_ms", Percentile(burst_ms, 0.5)},
                {"event_to_status_p99_ms", Percentile(burst_ms, 0.99)}};
  std::cout << burst.dump() << std::endl;
  const bool burst_done = done();

  std::vector<double> edit_ms;
  for (int e = 0; e < edits && burst_done; ++e) {
    const std::string name = LaneName((e * 37) % lanes);
    const std::string key = "default/" + name;
    Json patch = {{"spec", {{"supervisor", {{"concurrency", 2 + e}}}}}};
    auto start = Steady::now();
    auto patched = (*client)->Patch(kube::LanesRef("default").Named(name), patch, {});
    if (!patched.ok()) return std::cerr << "patch: " << patched.status().message() << "\n", 1;
    const int64_t gen = (*patched)["metadata"].value("generation", int64_t{0});
    auto until = start + 10s;
    while (seen.observed[key] != gen && Steady::now() < until) watcher.Pump(seen, Millis(5));
    if (seen.observed[key] != gen) {
      std::cerr << "edit of " << name << " not reconciled within 10 s\n";
      continue;
    }
    edit_ms.push_back(std::chrono::duration<double, std::milli>(seen.reconciled[key] - start).count());
  }
  Json edit = {{"bench", "kube_controller"}, {"phase", "edits"}, {"lanes", lanes},
               {"edits", edit_ms.size()},
               {"event_to_status_median_ms", Percentile(edit_ms, 0.5)},
               {"event_to_status_p99_ms", Percentile(edit_ms, 0.99)},
               {"controller_rss_peak_mb", bench::StatusField(cpid, "VmHWM") / 1024.0}};
  std::cout << edit.dump() << std::endl;
  controller.Signal(SIGTERM);
  controller.Wait(30s);
  return burst_done ? 0 : 2;
}

}  // namespace lk::kube_controller_bench

int main(int argc, char** argv) {
  int lanes = 1000, edits = 100, creators = 8, workers = 0;
  std::string binary;
  for (int i = 1; i + 1 < argc; i += 2) {
    std::string flag = argv[i];
    int v = std::atoi(argv[i + 1]);
    if (flag == "--binary") binary = argv[i + 1];
    else if (flag == "--workers") workers = v;
    else if (flag == "--lanes") lanes = v;
    else if (flag == "--edits") edits = v;
    else if (flag == "--creators") creators = v;
    else return std::cerr << "unknown flag " << flag << "\n", 2;
  }
  return lk::kube_controller_bench::Run(lanes, edits, creators, binary, workers);
}
