// RunLog: the record tests/helpers/recorded_job leaves of every run of a job — which job,
// which attempt, which process, when it started and when (if ever) it ended — so that
// "exactly once" and "drains" are counted, not inferred from the job's final state.
// Not thread-safe.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace lk::testing {

struct JobRun {
  std::string id;
  int attempt = 0;
  int pid = 0;
  int parent = 0;  // the worker that ran it
  int64_t start_ms = 0;
  int64_t end_ms = 0;  // 0: it never ended (killed, or still running)
};

class RunLog {
 public:
  // The log at path (created by the first run; a missing file is no run yet).
  explicit RunLog(std::string path) : path_(std::move(path)) {}
  const std::string& path() const { return path_; }

  // Every run, in the order they started.
  std::vector<JobRun> Runs() const;
  std::vector<JobRun> RunsOf(const std::string& id) const;
  // Whether job id has a run that started (and, with ended, also ended).
  bool Started(const std::string& id) const;
  bool Ended(const std::string& id) const;
  // What is wrong with "each of ids ran exactly once, start to end, and nothing else
  // ran"; "" when nothing. Lists every run of the log otherwise.
  std::string EachRanOnce(const std::vector<std::string>& ids) const;

 private:
  std::string path_;
};

}  // namespace lk::testing
