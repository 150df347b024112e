// Test job handler: forks a grandchild (of the worker) that ignores SIGTERM and sleeps two
// minutes, writes "<own pid> <grandchild pid>" to PIDFILE, then sleeps MS milliseconds and
// exits 0. Only a SIGKILL to the process group gets rid of the grandchild early.
// Usage: spawn_grandchild PIDFILE MS
#include <signal.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <thread>

int main(int argc, char** argv) {
  if (argc != 3) return 2;
  pid_t child = fork();
  if (child < 0) return 1;
  if (child == 0) {
    signal(SIGTERM, SIG_IGN);
    std::this_thread::sleep_for(std::chrono::minutes(2));
    _exit(0);
  }
  // Written whole and renamed, so a reader never sees half a line.
  std::string tmp = std::string(argv[1]) + ".tmp";
  FILE* f = std::fopen(tmp.c_str(), "w");
  if (f == nullptr) return 1;
  std::fprintf(f, "%d %d\n", static_cast<int>(getpid()), static_cast<int>(child));
  std::fclose(f);
  if (std::rename(tmp.c_str(), argv[1]) != 0) return 1;
  std::this_thread::sleep_for(std::chrono::milliseconds(std::atol(argv[2])));
  return 0;
}
