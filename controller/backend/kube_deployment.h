// The Kubernetes objects of one planned role: a Deployment and, when the role reads files,
// the ConfigMap that holds them — pure functions from a RolePlan to JSON, which
// KubeRoleBackend applies (controller/backend/kube_role_backend.h).
//
// The Deployment (name lk-<lane>-<role>, controller/kube/kube_names.h):
//   replicas 1, strategy Recreate (the old pod is gone before the new one starts);
//   ownerReferences: the Lane (controller, blockOwnerDeletion);
//   labels managed-by, lane, role, queue; the selector is managed-by, lane and role;
//   annotations plan-hash, render-hash, spec-hash, generation, queue-identity, owns-worker
//   and applied-generation (the metadata.generation our own apply produced: another value
//   means someone else changed the spec since);
//   one container `lanekeeper`: `lanekeeper --log-format json --log-level L ARGS
//   [--handlers /etc/lanekeeper/lane/handlers.yaml] [--cycle /etc/lanekeeper/lane/cycle.yaml]
//   [extra flags]`, the files from the ConfigMap mounted read-only at /etc/lanekeeper/lane;
//   env LANEKEEPER_REDIS_URL from the lane's Secret (secretKeyRef), or a literal for a URL
//   without a password; POD_NAME and POD_NAMESPACE from the Downward API;
//   memory: limit = maxRSS + maxRSS/4 + 128Mi, request = maxRSS + 64Mi (MemoryLimitMb): the
//   RSS watchdog drains the worker when its process tree passes maxRSS; the quarter covers
//   what the tree grows between two samples and while it drains, the 128Mi the supervisor
//   and the runtime beside it, so the watchdog acts before the kernel's OOM killer. With
//   maxRSS 0 (no watchdog) no limit is set: it would be an OOM kill without a drain. A
//   dispatch-only autopilot (no worker) gets 64Mi / 256Mi;
//   probes: exec `lanekeeper --queue Q doctor --probe ready|live --role R` (cmd/doctor_command.cc):
//   ready while this pod holds the queue's owner lease (a dispatch-only autopilot: while its
//   heartbeat is this pod's and fresh); live unless Redis answers and this pod's supervisor
//   (autopilot) has stopped publishing its status — an unreachable Redis never restarts a pod;
//   terminationGracePeriodSeconds: the worker's drain timeout + 15 s;
//   securityContext: runAsNonRoot (uid/gid 65532), seccomp RuntimeDefault, no privilege
//   escalation, every capability dropped (Pod Security "restricted"). The root filesystem
//   stays writable: handlers are arbitrary programs that expect a /tmp, and the supervisor's
//   pid file belongs in the container's own /tmp, which a restarted container gets afresh
//   (an emptyDir would outlive the container and hold a stale pid file naming pid 1);
//   no service account token (lane pods never call the API server).
// The ConfigMap (lk-<lane>-<role>-<10 hex of its content>, immutable): a new content is a new
// name, so an edit of the files changes the pod template and rolls the Deployment.
// Pure, thread-safe.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "controller/backend/role_backend.h"
#include "controller/kube/kube_client.h"
#include "controller/reconcile/role_plan.h"
#include "worker/status.h"

namespace lk {

// What a lane's pods get beyond the plan: the same for every lane of a controller.
struct KubePodTemplate {
  std::string image;  // required
  std::string image_pull_policy = "IfNotPresent";
  std::string log_level = "info";
  // Added to every supervisor's / autopilot's flags (tests shorten lease TTLs with it).
  std::vector<std::string> supervisor_args;
  std::vector<std::string> autopilot_args;
};

// Where a role's files are mounted.
inline constexpr const char* kLaneFilesDir = "/etc/lanekeeper/lane";

struct RenderedRole {
  kube::Json deployment;
  std::optional<kube::Json> config_map;  // nullopt: the role reads no files
};

// The objects of role for lane, owned by the Lane whose uid is lane_uid. FailedPrecondition
// when the lane's Redis URL carries a password and comes from no Secret: a Deployment
// would show it to everyone who may read Deployments.
StatusOr<RenderedRole> RenderRole(const LaneMeta& lane, const std::string& lane_uid,
                                  const PlannedRole& role, const KubePodTemplate& pod);

// A hash of what the pod template adds to role kind's plan: a role applied with another
// (a new image, other extra flags) is outdated even at the same plan hash.
std::string RenderHash(const KubePodTemplate& pod, RoleKind kind);

// The memory limit of a worker owner whose worker drains past max_rss_mb, in MiB
// (max_rss_mb + max_rss_mb / 4 + 128); 0 when max_rss_mb is 0 (no limit).
int64_t MemoryLimitMb(int64_t max_rss_mb);

}  // namespace lk
