#include "tests/support/fake_apiserver.h"

#include <signal.h>
#include <unistd.h>

#include <yaml-cpp/yaml.h>

#include <chrono>
#include <cerrno>
#include <cstring>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <regex>
#include <sstream>
#include <thread>

#include "tests/support/child_process.h"
#include "tests/support/loopback_port.h"

namespace lk::testing {

namespace {

std::string Slurp(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

std::string Base64(const std::string& in) {
  static const char* kAlphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  std::string out;
  size_t i = 0;
  for (; i + 2 < in.size(); i += 3) {
    unsigned v = (static_cast<unsigned char>(in[i]) << 16) | (static_cast<unsigned char>(in[i + 1]) << 8) |
                 static_cast<unsigned char>(in[i + 2]);
    for (int s = 18; s >= 0; s -= 6) out.push_back(kAlphabet[(v >> s) & 63]);
  }
  if (i < in.size()) {
    unsigned v = static_cast<unsigned char>(in[i]) << 16;
    if (i + 1 < in.size()) v |= static_cast<unsigned char>(in[i + 1]) << 8;
    out.push_back(kAlphabet[(v >> 18) & 63]);
    out.push_back(kAlphabet[(v >> 12) & 63]);
    out.push_back(i + 1 < in.size() ? kAlphabet[(v >> 6) & 63] : '=');
    out.push_back('=');
  }
  return out;
}

// Reads one line from fd within timeout ("" on timeout or EOF).

nlohmann::json YamlToJson(const YAML::Node& n) {
  switch (n.Type()) {
    case YAML::NodeType::Map: {
      nlohmann::json o = nlohmann::json::object();
      for (const auto& kv : n) o[kv.first.as<std::string>()] = YamlToJson(kv.second);
      return o;
    }
    case YAML::NodeType::Sequence: {
      nlohmann::json a = nlohmann::json::array();
      for (const auto& item : n) a.push_back(YamlToJson(item));
      return a;
    }
    case YAML::NodeType::Scalar: {
      const std::string& s = n.Scalar();
      if (n.Tag() == "!") return s;  // quoted
      static const std::regex kInt("[-+]?[0-9]+"), kFloat("[-+]?([0-9]*\\.[0-9]+|[0-9]+\\.[0-9]*)([eE][-+]?[0-9]+)?");
      if (s == "true" || s == "True") return true;
      if (s == "false" || s == "False") return false;
      if (s == "null" || s == "~" || s.empty()) return nullptr;
      if (std::regex_match(s, kInt)) return std::stoll(s);
      if (std::regex_match(s, kFloat)) return std::stod(s);
      return s;
    }
    default: return nullptr;
  }
}

}  // namespace

std::string SourceDir() {
  if (const char* env = std::getenv("LANEKEEPER_SOURCE_DIR"); env != nullptr && *env != '\0') return env;
  // The build directory (where the lanekeeper binary is) has CMakeCache.txt, which names the
  // source directory. (__FILE__ would not do: ccache's base_dir makes it relative.)
  const auto cache = std::filesystem::path(LanekeeperBinary()).parent_path() / "CMakeCache.txt";
  std::istringstream lines(Slurp(cache.string()));
  const std::string key = "lanekeeper_SOURCE_DIR:STATIC=";
  for (std::string line; std::getline(lines, line);) {
    if (line.rfind(key, 0) == 0) return line.substr(key.size());
  }
  return std::filesystem::current_path().string();
}

StatusOr<std::unique_ptr<FakeApiServer>> FakeApiServer::Start(const FakeApiServerOptions& options) {
  std::unique_ptr<FakeApiServer> fake(new FakeApiServer());
  fake->options_ = options;
  char tmpl[] = "/tmp/lk-fake-apiserver-XXXXXX";
  if (mkdtemp(tmpl) == nullptr) {
    return Status::Internal(std::string("mkdtemp: ") + std::strerror(errno));
  }
  fake->dir_ = tmpl;
  // Held for the fake's life, restarts included: nobody else can take it meanwhile.
  auto port = LoopbackPort::ForServer();
  if (!port.ok()) return port.status();
  fake->port_ = std::move(port).value();
  LK_RETURN_IF_ERROR(fake->Launch());
  return fake;
}

Status FakeApiServer::Launch() {
  std::vector<std::string> args = {"node", SourceDir() + "/tests/kube/fake-apiserver.js", "--port",
                                   std::to_string(port_->port())};
  if (options_.tls) {
    args.insert(args.end(), {"--tls-dir", dir_ + "/tls"});
  }
  if (!options_.token.empty()) args.insert(args.end(), {"--token", options_.token});
  if (options_.client_cert_required) args.push_back("--client-cert-required");
  if (options_.history > 0) args.insert(args.end(), {"--history", std::to_string(options_.history)});
  if (options_.bookmark_interval_ms > 0) {
    args.insert(args.end(), {"--bookmark-interval", std::to_string(options_.bookmark_interval_ms)});
  }
  if (options_.expired_watch_status) args.push_back("--expired-watch-status");
  args.insert(args.end(), options_.extra_args.begin(), options_.extra_args.end());

  auto started = ChildProcess::Start(args);
  if (!started.ok()) return started.status();
  process_ = std::move(started).value();
  // Its first line on stdout: {"url":"http://127.0.0.1:PORT"}.
  bool up = process_->WaitForOutput("\"url\"", std::chrono::seconds(30));
  std::string out = process_->Stdout();
  auto j = nlohmann::json::parse(out.substr(0, out.find('\n')), nullptr, false);
  if (!up || j.is_discarded() || !j.contains("url")) {
    Kill();
    return Status::Unavailable("the fake API server (node " + args[1] +
                               ") did not start; is node installed and tests/kube/node_modules "
                               "there (scripts/setup)? Its stderr: " + Log());
  }
  url_ = j["url"].get<std::string>();
  return Status::OK();
}

std::string FakeApiServer::ca_file() const { return options_.tls ? dir_ + "/tls/ca.crt" : ""; }
std::string FakeApiServer::client_cert_file() const { return options_.tls ? dir_ + "/tls/client.crt" : ""; }
std::string FakeApiServer::client_key_file() const { return options_.tls ? dir_ + "/tls/client.key" : ""; }
std::string FakeApiServer::Log() const { return process_ ? process_->Stderr() : last_log_; }

std::string FakeApiServer::WriteKubeconfig(const KubeconfigUser& user, const std::string& name) const {
  YAML::Emitter out;
  out << YAML::BeginMap << YAML::Key << "apiVersion" << YAML::Value << "v1" << YAML::Key << "kind"
      << YAML::Value << "Config" << YAML::Key << "current-context" << YAML::Value << "fake";
  out << YAML::Key << "clusters" << YAML::Value << YAML::BeginSeq << YAML::BeginMap << YAML::Key
      << "name" << YAML::Value << "fake" << YAML::Key << "cluster" << YAML::Value << YAML::BeginMap
      << YAML::Key << "server" << YAML::Value << url_;
  if (options_.tls && user.insecure) {
    out << YAML::Key << "insecure-skip-tls-verify" << YAML::Value << true;
  } else if (options_.tls && user.ca_data) {
    out << YAML::Key << "certificate-authority-data" << YAML::Value << Base64(Slurp(ca_file()));
  } else if (options_.tls) {
    out << YAML::Key << "certificate-authority" << YAML::Value << ca_file();
  }
  out << YAML::EndMap << YAML::EndMap << YAML::EndSeq;
  out << YAML::Key << "contexts" << YAML::Value << YAML::BeginSeq << YAML::BeginMap << YAML::Key
      << "name" << YAML::Value << "fake" << YAML::Key << "context" << YAML::Value << YAML::BeginMap
      << YAML::Key << "cluster" << YAML::Value << "fake" << YAML::Key << "user" << YAML::Value
      << "test" << YAML::Key << "namespace" << YAML::Value << user.ns << YAML::EndMap << YAML::EndMap
      << YAML::EndSeq;
  out << YAML::Key << "users" << YAML::Value << YAML::BeginSeq << YAML::BeginMap << YAML::Key << "name"
      << YAML::Value << "test" << YAML::Key << "user" << YAML::Value << YAML::BeginMap;
  if (!user.token.empty()) out << YAML::Key << "token" << YAML::Value << user.token;
  if (!user.token_file.empty()) out << YAML::Key << "tokenFile" << YAML::Value << user.token_file;
  if (user.client_cert_files) {
    out << YAML::Key << "client-certificate" << YAML::Value << client_cert_file() << YAML::Key
        << "client-key" << YAML::Value << client_key_file();
  }
  if (user.client_cert_data) {
    out << YAML::Key << "client-certificate-data" << YAML::Value << Base64(Slurp(client_cert_file()))
        << YAML::Key << "client-key-data" << YAML::Value << Base64(Slurp(client_key_file()));
  }
  out << YAML::EndMap << YAML::EndMap << YAML::EndSeq << YAML::EndMap;
  const std::string path = dir_ + "/" + name;
  std::ofstream(path) << out.c_str() << "\n";
  return path;
}

void FakeApiServer::Kill() {
  if (!process_) return;
  process_->SignalGroup(SIGKILL);
  process_->Wait(std::chrono::seconds(10));
  last_log_ = process_->Stderr();
  process_.reset();
}

Status FakeApiServer::Restart() {
  Kill();
  return Launch();
}

FakeApiServer::~FakeApiServer() {
  if (process_ && process_->Running()) {
    // SIGTERM first: the fake stops what it started (a fake kubelet's pods); whatever is
    // left of its group goes with the ChildProcess.
    process_->Signal(SIGTERM);
    process_->Wait(std::chrono::seconds(5));
  }
  process_.reset();
  std::error_code ec;
  std::filesystem::remove_all(dir_, ec);
}

StatusOr<std::vector<nlohmann::json>> ReadYamlManifests(const std::string& path) {
  std::vector<nlohmann::json> out;
  try {
    for (const YAML::Node& doc : YAML::LoadAllFromFile(path)) {
      if (!doc.IsNull()) out.push_back(YamlToJson(doc));
    }
  } catch (const YAML::Exception& e) {
    return Status::InvalidArgument(path + ": " + e.what());
  }
  return out;
}

}  // namespace lk::testing
