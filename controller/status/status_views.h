// The status server's views of a controller snapshot, one per route — pure functions
// from what the controller published and what Redis said to text:
//   StatusJson     /status: every lane with its conditions, owner, workers, supervisors,
//                  roles and queue counts, and the spec errors not tied to a lane
//   DoctorJson     /doctor: doctor's checks per lane (runs them through the observer, then
//                  the cluster's checks of a Lane when the controller runs with --kube)
//   MetricsText    /metrics: the Prometheus text exposition format 0.0.4
//   DashboardHtml  /: a small HTML page that refreshes itself every 2 s
// Every field, condition and metric is in docs/status.md. Never renders a Redis password:
// URLs come out redacted. Thread-safe (pure, but for DoctorJson's observer reads).
#pragma once

#include <functional>
#include <string>
#include <vector>

#include "controller/status/controller_state.h"
#include "controller/status/doctor.h"
#include "controller/status/lane_observer.h"

namespace lk {

// obs[i] is the observation of snap.lanes[i].
std::string StatusJson(const ControllerSnapshot& snap, const std::vector<LaneObservation>& obs);
// Adds to a lane's doctor report what its source knows beyond Redis: with --kube, the
// checks `doctor --kube` adds (controller/source/kube_lane_doctor.h). May be empty.
using LaneDoctorChecks = std::function<void(const LaneState& lane, DoctorReport& report)>;

// Each lane's entry is {"lane": NS/NAME (NAME for a lane from a file), then the object
// `lanekeeper doctor --json` prints}. only: the one lane whose NS/NAME or NAME it is ("":
// every lane).
std::string DoctorJson(const ControllerSnapshot& snap, LaneObserver& observer,
                       const DoctorOptions& options, const LaneDoctorChecks& more_checks = {},
                       const std::string& only = "");

// Whether name ("NS/NAME", or "NAME") selects lane.
bool LaneNamed(const LaneState& lane, const std::string& name);
std::string MetricsText(const ControllerSnapshot& snap, const std::vector<LaneObservation>& obs);
std::string DashboardHtml(const ControllerSnapshot& snap, const std::vector<LaneObservation>& obs);

// The URL of lane's Redis without its password, for people.
std::string RedactedUrl(const LaneState& lane);

}  // namespace lk
