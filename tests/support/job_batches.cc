#include "tests/support/job_batches.h"

#include <gtest/gtest.h>

#include <algorithm>

#include "tests/support/child_process.h"

namespace lk::testing {

std::vector<std::string> SubmitMany(JobQueue& queue, const std::string& name, int n) {
  std::vector<JobSpec> specs(n);
  for (auto& s : specs) s.name = name;
  auto r = queue.EnqueueBatch(specs);
  EXPECT_TRUE(r.ok()) << r.status().message();
  std::vector<std::string> ids;
  if (r.ok()) {
    for (auto& e : *r) ids.push_back(e.id);
  }
  return ids;
}

bool AllCompleted(QueueRecords& records, const std::vector<std::string>& ids,
                  std::chrono::milliseconds timeout) {
  return Eventually([&] {
    return std::all_of(ids.begin(), ids.end(), [&](const std::string& id) {
      return records.Get(id).state == JobState::kCompleted;
    });
  }, timeout);
}

std::set<int> RanBy(const RunLog& runs, const std::vector<std::string>& ids) {
  std::set<int> parents;
  for (const auto& id : ids) {
    for (const auto& run : runs.RunsOf(id)) parents.insert(run.parent);
  }
  return parents;
}

bool OwnedBy(QueueRecords& records, pid_t pid, std::chrono::milliseconds timeout,
             const std::string& role) {
  return Eventually([&] {
    auto owner = records.Owner();
    return owner && (role.empty() || owner->role == role) &&
           owner->holder.substr(owner->holder.rfind(':') + 1) == std::to_string(pid);
  }, timeout);
}

}  // namespace lk::testing
