// The chart's own controller, in a pod (issue 10: "helm install" through to a Ready lane):
// `helm install` of charts/lanekeeper into the fake API server (HTTPS, a bearer token
// required), whose fake kubelet runs the controller Deployment the chart renders as a real
// `lanekeeper controller --kube` with in-cluster configuration — its service account's
// token, the fake's CA and its namespace mounted as a kubelet mounts them,
// KUBERNETES_SERVICE_HOST/PORT — and probes its /readyz. A Lane applied with kubectl then
// becomes Ready with an owner pod, reconciled by that controller alone; its /doctor names
// the owner as a pod; `helm uninstall` stops it.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <sstream>

#include "tests/kube_e2e/kube_e2e_fixture.h"
#include "tests/support/loopback_port.h"

namespace lk::kube_e2e {

using namespace std::chrono_literals;
using testing::Eventually;

// GET path from 127.0.0.1:port over a plain socket: {status code, body}; {-1, why} when
// there is no answer.
std::pair<int, std::string> HttpGetLoopback(int port, const std::string& path) {
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return {-1, "socket failed"};
  timeval tv{10, 0};
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<uint16_t>(port));
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) {
    close(fd);
    return {-1, "connection refused"};
  }
  const std::string request = "GET " + path + " HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n";
  if (write(fd, request.data(), request.size()) != static_cast<ssize_t>(request.size())) {
    close(fd);
    return {-1, "write failed"};
  }
  std::string response;
  char buf[8192];
  for (ssize_t n; (n = read(fd, buf, sizeof buf)) > 0;) response.append(buf, static_cast<size_t>(n));
  close(fd);
  const auto head_end = response.find("\r\n\r\n");
  if (response.rfind("HTTP/1.", 0) != 0 || head_end == std::string::npos) return {-1, response};
  std::string body = response.substr(head_end + 4);
  const std::string head = response.substr(0, head_end);
  std::string lower = head;
  for (auto& ch : lower) ch = static_cast<char>(std::tolower(static_cast<unsigned char>(ch)));
  if (lower.find("transfer-encoding: chunked") != std::string::npos) {
    std::string plain;
    for (size_t at = 0;;) {
      const size_t eol = body.find("\r\n", at);
      if (eol == std::string::npos) break;
      const size_t size = std::stoul(body.substr(at, eol - at), nullptr, 16);
      if (size == 0) break;
      plain += body.substr(eol + 2, size);
      at = eol + 2 + size + 2;
    }
    body = plain;
  }
  return {std::stoi(head.substr(9, 3)), body};
}

class KubeE2EInCluster : public KubeE2E {
 protected:
  KubeE2EInCluster() {
    token_ = "t0ken-of-the-test";
    apply_crd_ = false;
  }

  testing::CommandResult Helm(std::vector<std::string> args) {
    std::vector<std::string> argv = {testing::SourceDir() + "/tests/kube/.tools/helm/helm"};
    argv.insert(argv.end(), args.begin(), args.end());
    return testing::Run(argv,
                        {"HOME=" + tmp_.path(), "KUBECONFIG=" + kubeconfig_,
                         "HELM_CACHE_HOME=" + (tmp_ / "helm-cache"), "HELM_CONFIG_HOME=" + (tmp_ / "helm-config"),
                         "HELM_DATA_HOME=" + (tmp_ / "helm-data")},
                        120s);
  }

  // The chart's controller pod (release lk), or null.
  Json ControllerPod() {
    Json pods = Get({"pods", "-l", "app.kubernetes.io/instance=lk,app.kubernetes.io/component=controller"});
    if (!pods.is_object() || pods.value("items", Json::array()).size() != 1) return nullptr;
    return pods["items"][0];
  }

  static bool PodReady(const Json& pod) {
    if (!pod.is_object()) return false;
    for (const auto& c : pod["status"].value("conditions", Json::array())) {
      if (c.value("type", "") == "Ready") return c.value("status", "") == "True";
    }
    return false;
  }

  std::string ControllerLog() {
    auto r = Kubectl({"logs", "deployment/lk-lanekeeper"});
    return r.out + r.err;
  }

  // The fake's log lines of requests made as user.
  std::vector<std::string> RequestsBy(const std::string& user) {
    std::vector<std::string> out;
    std::istringstream log(fake_->Log());
    for (std::string line; std::getline(log, line);) {
      if (line.find(" user=" + user + " ") != std::string::npos) out.push_back(line);
    }
    return out;
  }
};

