// Finding real processes by their command line, for tests that count workers: a second
// witness beside the lifecycle events (tests/support/worker_timeline.h), which are the proof.
#pragma once

#include <sys/types.h>

#include <atomic>
#include <chrono>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

namespace lk::testing {

// Live (non-zombie) processes whose argv contains every entry of args as a whole argument,
// in any order. E.g. {"jobs", "work", "--queue", "q1"} finds q1's workers. A process whose
// parent also matches (a fork before exec, LeakSanitizer's tracer) is not listed: it is a
// clone of one that is.
std::vector<pid_t> FindProcesses(const std::vector<std::string>& args);

// argv of pid (empty if gone).
std::vector<std::string> ProcessArgs(pid_t pid);

// The number after `flag` in the argv of the one live process matching args (e.g. a
// queue's worker's --concurrency); -1 when not exactly one matches or it has no such flag.
int FlagOfTheOnlyProcess(const std::vector<std::string>& args, const std::string& flag);

// ProcessSampler: from its construction until Stop(), a thread of its own looks for the
// processes matching args (FindProcesses) every few milliseconds and remembers how many it
// saw at most, and which. Start it before launching what is watched: it then watches from
// the first instant, not from the moment the test first sees a worker. A sampler that took
// no sample, or never saw a match when one was expected, proves nothing: check samples()
// and samples_seeing_any() beside most().
// Thread-safe.
class ProcessSampler {
 public:
  explicit ProcessSampler(std::vector<std::string> args,
                          std::chrono::milliseconds every = std::chrono::milliseconds(5));
  ~ProcessSampler();
  ProcessSampler(const ProcessSampler&) = delete;
  ProcessSampler& operator=(const ProcessSampler&) = delete;

  void Stop();
  int samples() const { return samples_; }
  int samples_seeing_any() const { return seeing_any_; }
  size_t most() const { return most_; }
  // The processes of the sample that saw the most, with their argv.
  std::string Describe() const;

 private:
  void Loop();
  const std::vector<std::string> args_;
  const std::chrono::milliseconds every_;
  std::atomic<bool> stop_{false};
  std::atomic<int> samples_{0};
  std::atomic<int> seeing_any_{0};
  std::atomic<size_t> most_{0};
  mutable std::mutex mu_;
  std::string most_seen_;
  std::thread thread_;
};

}  // namespace lk::testing
