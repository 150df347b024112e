#include "tests/support/proc_scan.h"

#include <dirent.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <set>
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

namespace {

// State and parent of pid from one read of /proc/PID/stat; false when it is gone.
bool ReadStat(pid_t pid, char* state, pid_t* parent) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/stat");
  std::string line;
  if (!std::getline(in, line)) return false;
  // "pid (comm) S ppid ...": comm may hold spaces and parentheses; the last ')' ends it.
  size_t close = line.rfind(')');
  if (close == std::string::npos || close + 4 >= line.size()) return false;
  *state = line[close + 2];
  *parent = static_cast<pid_t>(std::atoi(line.c_str() + close + 4));
  return true;
}

}  // namespace

std::vector<pid_t> FindProcesses(const std::vector<std::string>& args) {
  std::vector<std::pair<pid_t, pid_t>> matched;  // (pid, parent)
  DIR* d = opendir("/proc");
  if (!d) {
    ADD_FAILURE() << "opendir /proc: " << std::strerror(errno);
    return {};
  }
  while (dirent* e = readdir(d)) {
    pid_t pid = std::atoi(e->d_name);
    if (pid <= 0) continue;
    auto argv = ProcessArgs(pid);
    if (argv.empty()) continue;
    bool all = std::all_of(args.begin(), args.end(), [&](const std::string& a) {
      return std::find(argv.begin(), argv.end(), a) != argv.end();
    });
    char state;
    pid_t parent;
    if (!all || !ReadStat(pid, &state, &parent) || state == 'Z' || state == 'X') continue;
    matched.emplace_back(pid, parent);
  }
  closedir(d);
  // A clone of a matching process carries its argv for a moment (a fork before exec;
  // LeakSanitizer's tracer while an instrumented process exits): it is the same process
  // as far as a test counting workers is concerned. Parent and state come from one read,
  // so a clone that exits mid-scan cannot turn into an orphan that counts twice.
  std::set<pid_t> pids;
  for (const auto& [pid, parent] : matched) pids.insert(pid);
  std::vector<pid_t> found;
  for (const auto& [pid, parent] : matched) {
    if (!pids.count(parent)) found.push_back(pid);
  }
  return found;
}

}  // namespace lk::testing

namespace lk::testing {

ProcessSampler::ProcessSampler(std::vector<std::string> args, std::chrono::milliseconds every)
    : args_(std::move(args)), every_(every), thread_([this] { Loop(); }) {}

ProcessSampler::~ProcessSampler() { Stop(); }

void ProcessSampler::Stop() {
  stop_ = true;
  if (thread_.joinable()) thread_.join();
}

void ProcessSampler::Loop() {
  while (!stop_) {
    std::vector<pid_t> found = FindProcesses(args_);
    ++samples_;
    if (!found.empty()) ++seeing_any_;
    if (found.size() > most_) {
      std::string seen;
      for (pid_t p : found) {
        seen += "\n  " + std::to_string(p) + ":";
        for (const auto& a : ProcessArgs(p)) seen += " " + a;
      }
      std::lock_guard<std::mutex> lock(mu_);
      most_ = found.size();
      most_seen_ = seen;
    }
    std::this_thread::sleep_for(every_);
  }
}

std::string ProcessSampler::Describe() const {
  std::lock_guard<std::mutex> lock(mu_);
  return std::to_string(samples_) + " samples, " + std::to_string(seeing_any_) +
         " saw a match, at most " + std::to_string(most_) + ":" + most_seen_;
}

int FlagOfTheOnlyProcess(const std::vector<std::string>& args, const std::string& flag) {
  auto found = FindProcesses(args);
  if (found.size() != 1) return -1;
  auto argv = ProcessArgs(found[0]);
  for (size_t i = 0; i + 1 < argv.size(); ++i) {
    if (argv[i] == flag) return std::atoi(argv[i + 1].c_str());
  }
  return -1;
}

}  // namespace lk::testing