TEST_F(KubeE2EInCluster, TheChartsControllerPodBecomesReadyInClusterAndReconcilesALaneUntilUninstalled) {
  auto port = testing::LoopbackPort::ForServer();
  ASSERT_TRUE(port.ok()) << port.status().message();
  const std::string status_port = std::to_string((*port)->port());
  // The pod's port is the host's: one the test holds, never the chart's default 8081.
  auto install = Helm({"install", "lk", testing::SourceDir() + "/charts/lanekeeper", "--set",
                       "statusPort=" + status_port, "--set", "logFormat=text"});
  ASSERT_EQ(install.exit_code, 0) << install.err << install.out;

  // Ready through its readiness probe (httpGet /readyz on the status port): in-cluster
  // configuration worked and its first reconcile is done.
  Json pod;
  ASSERT_TRUE(Eventually([&] { return PodReady(pod = ControllerPod()); }, 60s))
      << pod.dump(2) << "\n--- controller log:\n" << ControllerLog();
  EXPECT_EQ(pod["spec"].value("serviceAccountName", ""), "lk-lanekeeper");
  const std::string controller = "system:serviceaccount:default:lk-lanekeeper";
  EXPECT_FALSE(RequestsBy(controller).empty())
      << "no request authenticated by the controller's service account token";
  const std::vector<std::string> controller_argv = {"controller", "--kube", "--status-addr", "0.0.0.0:" + status_port};
  ASSERT_EQ(testing::FindProcesses(controller_argv).size(), 1u);
  EXPECT_EQ(HttpGetLoopback((*port)->port(), "/readyz").first, 200);

  ApplyExample();
  Json lane = WaitReady();
  const Json& lease = lane["status"].value("ownerLease", Json::object());
  const std::string owner = lease.is_object() ? lease.value("pod", "") : "";
  EXPECT_EQ(owner.rfind("lk-hello-supervisor-", 0), 0u) << lane["status"].dump(2);
  EXPECT_EQ(Workers().size(), 1u);
  // Reconciled by the pod: every write of the Lane's status is the service account's.
  std::vector<std::string> status_writes;
  for (const auto& line : RequestsBy(controller)) {
    if (line.find("/lanes/hello/status") != std::string::npos) status_writes.push_back(line);
  }
  EXPECT_FALSE(status_writes.empty()) << "the controller pod never wrote the Lane's status";
  EXPECT_EQ(CallsOutsideTheRbacTable(), std::vector<std::string>{});

  // The controller's /doctor gives doctor --kube's checks for the lane, the owner a pod.
  auto [code, body] = HttpGetLoopback((*port)->port(), "/doctor?lane=default/hello");
  EXPECT_EQ(code, 200) << body;
  Json doctor = Json::parse(body, nullptr, false);
  ASSERT_TRUE(doctor.is_object()) << body;
  ASSERT_EQ(doctor["lanes"].size(), 1u) << body;
  const Json& entry = doctor["lanes"][0];
  EXPECT_EQ(entry.value("lane", ""), "default/hello") << body;
  std::string names;
  for (const auto& c : entry["checks"]) names += c.value("name", "") + " ";
  auto cli = testing::RunLanekeeper({"doctor", "--kube", "--lane", "default/hello", "--kubeconfig", kubeconfig_, "--json"});
  Json cli_report = Json::parse(cli.out, nullptr, false);
  ASSERT_TRUE(cli_report.is_object()) << cli.out << cli.err;
  std::string cli_names;
  for (const auto& c : cli_report["checks"]) cli_names += c.value("name", "") + " ";
  EXPECT_EQ(names, cli_names) << body << "\n" << cli.out;
  EXPECT_NE(body.find("pod " + owner), std::string::npos) << body;
  EXPECT_NE(body.find("\"pod\": \"" + owner + "\""), std::string::npos) << body;
  auto [missing, missing_body] = HttpGetLoopback((*port)->port(), "/doctor?lane=default/nope");
  EXPECT_EQ(missing, 404) << missing_body;

  auto uninstall = Helm({"uninstall", "lk"});
  ASSERT_EQ(uninstall.exit_code, 0) << uninstall.err << uninstall.out;
  EXPECT_TRUE(Eventually([&] { return testing::FindProcesses(controller_argv).empty(); }, 60s))
      << "the controller outlived helm uninstall";
  EXPECT_TRUE(Eventually([&] { return ControllerPod().is_null(); }, 30s));
  // The Lane (kept, as the CRD is) goes on running without its controller.
  EXPECT_EQ(Workers().size(), 1u);
}

}  // namespace lk::kube_e2e
