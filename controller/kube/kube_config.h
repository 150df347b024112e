// KubeConfig: where the Kubernetes API server is and how to prove who we are — read from a
// kubeconfig file (kubectl's format) or from the service account of the pod we run in.
//
// Resolution, as controller-runtime's config.GetConfig does it (LoadKubeConfig):
//   an explicit path (--kubeconfig) > $KUBECONFIG (a ':'-separated list, merged: the
//   first file that names a cluster, user, context or current-context wins) > in-cluster
//   (KUBERNETES_SERVICE_HOST/PORT and /var/run/secrets/kubernetes.io/serviceaccount) >
//   ~/.kube/config.
// $LANEKEEPER_SERVICEACCOUNT_DIR, when set, names the service account directory instead of
// /var/run/secrets/kubernetes.io/serviceaccount. It exists for the fake kubelet of
// tests/kube, which has no mount namespaces and puts a pod's token elsewhere; it moves
// where the same three files are read, nothing else (whoever sets a pod's environment
// already decides what the pod trusts).
// A context is the explicit one, else the file's current-context. What is read: the
// cluster's server, certificate-authority(-data), insecure-skip-tls-verify; the user's
// token, tokenFile, client-certificate(-data), client-key(-data); the context's namespace.
// Paths in a kubeconfig are relative to the file. exec and auth-provider plugins are
// refused with a clear error, as are username/password.
//
// Errors are InvalidArgument naming the file, the line and the field
// ("/home/me/.kube/config:12:7: users[0].user.token: expected a string, got a map").
// Certificates and keys are read here into PEM text, so a missing file is an error now
// and not at the first request; a token file is only named (the client re-reads it when
// it changes). Pure functions of the files and the environment; thread-safe.
#pragma once

#include <string>

#include "worker/status.h"

namespace lk::kube {

inline constexpr const char* kServiceAccountDir = "/var/run/secrets/kubernetes.io/serviceaccount";
inline constexpr const char* kServiceAccountDirEnv = "LANEKEEPER_SERVICEACCOUNT_DIR";

// $LANEKEEPER_SERVICEACCOUNT_DIR if set and not empty, else kServiceAccountDir.
std::string ServiceAccountDir();

struct KubeConfig {
  std::string server{};  // "https://127.0.0.1:6443"; http:// works too (no TLS at all)
  std::string ca_pem{};  // certificate authorities to trust; empty: the system's
  bool insecure_skip_tls_verify = false;
  std::string client_cert_pem{};  // with client_key_pem: TLS client authentication
  std::string client_key_pem{};
  std::string token{};       // a bearer token
  std::string token_file{};  // a bearer token in a file, read at each request it changed
  std::string ns = "default";  // the context's namespace (the pod's, in-cluster)
  // Where this came from, for messages: "kubeconfig /root/.kube/config (context kind)".
  std::string origin{};
};

// Why `server` cannot be a cluster's server ("... is not an http:// or https:// URL", "...
// names no host"), or "" when it can. Shared by LoadKubeconfig and NewKubeClient.
std::string ServerUrlProblem(const std::string& server);

// One kubeconfig file (or a ':'-separated list, merged); context "" is current-context.
StatusOr<KubeConfig> LoadKubeconfig(const std::string& paths, const std::string& context = "");

// The pod's service account: the server from KUBERNETES_SERVICE_HOST and _PORT, and
// dir/token (a token_file: bound tokens rotate), dir/ca.crt and dir/namespace.
// FailedPrecondition when not in a pod (no KUBERNETES_SERVICE_HOST).
StatusOr<KubeConfig> InClusterConfig(const std::string& dir = ServiceAccountDir());

// The resolution order above. kubeconfig_flag "" when not given.
StatusOr<KubeConfig> LoadKubeConfig(const std::string& kubeconfig_flag = "",
                                    const std::string& context = "");

}  // namespace lk::kube
