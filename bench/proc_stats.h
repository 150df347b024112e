// What the benchmarks read of a process in /proc: its CPU time and its /proc/PID/status
// fields (VmRSS, VmHWM, Threads). Header-only: each bench/*.cc is a program of its own.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <fstream>
#include <sstream>
#include <string>

namespace lk::bench {

// utime + stime of pid (this process only, not its children), in clock ticks; -1 if gone.
inline int64_t CpuTicks(pid_t pid) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/stat");
  std::string line;
  if (!std::getline(in, line)) return -1;
  size_t close = line.rfind(')');
  if (close == std::string::npos) return -1;
  std::istringstream rest(line.substr(close + 2));
  std::string f;
  int64_t utime = 0, stime = 0;
  // Field 3 is the state; utime is field 14, stime 15.
  for (int i = 3; i <= 15 && rest >> f; ++i) {
    if (i == 14) utime = std::stoll(f);
    if (i == 15) stime = std::stoll(f);
  }
  return utime + stime;
}

// A "Key:" line of /proc/PID/status as a number (kB for the Vm* keys); -1 if absent.
inline int64_t StatusField(pid_t pid, const std::string& key) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/status");
  for (std::string line; std::getline(in, line);) {
    if (line.rfind(key + ":", 0) == 0) return std::stoll(line.substr(key.size() + 1));
  }
  return -1;
}

}  // namespace lk::bench
