// The corpus replay: a main() for a fuzz target's LLVMFuzzerTestOneInput, built with the
// normal compiler (no clang, no libFuzzer), that runs every file of the directories (or the
// files) it is given through the target, in name order. ctest runs it over
// tests/fuzz/corpus/TARGET as the entry Fuzz.TARGET, so every committed input — the seeds,
// what timed fuzzing added, every crash it found — is a regression test on every run.
// A broken promise aborts with the file's name on stderr; a directory without inputs fails
// (a replay of nothing proves nothing).
#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size);

namespace {

char g_current[4096] = "";

// The input a crash happened on; async-signal-safe.
extern "C" void NameTheInput(int sig) {
  const char prefix[] = "\nfuzz replay: crashed on ";
  (void)!write(2, prefix, sizeof(prefix) - 1);
  (void)!write(2, g_current, std::strlen(g_current));
  (void)!write(2, "\n", 1);
  signal(sig, SIG_DFL);
  raise(sig);
}

}  // namespace

int main(int argc, char** argv) {
  namespace fs = std::filesystem;
  std::vector<std::string> inputs;
  for (int i = 1; i < argc; ++i) {
    std::error_code ec;
    if (fs::is_directory(argv[i], ec)) {
      for (const auto& entry : fs::directory_iterator(argv[i], ec)) {
        if (entry.is_regular_file(ec)) inputs.push_back(entry.path().string());
      }
    } else {
      inputs.push_back(argv[i]);
    }
  }
  std::sort(inputs.begin(), inputs.end());
  if (inputs.empty()) {
    std::fprintf(stderr, "fuzz replay: no inputs in");
    for (int i = 1; i < argc; ++i) std::fprintf(stderr, " %s", argv[i]);
    std::fprintf(stderr, "\n");
    return 1;
  }
  for (int sig : {SIGABRT, SIGSEGV, SIGBUS, SIGFPE, SIGILL}) signal(sig, NameTheInput);
  for (const auto& path : inputs) {
    std::snprintf(g_current, sizeof(g_current), "%s", path.c_str());
    std::ifstream in(path, std::ios::binary);
    if (!in) {
      std::fprintf(stderr, "fuzz replay: cannot read %s\n", path.c_str());
      return 1;
    }
    std::stringstream bytes;
    bytes << in.rdbuf();
    const std::string data = bytes.str();
    LLVMFuzzerTestOneInput(reinterpret_cast<const uint8_t*>(data.data()), data.size());
  }
  std::printf("fuzz replay: %zu inputs, every promise held\n", inputs.size());
  return 0;
}
