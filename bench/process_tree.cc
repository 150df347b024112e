// What one RSS sample of a worker's process tree costs (RssOfProcessTree), both ways.
//
//   bench_process_tree [--calls N] [--host-processes M]
//
// The measured tree is a worker-like process with one child (a handler). Beside it, M idle
// processes stand for the rest of a busy host: walking down the /proc/PID/task/*/children
// lists does not see them, scanning /proc reads each one. A supervisor samples every
// 250 ms and each worker every heartbeat, one of each per lane, so per host the cost is
// about lanes × 8 samples a second × the time of one.
// Prints one JSON line per walk, then the ratio.
#include <signal.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <iostream>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "worker/process_tree.h"

namespace {

// A process that waits for SIGKILL, in a process group of its own; with a child of its own
// (in that group) when with_child.
pid_t SpawnIdle(bool with_child) {
  pid_t pid = fork();
  if (pid == 0) {
    setpgid(0, 0);
    if (with_child && fork() == 0) {
      pause();
      _exit(0);
    }
    pause();
    _exit(0);
  }
  return pid;
}

int ProcessesOnHost() {
  int n = 0;
  FILE* f = popen("ls /proc | grep -c '^[0-9]'", "r");
  if (f && fscanf(f, "%d", &n) != 1) n = -1;
  if (f) pclose(f);
  return n;
}

}  // namespace

int main(int argc, char** argv) {
  int calls = 2000;
  int host_processes = 0;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    if (a == "--calls" && i + 1 < argc) {
      calls = std::atoi(argv[++i]);
    } else if (a == "--host-processes" && i + 1 < argc) {
      host_processes = std::atoi(argv[++i]);
    } else {
      std::cerr << "usage: bench_process_tree [--calls N] [--host-processes M]\n";
      return 2;
    }
  }
  if (calls < 1 || host_processes < 0) {
    std::cerr << "bench_process_tree: --calls must be at least 1, --host-processes at least 0\n";
    return 2;
  }
  // Orphans (the root's child, once the root is killed) come back to us to be reaped.
  prctl(PR_SET_CHILD_SUBREAPER, 1);
  std::vector<pid_t> spawned = {SpawnIdle(true)};
  const pid_t root = spawned[0];
  for (int i = 0; i < host_processes; ++i) spawned.push_back(SpawnIdle(false));
  usleep(200'000);  // let the children fork theirs
  const int on_host = ProcessesOnHost();

  double us[2] = {0, 0};
  int i = 0;
  for (auto walk : {lk::ProcessWalk::kChildrenLists, lk::ProcessWalk::kScanProc}) {
    int64_t rss = 0;
    auto start = std::chrono::steady_clock::now();
    for (int c = 0; c < calls; ++c) rss = lk::RssOfProcessTree(root, walk);
    us[i] = std::chrono::duration<double, std::micro>(std::chrono::steady_clock::now() - start)
                .count() / calls;
    std::cout << nlohmann::json{{"bench", "rss_of_process_tree"},
                                {"walk", walk == lk::ProcessWalk::kScanProc ? "scan_proc"
                                                                             : "children_lists"},
                                {"calls", calls},
                                {"us_per_call", std::round(us[i] * 10) / 10},
                                {"tree_rss_mb", rss / (1024 * 1024)},
                                {"processes_on_host", on_host}}
                     .dump()
              << std::endl;
    ++i;
  }
  std::cout << nlohmann::json{{"bench", "rss_of_process_tree_ratio"},
                              {"scan_proc_over_children_lists", std::round(us[1] / us[0] * 10) / 10},
                              {"processes_on_host", on_host}}
                   .dump()
            << std::endl;
  for (pid_t p : spawned) kill(-p, SIGKILL);
  while (waitpid(-1, nullptr, 0) > 0) {
  }
  return 0;
}
