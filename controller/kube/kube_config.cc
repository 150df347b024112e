#include "controller/kube/kube_config.h"

#include <yaml-cpp/yaml.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <sstream>
#include <vector>

#include "worker/yaml_checker.h"

namespace lk::kube {

namespace {

namespace fs = std::filesystem;

// A kubeconfig is read leniently (kubectl ignores fields it does not know, and so do we),
// but its errors are located as every config file's are (worker/yaml_checker.h).
class ErrorAt {
 public:
  explicit ErrorAt(const std::string& file) : file_(file) {}
  Status operator()(const YAML::Mark& mark, const std::string& path, const std::string& msg) const {
    ConfigError e{file_, mark.is_null() ? 0 : mark.line + 1, mark.is_null() ? 0 : mark.column + 1,
                  path, msg};
    return Status::InvalidArgument(e.ToString());
  }

 private:
  std::string file_;
};

// "a map", "a list", "a scalar" or "nothing", for "expected X, got Y".
const char* KindName(const YAML::Node& n) {
  switch (n.Type()) {
    case YAML::NodeType::Map: return "a map";
    case YAML::NodeType::Sequence: return "a list";
    case YAML::NodeType::Scalar: return "a scalar";
    default: return "nothing";
  }
}

StatusOr<std::string> ReadWholeFile(const std::string& path, const std::string& what) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return Status::InvalidArgument(what + " " + path + ": cannot read it");
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

StatusOr<std::string> DecodeBase64(const std::string& text) {
  static const std::string kAlphabet =
      "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  std::string out;
  int bits = 0;
  unsigned value = 0;
  for (char c : text) {
    if (c == '=' || c == '\n' || c == '\r' || c == ' ') continue;
    auto pos = kAlphabet.find(c);
    if (pos == std::string::npos) return Status::InvalidArgument("not base64");
    value = (value << 6) | static_cast<unsigned>(pos);
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      out.push_back(static_cast<char>((value >> bits) & 0xff));
    }
  }
  return out;
}

// One named entry of a kubeconfig list (clusters, users, contexts), with where it is.
struct Entry {
  YAML::Node body;  // the `cluster:` / `user:` / `context:` map
  std::string file;
  std::string path;  // "clusters[0].cluster"
};

struct Merged {
  std::map<std::string, Entry> clusters, users, contexts;
  std::string current_context;
  std::string current_context_file;
};

// A scalar field of a map node: "" when absent; an error when present but not a scalar.
StatusOr<std::string> Scalar(const YAML::Node& map, const char* key, const Entry& at) {
  YAML::Node n = map[key];
  if (!n || n.IsNull()) return std::string();
  if (!n.IsScalar()) {
    return ErrorAt(at.file)(n.Mark(), at.path + "." + key,
                            std::string("expected a string, got ") + KindName(n));
  }
  return n.Scalar();
}

Status ReadNamedList(const YAML::Node& root, const char* list, const char* body_key,
                     const std::string& file, std::map<std::string, Entry>& into) {
  ErrorAt err(file);
  YAML::Node seq = root[list];
  if (!seq || seq.IsNull()) return Status::OK();
  if (!seq.IsSequence()) {
    return err(seq.Mark(), list, std::string("expected a list, got ") + KindName(seq));
  }
  for (size_t i = 0; i < seq.size(); ++i) {
    const YAML::Node item = seq[i];
    std::string path = std::string(list) + "[" + std::to_string(i) + "]";
    if (!item.IsMap()) return err(item.Mark(), path, std::string("expected a map, got ") + KindName(item));
    YAML::Node name = item["name"];
    if (!name || !name.IsScalar() || name.Scalar().empty()) {
      return err(item.Mark(), path + ".name", "missing: every entry needs a name");
    }
    YAML::Node body = item[body_key];
    if (body && !body.IsNull() && !body.IsMap()) {
      return err(body.Mark(), path + "." + body_key, std::string("expected a map, got ") + KindName(body));
    }
    // The first file (and the first entry) that names it wins, as in client-go.
    into.try_emplace(name.Scalar(), Entry{body ? body : YAML::Node(YAML::NodeType::Map), file,
                                          path + "." + body_key});
  }
  return Status::OK();
}

Status MergeFile(const std::string& file, Merged& merged) {
  auto text = ReadWholeFile(file, "kubeconfig");
  if (!text.ok()) return text.status();
  ErrorAt err(file);
  std::vector<ConfigError> errors;
  const YAML::Node root = ReadOneYamlDocument(*text, file, errors);
  if (!errors.empty()) return Status::InvalidArgument(JoinErrors(errors));
  if (root.IsNull()) return Status::OK();
  if (!root.IsMap()) return err(root.Mark(), "", std::string("expected a map, got ") + KindName(root));
  LK_RETURN_IF_ERROR(ReadNamedList(root, "clusters", "cluster", file, merged.clusters));
  LK_RETURN_IF_ERROR(ReadNamedList(root, "users", "user", file, merged.users));
  LK_RETURN_IF_ERROR(ReadNamedList(root, "contexts", "context", file, merged.contexts));
  YAML::Node cc = root["current-context"];
  if (cc && !cc.IsNull()) {
    if (!cc.IsScalar()) {
      return err(cc.Mark(), "current-context", std::string("expected a string, got ") + KindName(cc));
    }
    if (merged.current_context.empty() && !cc.Scalar().empty()) {
      merged.current_context = cc.Scalar();
      merged.current_context_file = file;
    }
  }
  return Status::OK();
}

// A path from a kubeconfig: relative to the file's directory.
std::string Resolve(const std::string& path, const std::string& file) {
  if (path.empty() || fs::path(path).is_absolute()) return path;
  return (fs::path(file).parent_path() / path).lexically_normal().string();
}

// `field` (a file path) or `field-data` (base64): the PEM text, or "" when neither is set.
StatusOr<std::string> PemFromFileOrData(const Entry& at, const std::string& field) {
  auto file = Scalar(at.body, field.c_str(), at);
  if (!file.ok()) return file.status();
  std::string data_key = field + "-data";
  auto data = Scalar(at.body, data_key.c_str(), at);
  if (!data.ok()) return data.status();
  if (!data->empty()) {
    auto pem = DecodeBase64(*data);
    if (!pem.ok()) {
      return ErrorAt(at.file)(at.body[data_key].Mark(), at.path + "." + data_key,
                              "not valid base64");
    }
    return *pem;
  }
  if (file->empty()) return std::string();
  std::string resolved = Resolve(*file, at.file);
  auto pem = ReadWholeFile(resolved, "file");
  if (!pem.ok()) {
    return ErrorAt(at.file)(at.body[field].Mark(), at.path + "." + field,
                            "cannot read " + resolved);
  }
  return *pem;
}

}  // namespace

