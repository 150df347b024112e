// What doctor adds for a Lane of a Kubernetes cluster, beside the checks it reads from Redis
// (controller/status/doctor.h): a `lane` check of the status the controller wrote to the
// Lane object, and every lease holder that runs in one of the lane's pods named as that pod
// ("pod lk-hello-supervisor-…", details["pod"]) instead of "HOST:PID".
//
// Used by `lanekeeper doctor --kube --lane NS/NAME` and by the `/doctor` of
// `lanekeeper controller --kube`, so that both give the same checks.
// Owns nothing; reads through the client it is given (the Lane, the lane's pods). Thread-safe
// as the client is.
#pragma once

#include "controller/kube/kube_client.h"
#include "controller/spec/lane_types.h"
#include "controller/status/doctor.h"

namespace lk {

// The `lane` check of a Lane object's status: ok when Ready is True at its generation, warn
// when it is not Ready, when the controller has not caught up, or when there is no status.
DoctorCheck LaneStatusCheck(const kube::Json& lane, const LaneKey& key);

// Appends LaneStatusCheck(lane) to report and names holders of the lane's pods as pods
// (listing pods labelled lanekeeper.dev/lane=NAME in key's namespace; a failed list names
// only the pods the holders' names show).
void AddClusterChecks(kube::KubeClient& client, const kube::Json& lane, const LaneKey& key,
                      DoctorReport& report);

}  // namespace lk
