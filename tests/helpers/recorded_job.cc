// Test job handler that leaves a record of every run, so that tests count runs instead of
// inferring them (tests/support/run_log.h reads it). It appends one line to LOG when it
// starts — after touching --rss-mb megabytes, so "started" also means "holds its memory" —
// and one when it finishes; ID and ATTEMPT come from the worker's environment
// (LANEKEEPER_JOB_ID, LANEKEEPER_JOB_ATTEMPT):
//   start ID ATTEMPT PID PARENT_PID UNIX_MS
//   end ID ATTEMPT PID PARENT_PID UNIX_MS
// (the parent is the worker that ran it).
// Each line is one write(2) to a file opened with O_APPEND, so lines of jobs running at
// once never interleave.
//
// Usage: recorded_job LOG [--rss-mb N] [--hold-until FILE] [--ms N] [--fail-attempts N]
//   --hold-until FILE  keeps running until FILE exists: a handshake, the test creates FILE
//                      when the job may finish (at most 5 minutes, then exit 3)
//   --ms N             keeps running N milliseconds
//   --fail-attempts N  attempts 1..N fail (exit 1, after the end line); later ones succeed
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <thread>

namespace {

long long NowMs() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

bool Append(const char* log, const char* what, const char* id, long attempt) {
  char line[256];
  int n = std::snprintf(line, sizeof(line), "%s %s %ld %d %d %lld\n", what, id, attempt,
                        static_cast<int>(getpid()), static_cast<int>(getppid()), NowMs());
  int fd = open(log, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0644);
  if (fd < 0) return false;
  bool ok = write(fd, line, n) == n;
  return close(fd) == 0 && ok;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2) return 2;
  const char* log = argv[1];
  long rss_mb = 0, ms = 0, fail_attempts = 0;
  const char* hold_until = nullptr;
  for (int i = 2; i + 1 < argc; i += 2) {
    std::string flag = argv[i];
    if (flag == "--rss-mb") rss_mb = std::atol(argv[i + 1]);
    else if (flag == "--hold-until") hold_until = argv[i + 1];
    else if (flag == "--ms") ms = std::atol(argv[i + 1]);
    else if (flag == "--fail-attempts") fail_attempts = std::atol(argv[i + 1]);
    else return 2;
  }
  const char* id = std::getenv("LANEKEEPER_JOB_ID");
  const char* attempt_text = std::getenv("LANEKEEPER_JOB_ATTEMPT");
  if (id == nullptr || attempt_text == nullptr) return 2;
  long attempt = std::atol(attempt_text);

  char* memory = nullptr;
  if (rss_mb > 0) {
    size_t bytes = static_cast<size_t>(rss_mb) * 1024 * 1024;
    memory = static_cast<char*>(std::malloc(bytes));
    if (memory == nullptr) return 1;
    // Every page touched, through a volatile pointer so the stores are not optimized away.
    volatile char* touch = memory;
    for (size_t i = 0; i < bytes; i += 4096) touch[i] = 1;
  }
  if (!Append(log, "start", id, attempt)) return 1;
  if (hold_until != nullptr) {
    auto give_up = std::chrono::steady_clock::now() + std::chrono::minutes(5);
    struct stat st;
    while (stat(hold_until, &st) != 0) {
      if (std::chrono::steady_clock::now() >= give_up) return 3;
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
  }
  std::this_thread::sleep_for(std::chrono::milliseconds(ms));
  std::free(memory);
  if (!Append(log, "end", id, attempt)) return 1;
  return attempt <= fail_attempts ? 1 : 0;
}
