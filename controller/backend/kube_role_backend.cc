// RoleBackend for Kubernetes, in one file on purpose (about 620 lines): it is the
// interface's five calls (Observe, Ensure, Stop, QueueServed, Record/Forget) over one cache
// of three informers (Deployments, Pods, ConfigMaps), and each call reads that cache, under
// one lock, as the others write it. The objects themselves are built in kube_deployment.cc.
#include "controller/backend/kube_role_backend.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <chrono>
#include <ctime>

#include "controller/kube/kube_names.h"

namespace lk {

using kube::Json;

namespace {

constexpr const char* kRoles[] = {"supervisor", "autopilot"};

RoleKind RoleKindOf(const std::string& role) {
  return role == "autopilot" ? RoleKind::kAutopilot : RoleKind::kSupervisor;
}

const Json& JsonField(const Json& j, const char* key) {
  static const Json kNull;
  if (!j.is_object()) return kNull;
  auto it = j.find(key);
  return it == j.end() ? kNull : *it;
}

std::string JsonString(const Json& j, const char* key) {
  const Json& v = JsonField(j, key);
  return v.is_string() ? v.get<std::string>() : "";
}

int64_t JsonInt(const Json& j, const char* key, int64_t otherwise) {
  const Json& v = JsonField(j, key);
  if (v.is_number_integer()) return v.get<int64_t>();
  if (v.is_string()) {
    try {
      return std::stoll(v.get<std::string>());
    } catch (const std::exception&) {
    }
  }
  return otherwise;
}

// "2024-05-01T10:00:00Z" -> ms since the epoch; 0 when it does not parse.
int64_t ParseRfc3339(const std::string& s) {
  std::tm tm{};
  if (strptime(s.c_str(), "%Y-%m-%dT%H:%M:%S", &tm) == nullptr) return 0;
  return static_cast<int64_t>(timegm(&tm)) * 1000;
}

std::string NamespacedKey(const std::string& ns, const std::string& name) {
  return ns.empty() ? name : ns + "/" + name;
}

// Waiting reasons of a container that will not start until someone changes something.
bool PodCannotStart(const std::string& reason) {
  return reason == "CreateContainerConfigError" || reason == "CreateContainerError" ||
         reason == "ErrImagePull" || reason == "ImagePullBackOff" || reason == "InvalidImageName" ||
         reason == "ErrImageNeverPull";
}

}  // namespace

struct KubeRoleBackend::DeploymentView {
  std::string ns, name, uid, resource_version;
  LaneKey lane;
  std::string role;
  int64_t replicas = 1;
  int64_t generation = 0;
  int64_t applied_generation = -1;  // -1: no annotation
  bool deleting = false;
  std::string plan_hash, render_hash, spec_hash, identity, queue;
  int64_t lane_generation = 0;
  bool owns_worker = false;
  int64_t status_observed_generation = -1;  // -1: no status yet (no Deployment controller)
  std::string config_map;                   // the ConfigMap its pods mount, if any