std::string ServerUrlProblem(const std::string& server) {
  if (server.rfind("https://", 0) != 0 && server.rfind("http://", 0) != 0) {
    return "\"" + server + "\" is not an http:// or https:// URL";
  }
  // "https:///" has a scheme and no host: trimmed of its '/' it would be "https:", which
  // no request can go to (found by the kubeconfig fuzzer).
  if (const size_t host = server.find("://") + 3; host >= server.size() || server[host] == '/') {
    return "\"" + server + "\" names no host";
  }
  return "";
}

StatusOr<KubeConfig> LoadKubeconfig(const std::string& paths, const std::string& context) {
  Merged merged;
  std::vector<std::string> files;
  std::stringstream ss(paths);
  for (std::string p; std::getline(ss, p, ':');) {
    if (!p.empty()) files.push_back(p);
  }
  if (files.empty()) return Status::InvalidArgument("kubeconfig: no file given");
  // In a list, files that do not exist are skipped (client-go); a single one must exist.
  int read = 0;
  for (const auto& f : files) {
    if (files.size() > 1 && !fs::exists(f)) continue;
    LK_RETURN_IF_ERROR(MergeFile(f, merged));
    ++read;
  }
  if (read == 0) return Status::InvalidArgument("kubeconfig: none of " + paths + " exists");
  const std::string shown = files.size() == 1 ? files[0] : paths;

  std::string ctx_name = context.empty() ? merged.current_context : context;
  if (ctx_name.empty()) {
    return Status::InvalidArgument("kubeconfig " + shown +
                                   ": no current-context; name a context (--context)");
  }
  auto ctx_it = merged.contexts.find(ctx_name);
  if (ctx_it == merged.contexts.end()) {
    return Status::InvalidArgument("kubeconfig " + shown + ": context \"" + ctx_name +
                                   "\" is not defined under contexts");
  }
  const Entry& ctx = ctx_it->second;
  auto cluster_name = Scalar(ctx.body, "cluster", ctx);
  if (!cluster_name.ok()) return cluster_name.status();
  auto user_name = Scalar(ctx.body, "user", ctx);
  if (!user_name.ok()) return user_name.status();
  auto ns = Scalar(ctx.body, "namespace", ctx);
  if (!ns.ok()) return ns.status();

  KubeConfig config;
  config.origin = "kubeconfig " + shown + " (context " + ctx_name + ")";
  if (!ns->empty()) config.ns = *ns;

  auto cl_it = merged.clusters.find(*cluster_name);
  if (cluster_name->empty() || cl_it == merged.clusters.end()) {
    return ErrorAt(ctx.file)(ctx.body["cluster"] ? ctx.body["cluster"].Mark() : ctx.body.Mark(),
                             ctx.path + ".cluster",
                             "cluster \"" + *cluster_name + "\" is not defined under clusters");
  }
  const Entry& cluster = cl_it->second;
  auto server = Scalar(cluster.body, "server", cluster);
  if (!server.ok()) return server.status();
  if (server->empty()) {
    return ErrorAt(cluster.file)(cluster.body.Mark(), cluster.path + ".server", "missing");
  }
  if (std::string problem = ServerUrlProblem(*server); !problem.empty()) {
    return ErrorAt(cluster.file)(cluster.body["server"].Mark(), cluster.path + ".server", problem);
  }
  config.server = *server;
  while (!config.server.empty() && config.server.back() == '/') config.server.pop_back();
  auto ca = PemFromFileOrData(cluster, "certificate-authority");
  if (!ca.ok()) return ca.status();
  config.ca_pem = *ca;
  if (YAML::Node insecure = cluster.body["insecure-skip-tls-verify"]; insecure && !insecure.IsNull()) {
    bool value = false;
    if (!insecure.IsScalar() || !YAML::convert<bool>::decode(insecure, value)) {
      return ErrorAt(cluster.file)(insecure.Mark(), cluster.path + ".insecure-skip-tls-verify",
                                   "expected true or false");
    }
    config.insecure_skip_tls_verify = value;
  }

  if (!user_name->empty()) {
    auto us_it = merged.users.find(*user_name);
    if (us_it == merged.users.end()) {
      return ErrorAt(ctx.file)(ctx.body["user"].Mark(), ctx.path + ".user",
                               "user \"" + *user_name + "\" is not defined under users");
    }
    const Entry& user = us_it->second;
    for (const char* unsupported : {"exec", "auth-provider", "username", "password"}) {
      if (YAML::Node n = user.body[unsupported]; n && !n.IsNull()) {
        return ErrorAt(user.file)(n.Mark(), user.path + "." + unsupported,
                                  "not supported by lanekeeper: use a token, a tokenFile or "
                                  "a client certificate");
      }
    }
    auto token = Scalar(user.body, "token", user);
    if (!token.ok()) return token.status();
    config.token = *token;
    auto token_file = Scalar(user.body, "tokenFile", user);
    if (!token_file.ok()) return token_file.status();
    config.token_file = Resolve(*token_file, user.file);
    if (!config.token_file.empty() && !fs::exists(config.token_file)) {
      return ErrorAt(user.file)(user.body["tokenFile"].Mark(), user.path + ".tokenFile",
                                config.token_file + " does not exist");
    }
    auto cert = PemFromFileOrData(user, "client-certificate");
    if (!cert.ok()) return cert.status();
    auto key = PemFromFileOrData(user, "client-key");
    if (!key.ok()) return key.status();
    if (cert->empty() != key->empty()) {
      return ErrorAt(user.file)(user.body.Mark(), user.path,
                                "client-certificate and client-key go together: one is missing");
    }
    config.client_cert_pem = *cert;
    config.client_key_pem = *key;
  }
  return config;
}

