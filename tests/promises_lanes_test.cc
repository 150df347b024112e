// docs/lanes.md's promises that the spec table in lane_spec_test.cc does not show: an
// object read back from Kubernetes parses (status and the server's metadata are accepted and
// ignored), metadata.namespace and metadata.labels, the 100-handler limit and the other
// messages of the handlers map, sections of the wrong kind, and `validate` with several
// -f, hiding passwords.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "controller/spec/lane_parser.h"
#include "tests/support/child_process.h"
#include "tests/support/temp_dir.h"

namespace lk {
namespace promises_lanes_test {

constexpr std::string_view kHead =
    "apiVersion: lanekeeper.dev/v1alpha1\nkind: Lane\nmetadata: {name: kb}\nspec:\n";

// Every error of text as `file:line:column: field: message`.
std::vector<std::string> ErrorsOf(const std::string& text, std::vector<LaneSpec>* lanes = nullptr) {
  ParsedLanes p = ParseLaneSpecs(text, "kb.yaml");
  if (lanes) *lanes = p.lanes;
  std::vector<std::string> out;
  for (const auto& e : p.errors) out.push_back(e.ToString());
  return out;
}

TEST(LanePromises, AnObjectReadBackFromKubernetesParsesAndItsServerFieldsChangeNothing) {
  const std::string plain = std::string(kHead) + "  queue: kb\n  supervisor: {concurrency: 2}\n";
  const std::string from_server =
      "apiVersion: lanekeeper.dev/v1alpha1\n"
      "kind: Lane\n"
      "metadata:\n"
      "  name: kb\n"
      "  namespace: team-a\n"
      "  labels: {app: kb, tier: jobs}\n"
      "  annotations: {kubectl.kubernetes.io/last-applied-configuration: '{}'}\n"
      "  uid: 6f1c9e0a-8d2b-4c1e-9b1a-2f3d4e5f6a7b\n"
      "  resourceVersion: \"4711\"\n"
      "  generation: 3\n"
      "  creationTimestamp: \"2026-11-28T00:00:00Z\"\n"
      "  managedFields:\n"
      "    - {manager: kubectl, operation: Apply, apiVersion: lanekeeper.dev/v1alpha1}\n"
      "  finalizers: [lanekeeper.dev/stop-roles]\n"
      "spec:\n"
      "  queue: kb\n"
      "  supervisor: {concurrency: 2}\n"
      "status:\n"
      "  observedGeneration: 3\n"
      "  conditions:\n"
      "    - {type: Ready, status: \"True\", reason: RolesRunning}\n";
  std::vector<LaneSpec> a, b;
  EXPECT_EQ(ErrorsOf(plain, &a), std::vector<std::string>{});
  EXPECT_EQ(ErrorsOf(from_server, &b), std::vector<std::string>{});
  ASSERT_EQ(a.size(), 1u);
  ASSERT_EQ(b.size(), 1u);
  EXPECT_EQ(b[0].SpecJson(), a[0].SpecJson());
  EXPECT_EQ(b[0].namespace_name, "team-a");
  EXPECT_EQ(b[0].Key().ToString(), "team-a/kb");
  EXPECT_EQ(b[0].generation, 3);
}

TEST(LanePromises, NamespaceMustBeANamespaceNameAndLabelsAMappingOfStrings) {
  EXPECT_EQ(ErrorsOf("apiVersion: lanekeeper.dev/v1alpha1\nkind: Lane\n"
                     "metadata: {name: kb, namespace: Team_A}\nspec: {}\n"),
            std::vector<std::string>{"kb.yaml:3:33: metadata.namespace: must be a Kubernetes "
                                     "namespace name (lowercase letters, digits or '-', at most "
                                     "63), got 'Team_A'"});
  EXPECT_EQ(ErrorsOf("apiVersion: lanekeeper.dev/v1alpha1\nkind: Lane\n"
                     "metadata: {name: kb, labels: [a, b]}\nspec: {}\n"),
            std::vector<std::string>{"kb.yaml:3:30: metadata.labels: expected a mapping of "
                                     "strings, got a list"});
  EXPECT_EQ(ErrorsOf("apiVersion: lanekeeper.dev/v1alpha1\nkind: Lane\n"
                     "metadata: {name: kb, annotations: {replicas: 2}}\nspec: {}\n"),
            std::vector<std::string>{"kb.yaml:3:46: metadata.annotations.replicas: expected a "
                                     "string, got the number 2 (quote it: \"2\")"});
}

TEST(LanePromises, AtMost100HandlersAndEachNamedWithACommand) {
  auto handlers = [](int n) {
    std::string text = std::string(kHead) + "  handlers:\n";
    for (int i = 0; i < n; ++i) text += "    h" + std::to_string(i) + ": {command: [run]}\n";
    return text;
  };
  std::vector<LaneSpec> lanes;
  EXPECT_EQ(ErrorsOf(handlers(100), &lanes), std::vector<std::string>{});
  ASSERT_EQ(lanes.size(), 1u);
  EXPECT_EQ(lanes[0].handlers.size(), 100u);
  EXPECT_EQ(ErrorsOf(handlers(120)),
            std::vector<std::string>{"kb.yaml:6:5: spec.handlers: at most 100 handlers, got 120"});
  EXPECT_EQ(ErrorsOf(std::string(kHead) + "  handlers: [embed]\n"),
            std::vector<std::string>{"kb.yaml:5:13: spec.handlers: expected a mapping of job "
                                     "name to handler, got a list"});
  EXPECT_EQ(ErrorsOf(std::string(kHead) + "  handlers: {\"\": {command: [x]}}\n"),
            std::vector<std::string>{"kb.yaml:5:14: spec.handlers.: a handler's name is a job "
                                     "name: non-empty UTF-8 text"});
  EXPECT_EQ(ErrorsOf(std::string(kHead) + "  handlers:\n    embed:\n"),
            std::vector<std::string>{"kb.yaml:6:5: spec.handlers.embed: has no value: a "
                                     "handler needs a command"});
}

TEST(LanePromises, ASectionOrASizeOfTheWrongKindSaysWhatItGot) {
  EXPECT_EQ(ErrorsOf(std::string(kHead) + "  supervisor: x\n"),
            std::vector<std::string>{"kb.yaml:5:15: spec.supervisor: expected a mapping, got "
                                     "the string 'x'"});
  EXPECT_EQ(ErrorsOf(std::string(kHead) + "  supervisor: {maxRSS: [1]}\n"),
            std::vector<std::string>{"kb.yaml:5:24: spec.supervisor.maxRSS: expected a size "
                                     "like 2048Mi or 2Gi, got a list"});
}

class ValidatePromises : public ::testing::Test {
 protected:
  void SetUp() override { ASSERT_TRUE(dir_.ok()); }
  std::string Write(const std::string& name, const std::string& text) {
    std::string path = dir_ / name;
    std::ofstream(path) << text;
    return path;
  }
  static std::string Lane(const std::string& name, const std::string& queue,
                          const std::string& url = "") {
    return "apiVersion: lanekeeper.dev/v1alpha1\nkind: Lane\nmetadata: {name: " + name +
           "}\nspec:\n  queue: " + queue + "\n" +
           (url.empty() ? "" : "  redis: {url: \"" + url + "\"}\n");
  }
  testing::TempDir dir_{"validate-promises"};
};

// The rules across lanes see every file given at once.
TEST_F(ValidatePromises, SeveralFilesAreCheckedTogether) {
  std::string a = Write("a.yaml", Lane("alpha", "jobs"));
  std::string b = Write("b.yaml", Lane("beta", "mail"));
  auto ok = testing::RunLanekeeper({"--redis", "redis://127.0.0.1:6379/0", "validate", "-f", a,
                                    "-f", b});
  EXPECT_EQ(ok.exit_code, 0) << ok.err;
  EXPECT_EQ(ok.out, "2 lane(s) valid: alpha (queue jobs on redis://127.0.0.1:6379/0 (default)), "
                    "beta (queue mail on redis://127.0.0.1:6379/0 (default))\n");
  std::string c = Write("c.yaml", Lane("gamma", "jobs", "redis://localhost:6379/0"));
  auto clash = testing::RunLanekeeper({"--redis", "redis://127.0.0.1:6379/0", "validate", "-f", a,
                                       "-f", c});
  EXPECT_EQ(clash.exit_code, 2);
  EXPECT_EQ(clash.out, "");
  EXPECT_EQ(clash.err, c + ":5:10: spec.queue: lane 'alpha' (" + a +
                           ":5:10) already uses queue 'jobs' on redis://127.0.0.1:6379/0: a "
                           "queue has exactly one lane\n");
}

TEST_F(ValidatePromises, PasswordsAreNeverPrinted) {
  std::string a = Write("a.yaml", Lane("alpha", "jobs", "redis://:hunter2-Zq7@db:6379/1"));
  auto r = testing::RunLanekeeper(
      {"--redis", "redis://:default-pw-Kx4@127.0.0.1:6379/0", "validate", "-f", a, "-f",
       Write("b.yaml", Lane("beta", "mail"))});
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.out, "2 lane(s) valid: alpha (queue jobs on redis://:***@db:6379/1), beta (queue "
                   "mail on redis://:***@127.0.0.1:6379/0 (default))\n");
  std::string bad = Write("c.yaml", Lane("gamma", "other", "redis://:hunter2-Zq7@db:99999/1"));
  auto e = testing::RunLanekeeper({"validate", "-f", bad});
  EXPECT_EQ(e.exit_code, 2);
  EXPECT_EQ((e.out + e.err).find("hunter2-Zq7"), std::string::npos) << e.err;
}

// A directory: its *.yaml and *.yml files in name order, not its subdirectories, not the
// files editors keep beside (dot-files).
TEST_F(ValidatePromises, ADirectoryIsReadFlatInNameOrderSkippingDotFiles) {
  Write("b.yml", Lane("beta", "mail"));
  Write("a.yaml", Lane("alpha", "jobs"));
  Write(".a.yaml.swp", "not: [a lane");
  Write(".#a.yaml", "not: [a lane");
  Write("notes.txt", "not a lane");
  std::filesystem::create_directory(dir_ / "old");
  Write("old/c.yaml", "not: [a lane");
  auto r = testing::RunLanekeeper({"--redis", "redis://127.0.0.1:6379/0", "validate", "-f",
                                   dir_.path()});
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.out, "2 lane(s) valid: alpha (queue jobs on redis://127.0.0.1:6379/0 (default)), "
                   "beta (queue mail on redis://127.0.0.1:6379/0 (default))\n");
}

}  // namespace promises_lanes_test
}  // namespace lk
