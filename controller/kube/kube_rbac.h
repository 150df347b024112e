// Every (verb, resource, API group) `lanekeeper controller --kube` calls, and why: the
// least-privilege RBAC of charts/lanekeeper must grant exactly these (a test compares the
// chart's rbac-verbs.yaml with this table). Add a row here with any new call.
//
//   lanes                list, watch   KubeLaneSource's informer
//                        get, patch    the drain finalizer (read afresh after a 409, merge patch)
//   lanes/status         patch         KubeStatusWriter (merge patch of the status subresource)
//   secrets              list, watch   the Redis URLs of spec.redis.urlFrom.secretKeyRef
//   deployments          list, watch   KubeRoleBackend's informer
//                        patch         server-side apply (creates too: a PATCH is authorized as
//                                      patch), scale to 0, the applied-generation annotation
//                        delete        a stopped role, a deleted Lane's leftovers
//   pods                 list, watch   KubeRoleBackend's informer; a fresh list before a delete
//   configmaps           list, watch   KubeRoleBackend's informer
//                        patch, delete server-side apply of a role's files; unused ones go
//   events               create        KubeStatusWriter's Events on condition transitions
//   leases (coordination.k8s.io)  get, create, update   LeaderElector (--leader-elect)
// `lanekeeper doctor --kube` (a user's, not the controller's) reads: get lanes, get secrets,
// list pods.
#pragma once

#include <array>

namespace lk::kube {

struct RbacRule {
  const char* api_group;  // "" core
  const char* resource;   // "lanes/status": a subresource
  const char* verb;
};

inline constexpr std::array<RbacRule, 21> kControllerRbac = {{
    {"lanekeeper.dev", "lanes", "get"},
    {"lanekeeper.dev", "lanes", "list"},
    {"lanekeeper.dev", "lanes", "watch"},
    {"lanekeeper.dev", "lanes", "patch"},
    {"lanekeeper.dev", "lanes/status", "patch"},
    {"", "secrets", "list"},
    {"", "secrets", "watch"},
    {"apps", "deployments", "list"},
    {"apps", "deployments", "watch"},
    {"apps", "deployments", "patch"},
    {"apps", "deployments", "delete"},
    {"", "pods", "list"},
    {"", "pods", "watch"},
    {"", "configmaps", "list"},
    {"", "configmaps", "watch"},
    {"", "configmaps", "patch"},
    {"", "configmaps", "delete"},
    {"", "events", "create"},
    {"coordination.k8s.io", "leases", "get"},
    {"coordination.k8s.io", "leases", "create"},
    {"coordination.k8s.io", "leases", "update"},
}};

}  // namespace lk::kube
