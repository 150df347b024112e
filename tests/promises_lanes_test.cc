// docs/lanes.md's promises that the spec table in lane_spec_test.cc does not show: an
// object read back from Kubernetes parses (status and the server's metadata are accepted and
// ignored), metadata.namespace and metadata.labels, the 100-handler limit and the other
// messages of the handlers map, sections of the wrong kind, and `validate` with several
// -f, hiding passwords.
#include <gtest/gtest.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

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

class LaneFilesCli : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_TRUE(dir_.ok());
    std::filesystem::create_directory(Specs());
  }
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
  // `lanekeeper apply|get|delete ... --specs DIR/specs` on the default Redis.
  testing::CommandResult Lanes(std::vector<std::string> args) {
    args.insert(args.begin(), {"--redis", "redis://127.0.0.1:6379/0"});
    args.insert(args.end(), {"--specs", Specs()});
    return testing::RunLanekeeper(args);
  }
  std::string Specs() const { return dir_ / "specs"; }
  std::vector<std::string> SpecFiles() const {
    std::vector<std::string> names;
    for (const auto& e : std::filesystem::directory_iterator(Specs())) {
      names.push_back(e.path().filename());
    }
    std::sort(names.begin(), names.end());
    return names;
  }
  testing::TempDir dir_{"lane-files"};
};

// The rules across lanes see every file given at once.
TEST_F(LaneFilesCli, SeveralFilesAreCheckedTogether) {
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

TEST_F(LaneFilesCli, PasswordsAreNeverPrinted) {
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
TEST_F(LaneFilesCli, ADirectoryIsReadFlatInNameOrderSkippingDotFiles) {
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

TEST_F(LaneFilesCli, ApplyChecksTheWholeFileFirstAndWritesNothingWhenItFails) {
  std::string bad = Write("bad.yaml", Lane("delta", "d") + "  supervisor: {concurrency: 0, "
                                                           "maxRSS: 10}\n");
  auto r = Lanes({"apply", "-f", bad});
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_EQ(r.err, bad + ":6:29: spec.supervisor.concurrency: must be 1 to 4096, got 0\n" + bad +
                       ":6:40: spec.supervisor.maxRSS: '10' is only 10 MB, which looks like a GB/MB "
                       "mix-up: write 10Gi for gigabytes, at least 256Mi, or 0 for no limit\n"
                       "lanekeeper: nothing applied\n");
  EXPECT_EQ(SpecFiles(), std::vector<std::string>{});
}

TEST_F(LaneFilesCli, ApplyWritesEachLaneToItsOwnFileAndSaysWhatChanged) {
  std::string file = Write("two.yaml", Lane("alpha", "jobs") + "---\n" + Lane("beta", "mail"));
  auto r = Lanes({"apply", "-f", file});
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.out, "lane/alpha created\nlane/beta created\n");
  EXPECT_EQ(SpecFiles(), (std::vector<std::string>{"alpha.yaml", "beta.yaml"}));  // no temp files
  EXPECT_EQ(Lanes({"apply", "-f", file}).out, "lane/alpha unchanged\nlane/beta unchanged\n");
  std::string edit = Write("alpha.yaml", Lane("alpha", "jobs") + "  supervisor: {concurrency: 2}\n");
  EXPECT_EQ(Lanes({"apply", "-f", edit}).out, "lane/alpha configured\n");
  auto got = Lanes({"get", "alpha", "-o", "json", "--controller", "http://127.0.0.1:1"});
  EXPECT_EQ(nlohmann::json::parse(got.out)["spec"]["supervisor"]["concurrency"], 2) << got.out;
}

TEST_F(LaneFilesCli, ApplyRefusesALaneAnotherFileDefinesAndASecondLaneOnAQueue) {
  std::string both = Specs() + "/both.yaml";
  std::ofstream(both) << Lane("alpha", "jobs") << "---\n" << Lane("beta", "mail");
  std::string again = Write("a.yaml", Lane("alpha", "other"));
  auto r = Lanes({"apply", "-f", again});
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_EQ(r.err, again + ":3:18: metadata.name: lane 'alpha' is already defined in " + both +
                       ": edit that file, or `lanekeeper delete alpha` first\n"
                       "lanekeeper: nothing applied\n");
  std::string taken = Write("g.yaml", Lane("gamma", "jobs"));
  r = Lanes({"apply", "-f", taken});
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_EQ(r.err, taken + ":5:10: spec.queue: lane 'alpha' (" + both +
                       ":5:10) already uses queue 'jobs' on redis://127.0.0.1:6379/0: a queue has "
                       "exactly one lane\nlanekeeper: nothing applied\n");
  EXPECT_EQ(SpecFiles(), std::vector<std::string>{"both.yaml"});
}

TEST_F(LaneFilesCli, DeleteRemovesTheLanesFileUnlessItDefinesOthersToo) {
  ASSERT_EQ(Lanes({"apply", "-f", Write("a.yaml", Lane("alpha", "jobs"))}).exit_code, 0);
  std::ofstream(Specs() + "/both.yaml") << Lane("beta", "mail") << "---\n" << Lane("gamma", "g");
  auto r = Lanes({"delete", "alpha"});
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.out, "lane/alpha deleted (" + Specs() + "/alpha.yaml)\n");
  r = Lanes({"delete", "beta"});
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_EQ(r.err, "lanekeeper: lane 'beta' shares " + Specs() + "/both.yaml with lane(s) gamma: "
                   "remove its document from that file instead\n");
  r = Lanes({"delete", "alpha"});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_EQ(SpecFiles(), std::vector<std::string>{"both.yaml"});
}

TEST_F(LaneFilesCli, GetWithoutANameListsEveryLaneAsAList) {
  std::ofstream(Specs() + "/both.yaml") << Lane("beta", "mail") << "---\n" << Lane("gamma", "g");
  auto r = Lanes({"get", "-o", "json", "--controller", "http://127.0.0.1:1"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  auto list = nlohmann::json::parse(r.out);
  EXPECT_EQ(list["kind"], "List");
  ASSERT_EQ(list["items"].size(), 2u);
  EXPECT_EQ(list["items"][0]["metadata"]["name"], "beta");
  EXPECT_EQ(list["items"][1]["metadata"]["name"], "gamma");
  EXPECT_FALSE(list["items"][0].contains("status"));  // no controller answered
}
}  // namespace promises_lanes_test
}  // namespace lk
