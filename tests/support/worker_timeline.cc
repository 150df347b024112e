#include "tests/support/worker_timeline.h"

#include <algorithm>
#include <cstdlib>
#include <map>

namespace lk::testing {

namespace {

int64_t Field(const LifecycleEvent& e, const std::string& name) {
  auto it = e.fields.find(name);
  return it == e.fields.end() ? -1 : std::strtoll(it->second.c_str(), nullptr, 10);
}

struct OpenWorker {
  int64_t epoch;
  std::string holder;
  size_t at;  // index of its worker_started
};

// The violation at index at, with the events from the earliest of related - 2 to at + 2.
std::string Violation(const std::vector<LifecycleEvent>& events, size_t at, size_t related,
                      const std::string& what) {
  size_t from = std::min(at, related);
  from = from >= 2 ? from - 2 : 0;
  from = std::max(from, at >= 30 ? at - 30 : size_t{0});
  return "event #" + std::to_string(at) + ": " + what + "\n" +
         DescribeEvents(events, from, std::min(events.size(), at + 3));
}

std::vector<int64_t> Gaps(const std::vector<LifecycleEvent>& events, const std::string& from) {
  std::vector<int64_t> gaps;
  int64_t since = -1;
  for (const auto& e : events) {
    if (e.type == "worker_started" && since >= 0) {
      gaps.push_back(e.ts_ms - since);
      since = -1;
    }
    if (e.type == from) since = e.ts_ms;
  }
  return gaps;
}

}  // namespace

std::string DescribeEvents(const std::vector<LifecycleEvent>& events, size_t from, size_t to) {
  std::string out;
  const int64_t t0 = events.empty() ? 0 : events.front().ts_ms;
  for (size_t i = from; i < std::min(to, events.size()); ++i) {
    const auto& e = events[i];
    out += "  #" + std::to_string(i) + " +" + std::to_string(e.ts_ms - t0) + "ms " + e.type +
           " role=" + e.role + " holder=" + e.holder;
    for (const auto& [k, v] : e.fields) out += " " + k + "=" + v;
    out += "\n";
  }
  return out;
}

std::string FirstSecondWorker(const std::vector<LifecycleEvent>& events, OneAtATime rule,
                              bool allow_none) {
  const bool strict = rule == OneAtATime::kStrict;
  std::map<int64_t, OpenWorker> open;  // by worker pid
  int64_t newest_epoch = 0;
  size_t starts = 0;
  for (size_t i = 0; i < events.size(); ++i) {
    const LifecycleEvent& e = events[i];
    if (e.type == "lease_acquired") {
      int64_t epoch = Field(e, "epoch");
      for (const auto& [pid, w] : open) {
        if (strict && w.holder != e.holder) {
          return Violation(events, i, w.at,
                           e.holder + " took the lease (epoch " + std::to_string(epoch) +
                               ") while worker " + std::to_string(pid) + " of " + w.holder +
                               " (epoch " + std::to_string(w.epoch) + ", #" +
                               std::to_string(w.at) + ") had not exited");
        }
      }
      newest_epoch = std::max(newest_epoch, epoch);
    } else if (e.type == "worker_started") {
      ++starts;
      int64_t pid = Field(e, "worker_pid"), epoch = Field(e, "epoch");
      if (pid <= 0 || epoch < 0) {
        return Violation(events, i, i, "worker_started without worker_pid or epoch");
      }
      if (epoch < newest_epoch) {
        return Violation(events, i, i,
                         "worker " + std::to_string(pid) + " started with epoch " +
                             std::to_string(epoch) + ", older than the current epoch " +
                             std::to_string(newest_epoch));
      }
      for (const auto& [other, w] : open) {
        if (w.epoch == epoch || strict) {
          return Violation(events, i, w.at,
                           "worker " + std::to_string(pid) + " (epoch " + std::to_string(epoch) +
                               ") started while worker " + std::to_string(other) + " (epoch " +
                               std::to_string(w.epoch) + ", #" + std::to_string(w.at) +
                               ") had not exited" +
                               (w.epoch == epoch ? ": two workers of one epoch both claim" : ""));
        }
      }
      open[pid] = OpenWorker{epoch, e.holder, i};
      newest_epoch = epoch;
    } else if (e.type == "worker_exited") {
      int64_t pid = Field(e, "worker_pid");
      if (open.erase(pid) == 0) {
        return Violation(events, i, i,
                         "worker_exited of worker " + std::to_string(pid) +
                             " that never started: the record is incomplete");
      }
    }
  }
  if (starts == 0 && !allow_none) {
    return "no worker_started among the " + std::to_string(events.size()) +
           " events: there was nothing to check\n" + DescribeEvents(events);
  }
  return "";
}

std::vector<int64_t> ExitToStartGaps(const std::vector<LifecycleEvent>& events) {
  return Gaps(events, "worker_exited");
}

std::vector<int64_t> StartToStartGaps(const std::vector<LifecycleEvent>& events) {
  return Gaps(events, "worker_started");
}

}  // namespace lk::testing
