// FakeApiServer: the fake Kubernetes API server of tests/kube (a Node test double, see
// tests/kube/README.md) for one C++ test — started in its own process group on a loopback
// port, with its own temp dir (TLS certificates, kubeconfigs), and stopped with its whole
// group when the object goes. If the test process dies, the fake stops too (its stdin is a
// pipe we hold, and it watches its parent).
//
//   auto fake = FakeApiServer::Start({.tls = true, .token = "t0ken"});
//   std::string kubeconfig = (*fake)->WriteKubeconfig({.token = "t0ken"});
//
// Restart() kills it (SIGKILL, like a crash) and starts a new one at the same URL: the new
// one's store is empty. Not thread-safe: one test thread drives it.
#pragma once

#include <sys/types.h>

#include <memory>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "tests/support/child_process.h"
#include "tests/support/loopback_port.h"
#include "worker/status.h"

namespace lk::testing {

struct FakeApiServerOptions {
  bool tls = false;                  // https with a CA and client certificate in dir()/tls
  std::string token{};                 // required bearer token ("" with tls: a client cert)
  bool client_cert_required = false;
  int history = 0;                   // events kept for watches (--history); 0: the fake's
  int bookmark_interval_ms = 0;      // 0: the fake's default (5 s)
  bool expired_watch_status = false; // too-old watches get an HTTP 410, not an ERROR event
  std::vector<std::string> extra_args{};
};

// The `user:` (and cluster TLS) entries of a kubeconfig written by WriteKubeconfig.
struct KubeconfigUser {
  std::string token{};
  std::string token_file{};
  bool client_cert_files = false;  // client-certificate / client-key: the fake's files
  bool client_cert_data = false;   // client-certificate-data / client-key-data
  bool ca_data = false;            // certificate-authority-data instead of the CA file
  bool insecure = false;           // insecure-skip-tls-verify, no CA
  std::string ns = "default";
};

class FakeApiServer {
 public:
  static StatusOr<std::unique_ptr<FakeApiServer>> Start(const FakeApiServerOptions& options = {});
  ~FakeApiServer();
  FakeApiServer(const FakeApiServer&) = delete;
  FakeApiServer& operator=(const FakeApiServer&) = delete;

  const std::string& url() const { return url_; }
  int port() const { return port_->port(); }
  pid_t pid() const { return process_ ? process_->pid() : -1; }
  const std::string& dir() const { return dir_; }  // removed with the object
  // TLS files (empty without tls).
  std::string ca_file() const;
  std::string client_cert_file() const;
  std::string client_key_file() const;
  // The fake's stderr so far (with --verbose in extra_args: every request).
  std::string Log() const;

  // Writes a kubeconfig (context "fake", cluster "fake", user "test") into dir() and
  // returns its path; name picks the file name.
  std::string WriteKubeconfig(const KubeconfigUser& user = {}, const std::string& name = "kubeconfig") const;

  // SIGKILLs the fake's process group (a crash: connections drop at once).
  void Kill();
  // Kill(), then the same fake again at the same port (an empty store).
  Status Restart();

 private:
  FakeApiServer() = default;
  Status Launch();

  FakeApiServerOptions options_;
  std::string dir_{};
  std::string url_{};
  std::unique_ptr<LoopbackPort> port_;
  std::unique_ptr<ChildProcess> process_;
  std::string last_log_;  // the stderr of a fake that was killed
};

// A YAML file (every document) as JSON values, with YAML 1.1 plain scalars typed as JSON
// (true/false, integers, floats, null; quoted scalars stay strings): for posting manifests
// such as crds/lane.yaml.
StatusOr<std::vector<nlohmann::json>> ReadYamlManifests(const std::string& path);

// The repository's root (crds/, tests/kube/): $LANEKEEPER_SOURCE_DIR, else the one this
// build was configured from.
std::string SourceDir();

}  // namespace lk::testing
