#include "controller/kube/kube_names.h"

#include <cctype>

#include "controller/reconcile/role_plan.h"

namespace lk::kube {

namespace {

bool LabelSafe(std::string_view v) {
  if (v.empty()) return true;
  if (v.size() > 63) return false;
  for (char c : v) {
    if (!std::isalnum(static_cast<unsigned char>(c)) && c != '-' && c != '_' && c != '.') return false;
  }
  return std::isalnum(static_cast<unsigned char>(v.front())) &&
         std::isalnum(static_cast<unsigned char>(v.back()));
}

bool EndsWithPodSuffix(std::string_view rest) {
  // "<replicaset hash>-<5 characters>": the ReplicaSet's pod-template-hash, then the pod's.
  auto dash = rest.find('-');
  if (dash == std::string_view::npos || dash == 0) return false;
  std::string_view pod = rest.substr(dash + 1);
  if (pod.empty() || pod.find('-') != std::string_view::npos) return false;
  for (char c : rest) {
    if (!std::isalnum(static_cast<unsigned char>(c)) && c != '-') return false;
  }
  return true;
}

}  // namespace

std::string ShortenName(std::string_view name, size_t max) {
  if (name.size() <= max) return std::string(name);
  std::string head(name.substr(0, max - 9));
  while (!head.empty() && (head.back() == '-' || head.back() == '.')) head.pop_back();
  return head + "-" + ContentHash(name).substr(0, 8);
}

std::string DeploymentName(std::string_view lane, std::string_view role) {
  return ShortenName("lk-" + std::string(lane) + "-" + std::string(role), kMaxDeploymentName);
}

std::string ConfigMapName(std::string_view deployment, std::string_view content) {
  return std::string(deployment) + "-" + ContentHash(content).substr(0, 10);
}

std::string LabelValue(std::string_view value) {
  if (LabelSafe(value)) return std::string(value);
  std::string safe;
  for (char c : value) {
    bool ok = std::isalnum(static_cast<unsigned char>(c)) || c == '-' || c == '_' || c == '.';
    safe.push_back(ok ? c : '-');
  }
  // Always with the hash: "a/b" and "a-b" must not both become "a-b".
  std::string head = safe.substr(0, 63 - 9);
  while (!head.empty() && !std::isalnum(static_cast<unsigned char>(head.back()))) head.pop_back();
  while (!head.empty() && !std::isalnum(static_cast<unsigned char>(head.front()))) head.erase(0, 1);
  std::string hash = ContentHash(value).substr(0, 8);
  return head.empty() ? hash : head + "-" + hash;
}

std::string PodOfHolder(std::string_view holder, std::string_view lane) {
  auto colon = holder.rfind(':');
  if (colon == std::string_view::npos) return "";
  std::string_view host = holder.substr(0, colon);
  for (const char* role : {"supervisor", "autopilot"}) {
    std::string prefix = DeploymentName(lane, role) + "-";
    if (host.size() > prefix.size() && host.substr(0, prefix.size()) == prefix &&
        EndsWithPodSuffix(host.substr(prefix.size()))) {
      return std::string(host);
    }
  }
  return "";
}

}  // namespace lk::kube
