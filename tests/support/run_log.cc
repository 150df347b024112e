#include "tests/support/run_log.h"

#include <fstream>
#include <map>
#include <set>
#include <sstream>

namespace lk::testing {

std::vector<JobRun> RunLog::Runs() const {
  std::vector<JobRun> runs;
  std::ifstream in(path_);
  for (std::string line; std::getline(in, line);) {
    std::istringstream words(line);
    std::string what;
    JobRun r;
    int64_t ms = 0;
    if (!(words >> what >> r.id >> r.attempt >> r.pid >> r.parent >> ms)) continue;
    if (what == "start") {
      r.start_ms = ms;
      runs.push_back(r);
    } else if (what == "end") {
      for (auto& run : runs) {
        if (run.id == r.id && run.attempt == r.attempt && run.pid == r.pid) run.end_ms = ms;
      }
    }
  }
  return runs;
}

std::vector<JobRun> RunLog::RunsOf(const std::string& id) const {
  std::vector<JobRun> out;
  for (const auto& r : Runs()) {
    if (r.id == id) out.push_back(r);
  }
  return out;
}

bool RunLog::Started(const std::string& id) const { return !RunsOf(id).empty(); }

bool RunLog::Ended(const std::string& id) const {
  for (const auto& r : RunsOf(id)) {
    if (r.end_ms > 0) return true;
  }
  return false;
}

std::string RunLog::EachRanOnce(const std::vector<std::string>& ids) const {
  std::vector<JobRun> runs = Runs();
  std::map<std::string, int> count;
  for (const auto& r : runs) ++count[r.id];
  std::string problems;
  std::set<std::string> wanted(ids.begin(), ids.end());
  for (const auto& id : ids) {
    if (count[id] != 1) {
      problems += "job " + id + " ran " + std::to_string(count[id]) + " times; ";
    }
  }
  for (const auto& r : runs) {
    if (!wanted.count(r.id)) {
      problems += "job " + r.id + " ran, but no run of it was expected; ";
    } else if (r.end_ms == 0) {
      problems += "job " + r.id + " (pid " + std::to_string(r.pid) + ") never ended; ";
    }
  }
  if (problems.empty()) return "";
  std::ostringstream all;
  for (const auto& r : runs) {
    all << "\n  " << r.id << " attempt " << r.attempt << " pid " << r.pid << " start "
        << r.start_ms << " end " << r.end_ms;
  }
  return problems + "runs in " + path_ + ":" + all.str();
}

}  // namespace lk::testing
