// `kubectl lanekeeper doctor NAME` reaches `lanekeeper doctor --kube --lane NS/NAME`: the
// translation of kubectl's words (cmd/kubectl_plugin.h), the namespace from the kubeconfig
// context, and the real kubectl finding the binary by the name kubectl-lanekeeper.
#include "cmd/kubectl_plugin.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <fstream>
#include <string>
#include <vector>

#include "tests/support/child_process.h"
#include "tests/support/fake_apiserver.h"
#include "tests/support/temp_dir.h"

namespace lk::kubectl_plugin_test {

using Args = std::vector<std::string>;

// A kubeconfig whose current context's namespace is "team-a"; "other" is in "team-b".
StatusOr<std::string> FixedNamespace(const std::string& kubeconfig, const std::string& context) {
  if (!kubeconfig.empty() && kubeconfig != "/k") return Status::InvalidArgument("no such file");
  return std::string(context == "other" ? "team-b" : "team-a");
}

Args Translate(const Args& args) {
  auto command = cmd::TranslateKubectlPluginArgs(args, FixedNamespace);
  EXPECT_TRUE(command.ok()) << command.status().message();
  return command.ok() ? command->args : Args{"<error>"};
}

std::string ErrorOf(const Args& args) {
  auto command = cmd::TranslateKubectlPluginArgs(args, FixedNamespace);
  EXPECT_FALSE(command.ok());
  return command.ok() ? "<ok>" : command.status().message();
}

TEST(KubectlPlugin, RunsByItsNameOnly) {
  EXPECT_TRUE(cmd::RunsAsKubectlPlugin("kubectl-lanekeeper"));
  EXPECT_TRUE(cmd::RunsAsKubectlPlugin("/usr/local/bin/kubectl-lanekeeper"));
  EXPECT_FALSE(cmd::RunsAsKubectlPlugin("lanekeeper"));
  EXPECT_FALSE(cmd::RunsAsKubectlPlugin("/opt/kubectl-lanekeeper/lanekeeper"));
  EXPECT_FALSE(cmd::RunsAsKubectlPlugin("kubectl-lanekeeper-old"));
}

TEST(KubectlPlugin, DoctorNameBecomesDoctorKubeLaneInTheContextsNamespace) {
  EXPECT_EQ(Translate({"doctor", "kb"}), (Args{"doctor", "--kube", "--lane", "team-a/kb"}));
  EXPECT_EQ(Translate({"doctor", "lane/kb"}), (Args{"doctor", "--kube", "--lane", "team-a/kb"}));
  EXPECT_EQ(Translate({"doctor", "lanes.lanekeeper.dev/kb"}),
            (Args{"doctor", "--kube", "--lane", "team-a/kb"}));
}

TEST(KubectlPlugin, TheNamespaceFlagWinsInEveryForm) {
  const Args want = {"doctor", "--kube", "--lane", "prod/kb"};
  for (const Args& args : {Args{"doctor", "kb", "-n", "prod"}, Args{"doctor", "-n", "prod", "kb"},
                           Args{"doctor", "kb", "-nprod"}, Args{"doctor", "kb", "-n=prod"},
                           Args{"doctor", "kb", "--namespace", "prod"},
                           Args{"doctor", "--namespace=prod", "kb"}}) {
    EXPECT_EQ(Translate(args), want) << args[1] << " " << args[2];
  }
}

TEST(KubectlPlugin, KubeconfigAndContextPassThroughAndChooseTheNamespace) {
  EXPECT_EQ(Translate({"doctor", "kb", "--context", "other", "--kubeconfig", "/k"}),
            (Args{"doctor", "--kube", "--lane", "team-b/kb", "--kubeconfig", "/k", "--context",
                  "other"}));
  EXPECT_EQ(Translate({"doctor", "--context=other", "kb"}),
            (Args{"doctor", "--kube", "--lane", "team-b/kb", "--context", "other"}));
  EXPECT_EQ(Translate({"doctor", "kb", "-n", "prod", "--context", "other"}),
            (Args{"doctor", "--kube", "--lane", "prod/kb", "--context", "other"}));
}

TEST(KubectlPlugin, DoctorsOwnFlagsFollowAsTheyAre) {
  EXPECT_EQ(Translate({"doctor", "--json", "kb", "--wedge-time", "5m", "--waiting-threshold=10"}),
            (Args{"doctor", "--kube", "--lane", "team-a/kb", "--json", "--wedge-time", "5m",
                  "--waiting-threshold=10"}))
      << "5m is --wedge-time's value, not a second Lane";
}

TEST(KubectlPlugin, WhatCannotBeTranslatedSaysWhy) {
  EXPECT_EQ(ErrorOf({"doctor"}),
            "kubectl lanekeeper: doctor: name a Lane: kubectl lanekeeper doctor NAME [-n "
            "NAMESPACE] (see kubectl lanekeeper --help)");
  EXPECT_EQ(ErrorOf({"doctor", "a", "b"}),
            "kubectl lanekeeper: doctor: one Lane at a time, got 'a' and 'b' (see kubectl "
            "lanekeeper --help)");
  EXPECT_EQ(ErrorOf({"doctor", "deployment/kb"}),
            "kubectl lanekeeper: doctor: 'deployment/kb' is not a Lane: write NAME or lane/NAME "
            "(see kubectl lanekeeper --help)");
  EXPECT_EQ(ErrorOf({"doctor", "kb", "-n"}),
            "kubectl lanekeeper: -n needs a value (see kubectl lanekeeper --help)");
  EXPECT_EQ(ErrorOf({"doctor", "-A"}),
            "kubectl lanekeeper: doctor checks one Lane: kubectl lanekeeper doctor NAME [-n "
            "NAMESPACE] (see kubectl lanekeeper --help)");
  EXPECT_EQ(ErrorOf({"doctor", "kb", "--kubeconfig", "/missing"}),
            "kubectl lanekeeper: cannot tell the Lane's namespace: no such file; name it with -n "
            "(see kubectl lanekeeper --help)");
  EXPECT_EQ(ErrorOf({"get", "lanes"}),
            "kubectl lanekeeper: unknown command 'get'; expected doctor (see kubectl lanekeeper "
            "--help)");
}

TEST(KubectlPlugin, HelpAndVersion) {
  for (const Args& args : {Args{}, Args{"--help"}, Args{"doctor", "-h"}}) {
    auto command = cmd::TranslateKubectlPluginArgs(args, FixedNamespace);
    ASSERT_TRUE(command.ok());
    EXPECT_TRUE(command->args.empty());
    EXPECT_NE(command->usage.find("kubectl lanekeeper doctor NAME [-n NAMESPACE]"),
              std::string::npos);
  }
  EXPECT_EQ(Translate({"--version"}), Args{"--version"});
}

TEST(KubectlPlugin, TheNamespaceOfTheKubeconfigsContext) {
  testing::TempDir dir("kubectl-plugin");
  std::string path = dir / "config";
  std::ofstream(path) << "apiVersion: v1\nkind: Config\ncurrent-context: a\n"
                         "clusters: [{name: c, cluster: {server: 'http://127.0.0.1:1'}}]\n"
                         "users: [{name: u, user: {token: t}}]\n"
                         "contexts:\n"
                         "- {name: a, context: {cluster: c, user: u, namespace: team-a}}\n"
                         "- {name: b, context: {cluster: c, user: u}}\n";
  auto a = cmd::KubeconfigNamespace(path, "");
  ASSERT_TRUE(a.ok()) << a.status().message();
  EXPECT_EQ(*a, "team-a");
  auto b = cmd::KubeconfigNamespace(path, "b");
  ASSERT_TRUE(b.ok()) << b.status().message();
  EXPECT_EQ(*b, "default") << "a context without a namespace is in default, as for kubectl";
  EXPECT_FALSE(cmd::KubeconfigNamespace(path, "nope").ok());
}

// The real kubectl finds the plugin by its name on PATH and hands it its words; the binary
// answers as the plugin.
TEST(KubectlPlugin, TheRealKubectlRunsTheBinaryByItsPluginName) {
  std::string kubectl = testing::SourceDir() + "/tests/kube/.tools/kubectl/kubectl";
  ASSERT_EQ(::access(kubectl.c_str(), X_OK), 0) << kubectl << ": run scripts/setup";
  testing::TempDir dir("kubectl-plugin");
  ASSERT_EQ(::symlink(LANEKEEPER_BIN, (dir / "kubectl-lanekeeper").c_str()), 0);
  std::vector<std::string> env = {"PATH=" + dir.path() + ":/usr/bin:/bin", "HOME=" + dir.path(),
                                  "KUBECONFIG=" + (dir / "none")};
  auto help = testing::Run({kubectl, "lanekeeper", "--help"}, env);
  EXPECT_EQ(help.exit_code, 0) << help.err;
  EXPECT_NE(help.out.find("kubectl lanekeeper doctor NAME [-n NAMESPACE]"), std::string::npos)
      << help.out << help.err;
  auto missing = testing::Run({kubectl, "lanekeeper", "doctor"}, env);
  EXPECT_EQ(missing.exit_code, 2);
  EXPECT_NE(missing.err.find("kubectl lanekeeper: doctor: name a Lane"), std::string::npos)
      << missing.err;
  auto listed = testing::Run({kubectl, "plugin", "list"}, env);
  EXPECT_NE(listed.out.find(dir / "kubectl-lanekeeper"), std::string::npos) << listed.out << listed.err;
}

}  // namespace lk::kubectl_plugin_test
