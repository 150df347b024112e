#include "tests/support/queue_under_test.h"

#include <gtest/gtest.h>
#include <unistd.h>

namespace lk::testing {

std::string TestQueueName(size_t keep) {
  const ::testing::TestInfo* info = ::testing::UnitTest::GetInstance()->current_test_info();
  std::string name = info ? info->name() : "no-test";
  return name.substr(0, keep) + "-" + std::to_string(getpid());
}

QueueUnderTest::QueueUnderTest(const RedisServerOptions& options) : name_(TestQueueName()) {
  auto server = RedisServer::Start(options);
  if (!server.ok()) {
    ADD_FAILURE() << server.status().message();
    return;
  }
  redis_ = std::move(server).value();
  auto queue = OpenJobQueue(redis_->url(), name_);
  if (!queue.ok()) {
    ADD_FAILURE() << "cannot open queue " << name_ << ": " << queue.status().message();
    return;
  }
  queue_ = std::move(queue).value();
  records_ = std::make_unique<QueueRecords>(*queue_);
}

std::string RunNextJobByHand(JobQueue& queue, bool success) {
  auto claim = queue.ClaimBatch(1, 0);
  if (!claim.ok() || claim->jobs.size() != 1) {
    ADD_FAILURE() << "no job to run in queue " << queue.name() << ": "
                  << (claim.ok() ? "none waiting" : claim.status().message());
    return "";
  }
  JobOutcome o;
  o.id = claim->jobs[0].id;
  o.token = claim->jobs[0].token;
  o.success = success;
  o.error = "boom";
  o.retryable = false;
  auto finished = queue.FinishBatch({o});
  if (!finished.ok() || finished->accepted.size() != 1 || !finished->accepted[0]) {
    ADD_FAILURE() << "job " << o.id << " of queue " << queue.name() << " was not finished: "
                  << (finished.ok() ? "refused" : finished.status().message());
    return "";
  }
  return o.id;
}

}  // namespace lk::testing
