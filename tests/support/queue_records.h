// QueueRecords: what a queue's roles and workers wrote to Redis, read for a test's
// assertions — the owner lease, the lifecycle events (the whole stream), the autopilot's
// record, the supervisors' published statuses, the live workers and the jobs.
//
// A read that fails (Redis down, an error reply, a record that does not parse, an events
// stream that was trimmed) is a test failure that names the Redis error — never "nothing
// there". `!Owner()`, `Events("crash").empty()` and `!Autopilot()` therefore pass only when
// Redis answered that there is none. After a failure the reader still returns the empty
// value, so that the test goes on to report what else is wrong; it is failed already.
// Does not own the queue or its connection. Not thread-safe (one connection).
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "controller/owner/autopilot_record.h"
#include "controller/owner/lifecycle_events.h"
#include "controller/owner/owner_lease.h"
#include "controller/owner/supervisor_status.h"
#include "worker/job_queue.h"
#include "worker/worker_registry.h"

namespace lk::testing {

class QueueRecords {
 public:
  // Reads over queue's connection. queue must outlive this object.
  explicit QueueRecords(JobQueue& queue) : queue_(queue) {}

  std::optional<OwnerRecord> Owner();
  // Every event of the queue's stream, oldest first. Fails the test when the stream was
  // trimmed (it holds ~10 000 events): a partial record proves nothing.
  std::vector<LifecycleEvent> Events();
  // Those of one type, and of one role ("supervisor", "autopilot") when role is not empty.
  std::vector<LifecycleEvent> Events(const std::string& type, const std::string& role = "");
  std::optional<AutopilotRecord> Autopilot();
  // The supervisors that published within kSupervisorStaleAfter.
  std::vector<SupervisorStatus> Supervisors();
  // The workers that heartbeat within max_age.
  std::vector<WorkerInfo> LiveWorkers(Millis max_age = Millis(5'000));

  // A job; a default Job (and a failed test) when it cannot be read.
  Job Get(const std::string& id);
  std::vector<Job> List(JobState state, int limit = 1000);
  // Jobs of one state and name.
  std::vector<Job> List(JobState state, const std::string& name);
  QueueStats Stats();

 private:
  template <typename T>
  T Value(StatusOr<T> read, const std::string& what, T empty = T());

  JobQueue& queue_;
  int failures_ = 0;
};

}  // namespace lk::testing
