#include "controller/backend/kube_deployment.h"

#include "controller/kube/kube_names.h"
#include "worker/redis_connection.h"

namespace lk {

namespace {

using kube::Json;

// Bumped when the rendering below changes in a way that should roll every lane's pods.
constexpr const char* kRenderVersion = "1";

std::string MiB(int64_t mb) { return std::to_string(mb) + "Mi"; }

Json RoleLabels(const LaneMeta& lane, const PlannedRole& role) {
  return {{kube::kManagedByLabel, kube::kManagedByValue},
          {kube::kLaneLabel, lane.key.name},
          {kube::kRoleLabel, role.name},
          {kube::kQueueLabel, kube::LabelValue(lane.queue)}};
}

Json RoleProbe(const std::string& queue, const std::string& role, const char* kind) {
  Json p = {{"exec",
             {{"command",
               {"lanekeeper", "--queue", queue, "doctor", "--probe", kind, "--role", role}}}},
            {"timeoutSeconds", 5}};
  if (std::string(kind) == "ready") {
    // Ready soon after the lease is taken; a standby that waits for an expired lease (15 s
    // by default) turns ready within a period of taking it.
    p.update({{"initialDelaySeconds", 1}, {"periodSeconds", 5}, {"failureThreshold", 2}});
  } else {
    // A supervisor publishes its status every second; 30 s of silence while Redis answers
    // is a hung process, not a slow one.
    p.update({{"initialDelaySeconds", 30}, {"periodSeconds", 10}, {"failureThreshold", 3}});
  }
  return p;
}

Json RoleResources(const PlannedRole& role) {
  if (!role.owns_worker) {
    return {{"requests", {{"cpu", "10m"}, {"memory", "64Mi"}}}, {"limits", {{"memory", "256Mi"}}}};
  }
  if (role.max_rss_mb <= 0) return {{"requests", {{"cpu", "50m"}, {"memory", "128Mi"}}}};
  return {{"requests", {{"cpu", "50m"}, {"memory", MiB(role.max_rss_mb + 64)}}},
          {"limits", {{"memory", MiB(MemoryLimitMb(role.max_rss_mb))}}}};
}

}  // namespace

int64_t MemoryLimitMb(int64_t max_rss_mb) {
  if (max_rss_mb <= 0) return 0;
  return max_rss_mb + max_rss_mb / 4 + 128;
}

std::string RenderHash(const KubePodTemplate& pod, RoleKind kind) {
  std::string all = std::string(kRenderVersion) + '\0' + pod.image + '\0' + pod.image_pull_policy +
                    '\0' + pod.log_level + '\0';
  for (const auto& a : kind == RoleKind::kSupervisor ? pod.supervisor_args : pod.autopilot_args) {
    all += a + '\0';
  }
  return ContentHash(all);
}

StatusOr<RenderedRole> RenderRole(const LaneMeta& lane, const std::string& lane_uid,
                                  const PlannedRole& role, const KubePodTemplate& pod) {
  Json redis_env = {{"name", "LANEKEEPER_REDIS_URL"}};
  if (!lane.redis_url_from.empty()) {
    redis_env["valueFrom"] = {
        {"secretKeyRef", {{"name", lane.redis_url_from.name}, {"key", lane.redis_url_from.key}}}};
  } else {
    auto ep = ParseRedisUrl(lane.redis_url);
    if (!ep.ok()) return ep.status().WithContext("lane " + lane.key.ToString());
    if (!ep->password.empty()) {
      return Status::FailedPrecondition(
          "lane " + lane.key.ToString() + ": its Redis URL " + ep->Redacted() +
          " carries a password, which a Deployment would show to everyone who may read it: "
          "put the URL in a Secret and name it in spec.redis.urlFrom.secretKeyRef");
    }
    redis_env["value"] = lane.redis_url;
  }

  const std::string name = kube::DeploymentName(lane.key.name, role.name);
  const Json labels = RoleLabels(lane, role);
  const Json owner = {{"apiVersion", "lanekeeper.dev/v1alpha1"},
                      {"kind", "Lane"},
                      {"name", lane.key.name},
                      {"uid", lane_uid},
                      {"controller", true},
                      {"blockOwnerDeletion", true}};

  RenderedRole out;
  std::vector<std::string> args = {"--log-format", "json", "--log-level", pod.log_level};
  args.insert(args.end(), role.args.begin(), role.args.end());
  Json container = {{"name", "lanekeeper"}, {"image", pod.image}, {"imagePullPolicy", pod.image_pull_policy},
                    {"command", {"lanekeeper"}}};
  Json volumes = Json::array();
  if (!role.files.empty()) {
    Json data = Json::object();
    std::string content;
    for (const auto& f : role.files) {
      data[f.name] = f.content;
      content += f.name + '\0' + f.content + '\0';
      args.insert(args.end(), {f.flag, std::string(kLaneFilesDir) + "/" + f.name});
    }
    const std::string cm = kube::ConfigMapName(name, content);
    out.config_map = Json{{"apiVersion", "v1"},
                          {"kind", "ConfigMap"},
                          {"metadata",
                           {{"name", cm},
                            {"namespace", lane.key.ns},
                            {"labels", labels},
                            {"ownerReferences", {owner}}}},
                          {"immutable", true},
                          {"data", data}};
    volumes.push_back({{"name", "lane"}, {"configMap", {{"name", cm}}}});
    container["volumeMounts"] = {{{"name", "lane"}, {"mountPath", kLaneFilesDir}, {"readOnly", true}}};
  }
  const auto& extra = role.kind == RoleKind::kSupervisor ? pod.supervisor_args : pod.autopilot_args;
  args.insert(args.end(), extra.begin(), extra.end());
  container["args"] = args;
  container["env"] = {
      redis_env,
      {{"name", "POD_NAME"}, {"valueFrom", {{"fieldRef", {{"fieldPath", "metadata.name"}}}}}},
      {{"name", "POD_NAMESPACE"}, {"valueFrom", {{"fieldRef", {{"fieldPath", "metadata.namespace"}}}}}}};
  container["resources"] = RoleResources(role);
  container["readinessProbe"] = RoleProbe(lane.queue, role.name, "ready");
  container["livenessProbe"] = RoleProbe(lane.queue, role.name, "live");
  container["securityContext"] = {{"allowPrivilegeEscalation", false},
                                  {"capabilities", {{"drop", {"ALL"}}}},
                                  {"runAsNonRoot", true}};

  const int64_t grace = (role.drain_timeout.count() + 999) / 1000 + 15;
  Json pod_spec = {{"containers", {container}},
                   {"terminationGracePeriodSeconds", grace},
                   {"automountServiceAccountToken", false},
                   {"enableServiceLinks", false},
                   {"securityContext",
                    {{"runAsNonRoot", true},
                     {"runAsUser", 65532},
                     {"runAsGroup", 65532},
                     {"seccompProfile", {{"type", "RuntimeDefault"}}}}}};
  if (!volumes.empty()) pod_spec["volumes"] = volumes;

  const std::string owns = role.owns_worker ? "true" : "false";
  out.deployment = {
      {"apiVersion", "apps/v1"},
      {"kind", "Deployment"},
      {"metadata",
       {{"name", name},
        {"namespace", lane.key.ns},
        {"labels", labels},
        {"annotations",
         {{kube::kPlanHashAnnotation, role.hash},
          {kube::kRenderHashAnnotation, RenderHash(pod, role.kind)},
          {kube::kSpecHashAnnotation, lane.spec_hash},
          {kube::kGenerationAnnotation, std::to_string(lane.generation)},
          {kube::kQueueIdentityAnnotation, lane.queue_identity},
          {kube::kOwnsWorkerAnnotation, owns}}},
        {"ownerReferences", {owner}}}},
      {"spec",
       {{"replicas", 1},
        {"revisionHistoryLimit", 2},
        {"strategy", {{"type", "Recreate"}}},
        {"selector",
         {{"matchLabels",
           {{kube::kManagedByLabel, kube::kManagedByValue},
            {kube::kLaneLabel, lane.key.name},
            {kube::kRoleLabel, role.name}}}}},
        {"template",
         {{"metadata",
           {{"labels", labels},
            {"annotations",
             {{kube::kPlanHashAnnotation, role.hash},
              {kube::kQueueIdentityAnnotation, lane.queue_identity},
              {kube::kOwnsWorkerAnnotation, owns}}}}},
          {"spec", pod_spec}}}}}};
  return out;
}

}  // namespace lk
