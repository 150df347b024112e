// QueueUnderTest: what a test of a queue and its roles starts with — a private redis-server
// (RedisServer), a queue on it named after the running test and unique per test and test
// process (leftovers of one test never count in another), and QueueRecords over the queue's
// connection; and a worker played by hand, for tests that need a job to have run without
// running one.
// A failure to start is a test failure, and ok() is then false. Not thread-safe.
#pragma once

#include <memory>
#include <string>

#include "tests/support/queue_records.h"
#include "tests/support/redis_server.h"
#include "worker/job_queue.h"

namespace lk::testing {

// "<the running test's name, cut to keep characters>-<pid>".
std::string TestQueueName(size_t keep = 30);

class QueueUnderTest {
 public:
  explicit QueueUnderTest(const RedisServerOptions& options = {});
  bool ok() const { return queue_ != nullptr; }

  RedisServer& redis() { return *redis_; }
  JobQueue& queue() { return *queue_; }
  QueueRecords& records() { return *records_; }
  const std::string& name() const { return name_; }

 private:
  std::string name_;
  std::unique_ptr<RedisServer> redis_;
  std::unique_ptr<JobQueue> queue_;
  std::unique_ptr<QueueRecords> records_;
};

// Plays a worker: claims the next job of queue (unfenced) and records its outcome — a
// success, or a failure with error "boom" that is not retried. Returns its id; "" and a
// test failure when there is none or Redis refuses.
std::string RunNextJobByHand(JobQueue& queue, bool success);

}  // namespace lk::testing