std::string ServiceAccountDir() {
  const char* env = std::getenv(kServiceAccountDirEnv);
  return env != nullptr && *env != '\0' ? env : kServiceAccountDir;
}

StatusOr<KubeConfig> InClusterConfig(const std::string& dir) {
  const char* host = std::getenv("KUBERNETES_SERVICE_HOST");
  const char* port = std::getenv("KUBERNETES_SERVICE_PORT");
  if (host == nullptr || *host == '\0' || port == nullptr || *port == '\0') {
    return Status::FailedPrecondition(
        "not running in a Kubernetes pod: KUBERNETES_SERVICE_HOST and KUBERNETES_SERVICE_PORT "
        "are not set");
  }
  KubeConfig config;
  std::string h = host;
  if (h.find(':') != std::string::npos) h = "[" + h + "]";  // IPv6
  config.server = "https://" + h + ":" + port;
  config.origin = "in-cluster service account (" + dir + ")";
  config.token_file = dir + "/token";
  if (!fs::exists(config.token_file)) {
    return Status::FailedPrecondition("in-cluster: " + config.token_file +
                                      " does not exist (is a service account token mounted?)");
  }
  auto ca = ReadWholeFile(dir + "/ca.crt", "in-cluster CA");
  if (!ca.ok()) return ca.status();
  config.ca_pem = *ca;
  if (auto ns = ReadWholeFile(dir + "/namespace", "namespace"); ns.ok()) {
    std::string n = *ns;
    while (!n.empty() && (n.back() == '\n' || n.back() == ' ')) n.pop_back();
    if (!n.empty()) config.ns = n;
  }
  return config;
}

StatusOr<KubeConfig> LoadKubeConfig(const std::string& kubeconfig_flag, const std::string& context) {
  if (!kubeconfig_flag.empty()) return LoadKubeconfig(kubeconfig_flag, context);
  if (const char* env = std::getenv("KUBECONFIG"); env != nullptr && *env != '\0') {
    return LoadKubeconfig(env, context);
  }
  if (const char* host = std::getenv("KUBERNETES_SERVICE_HOST"); host != nullptr && *host != '\0') {
    return InClusterConfig();
  }
  const char* home = std::getenv("HOME");
  std::string path = std::string(home ? home : "") + "/.kube/config";
  if (!fs::exists(path)) {
    return Status::FailedPrecondition(
        "no Kubernetes configuration: no --kubeconfig, no $KUBECONFIG, not in a pod, and no " +
        path);
  }
  return LoadKubeconfig(path, context);
}

}  // namespace lk::kube
