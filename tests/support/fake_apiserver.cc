#include "tests/support/fake_apiserver.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <yaml-cpp/yaml.h>

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <regex>
#include <sstream>
#include <thread>

#include "tests/support/child_process.h"

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
std::string ReadLine(int fd, std::chrono::milliseconds timeout) {
  std::string line;
  auto deadline = std::chrono::steady_clock::now() + timeout;
  while (true) {
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
    if (left.count() <= 0) return "";
    pollfd p{fd, POLLIN, 0};
    if (::poll(&p, 1, static_cast<int>(left.count())) <= 0) continue;
    char c;
    ssize_t n = ::read(fd, &c, 1);
    if (n <= 0) return "";
    if (c == '\n') return line;
    line.push_back(c);
  }
}

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
  if (mkdtemp(tmpl) == nullptr) return Status::Internal("mkdtemp failed");
  fake->dir_ = tmpl;
  LK_RETURN_IF_ERROR(fake->Launch(0));
  return fake;
}

Status FakeApiServer::Launch(int port) {
  std::vector<std::string> args = {"node", SourceDir() + "/tests/kube/fake-apiserver.js", "--port",
                                   std::to_string(port)};
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

  int in_pipe[2], out_pipe[2];
  if (::pipe2(in_pipe, O_CLOEXEC) != 0 || ::pipe2(out_pipe, O_CLOEXEC) != 0) {
    return Status::Internal("pipe failed");
  }
  const std::string err_path = dir_ + "/stderr";
  // Everything the child needs is made before fork(): other threads (cpprestsdk's) may hold
  // the allocator's lock at that moment.
  std::vector<char*> argv;
  for (auto& a : args) argv.push_back(a.data());
  argv.push_back(nullptr);
  const ForkOrigin origin = ForkOrigin::Here();
  pid_t pid = fork();
  if (pid == 0) {
    ::setpgid(0, 0);  // its own group: Kill() takes whatever it started with it
    origin.ApplyInChild();
    int err = ::open(err_path.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0644);
    ::dup2(in_pipe[0], 0);
    ::dup2(out_pipe[1], 1);
    ::dup2(err, 2);
    ::execvp("node", argv.data());
    _exit(127);
  }
  ::close(in_pipe[0]);
  ::close(out_pipe[1]);
  pid_ = pid;
  stdin_fd_ = in_pipe[1];  // held open: the fake stops at EOF, i.e. when we are gone
  std::string line = ReadLine(out_pipe[0], std::chrono::seconds(30));
  ::close(out_pipe[0]);
  auto j = nlohmann::json::parse(line, nullptr, false);
  if (j.is_discarded() || !j.contains("url")) {
    Kill();
    return Status::Unavailable("the fake API server (node " + args[1] +
                               ") did not start; is node installed and tests/kube/node_modules "
                               "there (scripts/setup)? Its stderr: " + Log());
  }
  url_ = j["url"].get<std::string>();
  port_ = std::stoi(url_.substr(url_.rfind(':') + 1));
  return Status::OK();
}

std::string FakeApiServer::ca_file() const { return options_.tls ? dir_ + "/tls/ca.crt" : ""; }
std::string FakeApiServer::client_cert_file() const { return options_.tls ? dir_ + "/tls/client.crt" : ""; }
std::string FakeApiServer::client_key_file() const { return options_.tls ? dir_ + "/tls/client.key" : ""; }
std::string FakeApiServer::Log() const { return Slurp(dir_ + "/stderr"); }

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
  if (pid_ > 0) {
    ::kill(-pid_, SIGKILL);
    ::kill(pid_, SIGKILL);
    ::waitpid(pid_, nullptr, 0);
    pid_ = -1;
  }
  if (stdin_fd_ >= 0) {
    ::close(stdin_fd_);
    stdin_fd_ = -1;
  }
}

Status FakeApiServer::Restart() {
  Kill();
  // The port was just released; a few tries cover a slow kernel.
  Status last;
  for (int attempt = 0; attempt < 20; ++attempt) {
    last = Launch(port_);
    if (last.ok()) return last;
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  return last;
}

FakeApiServer::~FakeApiServer() {
  if (pid_ > 0) {
    // SIGTERM first: the fake stops what it started (a fake kubelet's pods); then whatever
    // is left of its group goes with Kill().
    ::kill(pid_, SIGTERM);
    if (Eventually([&] { return ::waitpid(pid_, nullptr, WNOHANG) == pid_; }, std::chrono::seconds(5))) {
      ::kill(-pid_, SIGKILL);
      pid_ = -1;
    }
  }
  Kill();
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
