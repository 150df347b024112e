// KubeRoleBackend: runs a lane's roles as Deployments of a Kubernetes cluster — the
// RoleBackend of `lanekeeper controller --kube`. What each role becomes (a Deployment with
// replicas 1 and strategy Recreate, and a ConfigMap of its files named by their content) is
// controller/backend/kube_deployment.h; the names and labels are controller/kube/kube_names.h.
//
//   Observe   from informers on the Deployments, Pods and ConfigMaps labelled
//             app.kubernetes.io/managed-by=lanekeeper, with our own latest writes standing in
//             for what the informers have not shown yet. A role runs while its Deployment
//             wants a replica, at the plan hash and pod template it was applied with; it is
//             stopping while its Deployment wants none (or is being deleted) or pods of it
//             are left without a Deployment; a pod that cannot start (a missing Secret key,
//             an image that cannot be pulled) makes it failed, with the kubelet's reason.
//   Ensure    server-side apply (field manager lanekeeper, force) of the ConfigMap, then the
//             Deployment. Never defers: restarts after crashes are the kubelet's
//             CrashLoopBackOff, counted in ObservedRole::restarts from the pods.
//   Stop      scales the Deployment to 0; once the Deployment controller has seen that and a
//             fresh list shows no pod of the role left, deletes it (and ConfigMaps nothing
//             uses any more) and reports the role gone.
//   QueueServed  a Deployment of another lane's worker-owning role on the queue identity
//             that wants a replica, or a pod of one that has not terminated.
//   Forget    deletes whatever is left of the lane (Deployments, ConfigMaps).
//   KillAll   nothing: pods are the cluster's, and a controller's exit leaves them running.
//
// Drift: a hand-deleted Deployment is seen by its informer and applied again; a hand-edited
// one is told from ours by its annotation lanekeeper.dev/applied-generation — the
// metadata.generation our own last write produced — against its metadata.generation, which
// the API server bumps at every change of its spec: such a role counts as not running, and
// Ensure applies it again (what a scale to 0 by hand left stopping is stopped, deleted and
// applied afresh). A Deployment applied with another pod template (a new --image, other
// extra flags) reports no plan hash: the reconciler stops it and starts it anew.
//
// Threads: ThreadSafe(). Several reconcile workers call it at once, for different lanes;
// the indices and our remembered writes are read and changed under mu_, and every API call
// is made outside it, so that the writes of different lanes overlap. Poll (the only writer
// of the informed indices) runs between rounds.
// Owns: its informers and indices. Does not own: the client (must outlive it, and take
// requests from several threads), deciding what runs (the reconciler).
#pragma once

#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "controller/backend/kube_deployment.h"
#include "controller/backend/role_backend.h"
#include "controller/kube/informer.h"
#include "controller/kube/kube_client.h"
#include "worker/duration.h"

namespace lk {

struct KubeRoleBackendOptions {
  kube::KubeClient* client = nullptr;  // required; must outlive the backend
  std::string ns;                      // the namespace of the lanes; "" every namespace
  KubePodTemplate pod;
  // The uid of the Lane object a key names, "" when unknown: the owner of its objects.
  std::function<std::string(const LaneKey&)> lane_uid;
  Millis sync_timeout{30'000};  // Start() waits this long for the first lists
  // How long our own writes stand in for objects the informers have not shown yet.
  Millis write_memory{30'000};
  const Clock* clock = nullptr;  // nullptr: SystemClock()
  kube::InformerOptions informer{};  // its resource and selector are the backend's; backoffs
};

class KubeRoleBackend final : public RoleBackend {
 public:
  explicit KubeRoleBackend(KubeRoleBackendOptions options);
  ~KubeRoleBackend() override;
  KubeRoleBackend(const KubeRoleBackend&) = delete;
  KubeRoleBackend& operator=(const KubeRoleBackend&) = delete;

  // Starts the informers and waits for their first lists (Unavailable when they do not
  // finish within sync_timeout: the API server is unreachable, or the RBAC refuses).
  Status Start() override;
  bool ThreadSafe() const override { return true; }
  std::vector<LaneKey> Lanes() const override;
  ObservedLane Observe(const LaneKey& lane) override;
  StatusOr<EnsureResult> Ensure(const LaneMeta& lane, const RolePlan& plan,
                                const PlannedRole& role) override;
  StatusOr<bool> Stop(const LaneKey& lane, const std::string& role,
                      const std::string& why) override;
  bool QueueServed(const std::string& queue_identity, const LaneKey& except) const override;
  Status Record(const LaneMeta& lane) override;
  Status Forget(const LaneKey& lane) override;
  void KillAll() override;
  std::vector<int> wake_fds() const override;
  Clock::TimePoint NextPoll() const override;
  std::vector<LaneKey> Poll() override;

  // A Deployment as the backend reads it (public for its .cc's helpers).
  struct DeploymentView;
  struct PodView;

 private:
  struct Written;

  // The helpers below expect mu_ held, but CollectConfigMaps (it calls the API server).
  // The Deployment of lane's role as far as we know: the informer's, or our own write
  // while the informer has not caught up with it. nullopt: none.
  std::optional<DeploymentView> View(const std::string& key) const;
  std::vector<const PodView*> PodsOf(const LaneKey& lane, const std::string& role) const;
  void Remember(const std::string& key, const kube::Json& written);
  void RememberDeleted(const std::string& key, const std::string& uid);
  // Deletes lane's ConfigMaps that no Deployment of it mounts, but keep.
  Status CollectConfigMaps(const LaneKey& lane, const std::string& keep);
  // Applies changes of the informers to the indices; returns the lanes they touch.
  void TakeDeploymentChanges(std::set<LaneKey>& lanes);
  void TakePodChanges(std::set<LaneKey>& lanes);
  void TakeConfigMapChanges(std::set<LaneKey>& lanes);

  KubeRoleBackendOptions o_;
  const Clock& clock_;
  kube::KubeClient& client_;
  std::unique_ptr<kube::Informer> deployments_informer_;
  std::unique_ptr<kube::Informer> pods_informer_;
  std::unique_ptr<kube::Informer> config_maps_informer_;

  mutable std::mutex mu_;  // guards everything below
  std::map<std::string, DeploymentView> deployments_;  // by "ns/name", as informed
  std::map<std::string, Written> written_;             // our writes the informer lags behind
  std::map<std::string, PodView> pods_;                // by "ns/name"
  std::map<std::pair<LaneKey, std::string>, std::set<std::string>> pods_by_role_;
  std::map<std::string, std::set<std::string>> pods_by_identity_;  // worker owners only
  std::map<std::string, LaneKey> config_maps_;  // "ns/name" -> its lane
  std::map<LaneKey, std::set<std::string>> config_maps_by_lane_;
  struct LaneRecord {
    std::string spec_hash;
    int64_t generation = 0;
    std::string queue;
  };
  std::map<LaneKey, LaneRecord> records_;
};

}  // namespace lk
