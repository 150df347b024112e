// `lanekeeper controller --kube` end to end (issue 10 items 3-4): the real controller binary
// against the fake API server, whose fake kubelet runs the lanes' pods as real supervisors
// and workers on a real redis-server; lanes applied, edited and deleted with the real
// kubectl, as a user does (tests/kube_e2e/kube_e2e_fixture.h).
#include <signal.h>

#include <chrono>
#include <cstdlib>
#include <ctime>
#include <sstream>

#include "tests/kube_e2e/kube_e2e_fixture.h"

namespace lk::kube_e2e {

using namespace std::chrono_literals;
using testing::Eventually;

// A metav1.MicroTime ("2026-11-30T17:10:58.123456Z") as ms since the epoch; 0 if it is not one.
int64_t MicroTimeMs(const std::string& t) {
  std::tm tm{};
  const char* rest = strptime(t.c_str(), "%Y-%m-%dT%H:%M:%S", &tm);
  if (rest == nullptr) return 0;
  int64_t ms = static_cast<int64_t>(timegm(&tm)) * 1000;
  if (*rest == '.') ms += static_cast<int64_t>(std::atof(rest) * 1000);
  return ms;
}

// The cell of `kubectl get` table text in column (a header word) of the row whose first cell
// is row; "" when there is none. Cells are split at blanks: the columns read here hold none.
std::string ColumnOf(const std::string& table, const std::string& row, const std::string& column) {
  std::istringstream lines(table);
  std::vector<std::string> header;
  for (std::string line; std::getline(lines, line);) {
    std::istringstream words(line);
    std::vector<std::string> cells;
    for (std::string w; words >> w;) cells.push_back(w);
    if (header.empty()) {
      header = cells;
      continue;
    }
    if (cells.empty() || cells[0] != row) continue;
    for (size_t i = 0; i < header.size() && i < cells.size(); ++i) {
      if (header[i] == column) return cells[i];
    }
  }
  return "";
}

std::string PodOfOwner(const Json& lane) {
  if (!lane.is_object() || !lane.contains("status")) return "";
  const Json& lease = lane["status"].value("ownerLease", Json::object());
  return lease.is_object() ? lease.value("pod", "") : "";
}

TEST_F(KubeE2E, TheExampleBecomesADeploymentAndAConfigMapAndKubectlGetLanesShowsTheOwnerPod) {
  controllers_.push_back(StartController());
  ApplyExample();
  Json lane = WaitReady();
  const std::string pod = PodOfOwner(lane);
  EXPECT_EQ(pod.rfind("lk-hello-supervisor-", 0), 0u) << lane["status"].dump(2);
  EXPECT_EQ(ConditionStatus(lane, "SpecValid"), "True");
  EXPECT_EQ(ConditionStatus(lane, "OwnerElected"), "True");
  EXPECT_EQ(ConditionStatus(lane, "Degraded"), "False");
  EXPECT_EQ(lane["status"]["ownerLease"].value("role", ""), "supervisor");
  EXPECT_GE(lane["status"]["ownerLease"].value("epoch", int64_t{0}), 1);
  EXPECT_TRUE(lane["status"].contains("queue")) << lane["status"].dump(2);
  EXPECT_EQ(WorkerConcurrency(), 2);

  Json d = Get({"deployment", "lk-hello-supervisor"});
  ASSERT_TRUE(d.is_object());
  EXPECT_EQ(d["spec"]["replicas"], 1);
  EXPECT_EQ(d["spec"]["strategy"]["type"], "Recreate");
  EXPECT_EQ(d["metadata"]["labels"]["lanekeeper.dev/lane"], "hello");
  EXPECT_EQ(d["metadata"]["labels"]["lanekeeper.dev/role"], "supervisor");
  EXPECT_EQ(d["metadata"]["labels"]["lanekeeper.dev/queue"], queue_);
  EXPECT_EQ(d["metadata"]["ownerReferences"][0]["kind"], "Lane");
  EXPECT_EQ(d["metadata"]["ownerReferences"][0]["uid"], lane["metadata"]["uid"]);
  const Json& c = d["spec"]["template"]["spec"]["containers"][0];
  const std::string args = c["args"].dump();
  EXPECT_NE(args.find("\"supervisor\""), std::string::npos) << args;
  EXPECT_NE(args.find("--concurrency"), std::string::npos) << args;
  EXPECT_EQ(c["env"][0]["name"], "LANEKEEPER_REDIS_URL");
  EXPECT_EQ(c["env"][0]["valueFrom"]["secretKeyRef"]["name"], "redis")
      << "the URL comes from the Secret, never inline: " << c["env"].dump();
  EXPECT_EQ(c["env"].dump().find(redis_->url()), std::string::npos);
  EXPECT_TRUE(c.contains("livenessProbe"));
  EXPECT_TRUE(c.contains("readinessProbe"));
  const std::string cm = d["spec"]["template"]["spec"]["volumes"][0]["configMap"].value("name", "");
  EXPECT_EQ(cm.rfind("lk-hello-supervisor-", 0), 0u) << cm;
  Json config_map = Get({"configmap", cm});
  ASSERT_TRUE(config_map.is_object()) << cm;
  EXPECT_TRUE(config_map["data"].contains("handlers.yaml")) << config_map["data"].dump();

  const std::string table = KubectlOk({"get", "lanes"});
  for (const char* column : {"QUEUE", "MODE", "CONCURRENCY", "MAXRSS", "OWNER", "READY"}) {
    EXPECT_NE(table.find(column), std::string::npos) << column << " missing:\n" << table;
  }
  EXPECT_NE(table.find(pod), std::string::npos) << table;
  EXPECT_NE(table.find("True"), std::string::npos) << table;
  // MODE is the effective mode, written or not: hello has no autopilot section, so off.
  EXPECT_EQ(ColumnOf(table, "hello", "MODE"), "off") << table;
  const std::string events = KubectlOk({"get", "events", "--field-selector", "involvedObject.name=hello", "-o", "json"});
  EXPECT_NE(events.find("Ready True"), std::string::npos) << "no Event of Ready turning True:\n" << events;

  auto doctor = testing::RunLanekeeper({"doctor", "--kube", "--lane", "default/hello", "--kubeconfig", kubeconfig_});
  // 1: the test's redis-server persists nothing, a warning.
  EXPECT_EQ(doctor.exit_code, 1) << doctor.out << doctor.err;
  EXPECT_NE(doctor.out.find("lane: ok"), std::string::npos) << doctor.out;
  EXPECT_NE(doctor.out.find("pod " + pod), std::string::npos) << doctor.out << doctor.err;
}

TEST_F(KubeE2E, AnEditConvergesWithNeverTwoWorkersOnTheQueue) {
  StartSampler();
  controllers_.push_back(StartController());
  ApplyExample();
  WaitReady();
  ASSERT_EQ(WorkerConcurrency(), 2);
  ApplyExample({{"concurrency: 2", "concurrency: 3"}});
  Json lane = WaitReady();
  EXPECT_EQ(lane["metadata"]["generation"], 2);
  EXPECT_TRUE(Eventually([&] { return WorkerConcurrency() == 3; }, 30s));
  EXPECT_TRUE(Eventually([&] { return Get({"lane", "hello"})["status"].value("concurrency", 0) == 3; }, 30s));
  ExpectOneWorkerAtATime();
}

TEST_F(KubeE2E, ABadLaneIsRefusedByKubectlWithTheCelRulesMessage) {
  auto r = Kubectl({"apply", "-f", "-"},
                   ExampleText({{"    urlFrom:\n", "    url: redis://127.0.0.1:1/0\n    urlFrom:\n"}}));
  EXPECT_NE(r.exit_code, 0) << r.out;
  EXPECT_NE(r.err.find("url and urlFrom are both set"), std::string::npos) << r.err;
  EXPECT_TRUE(Get({"lane", "hello"}).is_null()) << "a refused Lane was stored";
}

TEST_F(KubeE2E, DeletingALaneDrainsItThroughTheFinalizerThenEverythingIsGone) {
  controllers_.push_back(StartController());
  ApplyExample();
  Json lane = WaitReady();
  EXPECT_NE(lane["metadata"]["finalizers"].dump().find("lanekeeper.dev/drain"), std::string::npos)
      << lane["metadata"].dump(2);
  ASSERT_EQ(Workers().size(), 1u);
  KubectlOk({"delete", "lane", "hello", "--wait=false"});
  // The finalizer keeps the Lane while its supervisor drains and releases the lease.
  ASSERT_TRUE(Eventually([&] { return Get({"lane", "hello"}).is_null(); }, 60s))
      << Get({"lane", "hello"}).dump(2);
  EXPECT_EQ(Workers().size(), 0u) << "the Lane went before its worker";
  EXPECT_FALSE(records_->Owner()) << "the Lane went before its owner lease was released";
  EXPECT_FALSE(records_->Events("stopped", "supervisor").empty())
      << testing::DescribeEvents(records_->Events());
  EXPECT_TRUE(Eventually([&] { return ObjectsOfHello().empty(); }, 30s))
      << ::testing::PrintToString(ObjectsOfHello());
  EXPECT_EQ(CallsOutsideTheRbacTable(), std::vector<std::string>{});
  // Said once per deleted lane, although the drain's last step may run again until the
  // controller's cache shows the Lane gone.
  const std::string log = controllers_[0]->Stderr();
  size_t said = 0;
  for (size_t at = log.find("finalizer lanekeeper.dev/drain removed"); at != std::string::npos;
       at = log.find("finalizer lanekeeper.dev/drain removed", at + 1)) {
    ++said;
  }
  EXPECT_EQ(said, 1u) << log;
}

TEST_F(KubeE2E, AHandDeletedOrScaledDeploymentComesBack) {
  controllers_.push_back(StartController());
  ApplyExample();
  WaitReady();
  const std::string uid = Get({"deployment", "lk-hello-supervisor"})["metadata"].value("uid", "");
  KubectlOk({"delete", "deployment", "lk-hello-supervisor", "--wait=false"});
  EXPECT_TRUE(Eventually(
      [&] {
        Json d = Get({"deployment", "lk-hello-supervisor"});
        return d.is_object() && d["metadata"].value("uid", "") != uid;
      },
      30s));
  WaitReady();
  KubectlOk({"scale", "deployment", "lk-hello-supervisor", "--replicas=0"});
  EXPECT_TRUE(Eventually(
      [&] {
        Json d = Get({"deployment", "lk-hello-supervisor"});
        return d.is_object() && d["spec"].value("replicas", 0) == 1;
      },
      30s))
      << Get({"deployment", "lk-hello-supervisor"}).dump(2);
  WaitReady();
}

TEST_F(KubeE2E, WithLeaderElectionOnlyOneControllerActsAndTheOtherTakesOverWithinTheLease) {
  const std::vector<std::string> le = {"--leader-elect", "--leader-elect-lease-duration", "4s",
                                       "--leader-elect-renew-deadline", "3s",
                                       "--leader-elect-retry-period", "500ms"};
  controllers_.push_back(StartController(le, {"POD_NAME=controller-a"}));
  ASSERT_TRUE(Eventually([&] { return Get({"lease", "lanekeeper-controller"}).is_object(); }, 20s));
  controllers_.push_back(StartController(le, {"POD_NAME=controller-b"}));
  ApplyExample();
  WaitReady();
  Json lease = Get({"lease", "lanekeeper-controller"});
  ASSERT_EQ(lease["spec"].value("holderIdentity", ""), "controller-a") << lease.dump(2);
  EXPECT_NE(controllers_[0]->Stderr().find("applied deployment"), std::string::npos);
  EXPECT_EQ(controllers_[1]->Stderr().find("applied deployment"), std::string::npos)
      << "the replica that does not lead acted:\n" << controllers_[1]->Stderr();

  // The leader's last renewal as the Lease records it, read just before the kill (a later
  // one only makes the gap below look longer).
  const int64_t renewed = MicroTimeMs(Get({"lease", "lanekeeper-controller"})["spec"].value("renewTime", ""));
  controllers_[0]->Signal(SIGKILL);
  controllers_[0]->Wait(5s);
  ApplyExample({{"concurrency: 2", "concurrency: 3"}});
  ASSERT_TRUE(Eventually(
      [&] {
        lease = Get({"lease", "lanekeeper-controller"});
        return lease.is_object() && lease["spec"].value("holderIdentity", "") == "controller-b";
      },
      15s));
  // Taken once the lease had run out unrenewed: within its 4 s and a retry period (500 ms,
  // with client-go's jitter up to 1.2 more) of the last renewal, plus what a machine loaded
  // by the whole suite delays the candidate's polls (5.8 s seen): 2 s in all.
  const int64_t gap = MicroTimeMs(lease["spec"].value("acquireTime", "")) - renewed;
  EXPECT_GE(gap, 4'000) << "taken before the lease ran out:\n" << lease.dump(2);
  EXPECT_LE(gap, 4'000 + 2'000) << "taken " << gap << " ms after the last renewal:\n" << lease.dump(2);
  Json lane = WaitReady();
  EXPECT_EQ(lane["metadata"]["generation"], 2);
  EXPECT_TRUE(Eventually([&] { return WorkerConcurrency() == 3; }, 30s));
  EXPECT_EQ(CallsOutsideTheRbacTable(), std::vector<std::string>{});
}

}  // namespace lk::kube_e2e
