// The chart's RBAC is exactly what `lanekeeper controller --kube` calls: every rule of
// charts/lanekeeper/rbac-verbs.yaml (the one list the chart renders, KubeChart.rbac) is a
// call the controller makes, and every call it makes is granted there. No verb to spare,
// none missing (a missing one is a 403 in a real cluster; the fake API server does no
// authorization, so only this comparison catches it).
//
// The calls, from issue 10's contract for the controller:
//   the Lane informer (list, watch) and reads (get); the finalizer that holds a deleted Lane
//   until its roles are gone (update, patch on the Lane); the status subresource; each
//   lane's supervisor and autopilot Deployments and its ConfigMap (informed, created,
//   updated, patched, deleted); the Secret of spec.redis.urlFrom, read by name; Events on
//   transitions; with leader election, the coordination.k8s.io Lease in the controller's
//   own namespace.
// ControllerApiCalls() is that list as a table; it is the one place to change when the
// controller starts or stops a call, together with rbac-verbs.yaml and the RBAC table of
// docs/kubernetes.md (compared with rbac-verbs.yaml here too).
#include <gtest/gtest.h>
#include <yaml-cpp/yaml.h>

#include <fstream>
#include <map>
#include <regex>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include "tests/support/fake_apiserver.h"

namespace lk::kube_rbac_test {

// Where a call is granted: "lanes" is the watched namespace (a Role) or every namespace (a
// ClusterRole); "leaderElection" the controller's own namespace. The sections of
// rbac-verbs.yaml.
struct ApiCalls {
  std::string scope;
  std::string group;     // "" the core API
  std::string resource;  // plural, "/status" for the subresource
  std::set<std::string> verbs;
};

std::vector<ApiCalls> ControllerApiCalls() {
  const std::set<std::string> kOwned = {"get", "list", "watch", "create", "update", "patch", "delete"};
  return {
      {"lanes", "lanekeeper.dev", "lanes", {"get", "list", "watch", "update", "patch"}},
      {"lanes", "lanekeeper.dev", "lanes/status", {"get", "update", "patch"}},
      {"lanes", "apps", "deployments", kOwned},
      {"lanes", "", "configmaps", kOwned},
      {"lanes", "", "secrets", {"get"}},
      {"lanes", "", "events", {"create", "patch"}},
      {"leaderElection", "coordination.k8s.io", "leases", {"get", "create", "update"}},
  };
}

// "scope group/resource" -> verbs.
using Grants = std::map<std::string, std::set<std::string>>;

std::string Key(const std::string& scope, const std::string& group, const std::string& resource) {
  return scope + " " + group + "/" + resource;
}

Grants FromTable(const std::vector<ApiCalls>& calls) {
  Grants out;
  for (const ApiCalls& c : calls) out[Key(c.scope, c.group, c.resource)].insert(c.verbs.begin(), c.verbs.end());
  return out;
}

// rbac-verbs.yaml's rules, flattened: a rule of several groups or resources grants each.
Grants FromRbacVerbs(const YAML::Node& file) {
  Grants out;
  for (const auto& section : file) {
    const std::string scope = section.first.as<std::string>();
    for (const YAML::Node& rule : section.second) {
      EXPECT_FALSE(rule["resourceNames"]) << scope << ": resourceNames would need a row of their own";
      for (const YAML::Node& group : rule["apiGroups"]) {
        for (const YAML::Node& resource : rule["resources"]) {
          auto& verbs = out[Key(scope, group.as<std::string>(), resource.as<std::string>())];
          for (const YAML::Node& verb : rule["verbs"]) verbs.insert(verb.as<std::string>());
        }
      }
    }
  }
  return out;
}

std::string Join(const std::set<std::string>& s) {
  std::ostringstream out;
  for (const auto& v : s) out << (out.tellp() > 0 ? "," : "") << v;
  return out.str();
}

// Each difference as a sentence naming the resource and the verbs.
std::vector<std::string> Differences(const Grants& granted, const Grants& called) {
  std::vector<std::string> out;
  auto verbs_in = [](const Grants& g, const std::string& key) {
    auto it = g.find(key);
    return it == g.end() ? std::set<std::string>{} : it->second;
  };
  std::set<std::string> keys;
  for (const auto& [k, v] : granted) keys.insert(k);
  for (const auto& [k, v] : called) keys.insert(k);
  for (const std::string& key : keys) {
    std::set<std::string> g = verbs_in(granted, key), c = verbs_in(called, key), extra, missing;
    for (const auto& v : g) if (!c.count(v)) extra.insert(v);
    for (const auto& v : c) if (!g.count(v)) missing.insert(v);
    if (!extra.empty()) out.push_back(key + ": granted but never called: " + Join(extra));
    if (!missing.empty()) out.push_back(key + ": called but not granted: " + Join(missing));
  }
  return out;
}

YAML::Node RbacVerbs() { return YAML::LoadFile(testing::SourceDir() + "/charts/lanekeeper/rbac-verbs.yaml"); }

TEST(KubeRbac, TheChartGrantsExactlyTheCallsOfTheController) {
  std::vector<std::string> diff = Differences(FromRbacVerbs(RbacVerbs()), FromTable(ControllerApiCalls()));
  std::ostringstream all;
  for (const auto& d : diff) all << "\n  " << d;
  EXPECT_TRUE(diff.empty()) << "charts/lanekeeper/rbac-verbs.yaml and the controller's calls differ:" << all.str();
}

TEST(KubeRbac, TheComparisonNamesAVerbTooManyAndAVerbMissing) {
  YAML::Node file = RbacVerbs();
  file["lanes"][0]["verbs"].push_back("delete");
  file["leaderElection"][0]["verbs"] = YAML::Load("[get, update]");
  std::vector<std::string> diff = Differences(FromRbacVerbs(file), FromTable(ControllerApiCalls()));
  EXPECT_EQ(diff, (std::vector<std::string>{
                      "lanes lanekeeper.dev/lanes: granted but never called: delete",
                      "leaderElection coordination.k8s.io/leases: called but not granted: create",
                  }));
}

// docs/kubernetes.md's RBAC table ("| `lanes.lanekeeper.dev/status` | get, update, patch | why |"),
// each row as "scope group/resource" (the leases row is leader election's) -> verbs.
Grants FromDocsTable(const std::string& path) {
  std::ifstream in(path);
  EXPECT_TRUE(in) << "cannot read " << path;
  Grants out;
  const std::regex row(R"(\| `([a-z]+)(\.[a-z0-9.]+)?(/[a-z]+)?` \| ([a-z, ]+) \|.*)");
  for (std::string line; std::getline(in, line);) {
    std::smatch m;
    if (!std::regex_match(line, m, row)) continue;
    const std::string group = m[2].matched ? m[2].str().substr(1) : "";
    const std::string scope = group == "coordination.k8s.io" ? "leaderElection" : "lanes";
    auto& verbs = out[Key(scope, group, m[1].str() + m[3].str())];
    std::istringstream words(std::regex_replace(m[4].str(), std::regex(","), " "));
    for (std::string v; words >> v;) verbs.insert(v);
  }
  return out;
}

TEST(KubeRbac, DocsKubernetesMdShowsTheSameRules) {
  std::vector<std::string> diff =
      Differences(FromDocsTable(testing::SourceDir() + "/docs/kubernetes.md"), FromRbacVerbs(RbacVerbs()));
  std::ostringstream all;
  for (const auto& d : diff) all << "\n  " << d;
  EXPECT_TRUE(diff.empty()) << "docs/kubernetes.md's RBAC table (\"granted\") and rbac-verbs.yaml (\"called\") differ:"
                            << all.str();
}

}  // namespace lk::kube_rbac_test