  static DeploymentView From(const Json& d) {
    DeploymentView v;
    const Json& meta = JsonField(d, "metadata");
    const Json& labels = JsonField(meta, "labels");
    const Json& annotations = JsonField(meta, "annotations");
    const Json& spec = JsonField(d, "spec");
    v.ns = JsonString(meta, "namespace");
    v.name = JsonString(meta, "name");
    v.uid = JsonString(meta, "uid");
    v.resource_version = JsonString(meta, "resourceVersion");
    v.lane = {v.ns, JsonString(labels, kube::kLaneLabel)};
    v.role = JsonString(labels, kube::kRoleLabel);
    v.replicas = JsonInt(spec, "replicas", 1);
    v.generation = JsonInt(meta, "generation", 0);
    v.applied_generation = JsonInt(annotations, kube::kAppliedGenerationAnnotation, -1);
    v.deleting = meta.contains("deletionTimestamp") && !JsonField(meta, "deletionTimestamp").is_null();
    v.plan_hash = JsonString(annotations, kube::kPlanHashAnnotation);
    v.render_hash = JsonString(annotations, kube::kRenderHashAnnotation);
    v.spec_hash = JsonString(annotations, kube::kSpecHashAnnotation);
    v.identity = JsonString(annotations, kube::kQueueIdentityAnnotation);
    v.queue = JsonString(labels, kube::kQueueLabel);
    v.lane_generation = JsonInt(annotations, kube::kGenerationAnnotation, 0);
    v.owns_worker = JsonString(annotations, kube::kOwnsWorkerAnnotation) == "true";
    v.status_observed_generation = JsonInt(JsonField(d, "status"), "observedGeneration", -1);
    for (const auto& vol : JsonField(JsonField(JsonField(spec, "template"), "spec"), "volumes")) {
      std::string cm = JsonString(JsonField(vol, "configMap"), "name");
      if (!cm.empty()) v.config_map = cm;
    }
    return v;
  }
  // Changed by someone else since our last write: its spec's generation is not the one our
  // write produced.
  bool edited() const { return applied_generation >= 0 && generation != applied_generation; }
  bool wants_pods() const { return replicas > 0 && !deleting; }
};

struct KubeRoleBackend::PodView {
  std::string ns, name;
  LaneKey lane;
  std::string role;
  std::string identity;
  bool owns_worker = false;
  bool terminated = false;  // Succeeded or Failed: no process left
  bool deleting = false;
  std::string plan_hash;
  int restarts = 0;
  int64_t started_ms = 0;
  std::string last_exit;
  std::string cannot_start;  // "CreateContainerConfigError: ..." when it cannot start

