// The status server's views of a controller snapshot, one per route — pure functions
// from what the controller published and what Redis said to text:
//   StatusJson     /status: every lane with its conditions, owner, workers, supervisors,
//                  roles and queue counts, and the spec errors not tied to a lane
//   DoctorJson     /doctor: doctor's checks per lane (runs them through the observer)
//   MetricsText    /metrics: the Prometheus text exposition format 0.0.4
//   DashboardHtml  /: a small HTML page that refreshes itself every 2 s
// Every field, condition and metric is in docs/status.md. Never renders a Redis password:
// URLs come out redacted. Thread-safe (pure, but for DoctorJson's observer reads).
#pragma once

#include <string>
#include <vector>

#include "controller/status/controller_state.h"
#include "controller/status/doctor.h"
#include "controller/status/lane_observer.h"

namespace lk {

// obs[i] is the observation of snap.lanes[i].
std::string StatusJson(const ControllerSnapshot& snap, const std::vector<LaneObservation>& obs);
std::string DoctorJson(const ControllerSnapshot& snap, LaneObserver& observer,
                       const DoctorOptions& options);
std::string MetricsText(const ControllerSnapshot& snap, const std::vector<LaneObservation>& obs);
std::string DashboardHtml(const ControllerSnapshot& snap, const std::vector<LaneObservation>& obs);

// The URL of lane's Redis without its password, for people.
std::string RedactedUrl(const LaneState& lane);

}  // namespace lk
