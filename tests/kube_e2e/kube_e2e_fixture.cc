#include "tests/kube_e2e/kube_e2e_fixture.h"

#include <signal.h>
#include <unistd.h>

#include <fstream>
#include <set>
#include <sstream>

#include "controller/kube/kube_rbac.h"

namespace lk::kube_e2e {

using namespace std::chrono_literals;

void KubeE2E::SetUp() {
  ASSERT_TRUE(tmp_.ok());
  auto redis = testing::RedisServer::Start();
  ASSERT_TRUE(redis.ok()) << redis.status().message();
  redis_ = std::move(redis).value();
  testing::FakeApiServerOptions fo;
  // The kubelet restarts a crashed pod after 1 s rather than 10 s: tests wait less.
  fo.extra_args = {"--kubelet", "--binary", testing::LanekeeperBinary(), "--restart-backoff", "1000"};
  if (verbose_fake_) fo.extra_args.push_back("--verbose");
  fo.history = history_;
  fo.tls = !token_.empty();
  fo.token = token_;
  auto fake = testing::FakeApiServer::Start(fo);
  ASSERT_TRUE(fake.ok()) << fake.status().message();
  fake_ = std::move(fake).value();
  kubeconfig_ = fake_->WriteKubeconfig({.token = token_});
  const std::string test = ::testing::UnitTest::GetInstance()->current_test_info()->name();
  queue_ = "k" + std::to_string(getpid()) + "-" + test.substr(0, 24);
  if (apply_crd_) KubectlOk({"apply", "-f", testing::SourceDir() + "/crds/lane.yaml"});
  // The Secret examples/kubernetes/hello.yaml names, as docs/kubernetes.md creates it.
  KubectlOk({"create", "secret", "generic", "redis", "--from-literal=url=" + redis_->url()});
  auto q = OpenJobQueue(redis_->url(), queue_);
  ASSERT_TRUE(q.ok()) << q.status().message();
  records_queue_ = std::move(q).value();
  records_ = std::make_unique<testing::QueueRecords>(*records_queue_);
}

void KubeE2E::TearDown() {
  if (sampler_) sampler_->Stop();
  for (auto& c : controllers_) {
    if (c && c->Running()) {
      c->Signal(SIGTERM);
      if (!c->Wait(20s)) {
        ADD_FAILURE() << "a controller did not stop within 20 s of SIGTERM:\n" << c->Stderr();
        c->Signal(SIGKILL);
      }
    }
    if (HasFailure() && c) std::cerr << "--- controller " << c->pid() << " stderr:\n" << c->Stderr() << "\n";
  }
  if (HasFailure() && fake_) std::cerr << "--- fake API server:\n" << fake_->Log() << "\n";
  fake_.reset();  // stops the fake kubelet's pods first
}

testing::CommandResult KubeE2E::Kubectl(std::vector<std::string> args, const std::string& stdin_text) {
  std::vector<std::string> argv = {testing::SourceDir() + "/tests/kube/.tools/kubectl/kubectl",
                                   "--kubeconfig", kubeconfig_, "--cache-dir", tmp_ / "kube-cache"};
  argv.insert(argv.end(), args.begin(), args.end());
  return testing::Run(argv, {"HOME=" + tmp_.path()}, 60s, stdin_text);
}

std::string KubeE2E::KubectlOk(std::vector<std::string> args, const std::string& stdin_text) {
  std::string shown;
  for (const auto& a : args) shown += " " + a;
  auto r = Kubectl(std::move(args), stdin_text);
  EXPECT_EQ(r.exit_code, 0) << "kubectl" << shown << ":\n" << r.err << r.out;
  return r.out;
}

Json KubeE2E::Get(std::vector<std::string> args) {
  args.insert(args.begin(), "get");
  args.insert(args.end(), {"-o", "json"});
  auto r = Kubectl(std::move(args));
  if (r.exit_code != 0) return nullptr;
  return Json::parse(r.out, nullptr, false);
}

std::string KubeE2E::ExampleText(const std::vector<std::pair<std::string, std::string>>& edits) {
  std::ifstream in(testing::SourceDir() + "/examples/kubernetes/hello.yaml");
  std::stringstream ss;
  ss << in.rdbuf();
  std::string text = ss.str();
  auto replace = [&](const std::string& from, const std::string& to) {
    auto at = text.find(from);
    EXPECT_NE(at, std::string::npos) << "examples/kubernetes/hello.yaml has no '" << from << "'";
    if (at != std::string::npos) text.replace(at, from.size(), to);
  };
  replace("queue: hello", "queue: " + queue_);
  for (const auto& [from, to] : edits) replace(from, to);
  return text;
}

void KubeE2E::ApplyExample(const std::vector<std::pair<std::string, std::string>>& edits) {
  KubectlOk({"apply", "-f", "-"}, ExampleText(edits));
}

std::unique_ptr<testing::ChildProcess> KubeE2E::StartController(std::vector<std::string> extra,
                                                                    std::vector<std::string> env) {
  std::vector<std::string> argv = {testing::LanekeeperBinary(), "controller", "--kube",
                                   "--kubeconfig", controller_kubeconfig_.empty() ? kubeconfig_ : controller_kubeconfig_,
                                   "--namespace", "default",
                                   "--image", "lanekeeper:test", "--status-addr", "off",
                                   "--resync", "1s", "--supervisor-arg=--lease-ttl=3s",
                                   "--supervisor-arg=--lease-renew=1s"};
  argv.insert(argv.end(), extra.begin(), extra.end());
  return std::make_unique<testing::ChildProcess>(argv, env);
}

std::string KubeE2E::ConditionStatus(const Json& lane, const std::string& type) {
  if (!lane.is_object() || !lane.contains("status")) return "";
  for (const auto& c : lane["status"].value("conditions", Json::array())) {
    if (c.value("type", "") == type) return c.value("status", "");
  }
  return "";
}

Json KubeE2E::WaitReady(std::chrono::milliseconds timeout) {
  Json lane;
  bool ready = testing::Eventually(
      [&] {
        lane = Get({"lane", "hello"});
        return lane.is_object() && ConditionStatus(lane, "Ready") == "True" &&
               lane["status"].value("observedGeneration", int64_t{-1}) ==
                   lane["metadata"].value("generation", int64_t{0});
      },
      timeout);
  EXPECT_TRUE(ready) << "lane hello not Ready at its generation within " << timeout.count()
                     << " ms; last seen:\n" << lane.dump(2);
  return lane;
}

int KubeE2E::WorkerConcurrency() {
  return testing::FlagOfTheOnlyProcess({"jobs", "work", "--queue", queue_}, "--concurrency");
}

void KubeE2E::StartSampler() {
  sampler_ = std::make_unique<testing::ProcessSampler>(
      std::vector<std::string>{"jobs", "work", "--queue", queue_});
}

void KubeE2E::ExpectOneWorkerAtATime() {
  EXPECT_EQ(testing::FirstSecondWorker(records_->Events(), testing::OneAtATime::kStrict), "");
  ASSERT_TRUE(sampler_);
  sampler_->Stop();
  EXPECT_GT(sampler_->samples_seeing_any(), 0)
      << "the sampler never saw a worker in " << sampler_->samples() << " samples";
  EXPECT_LE(sampler_->most(), 1u) << "two workers on one queue at a sampled moment:\n"
                                  << sampler_->Describe();
}

std::vector<std::string> KubeE2E::CallsOutsideTheRbacTable() {
  std::set<std::string> granted, outside;
  int calls = 0;
  for (const auto& r : kube::kControllerRbac) {
    granted.insert(std::string(r.verb) + " " + r.resource + " (" + r.api_group + ")");
  }
  std::istringstream log(fake_->Log());
  const std::string prefix = "fake-apiserver: ";
  for (std::string line; std::getline(log, line);) {
    if (line.rfind(prefix, 0) != 0 || line.find(" agent=lanekeeper") == std::string::npos) continue;
    std::istringstream words(line.substr(prefix.size()));
    std::string method, url;
    words >> method >> url;
    const std::string path = url.substr(0, url.find('?'));
    const std::string query = url.size() > path.size() ? url.substr(path.size()) : "";
    std::vector<std::string> parts;
    for (size_t at = 1; at <= path.size();) {
      size_t next = path.find('/', at);
      if (next == std::string::npos) next = path.size();
      parts.push_back(path.substr(at, next - at));
      at = next + 1;
    }
    // /api/v1/... or /apis/GROUP/VERSION/...; then [namespaces/NS/]RESOURCE[/NAME[/SUB]].
    size_t i = 0;
    std::string group;
    if (!parts.empty() && parts[0] == "api") {
      i = 2;
    } else if (!parts.empty() && parts[0] == "apis" && parts.size() > 2) {
      group = parts[1];
      i = 3;
    } else {
      outside.insert("non-resource " + method + " " + path);
      continue;
    }
    if (parts.size() > i + 2 && parts[i] == "namespaces") i += 2;
    if (parts.size() <= i) {
      outside.insert("discovery " + method + " " + path);
      continue;
    }
    std::string resource = parts[i];
    const bool named = parts.size() > i + 1;
    if (parts.size() > i + 2) resource += "/" + parts[i + 2];
    std::string verb = method == "POST" ? "create" : method == "PUT" ? "update" : method == "PATCH" ? "patch"
                     : method == "DELETE" ? (named ? "delete" : "deletecollection")
                     : query.find("watch=true") != std::string::npos || query.find("watch=1") != std::string::npos
                         ? "watch"
                         : named ? "get" : "list";
    std::string call = verb + " " + resource + " (" + group + ")";
    ++calls;
    if (!granted.count(call)) outside.insert(call);
  }
  EXPECT_GT(calls, 0) << "no request of the controller's in the fake's log: nothing was checked";
  return {outside.begin(), outside.end()};
}

std::vector<std::string> KubeE2E::ObjectsOfHello() {
  std::vector<std::string> out;
  for (const char* kind : {"deployments", "replicasets", "pods", "configmaps"}) {
    Json list = Get({kind, "-l", "lanekeeper.dev/lane=hello"});
    if (!list.is_object()) {
      out.push_back(std::string(kind) + ": cannot list");
      continue;
    }
    for (const auto& o : list.value("items", Json::array())) {
      out.push_back(std::string(kind) + "/" + o["metadata"].value("name", ""));
    }
  }
  return out;
}

}  // namespace lk::kube_e2e
