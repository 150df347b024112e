#include "tests/support/proc_scan.h"

#include <dirent.h>

#include <algorithm>
#include <cstdlib>
#include <fstream>
#include <sstream>

#include "tests/support/child_process.h"

namespace lk::testing {

std::vector<std::string> ProcessArgs(pid_t pid) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/cmdline", std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  std::string raw = ss.str();
  std::vector<std::string> out;
  size_t start = 0;
  for (size_t i = 0; i < raw.size(); ++i) {
    if (raw[i] == '\0') {
      out.push_back(raw.substr(start, i - start));
      start = i + 1;
    }
  }
  return out;
}

std::vector<pid_t> FindProcesses(const std::vector<std::string>& args) {
  std::vector<pid_t> found;
  DIR* d = opendir("/proc");
  if (!d) return found;
  while (dirent* e = readdir(d)) {
    pid_t pid = std::atoi(e->d_name);
    if (pid <= 0) continue;
    auto argv = ProcessArgs(pid);
    if (argv.empty()) continue;
    bool all = std::all_of(args.begin(), args.end(), [&](const std::string& a) {
      return std::find(argv.begin(), argv.end(), a) != argv.end();
    });
    if (all && ProcessAlive(pid)) found.push_back(pid);
  }
  closedir(d);
  return found;
}

}  // namespace lk::testing
