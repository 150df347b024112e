// Fuzz target for kubeconfig files (controller/kube/kube_config.h): any text written as a
// kubeconfig, beside a ca.crt, a client.crt, a client.key and a token it may name, then read
// by LoadKubeconfig, which must return and keep what its header promises:
//   - a config that loads has an http:// or https:// server without a trailing '/', a
//     namespace, an origin naming the file, a client certificate only with its key, and a
//     token file that is absolute and exists;
//   - every refusal names the file;
//   - the same file listed twice ("F:F", merged) loads to the same config: the first file
//     that names an entry wins, so a repeat changes nothing.
// Inputs that name /dev, /proc or /sys are skipped: reading a device as a certificate
// blocks (as it does for kubectl), which is no finding.
// scripts/fuzz runs it with libFuzzer; ctest replays tests/fuzz/corpus/kubeconfig.
#include <stdlib.h>
#include <unistd.h>

#include <cstdint>
#include <filesystem>
#include <fstream>
#include <string>
#include <string_view>

#include "controller/kube/kube_config.h"
#include "tests/fuzz/fuzz_check.h"

namespace {

using lk::fuzz::Check;

// A directory of this process's own, removed at exit, with the files a kubeconfig may name.
class Scratch {
 public:
  Scratch() {
    char tmpl[] = "/tmp/lk-fuzz-kubeconfig-XXXXXX";
    if (mkdtemp(tmpl) == nullptr) lk::fuzz::Broken("the fuzzer cannot make its directory");
    dir_ = tmpl;
    for (const char* name : {"ca.crt", "client.crt", "client.key", "token"}) {
      std::ofstream(dir_ + "/" + name) << "-----BEGIN " << name << "-----\n";
    }
  }
  ~Scratch() {
    std::error_code ec;
    std::filesystem::remove_all(dir_, ec);
  }
  const std::string& dir() const { return dir_; }

 private:
  std::string dir_;
};

bool SameConfig(const lk::kube::KubeConfig& a, const lk::kube::KubeConfig& b) {
  return a.server == b.server && a.ca_pem == b.ca_pem &&
         a.insecure_skip_tls_verify == b.insecure_skip_tls_verify &&
         a.client_cert_pem == b.client_cert_pem && a.client_key_pem == b.client_key_pem &&
         a.token == b.token && a.token_file == b.token_file && a.ns == b.ns;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static Scratch scratch;
  const std::string text(reinterpret_cast<const char*>(data), size);
  for (std::string_view dev : {"/dev", "/proc", "/sys"}) {
    if (text.find(dev) != std::string::npos) return 0;
  }
  const std::string file = scratch.dir() + "/config";
  {
    std::ofstream out(file, std::ios::binary | std::ios::trunc);
    out << text;
    if (!out) lk::fuzz::Broken("the fuzzer cannot write " + file);
  }
  auto config = lk::kube::LoadKubeconfig(file);
  if (!config.ok()) {
    Check(config.status().message().find(file) != std::string::npos,
          "a refusal names the file: " + config.status().message());
    return 0;
  }
  Check(config->server.starts_with("https://") || config->server.starts_with("http://"),
        "a server is an http:// or https:// URL: " + config->server);
  Check(config->server.back() != '/', "a server comes without a trailing '/'");
  Check(!config->ns.empty(), "a config has a namespace");
  Check(config->origin.find(file) != std::string::npos, "the origin names the file");
  Check(config->client_cert_pem.empty() == config->client_key_pem.empty(),
        "a client certificate comes with its key");
  Check(config->token_file.empty() || (config->token_file.front() == '/' &&
                                       std::filesystem::exists(config->token_file)),
        "a token file is absolute and exists: " + config->token_file);
  auto twice = lk::kube::LoadKubeconfig(file + ":" + file);
  Check(twice.ok(), "the same file listed twice loads: " +
                        (twice.ok() ? std::string() : twice.status().message()));
  Check(SameConfig(*config, *twice), "the same file listed twice loads to the same config");
  return 0;
}
