#include "tests/support/queue_records.h"

#include <gtest/gtest.h>

namespace lk::testing {

namespace {

// One failure per reading is enough to fail the test; a wait that polls a broken
// connection for seconds would otherwise repeat it a thousand times.
constexpr int kReportedFailures = 3;

}  // namespace

template <typename T>
T QueueRecords::Value(StatusOr<T> read, const std::string& what, T empty) {
  if (read.ok()) return std::move(read).value();
  if (++failures_ <= kReportedFailures) {
    ADD_FAILURE() << "cannot read " << what << " of queue " << queue_.name()
                  << " from Redis: " << read.status().message();
  }
  return empty;
}

std::optional<OwnerRecord> QueueRecords::Owner() {
  return Value(ReadOwner(queue_.connection(), queue_.name()), "the owner lease");
}

std::vector<LifecycleEvent> QueueRecords::Events() {
  // How many events the stream ever took and how many it holds: when they differ, the
  // oldest were trimmed away (XADD MAXLEN) and the record is not whole.
  const std::string key = JobQueue::KeyPrefix(queue_.name()) + "events";
  auto info = queue_.connection().Command({"XINFO", "STREAM", key});
  if (!info.ok()) return Value<std::vector<LifecycleEvent>>(info.status(), "the events");
  int64_t length = 0, added = 0;
  if (info->is_error()) {
    if (info->str.find("no such key") == std::string::npos) {
      return Value<std::vector<LifecycleEvent>>(
          Status::Internal("XINFO STREAM " + key + ": " + info->str), "the events");
    }
  } else {
    for (size_t i = 0; i + 1 < info->elements.size(); i += 2) {
      if (info->elements[i].str == "length") length = info->elements[i + 1].AsInt();
      if (info->elements[i].str == "entries-added") added = info->elements[i + 1].AsInt();
    }
  }
  if (added != length) {
    return Value<std::vector<LifecycleEvent>>(
        Status::Internal("the stream " + key + " was trimmed: it holds " +
                         std::to_string(length) + " of the " + std::to_string(added) +
                         " events added"),
        "the events");
  }
  auto events = Value(ReadEvents(queue_.connection(), queue_.name(), 0,
                                 static_cast<int>(2 * kEventStreamMaxLen)),
                      "the events");
  if (static_cast<int64_t>(events.size()) < length) {
    return Value<std::vector<LifecycleEvent>>(
        Status::Internal("read " + std::to_string(events.size()) + " of the " +
                         std::to_string(length) + " events in " + key),
        "the events");
  }
  return events;
}

std::vector<LifecycleEvent> QueueRecords::Events(const std::string& type,
                                                 const std::string& role) {
  std::vector<LifecycleEvent> out;
  for (auto& e : Events()) {
    if (e.type == type && (role.empty() || e.role == role)) out.push_back(std::move(e));
  }
  return out;
}

std::optional<AutopilotRecord> QueueRecords::Autopilot() {
  return Value(ReadAutopilotRecord(queue_.connection(), queue_.name()), "the autopilot record");
}

std::vector<SupervisorStatus> QueueRecords::Supervisors() {
  return Value(ReadLiveSupervisors(queue_.connection(), queue_.name()), "the supervisors");
}

std::vector<WorkerInfo> QueueRecords::LiveWorkers(Millis max_age) {
  return Value(ListLiveWorkers(queue_.connection(), queue_.name(), max_age), "the live workers");
}

Job QueueRecords::Get(const std::string& id) { return Value(queue_.Get(id), "job " + id); }

std::vector<Job> QueueRecords::List(JobState state, int limit) {
  return Value(queue_.List(state, limit), std::string("the ") + JobStateName(state) + " jobs");
}

std::vector<Job> QueueRecords::List(JobState state, const std::string& name) {
  std::vector<Job> out;
  for (auto& j : List(state)) {
    if (j.name == name) out.push_back(std::move(j));
  }
  return out;
}

QueueStats QueueRecords::Stats() { return Value(queue_.Stats(), "the counts"); }

}  // namespace lk::testing
