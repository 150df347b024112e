#include "controller/source/kube_lane_doctor.h"

#include <algorithm>
#include <cctype>
#include <map>
#include <string>
#include <vector>

#include "controller/kube/kube_names.h"

namespace lk {

namespace {

// Every "POD:PID" of the lane's pods in text becomes "pod POD".
std::string NamePods(std::string text, const std::vector<std::string>& pods) {
  for (const auto& pod : pods) {
    const std::string needle = pod + ":";
    for (size_t at = text.find(needle); at != std::string::npos; at = text.find(needle, at)) {
      size_t end = at + needle.size();
      while (end < text.size() && std::isdigit(static_cast<unsigned char>(text[end]))) ++end;
      if (end == at + needle.size()) {
        at = end;
        continue;
      }
      text.replace(at, end - at, "pod " + pod);
      at += 4 + pod.size();
    }
  }
  return text;
}

}  // namespace

DoctorCheck LaneStatusCheck(const kube::Json& lane, const LaneKey& key) {
  const std::string name = "Lane " + key.ToString();
  const kube::Json status = lane.value("status", kube::Json::object());
  kube::Json ready;
  for (const auto& c : status.value("conditions", kube::Json::array())) {
    if (c.is_object() && c.value("type", "") == "Ready") ready = c;
  }
  int64_t generation = lane["metadata"].value("generation", int64_t{0});
  std::map<std::string, std::string> details = {{"lane", key.ToString()},
                                                {"generation", std::to_string(generation)}};
  if (!ready.is_object()) {
    return DoctorCheck{"lane", CheckLevel::kWarn,
                       name + " has no status: is `lanekeeper controller --kube` running, and does "
                              "it watch namespace " + key.ns + "?",
                       details};
  }
  int64_t observed = status.value("observedGeneration", int64_t{0});
  details["observed_generation"] = std::to_string(observed);
  details["reason"] = ready.value("reason", "");
  if (ready.value("status", "") == "True" && observed == generation) {
    return DoctorCheck{"lane", CheckLevel::kOk,
                       name + " is Ready: " + ready.value("message", ""), details};
  }
  std::string why = observed != generation
                        ? "the controller has not written generation " + std::to_string(generation) +
                              " yet (its status is of generation " + std::to_string(observed) + ")"
                        : ready.value("reason", "") + ": " + ready.value("message", "");
  return DoctorCheck{"lane", CheckLevel::kWarn, name + " is not Ready: " + why, details};
}

void AddClusterChecks(kube::KubeClient& client, const kube::Json& lane, const LaneKey& key,
                      DoctorReport& report) {
  std::vector<std::string> pods;
  kube::ListOptions lo;
  lo.label_selector = std::string(kube::kLaneLabel) + "=" + key.name;
  if (auto listed = client.List(kube::ResourceRef{"", "v1", "pods", key.ns}, lo); listed.ok()) {
    for (const auto& p : listed->items) pods.push_back(p["metadata"].value("name", ""));
  }
  report.checks.push_back(LaneStatusCheck(lane, key));
  for (auto& check : report.checks) {
    std::string holder = check.details.count("owner") ? check.details["owner"]
                         : check.details.count("holder") ? check.details["holder"] : "";
    std::string pod = kube::PodOfHolder(holder, key.name);
    if (!pod.empty() && std::find(pods.begin(), pods.end(), pod) == pods.end()) pods.push_back(pod);
    if (!pod.empty()) check.details["pod"] = pod;
    check.message = NamePods(check.message, pods);
  }
}

}  // namespace lk