  static PodView From(const Json& p) {
    PodView v;
    const Json& meta = JsonField(p, "metadata");
    const Json& labels = JsonField(meta, "labels");
    const Json& annotations = JsonField(meta, "annotations");
    v.ns = JsonString(meta, "namespace");
    v.name = JsonString(meta, "name");
    v.lane = {v.ns, JsonString(labels, kube::kLaneLabel)};
    v.role = JsonString(labels, kube::kRoleLabel);
    v.identity = JsonString(annotations, kube::kQueueIdentityAnnotation);
    v.owns_worker = JsonString(annotations, kube::kOwnsWorkerAnnotation) == "true";
    v.plan_hash = JsonString(annotations, kube::kPlanHashAnnotation);
    v.deleting = meta.contains("deletionTimestamp") && !JsonField(meta, "deletionTimestamp").is_null();
    const Json& status = JsonField(p, "status");
    std::string phase = JsonString(status, "phase");
    v.terminated = phase == "Succeeded" || phase == "Failed";
    for (const auto& cs : JsonField(status, "containerStatuses")) {
      v.restarts = std::max<int>(v.restarts, static_cast<int>(JsonInt(cs, "restartCount", 0)));
      const Json& state = JsonField(cs, "state");
      if (state.contains("running")) v.started_ms = ParseRfc3339(JsonString(state["running"], "startedAt"));
      const Json& waiting = JsonField(state, "waiting");
      std::string reason = JsonString(waiting, "reason");
      if (PodCannotStart(reason)) v.cannot_start = reason + ": " + JsonString(waiting, "message");
      const Json& last = JsonField(JsonField(cs, "lastState"), "terminated");
      if (last.is_object()) {
        std::string r = JsonString(last, "reason");
        v.last_exit = "exit code " + std::to_string(JsonInt(last, "exitCode", 0)) + (r.empty() ? "" : " (" + r + ")");
      }
    }
    return v;
  }
};

// What we wrote last, until the informer shows it (or something newer).
struct KubeRoleBackend::Written {
  std::optional<DeploymentView> view;  // nullopt: we deleted it
  std::string deleted_uid;
  Clock::TimePoint at;
};

KubeRoleBackend::KubeRoleBackend(KubeRoleBackendOptions options)
    : o_(std::move(options)),
      clock_(o_.clock ? *o_.clock : SystemClock()),
      client_(*o_.client) {
  auto informer = [&](kube::ResourceRef ref, std::function<void(Json&)> trim) {
    kube::InformerOptions io = o_.informer;
    io.resource = std::move(ref);
    io.label_selector = kube::kManagedSelector;
    io.field_selector.clear();
    io.transform = std::move(trim);
    return std::make_unique<kube::Informer>(client_, std::move(io));
  };
  // The caches keep what DeploymentView::From, PodView::From and TakeConfigMapChanges
  // read, and nothing else: at 1000 lanes the pod templates, pod specs and ConfigMap files
  // would be most of the controller's memory.
  deployments_informer_ = informer(kube::DeploymentsRef(o_.ns), [](Json& d) {
    Json kept = {{"metadata", JsonField(d, "metadata")}};
    const Json& spec = JsonField(d, "spec");
    if (spec.contains("replicas")) kept["spec"]["replicas"] = spec["replicas"];
    const Json& volumes = JsonField(JsonField(JsonField(spec, "template"), "spec"), "volumes");
    if (!volumes.is_null()) kept["spec"]["template"]["spec"]["volumes"] = volumes;
    const Json& status = JsonField(d, "status");
    if (status.contains("observedGeneration")) kept["status"]["observedGeneration"] = status["observedGeneration"];
    d = std::move(kept);
  });
  pods_informer_ = informer(kube::ResourceRef{"", "v1", "pods", o_.ns}, [](Json& p) { p.erase("spec"); });
  config_maps_informer_ = informer(kube::ConfigMapsRef(o_.ns), [](Json& cm) {
    cm.erase("data");
    cm.erase("binaryData");
  });
}

KubeRoleBackend::~KubeRoleBackend() = default;

Status KubeRoleBackend::Start() {
  for (auto* i : {deployments_informer_.get(), pods_informer_.get(), config_maps_informer_.get()}) {
    i->Start();
  }
  for (auto* i : {deployments_informer_.get(), pods_informer_.get(), config_maps_informer_.get()}) {
    LK_RETURN_IF_ERROR(i->WaitForSync(o_.sync_timeout));
  }
  Poll();
  return Status::OK();
}

std::vector<int> KubeRoleBackend::wake_fds() const {
  return {deployments_informer_->wake_fd(), pods_informer_->wake_fd(), config_maps_informer_->wake_fd()};
}

Clock::TimePoint KubeRoleBackend::NextPoll() const { return Clock::TimePoint::max(); }

std::vector<LaneKey> KubeRoleBackend::Poll() {
  std::lock_guard<std::mutex> lock(mu_);
  std::set<LaneKey> lanes;
  TakeDeploymentChanges(lanes);
  TakePodChanges(lanes);
  TakeConfigMapChanges(lanes);
  // Writes the informer has caught up with, or that are too old to trust, stand in no more.
  auto now = clock_.Now();
  for (auto it = written_.begin(); it != written_.end();) {
    auto informed = deployments_.find(it->first);
    bool caught_up;
    if (!it->second.view) {
      caught_up = informed == deployments_.end() || informed->second.uid != it->second.deleted_uid;
    } else {
      const DeploymentView& w = *it->second.view;
      caught_up = informed != deployments_.end() && informed->second.uid == w.uid &&
                  (informed->second.generation > w.generation ||
                   (informed->second.generation == w.generation &&
                    informed->second.applied_generation == w.applied_generation &&
                    informed->second.replicas == w.replicas));
    }
    bool expired = now - it->second.at > o_.write_memory;
    it = caught_up || expired ? written_.erase(it) : std::next(it);
  }
  return {lanes.begin(), lanes.end()};
}

void KubeRoleBackend::TakeDeploymentChanges(std::set<LaneKey>& lanes) {
  for (const auto& change : deployments_informer_->TakeChanges()) {
    if (auto old = deployments_.find(change.key); old != deployments_.end()) {
      lanes.insert(old->second.lane);
      deployments_.erase(old);
    }
    auto obj = deployments_informer_->Get(change.key);
    if (!obj) continue;
    DeploymentView v = DeploymentView::From(*obj);
    if (v.lane.name.empty()) continue;  // not a lane's (labels edited away)
    lanes.insert(v.lane);
    deployments_.emplace(change.key, std::move(v));
  }
}

void KubeRoleBackend::TakePodChanges(std::set<LaneKey>& lanes) {
  for (const auto& change : pods_informer_->TakeChanges()) {
    if (auto old = pods_.find(change.key); old != pods_.end()) {
      const PodView& p = old->second;
      lanes.insert(p.lane);
      pods_by_role_[{p.lane, p.role}].erase(change.key);
      if (pods_by_role_[{p.lane, p.role}].empty()) pods_by_role_.erase({p.lane, p.role});
      if (p.owns_worker) {
        pods_by_identity_[p.identity].erase(change.key);
        if (pods_by_identity_[p.identity].empty()) pods_by_identity_.erase(p.identity);
      }
      pods_.erase(old);
    }
    auto obj = pods_informer_->Get(change.key);
    if (!obj) continue;
    PodView v = PodView::From(*obj);
    if (v.lane.name.empty()) continue;
    lanes.insert(v.lane);
    pods_by_role_[{v.lane, v.role}].insert(change.key);
    if (v.owns_worker) pods_by_identity_[v.identity].insert(change.key);
    pods_.emplace(change.key, std::move(v));
  }
}

void KubeRoleBackend::TakeConfigMapChanges(std::set<LaneKey>& lanes) {
  for (const auto& change : config_maps_informer_->TakeChanges()) {
    if (auto old = config_maps_.find(change.key); old != config_maps_.end()) {
      config_maps_by_lane_[old->second].erase(change.key);
      if (config_maps_by_lane_[old->second].empty()) config_maps_by_lane_.erase(old->second);
      config_maps_.erase(old);
    }
    auto obj = config_maps_informer_->Get(change.key);
    if (!obj) continue;
    const Json& meta = JsonField(*obj, "metadata");
    LaneKey lane{JsonString(meta, "namespace"), JsonString(JsonField(meta, "labels"), kube::kLaneLabel)};
    if (lane.name.empty()) continue;
    config_maps_[change.key] = lane;
    config_maps_by_lane_[lane].insert(change.key);
  }
}

std::optional<KubeRoleBackend::DeploymentView> KubeRoleBackend::View(const std::string& key) const {
  if (auto w = written_.find(key); w != written_.end()) return w->second.view;
  auto it = deployments_.find(key);
  if (it == deployments_.end()) return std::nullopt;
  return it->second;
}

std::vector<const KubeRoleBackend::PodView*> KubeRoleBackend::PodsOf(const LaneKey& lane,
                                                                    const std::string& role) const {
  std::vector<const PodView*> out;
  auto it = pods_by_role_.find({lane, role});
  if (it == pods_by_role_.end()) return out;
  for (const auto& key : it->second) {
    const PodView& p = pods_.at(key);
    if (!p.terminated) out.push_back(&p);
  }
  return out;
}

void KubeRoleBackend::Remember(const std::string& key, const Json& written) {
  written_[key] = Written{DeploymentView::From(written), "", clock_.Now()};
}

void KubeRoleBackend::RememberDeleted(const std::string& key, const std::string& uid) {
  written_[key] = Written{std::nullopt, uid, clock_.Now()};
}

std::vector<LaneKey> KubeRoleBackend::Lanes() const {
  std::lock_guard<std::mutex> lock(mu_);
  std::set<LaneKey> lanes;
  for (const auto& [key, d] : deployments_) lanes.insert(d.lane);
  for (const auto& [key, w] : written_) {
    if (w.view) lanes.insert(w.view->lane);
  }
  for (const auto& [lr, keys] : pods_by_role_) lanes.insert(lr.first);
  for (const auto& [lane, keys] : config_maps_by_lane_) lanes.insert(lane);
  return {lanes.begin(), lanes.end()};
}

ObservedLane KubeRoleBackend::Observe(const LaneKey& lane) {
  std::lock_guard<std::mutex> lock(mu_);
  ObservedLane o;
  for (const char* role : kRoles) {
    const std::string key = NamespacedKey(lane.ns, kube::DeploymentName(lane.name, role));
    std::optional<DeploymentView> d = View(key);
    std::vector<const PodView*> pods = PodsOf(lane, role);
    if (!d && pods.empty()) continue;
    ObservedRole r;
    r.name = role;
    if (d) {
      r.plan_hash = d->render_hash == RenderHash(o_.pod, RoleKindOf(role)) ? d->plan_hash : "";
      r.generation = d->lane_generation;
      r.owns_worker = d->owns_worker;
      r.instance = "deployment " + d->name;
      if (!d->wants_pods()) {
        r.stopping = true;
      } else if (d->edited()) {
        r.last_exit = "its Deployment " + d->name + " was changed by someone else (generation " +
                      std::to_string(d->generation) + ", lanekeeper applied " +
                      std::to_string(d->applied_generation) + "): applying it again";
      } else {
        r.running = true;
      }
      if (o.spec_hash.empty()) {
        o.spec_hash = d->spec_hash;
        o.generation = d->lane_generation;
      }
    } else {
      // Pods whose Deployment is gone (deleted by hand): the garbage collector removes them.
      r.stopping = true;
      r.owns_worker = pods.front()->owns_worker;
      r.instance = "pod " + pods.front()->name;
    }
    for (const PodView* p : pods) {
      r.restarts = std::max(r.restarts, p->restarts);
      if (!p->deleting) {
        r.instance = "pod " + p->name;
        r.started_ms = p->started_ms;
      }
      if (!p->last_exit.empty()) r.last_exit = p->last_exit;
      if (!p->cannot_start.empty() && r.running) {
        r.running = false;
        r.failed = true;
        r.last_exit = "pod " + p->name + ": " + p->cannot_start;
      }
    }
    o.roles.push_back(std::move(r));
  }
  if (auto rec = records_.find(lane); rec != records_.end()) {
    o.spec_hash = rec->second.spec_hash;
    o.generation = rec->second.generation;
    o.queue = rec->second.queue;
  }
  return o;
}

StatusOr<EnsureResult> KubeRoleBackend::Ensure(const LaneMeta& lane, const RolePlan& plan,
                                               const PlannedRole& role) {
  const std::string uid = o_.lane_uid ? o_.lane_uid(lane.key) : "";
  if (uid.empty()) {
    return Status::Unavailable("lane " + lane.key.ToString() + ": its Lane object is not known yet");
  }
  auto rendered = RenderRole(lane, uid, role, o_.pod);
  if (!rendered.ok()) return rendered.status();
  kube::PatchOptions apply{kube::PatchOptions::Type::kApply, kube::kFieldManager, true};

  std::string config_map;
  if (rendered->config_map) {
    const Json& cm = *rendered->config_map;
    config_map = cm["metadata"]["name"].get<std::string>();
    const std::string key = NamespacedKey(lane.key.ns, config_map);
    bool known;
    {
      std::lock_guard<std::mutex> lock(mu_);
      known = config_maps_.count(key) > 0;
    }
    if (!known) {
      auto applied = client_.Patch(kube::ConfigMapsRef(lane.key.ns).Named(config_map), cm, apply);
      if (!applied.ok()) return applied.status();
      std::lock_guard<std::mutex> lock(mu_);
      config_maps_[key] = lane.key;
      config_maps_by_lane_[lane.key].insert(key);
    }
  }

  Json& deployment = rendered->deployment;
  const std::string name = deployment["metadata"]["name"].get<std::string>();
  const std::string key = NamespacedKey(lane.key.ns, name);
  const kube::ResourceRef ref = kube::DeploymentsRef(lane.key.ns).Named(name);
  // The generation this write will produce, so that one write carries it: the next one when
  // the Deployment exists (our spec differs from what is there, or we would not be here),
  // else 1. A wrong guess is put right by a second write.
  std::optional<DeploymentView> current;
  {
    std::lock_guard<std::mutex> lock(mu_);
    current = View(key);
  }
  if (current && current->wants_pods() && !current->edited() && current->plan_hash == role.hash &&
      current->render_hash == RenderHash(o_.pod, role.kind)) {
    // Already so: what keeps it from running (a pod that cannot start) is not ours to fix
    // by writing the same again.
    return EnsureResult{};
  }
  const int64_t predicted = current ? current->generation + 1 : 1;
  deployment["metadata"]["annotations"][kube::kAppliedGenerationAnnotation] = std::to_string(predicted);
  auto applied = client_.Patch(ref, deployment, apply);
  if (!applied.ok()) return applied.status();
  int64_t generation = JsonInt(JsonField(*applied, "metadata"), "generation", predicted);
  if (generation != predicted) {
    Json fix = {{"metadata", {{"annotations", {{kube::kAppliedGenerationAnnotation, std::to_string(generation)}}}}}};
    auto fixed = client_.Patch(ref, fix, {});
    if (!fixed.ok()) return fixed.status();
    applied = std::move(fixed);
  }
  {
    std::lock_guard<std::mutex> lock(mu_);
    Remember(key, *applied);
    records_[lane.key] = {lane.spec_hash, lane.generation, plan.queue};
  }
  spdlog::info("controller: lane {}: applied deployment {} (plan {}, generation {})", lane.key.ToString(),
               name, role.hash, lane.generation);
  LK_RETURN_IF_ERROR(CollectConfigMaps(lane.key, config_map));
  return EnsureResult{true, std::nullopt};
}

StatusOr<bool> KubeRoleBackend::Stop(const LaneKey& lane, const std::string& role,
                                     const std::string& why) {
  const std::string name = kube::DeploymentName(lane.name, role);
  const std::string key = NamespacedKey(lane.ns, name);
  const kube::ResourceRef ref = kube::DeploymentsRef(lane.ns).Named(name);
  std::optional<DeploymentView> d;
  bool pods_left;
  {
    std::lock_guard<std::mutex> lock(mu_);
    d = View(key);
    pods_left = !PodsOf(lane, role).empty();
  }
  if (d && d->wants_pods()) {
    // Scale to 0: the Deployment controller deletes the pod, the kubelet sends SIGTERM and
    // the supervisor drains its worker and releases the lease.
    const int64_t predicted = d->generation + 1;
    Json patch = {{"metadata", {{"annotations", {{kube::kAppliedGenerationAnnotation, std::to_string(predicted)}}}}},
                  {"spec", {{"replicas", 0}}}};
    auto scaled = client_.Patch(ref, patch, {});
    if (!scaled.ok() && scaled.status().IsNotFound()) {
      std::lock_guard<std::mutex> lock(mu_);
      RememberDeleted(key, d->uid);
      return false;  // gone already; its pods may not be
    }
    if (!scaled.ok()) return scaled.status();
    int64_t generation = JsonInt(JsonField(*scaled, "metadata"), "generation", predicted);
    if (generation != predicted) {
      Json fix = {{"metadata", {{"annotations", {{kube::kAppliedGenerationAnnotation, std::to_string(generation)}}}}}};
      if (auto fixed = client_.Patch(ref, fix, {}); fixed.ok()) scaled = std::move(fixed);
    }
    {
      std::lock_guard<std::mutex> lock(mu_);
      Remember(key, *scaled);
    }
    spdlog::info("controller: lane {}: stopping {} ({}): deployment {} scaled to 0", lane.ToString(), role,
                 why, name);
    return false;
  }
  if (d && d->status_observed_generation >= 0 && d->status_observed_generation < d->generation) {
    return false;  // the Deployment controller has not acted on the scale yet
  }
  if (pods_left) return false;
  // The informer may lag behind a pod that was just created: ask the API server itself.
  kube::ListOptions lo;
  lo.label_selector = std::string(kube::kLaneLabel) + "=" + lane.name + "," + kube::kRoleLabel + "=" + role;
  auto pods = client_.List(kube::ResourceRef{"", "v1", "pods", lane.ns}, lo);
  if (!pods.ok()) return pods.status();
  for (const auto& p : pods->items) {
    std::string phase = JsonString(JsonField(p, "status"), "phase");
    if (phase != "Succeeded" && phase != "Failed") return false;
  }
  if (d && !d->deleting) {
    kube::DeleteOptions del;
    del.precondition_uid = d->uid;
    Status s = client_.Delete(ref, del);
    if (!s.ok() && !s.IsNotFound() && s.code() != Status::Code::kConflict) return s;
    {
      std::lock_guard<std::mutex> lock(mu_);
      RememberDeleted(key, d->uid);
    }
    spdlog::info("controller: lane {}: {} stopped; deployment {} deleted", lane.ToString(), role, name);
  }
  LK_RETURN_IF_ERROR(CollectConfigMaps(lane, ""));
  return true;
}

Status KubeRoleBackend::CollectConfigMaps(const LaneKey& lane, const std::string& keep) {
  std::vector<std::string> unused;  // "ns/name"
  {
    std::lock_guard<std::mutex> lock(mu_);
    auto it = config_maps_by_lane_.find(lane);
    if (it == config_maps_by_lane_.end()) return Status::OK();
    std::set<std::string> used;
    if (!keep.empty()) used.insert(keep);
    for (const char* role : kRoles) {
      if (auto d = View(NamespacedKey(lane.ns, kube::DeploymentName(lane.name, role)))) used.insert(d->config_map);
    }
    for (const std::string& key : it->second) {
      if (!used.count(key.substr(key.find('/') + 1))) unused.push_back(key);
    }
  }
  for (const std::string& key : unused) {
    Status s = client_.Delete(kube::ConfigMapsRef(lane.ns).Named(key.substr(key.find('/') + 1)));
    if (!s.ok() && !s.IsNotFound()) return s;
    std::lock_guard<std::mutex> lock(mu_);
    config_maps_.erase(key);
    auto it = config_maps_by_lane_.find(lane);
    if (it == config_maps_by_lane_.end()) continue;
    it->second.erase(key);
    if (it->second.empty()) config_maps_by_lane_.erase(it);
  }
  return Status::OK();
}

bool KubeRoleBackend::QueueServed(const std::string& queue_identity, const LaneKey& except) const {
  std::lock_guard<std::mutex> lock(mu_);
  auto serves = [&](const DeploymentView& d) {
    return d.owns_worker && d.identity == queue_identity && d.lane != except && d.wants_pods();
  };
  for (const auto& [key, d] : deployments_) {
    if (written_.count(key)) continue;
    if (serves(d)) return true;
  }
  for (const auto& [key, w] : written_) {
    if (w.view && serves(*w.view)) return true;
  }
  if (auto it = pods_by_identity_.find(queue_identity); it != pods_by_identity_.end()) {
    for (const auto& key : it->second) {
      const PodView& p = pods_.at(key);
      if (p.lane != except && !p.terminated) return true;
    }
  }
  return false;
}

Status KubeRoleBackend::Record(const LaneMeta& lane) {
  std::lock_guard<std::mutex> lock(mu_);
  records_[lane.key] = {lane.spec_hash, lane.generation, lane.queue};
  return Status::OK();
}

Status KubeRoleBackend::Forget(const LaneKey& lane) {
  for (const char* role : kRoles) {
    const std::string name = kube::DeploymentName(lane.name, role);
    const std::string key = NamespacedKey(lane.ns, name);
    std::optional<DeploymentView> d;
    {
      std::lock_guard<std::mutex> lock(mu_);
      d = View(key);
    }
    if (!d || d->deleting) continue;
    kube::DeleteOptions del;
    del.precondition_uid = d->uid;
    Status s = client_.Delete(kube::DeploymentsRef(lane.ns).Named(name), del);
    if (!s.ok() && !s.IsNotFound() && s.code() != Status::Code::kConflict) return s;
    std::lock_guard<std::mutex> lock(mu_);
    RememberDeleted(key, d->uid);
  }
  LK_RETURN_IF_ERROR(CollectConfigMaps(lane, ""));
  std::lock_guard<std::mutex> lock(mu_);
  records_.erase(lane);
  return Status::OK();
}

void KubeRoleBackend::KillAll() {
  spdlog::warn("controller: lane pods belong to the cluster: nothing is killed (delete the Lanes "
               "to stop them)");
}

}  // namespace lk
