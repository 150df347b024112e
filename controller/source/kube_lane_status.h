// The status subresource of a Lane object (crds/lane.yaml's status schema) — pure functions
// from what the reconciler and Redis say about a lane to the JSON `kubectl get lanes` and
// `kubectl describe lane` read:
//
//   observedGeneration  the metadata.generation the status describes (whether the roles run
//                       it yet is the Ready condition's GenerationPending)
//   owner               "supervisor lk-hello-supervisor-5d8f7c9b6d-x2x9q epoch 3": the lease's
//                       role, its pod (else its holder) and epoch; "" when nobody holds it
//   ownerLease          {role, holder, pod, epoch}; absent when nobody holds it
//   concurrency, maxRSS the owner's worker's, as its lease states them (the spec's while
//                       nobody holds it); maxRSS as "2048Mi", "0" for no limit
//   workers, queue      live workers and the jobs per state; absent while Redis cannot be read
//   conditions          SpecValid, OwnerElected, Degraded, Ready as metav1.Condition
//                       (ComputeLaneConditions), each with the generation; lastTransitionTime
//                       kept from the previous status unless the condition's status flipped
// Thread-safe.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "controller/kube/kube_client.h"
#include "controller/status/controller_state.h"
#include "controller/status/lane_observer.h"

namespace lk {

// The status of lane at generation, given what Redis said and its conditions. previous is
// the Lane's current status (or {}): where lastTransitionTimes come from. Absent fields
// are null, so that a merge patch of it removes them.
kube::Json RenderLaneStatus(const LaneState& lane, const QueueView& queue,
                            const std::vector<LaneCondition>& conditions, int64_t generation,
                            const kube::Json& previous, int64_t now_ms);

// Whether two statuses say the same (nulls and absent fields alike).
bool SameLaneStatus(const kube::Json& a, const kube::Json& b);

// A condition whose status differs from what previous said of it (previous status "" when
// previous had no such condition).
struct ConditionTransition {
  std::string type, from, to, reason, message;
};
std::vector<ConditionTransition> ConditionTransitions(const kube::Json& previous,
                                                      const kube::Json& next);

// "2024-05-01T10:00:00Z" (RFC 3339, seconds, UTC).
std::string Rfc3339(int64_t unix_ms);

}  // namespace lk
