// KubeConfig (controller/kube/kube_config.h): every kind of kubeconfig credential and the
// in-cluster service account, proven by a request to the fake API server over HTTPS (or
// HTTP); bad kubeconfigs are refused naming the file, the line and the field.
#include "controller/kube/kube_config.h"

#include <gtest/gtest.h>

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <thread>

#include "controller/kube/kube_client.h"
#include "tests/support/fake_apiserver.h"

namespace lk::kube_config_test {

using testing::FakeApiServer;
using testing::KubeconfigUser;

// One request that needs authentication: OK, or why not.
Status Probe(const kube::KubeConfig& config) {
  auto client = kube::NewKubeClient(config, {.timeout = Millis(10'000)});
  if (!client.ok()) return client.status();
  auto ns = (*client)->Get({"", "v1", "namespaces", "", "default", ""});
  return ns.ok() ? Status::OK() : ns.status();
}

Status ProbeKubeconfig(const std::string& path) {
  auto config = kube::LoadKubeconfig(path);
  if (!config.ok()) return config.status();
  return Probe(*config);
}

std::unique_ptr<FakeApiServer> StartTlsFake(bool client_cert_required = false) {
  auto fake = FakeApiServer::Start({.tls = true, .token = client_cert_required ? "" : "s3cret",
                                    .client_cert_required = client_cert_required});
  EXPECT_TRUE(fake.ok()) << fake.status().message();
  return fake.ok() ? std::move(*fake) : nullptr;
}

void WriteText(const std::string& path, const std::string& text) { std::ofstream(path) << text; }

// A fresh directory of its own (tests of several builds may run at once), removed after.
struct ScratchDir {
  std::string path;
  ScratchDir() {
    char tmpl[] = "/tmp/lk-kubeconfig-XXXXXX";
    path = ::mkdtemp(tmpl);
  }
  ~ScratchDir() {
    std::error_code ec;
    std::filesystem::remove_all(path, ec);
  }
};

TEST(KubeClientConfig, BearerTokenOverHttpsWithTheCaFromAFileOrFromData) {
  auto fake = StartTlsFake();
  ASSERT_TRUE(fake);
  EXPECT_TRUE(ProbeKubeconfig(fake->WriteKubeconfig({.token = "s3cret"})).ok());
  Status s = ProbeKubeconfig(fake->WriteKubeconfig({.token = "s3cret", .ca_data = true}, "ca-data"));
  EXPECT_TRUE(s.ok()) << s.message();
  Status wrong = ProbeKubeconfig(fake->WriteKubeconfig({.token = "nope"}, "wrong"));
  EXPECT_EQ(wrong.code(), Status::Code::kFailedPrecondition) << wrong.message();

  auto config = kube::LoadKubeconfig(fake->WriteKubeconfig({.token = "s3cret", .ns = "lanes"}, "ns"));
  ASSERT_TRUE(config.ok());
  EXPECT_EQ(config->ns, "lanes");
  EXPECT_EQ(config->server, fake->url());
}

TEST(KubeClientConfig, TheServerCertificateIsVerifiedUnlessInsecureSkipTlsVerify) {
  auto fake = StartTlsFake();
  ASSERT_TRUE(fake);
  kube::KubeConfig no_ca;
  no_ca.server = fake->url();
  no_ca.token = "s3cret";
  Status untrusted = Probe(no_ca);
  EXPECT_TRUE(untrusted.IsUnavailable()) << untrusted.message();
  Status s = ProbeKubeconfig(fake->WriteKubeconfig({.token = "s3cret", .insecure = true}, "insecure"));
  EXPECT_TRUE(s.ok()) << s.message();
}

TEST(KubeClientConfig, ClientCertificateAndKeyFromFilesOrFromData) {
  auto fake = StartTlsFake(/*client_cert_required=*/true);
  ASSERT_TRUE(fake);
  Status files = ProbeKubeconfig(fake->WriteKubeconfig({.client_cert_files = true}, "files"));
  EXPECT_TRUE(files.ok()) << files.message();
  Status data = ProbeKubeconfig(fake->WriteKubeconfig({.client_cert_data = true, .ca_data = true}, "data"));
  EXPECT_TRUE(data.ok()) << data.message();
  Status none = ProbeKubeconfig(fake->WriteKubeconfig({}, "none"));
  EXPECT_EQ(none.code(), Status::Code::kFailedPrecondition) << none.message();
}

TEST(KubeClientConfig, PlainHttpNeedsNoTls) {
  auto fake = FakeApiServer::Start();
  ASSERT_TRUE(fake.ok());
  EXPECT_EQ((*fake)->url().rfind("http://", 0), 0u);
  Status s = ProbeKubeconfig((*fake)->WriteKubeconfig());
  EXPECT_TRUE(s.ok()) << s.message();
}

TEST(KubeClientConfig, ATokenFileIsReadAgainWhenItChanges) {
  auto fake = StartTlsFake();
  ASSERT_TRUE(fake);
  const std::string token_file = fake->dir() + "/token";
  WriteText(token_file, "expired-token\n");
  auto config = kube::LoadKubeconfig(fake->WriteKubeconfig({.token_file = token_file}));
  ASSERT_TRUE(config.ok()) << config.status().message();
  auto client = kube::NewKubeClient(*config);
  ASSERT_TRUE(client.ok());
  kube::ResourceRef ns{"", "v1", "namespaces", "", "default", ""};
  EXPECT_EQ((*client)->Get(ns).status().code(), Status::Code::kFailedPrecondition);
  // The kubelet rotates the projected token: same file, new content.
  std::this_thread::sleep_for(std::chrono::milliseconds(20));
  WriteText(token_file, "s3cret\n");
  auto after = (*client)->Get(ns);
  EXPECT_TRUE(after.ok()) << after.status().message();
}

TEST(KubeClientConfig, InClusterReadsTheServiceAccountDirectory) {
  auto fake = StartTlsFake();
  ASSERT_TRUE(fake);
  const std::string dir = fake->dir() + "/serviceaccount";
  std::filesystem::create_directories(dir);
  WriteText(dir + "/token", "s3cret");
  std::filesystem::copy_file(fake->ca_file(), dir + "/ca.crt");
  WriteText(dir + "/namespace", "lanes\n");

  ::unsetenv("KUBERNETES_SERVICE_HOST");
  EXPECT_EQ(kube::InClusterConfig(dir).status().code(), Status::Code::kFailedPrecondition);
  ::setenv("KUBERNETES_SERVICE_HOST", "127.0.0.1", 1);
  ::setenv("KUBERNETES_SERVICE_PORT", std::to_string(fake->port()).c_str(), 1);
  auto config = kube::InClusterConfig(dir);
  ::unsetenv("KUBERNETES_SERVICE_HOST");
  ::unsetenv("KUBERNETES_SERVICE_PORT");
  ASSERT_TRUE(config.ok()) << config.status().message();
  EXPECT_EQ(config->server, fake->url());
  EXPECT_EQ(config->ns, "lanes");
  EXPECT_EQ(config->token_file, dir + "/token");
  Status s = Probe(*config);
  EXPECT_TRUE(s.ok()) << s.message();
}

TEST(KubeClientConfig, TheServiceAccountDirectoryIsTheKubeletsUnlessTheEnvironmentNamesAnother) {
  ::unsetenv(kube::kServiceAccountDirEnv);
  EXPECT_EQ(kube::ServiceAccountDir(), "/var/run/secrets/kubernetes.io/serviceaccount");
  ::setenv(kube::kServiceAccountDirEnv, "", 1);
  EXPECT_EQ(kube::ServiceAccountDir(), "/var/run/secrets/kubernetes.io/serviceaccount");
  ::setenv(kube::kServiceAccountDirEnv, "/tmp/pod/serviceaccount", 1);
  EXPECT_EQ(kube::ServiceAccountDir(), "/tmp/pod/serviceaccount");
  ::unsetenv(kube::kServiceAccountDirEnv);
}

TEST(KubeClientConfig, KubeconfigListsMergeAndContextsCanBeChosen) {
  ScratchDir scratch;
  const std::string& dir = scratch.path;
  WriteText(dir + "/a", R"(current-context: one
contexts:
- name: one
  context: {cluster: c1, user: u1, namespace: first}
clusters:
- name: c1
  cluster: {server: "https://one.example:6443"}
users:
- name: u1
  user: {token: t1}
)");
  WriteText(dir + "/b", R"(current-context: two
contexts:
- name: one
  context: {cluster: c2, user: u1}
- name: two
  context: {cluster: c2, user: u2}
clusters:
- name: c2
  cluster: {server: "http://two.example:8080", certificate-authority: ca.crt}
users:
- name: u2
  user: {tokenFile: token}
)");
  WriteText(dir + "/ca.crt", "not read for http");
  WriteText(dir + "/token", "t2");
  auto first = kube::LoadKubeconfig(dir + "/a:" + dir + "/missing:" + dir + "/b");
  ASSERT_TRUE(first.ok()) << first.status().message();
  EXPECT_EQ(first->server, "https://one.example:6443");  // a's current-context and context win
  EXPECT_EQ(first->token, "t1");
  EXPECT_EQ(first->ns, "first");
  auto two = kube::LoadKubeconfig(dir + "/a:" + dir + "/b", "two");
  ASSERT_TRUE(two.ok()) << two.status().message();
  EXPECT_EQ(two->server, "http://two.example:8080");
  EXPECT_EQ(two->token_file, dir + "/token");  // relative to its file
  EXPECT_EQ(two->ns, "default");

  ::setenv("KUBECONFIG", (dir + "/b").c_str(), 1);
  auto from_env = kube::LoadKubeConfig();
  auto from_flag = kube::LoadKubeConfig(dir + "/a");
  ::unsetenv("KUBECONFIG");
  ASSERT_TRUE(from_env.ok()) << from_env.status().message();
  EXPECT_EQ(from_env->server, "http://two.example:8080");
  ASSERT_TRUE(from_flag.ok());
  EXPECT_EQ(from_flag->server, "https://one.example:6443");
}

TEST(KubeClientConfig, BadKubeconfigsAreRefusedNamingTheFileTheLineAndTheField) {
  ScratchDir scratch;
  const std::string& dir = scratch.path;
  auto error_of = [&](const std::string& name, const std::string& text, const std::string& context = "") {
    WriteText(dir + "/" + name, text);
    auto c = kube::LoadKubeconfig(dir + "/" + name, context);
    EXPECT_FALSE(c.ok()) << name;
    return c.ok() ? std::string() : c.status().message();
  };
  const std::string head = "current-context: c\ncontexts:\n- name: c\n  context: {cluster: k, user: u}\n";
  const std::string cluster = "clusters:\n- name: k\n  cluster:\n    server: https://127.0.0.1:1\n";

  EXPECT_EQ(error_of("token-map", head + cluster + "users:\n- name: u\n  user:\n    token: {a: b}\n"),
            dir + "/token-map:12:12: users[0].user.token: expected a string, got a map");
  EXPECT_EQ(error_of("syntax", head + "clusters: [\n"),
            dir + "/syntax:6:1: invalid YAML: end of sequence flow not found");
  EXPECT_EQ(error_of("no-server", head + "clusters:\n- name: k\n  cluster:\n    insecure-skip-tls-verify: true\n"),
            dir + "/no-server:8:5: clusters[0].cluster.server: missing");
  EXPECT_EQ(error_of("no-host", head + "clusters:\n- name: k\n  cluster:\n    server: https:///\n"),
            dir + "/no-host:8:13: clusters[0].cluster.server: \"https:///\" names no host");
  EXPECT_EQ(error_of("not-a-url", head + "clusters:\n- name: k\n  cluster:\n    server: 127.0.0.1:6443\n"),
            dir + "/not-a-url:8:13: clusters[0].cluster.server: \"127.0.0.1:6443\" is not an http:// or https:// URL");
  EXPECT_EQ(error_of("missing-ca", head + cluster + "    certificate-authority: nope.crt\n"),
            dir + "/missing-ca:9:28: clusters[0].cluster.certificate-authority: cannot read " + dir + "/nope.crt");
  EXPECT_EQ(error_of("bad-base64", head + cluster + "    certificate-authority-data: '!!!'\n"),
            dir + "/bad-base64:9:33: clusters[0].cluster.certificate-authority-data: not valid base64");
  EXPECT_EQ(error_of("exec", head + cluster + "users:\n- name: u\n  user:\n    exec: {command: aws}\n"),
            dir + "/exec:12:11: users[0].user.exec: not supported by lanekeeper: use a token, a "
                  "tokenFile or a client certificate");
  EXPECT_EQ(error_of("no-context", head + cluster, "other"),
            "kubeconfig " + dir + "/no-context: context \"other\" is not defined under contexts");
  EXPECT_EQ(error_of("no-cluster", head),
            dir + "/no-cluster:4:22: contexts[0].context.cluster: cluster \"k\" is not defined under clusters");
  EXPECT_EQ(error_of("empty", ""), "kubeconfig " + dir + "/empty: no current-context; name a context (--context)");
  EXPECT_EQ(kube::LoadKubeconfig(dir + "/does-not-exist").status().message(),
            "kubeconfig " + dir + "/does-not-exist: cannot read it");
}

TEST(KubeClientConfig, ACertificateThatDoesNotParseIsRefusedByTheFactory) {
  kube::KubeConfig config;
  config.server = "https://127.0.0.1:1";
  config.origin = "kubeconfig k";
  config.ca_pem = "-----BEGIN CERTIFICATE-----\nnot a certificate\n-----END CERTIFICATE-----\n";
  auto client = kube::NewKubeClient(config);
  EXPECT_EQ(client.status().code(), Status::Code::kInvalidArgument);
  EXPECT_NE(client.status().message().find("kubeconfig k: the certificate authority"), std::string::npos)
      << client.status().message();
  config.server = "ftp://x";
  EXPECT_EQ(kube::NewKubeClient(config).status().code(), Status::Code::kInvalidArgument);
}

}  // namespace lk::kube_config_test
