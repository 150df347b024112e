// The fixture of the `lanekeeper controller --kube` end-to-end tests: a real redis-server,
// the fake API server of tests/kube with its fake kubelet (which runs the lanes' pods as
// real lanekeeper processes), the Lane CRD applied with the real kubectl, and the real
// controller binary started against it. Lanes are applied as a user applies them: the
// Secret `redis` with the test's Redis URL, then examples/kubernetes/hello.yaml through
// kubectl, its queue made this test's own (so that workers are told apart from other
// tests' by their argv).
#pragma once

#include <gtest/gtest.h>

#include <chrono>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "tests/support/child_process.h"
#include "tests/support/fake_apiserver.h"
#include "tests/support/proc_scan.h"
#include "tests/support/queue_records.h"
#include "tests/support/redis_server.h"
#include "tests/support/temp_dir.h"
#include "tests/support/worker_timeline.h"
#include "worker/job_queue.h"

namespace lk::kube_e2e {

using Json = nlohmann::json;

class KubeE2E : public ::testing::Test {
 protected:
  void SetUp() override;
  void TearDown() override;

  // kubectl --kubeconfig ours ARGS, with a private cache and HOME.
  testing::CommandResult Kubectl(std::vector<std::string> args, const std::string& stdin_text = "");
  // The same, failing the test unless it exits 0; its stdout.
  std::string KubectlOk(std::vector<std::string> args, const std::string& stdin_text = "");
  // `kubectl get ARGS -o json`, parsed; null when it fails (NotFound).
  Json Get(std::vector<std::string> args);

  // examples/kubernetes/hello.yaml with this test's queue, and each
  // {from, to} of edits replaced in it.
  std::string ExampleText(const std::vector<std::pair<std::string, std::string>>& edits = {});
  void ApplyExample(const std::vector<std::pair<std::string, std::string>>& edits = {});

  // `lanekeeper controller --kube` on the fake (namespace default, resync 1 s, owner leases
  // of 3 s); env adds to its environment.
  std::unique_ptr<testing::ChildProcess> StartController(std::vector<std::string> extra = {},
                                                         std::vector<std::string> env = {});

  // Waits until the Lane hello is Ready at its current generation; its JSON.
  Json WaitReady(std::chrono::milliseconds timeout = std::chrono::seconds(60));
  static std::string ConditionStatus(const Json& lane, const std::string& type);

  std::vector<pid_t> Workers() { return testing::FindProcesses({"jobs", "work", "--queue", queue_}); }
  // The --concurrency of the one live worker, or -1.
  int WorkerConcurrency();
  void StartSampler();
  // Never two workers of the queue at once: from the event record (the proof) and sampled.
  void ExpectOneWorkerAtATime();

  // The controller's requests to the fake (its --verbose log, agent lanekeeper) that
  // kube::kControllerRbac does not grant, as "verb resource (group)"; needs the fake
  // started with --verbose (verbose_fake_).
  std::vector<std::string> CallsOutsideTheRbacTable();

  // Everything the controller made for lane hello that is still there ("kind/name" each).
  std::vector<std::string> ObjectsOfHello();

  testing::TempDir tmp_{"kube-e2e"};
  std::unique_ptr<testing::RedisServer> redis_;
  std::unique_ptr<testing::FakeApiServer> fake_;
  std::unique_ptr<JobQueue> records_queue_;
  std::unique_ptr<testing::QueueRecords> records_;
  std::unique_ptr<testing::ProcessSampler> sampler_;
  std::vector<std::unique_ptr<testing::ChildProcess>> controllers_;
  std::string kubeconfig_, queue_;
  std::string controller_kubeconfig_;  // "": kubeconfig_
  bool verbose_fake_ = true;
  int history_ = 0;  // the fake's --history (events kept for watches); 0: its default
  // Non-empty: the fake serves HTTPS and wants this bearer token (kubectl gets it), as a
  // cluster whose pods reach it in-cluster (service account token, ca.crt) does.
  std::string token_;
  bool apply_crd_ = true;  // false: the test installs crds/lane.yaml itself (helm install)
};

}  // namespace lk::kube_e2e
