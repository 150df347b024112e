// JobBatches: submit a batch of jobs and read back who ran them and who owns the queue —
// what the tests of exactly-one-worker and fencing ask of a queue, in one place.
// Reads through QueueRecords (a failed read fails the test). Not thread-safe.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <set>
#include <string>
#include <vector>

#include "tests/support/queue_records.h"
#include "tests/support/run_log.h"
#include "worker/job_queue.h"

namespace lk::testing {

// n jobs named name in one EnqueueBatch; their ids (a failure fails the test).
std::vector<std::string> SubmitMany(JobQueue& queue, const std::string& name, int n);
// Waits until every job of ids is completed.
bool AllCompleted(QueueRecords& records, const std::vector<std::string>& ids,
                  std::chrono::milliseconds timeout);
// The worker pids that ran the jobs of ids (the parent of each recorded run).
std::set<int> RanBy(const RunLog& runs, const std::vector<std::string>& ids);
// Waits until the queue's owner lease is held by pid (as "host:pid"), in role unless empty.
bool OwnedBy(QueueRecords& records, pid_t pid, std::chrono::milliseconds timeout,
             const std::string& role = "");

}  // namespace lk::testing
