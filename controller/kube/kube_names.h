// What lanekeeper calls its objects in a cluster: the names of a lane's Deployments and
// ConfigMaps, the labels and annotations it puts on them, its finalizer and field manager —
// one place, so that the backend that writes them, the source that reads Lanes, doctor and
// the tests agree.
//
//   Deployment   lk-<lane>-<role>                 e.g. lk-hello-supervisor
//   ConfigMap    lk-<lane>-<role>-<10 hex>        the role's files, named by their content
//   labels       app.kubernetes.io/managed-by: lanekeeper, lanekeeper.dev/lane: <lane>,
//                lanekeeper.dev/role: <role>, lanekeeper.dev/queue: <queue, label-safe>
//
// A Deployment's name is at most 46 characters (longer ones keep a prefix and end in a hash
// of the whole), so that its pods' names (name + "-" + 10 + "-" + 5) stay within 63, a
// hostname's limit: a pod's name is then its hostname, which is how an owner lease's holder
// ("host:pid") names the pod it runs in. Pure functions, thread-safe.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>

namespace lk::kube {

inline constexpr const char* kFieldManager = "lanekeeper";
inline constexpr const char* kLaneFinalizer = "lanekeeper.dev/drain";

inline constexpr const char* kManagedByLabel = "app.kubernetes.io/managed-by";
inline constexpr const char* kManagedByValue = "lanekeeper";
inline constexpr const char* kLaneLabel = "lanekeeper.dev/lane";
inline constexpr const char* kRoleLabel = "lanekeeper.dev/role";
inline constexpr const char* kQueueLabel = "lanekeeper.dev/queue";
// The label selector of everything lanekeeper creates.
inline constexpr const char* kManagedSelector = "app.kubernetes.io/managed-by=lanekeeper";

inline constexpr const char* kPlanHashAnnotation = "lanekeeper.dev/plan-hash";
inline constexpr const char* kRenderHashAnnotation = "lanekeeper.dev/render-hash";
inline constexpr const char* kSpecHashAnnotation = "lanekeeper.dev/spec-hash";
inline constexpr const char* kGenerationAnnotation = "lanekeeper.dev/generation";
inline constexpr const char* kAppliedGenerationAnnotation = "lanekeeper.dev/applied-generation";
inline constexpr const char* kQueueIdentityAnnotation = "lanekeeper.dev/queue-identity";
inline constexpr const char* kOwnsWorkerAnnotation = "lanekeeper.dev/owns-worker";

inline constexpr size_t kMaxDeploymentName = 46;

// name when it has at most max characters; else its first max - 9 characters (without a
// trailing '-') and "-" + 8 hex digits of a hash of the whole name.
std::string ShortenName(std::string_view name, size_t max);

// "lk-<lane>-<role>", shortened to kMaxDeploymentName.
std::string DeploymentName(std::string_view lane, std::string_view role);

// "<deployment>-<first 10 hex digits of ContentHash(content)>".
std::string ConfigMapName(std::string_view deployment, std::string_view content);

// value as a label value: at most 63 characters of [A-Za-z0-9._-], starting and ending with
// a letter or digit. A value that is not one already becomes one (unsafe characters to '-',
// shortened with a hash), so that two different queues never share a label value by accident.
std::string LabelValue(std::string_view value);

// The pod a lease holder ("host:pid") runs in, when its host is the name of a pod of one of
// lane's Deployments (lk-<lane>-<role>-<replicaset hash>-<5>); "" otherwise.
std::string PodOfHolder(std::string_view holder, std::string_view lane);

}  // namespace lk::kube
