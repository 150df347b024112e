// The Redis job queue against a real redis-server, one per test.
#include "worker/job_queue.h"

#include <gtest/gtest.h>

#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <string>
#include <thread>
#include <vector>

#include "tests/support/child_process.h"
#include "tests/support/redis_server.h"

namespace lk {
namespace {

using std::chrono::milliseconds;

class JobQueueTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto server = testing::RedisServer::Start();
    ASSERT_TRUE(server.ok()) << server.status().ToString();
    server_ = std::move(server).value();
    queue_ = Open();
    auto admin = RedisConnection::Connect(*ParseRedisUrl(server_->url()), milliseconds(2000));
    ASSERT_TRUE(admin.ok()) << admin.status().ToString();
    admin_ = std::move(admin).value();
  }

  std::unique_ptr<JobQueue> Open(QueueOptions retention = {}) {
    auto q = OpenJobQueue(server_->url(), "q", retention);
    EXPECT_TRUE(q.ok()) << q.status().ToString();
    return q.ok() ? std::move(q).value() : nullptr;
  }

  // A raw command on the queue's server, for arranging and inspecting the world.
  RedisReply Redis(const std::vector<std::string>& argv) {
    auto r = admin_->Command(argv);
    EXPECT_TRUE(r.ok()) << r.status().ToString();
    return r.ok() ? std::move(r).value() : RedisReply{};
  }
  std::string Key(const std::string& name) { return JobQueue::KeyPrefix("q") + name; }

  std::string Submit(JobSpec spec) {
    auto r = queue_->Enqueue(spec);
    EXPECT_TRUE(r.ok()) << r.status().ToString();
    return r.ok() ? r->id : "";
  }
  std::string Submit(const std::string& name, int priority = 0) {
    JobSpec spec;
    spec.name = name;
    spec.priority = priority;
    return Submit(spec);
  }

  ClaimResult Claim(int max, int64_t epoch = 0) {
    auto r = queue_->ClaimBatch(max, epoch);
    EXPECT_TRUE(r.ok()) << r.status().ToString();
    return r.ok() ? std::move(r).value() : ClaimResult{};
  }
  ClaimedJob ClaimOne() {
    ClaimResult r = Claim(1);
    EXPECT_EQ(r.jobs.size(), 1u);
    return r.jobs.empty() ? ClaimedJob{} : r.jobs[0];
  }

  Job GetJob(const std::string& id) {
    auto r = queue_->Get(id);
    EXPECT_TRUE(r.ok()) << r.status().ToString();
    return r.ok() ? std::move(r).value() : Job{};
  }

  bool Finish(const ClaimedJob& job, bool success, const std::string& text = "",
              double jitter = 1.0) {
    JobOutcome o;
    o.id = job.id;
    o.token = job.token;
    o.success = success;
    (success ? o.result : o.error) = text;
    o.jitter = jitter;
    auto r = queue_->FinishBatch({o});
    EXPECT_TRUE(r.ok()) << r.status().ToString();
    return r.ok() && r->accepted.size() == 1 && r->accepted[0];
  }

  // Makes an active job's lease expire now, as if its worker had stopped renewing.
  // (The deadline is the job's score in active, nothing else: claim_batch.lua.)
  void ExpireLease(const std::string& id) { Redis({"ZADD", Key("active"), "0", id}); }
  // Retention trims when jobs finish (finish_batch.lua): finish one.
  void FinishAJob() {
    Submit("trigger");
    ClaimedJob job = ClaimOne();
    EXPECT_EQ(job.name, "trigger");
    EXPECT_TRUE(Finish(job, true));
  }
  // Makes a delayed job due now.
  void MakeDue(const std::string& id) { Redis({"ZADD", Key("delayed"), "0", id}); }

  std::unique_ptr<testing::RedisServer> server_;
  std::unique_ptr<JobQueue> queue_;
  std::unique_ptr<RedisConnection> admin_;
};

using JobQueueEnqueue = JobQueueTest;
using JobQueueClaim = JobQueueTest;
using JobQueueDelayed = JobQueueTest;
using JobQueueIdempotency = JobQueueTest;
using JobQueueFailure = JobQueueTest;
using JobQueueLease = JobQueueTest;
using JobQueueFencing = JobQueueTest;
using JobQueueReaper = JobQueueTest;
using JobQueueCancel = JobQueueTest;
using JobQueueRetry = JobQueueTest;
using JobQueueRetention = JobQueueTest;
using JobQueueInspect = JobQueueTest;
using JobQueueRedis = JobQueueTest;

TEST_F(JobQueueEnqueue, StoresTheJobWaitingWithItsSpec) {
  JobSpec spec;
  spec.name = "send-mail";
  spec.payload = R"({"to":"a@b"})";
  spec.priority = 7;
  spec.max_attempts = 4;
  spec.lease = milliseconds(60'000);
  spec.timeout = milliseconds(9'000);
  int64_t before = NowUnixMillis();
  std::string id = Submit(spec);
  EXPECT_EQ(id, "1");
  Job job = GetJob(id);
  EXPECT_EQ(job.name, "send-mail");
  EXPECT_EQ(job.payload, R"({"to":"a@b"})");
  EXPECT_EQ(job.state, JobState::kWaiting);
  EXPECT_EQ(job.priority, 7);
  EXPECT_EQ(job.max_attempts, 4);
  EXPECT_EQ(job.attempts, 0);
  EXPECT_EQ(job.lease.count(), 60'000);
  EXPECT_EQ(job.timeout.count(), 9'000);
  EXPECT_NEAR(job.created_ms, before, 1'000);
}

TEST_F(JobQueueEnqueue, BatchReturnsIncreasingIdsInInputOrder) {
  std::vector<JobSpec> specs(5);
  for (size_t i = 0; i < specs.size(); ++i) specs[i].name = "job" + std::to_string(i);
  auto r = queue_->EnqueueBatch(specs);
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  ASSERT_EQ(r->size(), 5u);
  for (size_t i = 0; i < 5; ++i) {
    EXPECT_EQ((*r)[i].id, std::to_string(i + 1));
    EXPECT_TRUE((*r)[i].created);
    EXPECT_EQ(GetJob((*r)[i].id).name, specs[i].name);
  }
}

TEST_F(JobQueueEnqueue, LeaseIsClampedToFiveSecondsAndOneHour) {
  JobSpec spec;
  spec.name = "short";
  spec.lease = milliseconds(100);
  EXPECT_EQ(GetJob(Submit(spec)).lease, kMinLease);
  spec.name = "long";
  spec.lease = milliseconds(10 * 3'600'000);
  EXPECT_EQ(GetJob(Submit(spec)).lease, kMaxLease);
}

TEST_F(JobQueueEnqueue, RejectsInvalidSpecsNamingTheField) {
  auto expect_invalid = [&](JobSpec spec, const std::string& field) {
    auto r = queue_->Enqueue(spec);
    ASSERT_FALSE(r.ok()) << field;
    EXPECT_EQ(r.status().code(), Status::Code::kInvalidArgument);
    EXPECT_NE(r.status().message().find(field), std::string::npos) << r.status().message();
  };
  JobSpec ok;
  ok.name = "x";
  JobSpec spec = ok;
  spec.name = "";
  expect_invalid(spec, "name");
  spec = ok;
  spec.priority = 1001;
  expect_invalid(spec, "priority");
  spec = ok;
  spec.max_attempts = 0;
  expect_invalid(spec, "max_attempts");
  spec = ok;
  spec.delay = milliseconds(-1);
  expect_invalid(spec, "delay");
  spec = ok;
  spec.timeout = milliseconds(-1);
  expect_invalid(spec, "timeout");
  EXPECT_EQ(Redis({"EXISTS", Key("seq")}).integer, 0) << "nothing stored";
}

TEST_F(JobQueueClaim, RunsLowerPriorityFirstAndFifoWithinAPriority) {
  std::string low1 = Submit("low1", 5);
  std::string high1 = Submit("high1", -3);
  std::string mid1 = Submit("mid1", 0);
  std::string high2 = Submit("high2", -3);
  std::string low2 = Submit("low2", 5);
  std::string mid2 = Submit("mid2", 0);
  ClaimResult r = Claim(10);
  ASSERT_EQ(r.outcome, ClaimResult::Outcome::kClaimed);
  std::vector<std::string> order;
  for (const auto& j : r.jobs) order.push_back(j.id);
  EXPECT_EQ(order, (std::vector<std::string>{high1, high2, mid1, mid2, low1, low2}));
}

// Ids near 2^42 and 2^53: the old score (priority + 1000) * 2^42 + id put a job past id
// 2^42 behind lower priorities, and made neighbouring ids equal near 2^53.
TEST_F(JobQueueClaim, PriorityAndFifoHoldForIdsNearTheEdgeOfTheIdSpace) {
  std::string low = Submit("low", 1);  // id 1
  Redis({"SET", Key("seq"), std::to_string((int64_t{1} << 42) + 10)});
  std::string high = Submit("high", 0);
  Redis({"SET", Key("seq"), std::to_string(kMaxJobId - 8)});
  std::vector<std::string> fifo;
  for (int i = 0; i < 4; ++i) fifo.push_back(Submit("fifo", -1));
  ASSERT_EQ(fifo.back(), std::to_string(kMaxJobId - 4));
  ClaimResult r = Claim(10);
  std::vector<std::string> order;
  for (const auto& j : r.jobs) order.push_back(j.id);
  EXPECT_EQ(order, (std::vector<std::string>{fifo[0], fifo[1], fifo[2], fifo[3], high, low}));
}

TEST_F(JobQueueEnqueue, TheLastIdIsIssuedAndThenSubmissionsAreRefused) {
  Redis({"SET", Key("seq"), std::to_string(kMaxJobId - 1)});
  EXPECT_EQ(Submit("last"), std::to_string(kMaxJobId));
  JobSpec spec;
  spec.name = "one-too-many";
  auto r = queue_->Enqueue(spec);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), Status::Code::kFailedPrecondition);
  EXPECT_NE(r.status().message().find("ids"), std::string::npos) << r.status().message();
  EXPECT_EQ(Redis({"GET", Key("seq")}).str, std::to_string(kMaxJobId)) << "nothing written";
  EXPECT_EQ(Redis({"ZCARD", Key("waiting")}).integer, 1);
}

TEST_F(JobQueueClaim, ClaimedJobCarriesItsSpecAndAUniqueToken) {
  JobSpec spec;
  spec.name = "resize";
  spec.payload = R"({"w":10})";
  spec.max_attempts = 2;
  spec.lease = milliseconds(7'000);
  spec.timeout = milliseconds(3'000);
  std::string id = Submit(spec);
  Submit("other");
  ClaimResult r = Claim(2);
  ASSERT_EQ(r.jobs.size(), 2u);
  const ClaimedJob& job = r.jobs[0];
  EXPECT_EQ(job.id, id);
  EXPECT_EQ(job.name, "resize");
  EXPECT_EQ(job.payload, R"({"w":10})");
  EXPECT_EQ(job.attempt, 1);
  EXPECT_EQ(job.max_attempts, 2);
  EXPECT_EQ(job.lease.count(), 7'000);
  EXPECT_EQ(job.timeout.count(), 3'000);
  EXPECT_FALSE(job.token.empty());
  EXPECT_NE(job.token, r.jobs[1].token);
  Job stored = GetJob(id);
  EXPECT_EQ(stored.state, JobState::kActive);
  EXPECT_EQ(stored.attempts, 1);
  EXPECT_EQ(stored.deadline_ms - stored.started_ms, 7'000);
  EXPECT_TRUE(Claim(5).jobs.empty());
}

TEST_F(JobQueueClaim, FinishAndClaimRecordsOutcomesAndClaimsTheNextJobs) {
  Submit("a");
  Submit("b");
  Submit("c");
  ClaimedJob a = ClaimOne();
  JobOutcome done;
  done.id = a.id;
  done.token = a.token;
  done.result = "ok";
  auto r = queue_->FinishAndClaim({done}, 5, 0);
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(r->first.accepted, std::vector<bool>{true});
  ASSERT_EQ(r->second.jobs.size(), 2u);
  EXPECT_EQ(r->second.jobs[0].name, "b");
  Job finished = GetJob(a.id);
  EXPECT_EQ(finished.state, JobState::kCompleted);
  EXPECT_EQ(finished.result, "ok");
  EXPECT_GT(finished.finished_ms, 0);
}

TEST_F(JobQueueClaim, ReleasedJobGoesBackToItsPlaceWithoutCountingAnAttempt) {
  std::string first = Submit("first");
  Submit("second");
  ClaimResult r = Claim(2);
  ASSERT_EQ(r.jobs.size(), 2u);
  auto released = queue_->ReleaseBatch({{r.jobs[0].id, r.jobs[0].token},
                                        {r.jobs[1].id, "not-the-token"}});
  ASSERT_TRUE(released.ok()) << released.status().ToString();
  EXPECT_EQ(*released, 1);
  Job job = GetJob(first);
  EXPECT_EQ(job.state, JobState::kWaiting);
  EXPECT_EQ(job.attempts, 0);
  EXPECT_FALSE(Finish(r.jobs[0], true)) << "a released claim is gone";
  ClaimedJob again = ClaimOne();
  EXPECT_EQ(again.id, first);
  EXPECT_EQ(again.attempt, 1);
}

TEST_F(JobQueueClaim, JobsClaimedAlongsideAFailedFinishAreGivenBack) {
  Submit("a");
  std::string b = Submit("b");
  ClaimedJob a = ClaimOne();
  Redis({"SET", Key("completed"), "not-a-sorted-set"});  // makes finish_batch fail
  JobOutcome done;
  done.id = a.id;
  done.token = a.token;
  auto r = queue_->FinishAndClaim({done}, 1, 0);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), Status::Code::kInternal);
  Job job = GetJob(b);
  EXPECT_EQ(job.state, JobState::kWaiting);
  EXPECT_EQ(job.attempts, 0);
}

TEST_F(JobQueueClaim, LargeBatchesCrossTheLuaUnpackLimit) {
  std::vector<JobSpec> specs(2'500);
  for (auto& spec : specs) spec.name = "bulk";
  auto ids = queue_->EnqueueBatch(specs);
  ASSERT_TRUE(ids.ok()) << ids.status().ToString();
  EXPECT_EQ(ids->back().id, "2500");
  ClaimResult claimed = Claim(3'000);
  ASSERT_EQ(claimed.jobs.size(), 2'500u);
  EXPECT_EQ(claimed.jobs.back().id, "2500");
  std::vector<JobOutcome> outcomes;
  for (const ClaimedJob& job : claimed.jobs) {
    JobOutcome o;
    o.id = job.id;
    o.token = job.token;
    outcomes.push_back(o);
  }
  auto finished = queue_->FinishBatch(outcomes);
  ASSERT_TRUE(finished.ok()) << finished.status().ToString();
  EXPECT_EQ(std::count(finished->accepted.begin(), finished->accepted.end(), true), 2'500);
  auto stats = queue_->Stats();
  ASSERT_TRUE(stats.ok());
  EXPECT_EQ(stats->active, 0);
  EXPECT_EQ(stats->completed, 1'500) << "each call trims at most 1000 jobs per set";
  ASSERT_TRUE(queue_->FinishBatch({}).ok());
  EXPECT_EQ(queue_->Stats()->completed, QueueOptions{}.keep_completed);
}

TEST_F(JobQueueDelayed, DelayedJobBecomesClaimableWhenDue) {
  JobSpec spec;
  spec.name = "later";
  spec.delay = milliseconds(300);
  int64_t before = NowUnixMillis();
  std::string id = Submit(spec);
  Job job = GetJob(id);
  EXPECT_EQ(job.state, JobState::kDelayed);
  EXPECT_NEAR(job.run_at_ms, before + 300, 200);
  ClaimResult early = Claim(1);
  EXPECT_TRUE(early.jobs.empty());
  EXPECT_GE(early.next_due_in_ms, 0);
  EXPECT_LE(early.next_due_in_ms, 300);
  ClaimResult due;
  ASSERT_TRUE(testing::Eventually(
      [&] {
        due = Claim(1);
        return !due.jobs.empty();
      },
      milliseconds(3'000)));
  EXPECT_EQ(due.jobs[0].id, id);
  EXPECT_GE(NowUnixMillis(), before + 300);
}

TEST_F(JobQueueDelayed, NextDueIsUnknownWhenNothingIsPending) {
  EXPECT_EQ(Claim(1).next_due_in_ms, -1);
}

TEST_F(JobQueueIdempotency, ResubmitWithTheSameKeyReturnsTheSameJob) {
  JobSpec spec;
  spec.name = "charge";
  spec.idempotency_key = "order-42";
  auto first = queue_->Enqueue(spec);
  ASSERT_TRUE(first.ok());
  EXPECT_TRUE(first->created);
  auto again = queue_->Enqueue(spec);
  ASSERT_TRUE(again.ok());
  EXPECT_FALSE(again->created);
  EXPECT_EQ(again->id, first->id);
  EXPECT_EQ(GetJob(first->id).idempotency_key, "order-42");

  // Held by a completed job too, and within one batch.
  ClaimedJob job = ClaimOne();
  ASSERT_TRUE(Finish(job, true));
  JobSpec other;
  other.name = "other";
  other.idempotency_key = "order-43";
  auto batch = queue_->EnqueueBatch({spec, other, other});
  ASSERT_TRUE(batch.ok());
  EXPECT_EQ((*batch)[0].id, first->id);
  EXPECT_FALSE((*batch)[0].created);
  EXPECT_TRUE((*batch)[1].created);
  EXPECT_EQ((*batch)[2].id, (*batch)[1].id);
  EXPECT_FALSE((*batch)[2].created);
  EXPECT_EQ(Redis({"GET", Key("seq")}).AsInt(), 2) << "resubmits consume no id";
}

TEST_F(JobQueueIdempotency, AKeyOutlivesItsCompletedJobsRetentionWithinItsWindow) {
  QueueOptions retention;
  retention.keep_completed = 1;
  queue_ = Open(retention);
  JobSpec charge;
  charge.name = "charge";
  charge.idempotency_key = "order-9";
  std::string first = Submit(charge);
  ASSERT_TRUE(Finish(ClaimOne(), true, "charged"));
  // Another job finishes: retention keeps one completed job, so the first is trimmed.
  Submit("other");
  ASSERT_TRUE(Finish(ClaimOne(), true));
  ASSERT_TRUE(queue_->Get(first).status().IsNotFound()) << "the job itself is trimmed";
  auto again = queue_->Enqueue(charge);
  ASSERT_TRUE(again.ok()) << again.status().ToString();
  EXPECT_FALSE(again->created) << "a resubmit inside the window must not run the work again";
  EXPECT_EQ(again->id, first);
  EXPECT_EQ(Redis({"ZCARD", Key("waiting")}).integer, 0);
}

TEST_F(JobQueueIdempotency, AKeyIsReleasedOnceItsWindowHasPassed) {
  JobSpec spec;
  spec.name = "charge";
  spec.idempotency_key = "order-10";
  spec.idempotency_window = milliseconds(3'600'000);
  int64_t before = NowUnixMillis();
  std::string first = Submit(spec);
  EXPECT_NEAR(Redis({"ZSCORE", Key("idem_expiry"), "order-10"}).AsInt(), before + 3'600'000, 1'000)
      << "the job's own window";
  ASSERT_TRUE(Finish(ClaimOne(), true));
  EXPECT_FALSE(queue_->Enqueue(spec)->created);
  // The window passes (backdated, not waited for): the key is free again.
  Redis({"ZADD", Key("idem_expiry"), std::to_string(NowUnixMillis() - 1), "order-10"});
  auto again = queue_->Enqueue(spec);
  ASSERT_TRUE(again.ok());
  EXPECT_TRUE(again->created);
  EXPECT_NE(again->id, first);
  EXPECT_EQ(Redis({"HGET", Key("idem"), "order-10"}).str, again->id);
}

TEST_F(JobQueueIdempotency, AnUnfinishedJobKeepsItsKeyPastItsWindow) {
  JobSpec spec;
  spec.name = "slow";
  spec.idempotency_key = "report-1";
  spec.idempotency_window = milliseconds(60'000);
  std::string id = Submit(spec);
  Redis({"ZADD", Key("idem_expiry"), std::to_string(NowUnixMillis() - 1), "report-1"});
  auto again = queue_->Enqueue(spec);
  ASSERT_TRUE(again.ok());
  EXPECT_FALSE(again->created) << "the work has not run yet";
  EXPECT_EQ(again->id, id);
  EXPECT_GT(Redis({"ZSCORE", Key("idem_expiry"), "report-1"}).AsInt(), NowUnixMillis())
      << "looked at again one window later";
}

TEST_F(JobQueueIdempotency, TheQueuesWindowAppliesToJobsThatSetNone) {
  QueueOptions options;
  options.idempotency_window = milliseconds(7 * 24 * 3'600'000LL);
  queue_ = Open(options);
  JobSpec spec;
  spec.name = "weekly";
  spec.idempotency_key = "week-48";
  int64_t before = NowUnixMillis();
  Submit(spec);
  EXPECT_NEAR(Redis({"ZSCORE", Key("idem_expiry"), "week-48"}).AsInt(),
              before + options.idempotency_window.count(), 1'000);
}

TEST_F(JobQueueIdempotency, ExpiredKeysAreReleasedABoundedNumberPerSubmitWithoutAScan) {
  QueueOptions options;
  options.keep_completed = 0;
  queue_ = Open(options);
  std::vector<JobSpec> specs(300);
  for (size_t i = 0; i < specs.size(); ++i) {
    specs[i].name = "keyed";
    specs[i].idempotency_key = "k" + std::to_string(i);
  }
  ASSERT_TRUE(queue_->EnqueueBatch(specs).ok());
  ClaimResult claimed = Claim(300);
  std::vector<JobOutcome> outcomes;
  for (const ClaimedJob& job : claimed.jobs) {
    JobOutcome done;
    done.id = job.id;
    done.token = job.token;
    outcomes.push_back(done);
  }
  ASSERT_TRUE(queue_->FinishBatch(outcomes).ok());
  ASSERT_EQ(Redis({"HLEN", Key("idem")}).integer, 300) << "trimmed jobs keep their keys";
  for (size_t i = 0; i < specs.size(); ++i) {
    Redis({"ZADD", Key("idem_expiry"), "1", specs[i].idempotency_key});
  }
  Submit("plain");
  EXPECT_EQ(Redis({"HLEN", Key("idem")}).integer, 199) << "1 + 100 released by one submit";
  EXPECT_EQ(Redis({"ZCARD", Key("idem_expiry")}).integer, 199);
  Submit("plain");
  Submit("plain");
  EXPECT_EQ(Redis({"HLEN", Key("idem")}).integer, 0);
}

TEST_F(JobQueueIdempotency, NewJobsAroundAResubmitInOneBatchGetConsecutiveIds) {
  JobSpec keyed;
  keyed.name = "keyed";
  keyed.idempotency_key = "k";
  std::string existing = Submit(keyed);
  JobSpec plain;
  plain.name = "plain";
  auto batch = queue_->EnqueueBatch({plain, keyed, plain, keyed});
  ASSERT_TRUE(batch.ok()) << batch.status().ToString();
  ASSERT_EQ(batch->size(), 4u);
  EXPECT_EQ((*batch)[0].id, "2");
  EXPECT_TRUE((*batch)[0].created);
  EXPECT_EQ((*batch)[1].id, existing);
  EXPECT_FALSE((*batch)[1].created);
  EXPECT_EQ((*batch)[2].id, "3");
  EXPECT_TRUE((*batch)[2].created);
  EXPECT_EQ((*batch)[3].id, existing);
  EXPECT_FALSE((*batch)[3].created);
  EXPECT_EQ(GetJob("3").name, "plain");
}

TEST_F(JobQueueIdempotency, DeadOrCancelledJobFreesItsKey) {
  JobSpec spec;
  spec.name = "charge";
  spec.max_attempts = 1;
  spec.idempotency_key = "order-1";
  std::string dead = Submit(spec);
  ASSERT_TRUE(Finish(ClaimOne(), false, "card declined"));
  ASSERT_EQ(GetJob(dead).state, JobState::kDead);
  auto after_dead = queue_->Enqueue(spec);
  ASSERT_TRUE(after_dead.ok());
  EXPECT_TRUE(after_dead->created);
  EXPECT_NE(after_dead->id, dead);

  ASSERT_TRUE(queue_->Cancel(after_dead->id).ok());
  auto after_cancel = queue_->Enqueue(spec);
  ASSERT_TRUE(after_cancel.ok());
  EXPECT_TRUE(after_cancel->created);
  EXPECT_NE(after_cancel->id, after_dead->id);
}

TEST_F(JobQueueFailure, FailedJobBacksOffExponentiallyThenGoesDead) {
  JobSpec spec;
  spec.name = "flaky";
  spec.max_attempts = 3;
  std::string id = Submit(spec);

  int64_t t1 = NowUnixMillis();
  ASSERT_TRUE(Finish(ClaimOne(), false, "boom 1", 1.2));
  Job job = GetJob(id);
  EXPECT_EQ(job.state, JobState::kDelayed);
  EXPECT_EQ(job.error, "boom 1");
  EXPECT_NEAR(job.run_at_ms - t1, 1'200, 150) << "1 s x jitter 1.2";

  MakeDue(id);
  int64_t t2 = NowUnixMillis();
  ClaimedJob second = ClaimOne();
  EXPECT_EQ(second.attempt, 2);
  ASSERT_TRUE(Finish(second, false, "boom 2", 1.0));
  job = GetJob(id);
  EXPECT_EQ(job.state, JobState::kDelayed);
  EXPECT_NEAR(job.run_at_ms - t2, 2'000, 150) << "2 s after the second failure";

  MakeDue(id);
  ClaimedJob third = ClaimOne();
  EXPECT_EQ(third.attempt, 3);
  ASSERT_TRUE(Finish(third, false, "boom 3"));
  job = GetJob(id);
  EXPECT_EQ(job.state, JobState::kDead);
  EXPECT_EQ(job.error, "boom 3");
  EXPECT_EQ(job.attempts, 3);
  EXPECT_GT(job.finished_ms, 0);
  EXPECT_EQ(Redis({"ZSCORE", Key("dead"), id}).AsInt(), job.finished_ms);
  EXPECT_TRUE(Redis({"ZSCORE", Key("delayed"), id}).is_nil());
}

TEST_F(JobQueueFailure, BackoffIsCappedAndStoredAsAnInteger) {
  JobSpec spec;
  spec.name = "stubborn";
  spec.max_attempts = 100;
  std::string id = Submit(spec);
  // As if it had already failed 59 times: the 60th failure would wait 2^59 s uncapped.
  Redis({"HSET", Key("job:" + id), "attempts", "59"});
  int64_t before = NowUnixMillis();
  ClaimedJob job = ClaimOne();
  ASSERT_EQ(job.attempt, 60);
  ASSERT_TRUE(Finish(job, false, "still broken", 1.2));
  std::string stored = Redis({"HGET", Key("job:" + id), "run_at_ms"}).str;
  EXPECT_TRUE(!stored.empty() && stored.find_first_not_of("0123456789") == std::string::npos)
      << "run_at_ms is stored as '" << stored << "'";
  Job delayed = GetJob(id);
  EXPECT_EQ(delayed.state, JobState::kDelayed);
  EXPECT_GE(delayed.run_at_ms, before + 3'600'000 - 1'000) << "2^59 s, capped at 1 h";
  EXPECT_LE(delayed.run_at_ms, NowUnixMillis() + 3'600'000);
  EXPECT_EQ(Redis({"ZSCORE", Key("delayed"), id}).str, std::to_string(delayed.run_at_ms));
}

TEST_F(JobQueueFailure, AJobsOwnMaxBackoffWinsOverTheQueues) {
  QueueOptions options;
  options.max_backoff = milliseconds(10'000);
  queue_ = Open(options);
  JobSpec capped_by_queue;
  capped_by_queue.name = "a";
  capped_by_queue.max_attempts = 10;
  JobSpec capped_by_job = capped_by_queue;
  capped_by_job.name = "b";
  capped_by_job.max_backoff = milliseconds(2'000);
  std::string a = Submit(capped_by_queue);
  std::string b = Submit(capped_by_job);
  for (const std::string& id : {a, b}) Redis({"HSET", Key("job:" + id), "attempts", "7"});
  int64_t before = NowUnixMillis();
  ClaimResult r = Claim(2);
  ASSERT_EQ(r.jobs.size(), 2u);
  ASSERT_TRUE(Finish(r.jobs[0], false, "x", 1.0));
  ASSERT_TRUE(Finish(r.jobs[1], false, "x", 1.0));
  EXPECT_NEAR(GetJob(a).run_at_ms - before, 10'000, 1'000) << "2^7 s, capped by the queue";
  EXPECT_NEAR(GetJob(b).run_at_ms - before, 2'000, 1'000) << "capped by the job's own";
}

TEST_F(JobQueueFailure, EachAttemptsErrorIsKeptTheNewestTen) {
  JobSpec spec;
  spec.name = "flaky";
  spec.max_attempts = 12;
  std::string id = Submit(spec);
  for (int attempt = 1; attempt <= 12; ++attempt) {
    ClaimedJob job = ClaimOne();
    ASSERT_EQ(job.attempt, attempt);
    if (attempt == 4) {
      ExpireLease(id);
      ASSERT_EQ(*queue_->Reap(100), 1);
      continue;
    }
    ASSERT_TRUE(Finish(job, false, "boom " + std::to_string(attempt)));
    if (attempt < 12) MakeDue(id);
  }
  Job job = GetJob(id);
  EXPECT_EQ(job.state, JobState::kDead);
  EXPECT_EQ(job.error, "boom 12");
  ASSERT_EQ(job.attempt_errors.size(), static_cast<size_t>(kMaxAttemptErrors));
  EXPECT_EQ(job.attempt_errors.front().attempt, 3);
  EXPECT_EQ(job.attempt_errors.front().error, "boom 3");
  EXPECT_EQ(job.attempt_errors[1].error, "lease expired without renewal (stall 1)");
  EXPECT_EQ(job.attempt_errors.back().attempt, 12);
  EXPECT_EQ(job.attempt_errors.back().error, "boom 12");
}

TEST_F(JobQueueFailure, NonRetryableFailureOrAHandlerLimitGoesDeadAtOnce) {
  std::string no_handler = Submit("unknown-name");
  std::string limited = Submit("limited");
  ClaimResult r = Claim(2);
  ASSERT_EQ(r.jobs.size(), 2u);
  JobOutcome fatal;
  fatal.id = r.jobs[0].id;
  fatal.token = r.jobs[0].token;
  fatal.success = false;
  fatal.error = "no handler";
  fatal.retryable = false;
  JobOutcome capped = fatal;
  capped.id = r.jobs[1].id;
  capped.token = r.jobs[1].token;
  capped.retryable = true;
  capped.max_attempts_override = 1;
  auto f = queue_->FinishBatch({fatal, capped});
  ASSERT_TRUE(f.ok()) << f.status().ToString();
  EXPECT_EQ(f->accepted, (std::vector<bool>{true, true}));
  EXPECT_EQ(GetJob(no_handler).state, JobState::kDead);
  EXPECT_EQ(GetJob(limited).state, JobState::kDead);
}

TEST_F(JobQueueLease, CompletionWithAStaleTokenIsRejected) {
  std::string id = Submit("slow");
  ClaimedJob old_claim = ClaimOne();
  ExpireLease(id);
  ClaimedJob new_claim = ClaimOne();
  EXPECT_EQ(new_claim.id, id);
  EXPECT_EQ(new_claim.attempt, 2);
  EXPECT_NE(new_claim.token, old_claim.token);
  EXPECT_FALSE(Finish(old_claim, true, "late"));
  EXPECT_TRUE(Finish(new_claim, true, "fresh"));
  EXPECT_EQ(GetJob(id).result, "fresh");
  EXPECT_FALSE(Finish(new_claim, true, "twice")) << "a claim finishes once";
}

TEST_F(JobQueueLease, AStaleFinishAfterAReclaimLeavesTheNewClaimIntact) {
  std::string id = Submit("slow");
  ClaimedJob old_claim = ClaimOne();
  ExpireLease(id);
  ClaimedJob new_claim = ClaimOne();
  ASSERT_EQ(new_claim.id, id);
  // The old worker reports, in one batch, a success and a failure with its stale token.
  JobOutcome late_success;
  late_success.id = id;
  late_success.token = old_claim.token;
  JobOutcome late_failure = late_success;
  late_failure.success = false;
  late_failure.error = "late";
  auto r = queue_->FinishBatch({late_success, late_failure});
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(r->accepted, (std::vector<bool>{false, false}));
  Job job = GetJob(id);
  EXPECT_EQ(job.state, JobState::kActive);
  EXPECT_EQ(job.attempts, 2);
  EXPECT_EQ(job.stalls, 1);
  auto renew = queue_->RenewBatch({{new_claim.id, new_claim.token, milliseconds(30'000)},
                                   {old_claim.id, old_claim.token, milliseconds(30'000)}});
  ASSERT_TRUE(renew.ok());
  EXPECT_EQ(renew->still_held, (std::vector<bool>{true, false}));
  EXPECT_TRUE(Finish(new_claim, true, "fresh"));
  EXPECT_EQ(GetJob(id).state, JobState::kCompleted);
}

TEST_F(JobQueueLease, TheSameClaimTwiceInOneBatchCountsOnce) {
  Submit("a");
  ClaimedJob job = ClaimOne();
  JobOutcome done;
  done.id = job.id;
  done.token = job.token;
  auto r = queue_->FinishBatch({done, done});
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(r->accepted, (std::vector<bool>{true, false}));
  EXPECT_EQ(Redis({"ZCARD", Key("completed")}).integer, 1);
}

TEST_F(JobQueueClaim, MixedOutcomesAreAnsweredInTheCallersOrder) {
  JobSpec spec;
  spec.name = "j";
  spec.max_attempts = 1;
  for (int i = 0; i < 5; ++i) Submit(spec);
  ClaimResult r = Claim(5);
  ASSERT_EQ(r.jobs.size(), 5u);
  std::vector<JobOutcome> outcomes(5);
  for (int i = 0; i < 5; ++i) {
    outcomes[i].id = r.jobs[i].id;
    outcomes[i].token = r.jobs[i].token;
    outcomes[i].success = i % 2 == 1;  // failure, success, failure, success, failure
    (outcomes[i].success ? outcomes[i].result : outcomes[i].error) = "r" + std::to_string(i);
  }
  outcomes[2].token = "stale";
  outcomes[3].token = "stale";
  auto f = queue_->FinishBatch(outcomes);
  ASSERT_TRUE(f.ok()) << f.status().ToString();
  EXPECT_EQ(f->accepted, (std::vector<bool>{true, true, false, false, true}));
  EXPECT_EQ(GetJob(r.jobs[0].id).state, JobState::kDead);
  EXPECT_EQ(GetJob(r.jobs[0].id).error, "r0");
  EXPECT_EQ(GetJob(r.jobs[1].id).state, JobState::kCompleted);
  EXPECT_EQ(GetJob(r.jobs[1].id).result, "r1");
  EXPECT_EQ(GetJob(r.jobs[2].id).state, JobState::kActive);
  EXPECT_EQ(GetJob(r.jobs[3].id).state, JobState::kActive);
  EXPECT_EQ(GetJob(r.jobs[4].id).state, JobState::kDead);
}

TEST_F(JobQueueLease, RenewalExtendsTheDeadlineOnlyForTheCurrentClaim) {
  JobSpec spec;
  spec.name = "long";
  spec.lease = milliseconds(5'000);
  std::string id = Submit(spec);
  ClaimedJob job = ClaimOne();
  int64_t before = NowUnixMillis();
  auto r = queue_->RenewBatch({{job.id, job.token, milliseconds(60'000)},
                               {job.id, "stale", milliseconds(60'000)}});
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(r->still_held, (std::vector<bool>{true, false}));
  Job stored = GetJob(id);
  EXPECT_NEAR(stored.deadline_ms, before + 60'000, 1'000);
  EXPECT_EQ(Redis({"ZSCORE", Key("active"), id}).AsInt(), stored.deadline_ms);
}

TEST_F(JobQueueFencing, ClaimWithAStaleEpochIsRefused) {
  Submit("job");
  Redis({"SET", Key("epoch"), "5"});
  ClaimResult stale = Claim(1, 4);
  EXPECT_EQ(stale.outcome, ClaimResult::Outcome::kStaleEpoch);
  EXPECT_EQ(stale.current_epoch, 5);
  EXPECT_TRUE(stale.jobs.empty());
  ClaimResult current = Claim(1, 5);
  EXPECT_EQ(current.outcome, ClaimResult::Outcome::kClaimed);
  EXPECT_EQ(current.current_epoch, 5);
  EXPECT_EQ(current.jobs.size(), 1u);
}

TEST_F(JobQueueFencing, UnfencedClaimIsRefusedWhileAnOwnerHoldsTheQueue) {
  Submit("job");
  Redis({"SET", Key("epoch"), "3"});
  Redis({"HSET", Key("owner"), "role", "supervisor", "epoch", "3"});
  ClaimResult owned = Claim(1, 0);
  EXPECT_EQ(owned.outcome, ClaimResult::Outcome::kOwned);
  EXPECT_EQ(owned.current_epoch, 3);
  EXPECT_TRUE(owned.jobs.empty());
  Redis({"DEL", Key("owner")});
  EXPECT_EQ(Claim(1, 0).jobs.size(), 1u) << "without an owner, an unmanaged worker may claim";
}

TEST_F(JobQueueReaper, ExpiredLeaseReturnsToWaitingWithAStall) {
  std::string id = Submit("hangs");
  ClaimedJob job = ClaimOne();
  ExpireLease(id);
  auto moved = queue_->Reap(100);
  ASSERT_TRUE(moved.ok()) << moved.status().ToString();
  EXPECT_EQ(*moved, 1);
  Job stored = GetJob(id);
  EXPECT_EQ(stored.state, JobState::kWaiting);
  EXPECT_EQ(stored.stalls, 1);
  EXPECT_EQ(stored.error, "") << "a stall is no error of the job's";
  ASSERT_EQ(stored.attempt_errors.size(), 1u);
  EXPECT_EQ(stored.attempt_errors[0].attempt, 1);
  EXPECT_EQ(stored.attempt_errors[0].error, "lease expired without renewal (stall 1)");
  EXPECT_NEAR(stored.attempt_errors[0].at_ms, NowUnixMillis(), 5'000);
  EXPECT_EQ(Redis({"LLEN", Key("wake")}).integer, 1) << "a sleeping worker is woken";
  auto r = queue_->RenewBatch({{job.id, job.token, milliseconds(30'000)}});
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->still_held, std::vector<bool>{false});
}

TEST_F(JobQueueReaper, JobThatStallsFiveTimesGoesDeadWithTheReason) {
  JobSpec spec;
  spec.name = "crashes-its-worker";
  spec.max_attempts = 10;  // attempts to spare: the stall limit is what stops it
  spec.idempotency_key = "k";
  std::string id = Submit(spec);
  for (int stall = 1; stall <= kMaxStalls; ++stall) {
    ClaimOne();
    ExpireLease(id);
    ASSERT_EQ(*queue_->Reap(100), 1);
  }
  Job job = GetJob(id);
  EXPECT_EQ(job.state, JobState::kDead);
  EXPECT_EQ(job.stalls, 5);
  EXPECT_EQ(job.error, "stalled 5 times: lease expired without renewal (worker crashed or hung)");
  EXPECT_TRUE(Claim(1).jobs.empty());
  EXPECT_TRUE(queue_->Enqueue(spec)->created) << "dead frees the idempotency key";
}

TEST_F(JobQueueReaper, AStallCountsAsAnAttempt) {
  JobSpec spec;
  spec.name = "once";
  spec.max_attempts = 1;
  std::string id = Submit(spec);
  ClaimOne();
  ExpireLease(id);
  ASSERT_EQ(*queue_->Reap(100), 1);
  Job job = GetJob(id);
  EXPECT_EQ(job.state, JobState::kDead) << "a --max-attempts 1 job runs once, stall or not";
  EXPECT_EQ(job.attempts, 1);
  EXPECT_EQ(job.stalls, 1);
  EXPECT_EQ(job.error,
            "lease expired on its last attempt (1 of 1): the worker crashed, hung or lost Redis");
  EXPECT_TRUE(Claim(1).jobs.empty());
}

TEST_F(JobQueueReaper, AStallKeepsTheJobsLastRealError) {
  JobSpec spec;
  spec.name = "flaky";
  spec.max_attempts = 3;
  std::string id = Submit(spec);
  ASSERT_TRUE(Finish(ClaimOne(), false, "connection refused"));
  MakeDue(id);
  ClaimOne();
  ExpireLease(id);
  ASSERT_EQ(*queue_->Reap(100), 1);
  Job job = GetJob(id);
  EXPECT_EQ(job.state, JobState::kWaiting);
  EXPECT_EQ(job.error, "connection refused") << "a stall must not overwrite the real error";
}

TEST_F(JobQueueReaper, DueDelayedJobsBecomeWaiting) {
  JobSpec spec;
  spec.name = "later";
  spec.delay = milliseconds(60'000);
  std::string id = Submit(spec);
  Redis({"DEL", Key("wake")});
  EXPECT_EQ(*queue_->Reap(100), 0);
  MakeDue(id);
  EXPECT_EQ(*queue_->Reap(100), 1);
  EXPECT_EQ(GetJob(id).state, JobState::kWaiting);
  EXPECT_EQ(Redis({"LLEN", Key("wake")}).integer, 1);
}

TEST_F(JobQueueReaper, ClaimTakesBackExpiredLeasesItself) {
  std::string id = Submit("hangs");
  ClaimOne();
  ExpireLease(id);
  ClaimedJob again = ClaimOne();
  EXPECT_EQ(again.id, id);
  EXPECT_EQ(GetJob(id).stalls, 1);
}

TEST_F(JobQueueCancel, CancelsWaitingAndDelayedJobs) {
  std::string waiting = Submit("w");
  JobSpec spec;
  spec.name = "d";
  spec.delay = milliseconds(60'000);
  std::string delayed = Submit(spec);
  ASSERT_TRUE(queue_->Cancel(waiting).ok());
  ASSERT_TRUE(queue_->Cancel(delayed).ok());
  EXPECT_EQ(GetJob(waiting).state, JobState::kCancelled);
  EXPECT_EQ(GetJob(delayed).state, JobState::kCancelled);
  EXPECT_GT(GetJob(delayed).finished_ms, 0);
  EXPECT_EQ(Redis({"ZCARD", Key("waiting")}).integer, 0);
  EXPECT_EQ(Redis({"ZCARD", Key("delayed")}).integer, 0);
  EXPECT_EQ(Redis({"ZCARD", Key("cancelled")}).integer, 2);
  EXPECT_TRUE(Claim(5).jobs.empty());
}

TEST_F(JobQueueCancel, CancelledActiveJobLosesItsClaim) {
  std::string id = Submit("running");
  ClaimedJob job = ClaimOne();
  ASSERT_TRUE(queue_->Cancel(id).ok());
  auto renew = queue_->RenewBatch({{job.id, job.token, milliseconds(30'000)}});
  ASSERT_TRUE(renew.ok());
  EXPECT_EQ(renew->still_held, std::vector<bool>{false}) << "the worker learns to stop";
  EXPECT_FALSE(Finish(job, true, "done anyway"));
  Job stored = GetJob(id);
  EXPECT_EQ(stored.state, JobState::kCancelled);
  EXPECT_EQ(stored.result, "");
  EXPECT_EQ(Redis({"ZCARD", Key("active")}).integer, 0);
}

TEST_F(JobQueueCancel, ACancelledActiveJobHoldsItsKeyUntilItsWorkerHasStopped) {
  JobSpec spec;
  spec.name = "charge";
  spec.idempotency_key = "order-5";
  std::string id = Submit(spec);
  ClaimedJob running = ClaimOne();
  ASSERT_TRUE(queue_->Cancel(id).ok());
  EXPECT_EQ(GetJob(id).state, JobState::kCancelled);
  // The handler may still be running: the work is not finished, so the key is not free.
  auto during = queue_->Enqueue(spec);
  ASSERT_TRUE(during.ok()) << during.status().ToString();
  EXPECT_FALSE(during->created);
  EXPECT_EQ(during->id, id);
  // The worker learns of the cancel, stops the handler and reports: its outcome is refused,
  // and the claim ends with it.
  EXPECT_FALSE(Finish(running, true, "done anyway"));
  EXPECT_EQ(Redis({"EXISTS", Key("claim:" + id)}).integer, 0);
  EXPECT_EQ(Redis({"ZCARD", Key("active")}).integer, 0);
  Job stopped = GetJob(id);
  EXPECT_EQ(stopped.state, JobState::kCancelled);
  EXPECT_EQ(stopped.result, "");
  EXPECT_GT(stopped.finished_ms, 0);
  EXPECT_EQ(Redis({"ZSCORE", Key("cancelled"), id}).AsInt(), stopped.finished_ms);
  auto after = queue_->Enqueue(spec);
  ASSERT_TRUE(after.ok());
  EXPECT_TRUE(after->created) << "once it really stopped, the key is free";
}

TEST_F(JobQueueCancel, ACancelledActiveJobWhoseWorkerDiedEndsWhenItsLeaseExpires) {
  JobSpec spec;
  spec.name = "charge";
  spec.idempotency_key = "order-6";
  std::string id = Submit(spec);
  ClaimOne();
  ASSERT_TRUE(queue_->Cancel(id).ok());
  ExpireLease(id);
  ASSERT_EQ(*queue_->Reap(100), 1);
  Job job = GetJob(id);
  EXPECT_EQ(job.state, JobState::kCancelled);
  EXPECT_EQ(job.stalls, 0) << "a cancelled job's lease running out is not a stall";
  EXPECT_EQ(Redis({"EXISTS", Key("claim:" + id)}).integer, 0);
  EXPECT_EQ(Redis({"ZCARD", Key("waiting")}).integer, 0);
  EXPECT_TRUE(queue_->Enqueue(spec)->created);
}

TEST_F(JobQueueCancel, CheckClaimsSaysWhichClaimsAreStillCurrent) {
  std::string kept = Submit("kept");
  std::string cancelled = Submit("cancelled");
  ClaimResult r = Claim(2);
  ASSERT_EQ(r.jobs.size(), 2u);
  ASSERT_TRUE(queue_->Cancel(cancelled).ok());
  auto held = queue_->CheckClaims({{kept, r.jobs[0].token},
                                   {cancelled, r.jobs[1].token},
                                   {kept, "stale"}});
  ASSERT_TRUE(held.ok()) << held.status().ToString();
  EXPECT_EQ(*held, (std::vector<bool>{true, false, false}));
}

TEST_F(JobQueueCancel, CancelOfAFinishedJobIsRefused) {
  std::string id = Submit("quick");
  ASSERT_TRUE(Finish(ClaimOne(), true));
  Status s = queue_->Cancel(id);
  EXPECT_EQ(s.code(), Status::Code::kFailedPrecondition);
  EXPECT_EQ(s.message(), "job '" + id + "' is already completed");
}

TEST_F(JobQueueRetry, DeadJobGoesBackToWaitingWithAttemptsReset) {
  JobSpec spec;
  spec.name = "fragile";
  spec.max_attempts = 1;
  std::string id = Submit(spec);
  ASSERT_TRUE(Finish(ClaimOne(), false, "broken"));
  ASSERT_EQ(GetJob(id).state, JobState::kDead);
  Redis({"DEL", Key("wake")});
  ASSERT_TRUE(queue_->Retry(id).ok());
  Job job = GetJob(id);
  EXPECT_EQ(job.state, JobState::kWaiting);
  EXPECT_EQ(job.attempts, 0);
  EXPECT_EQ(job.error, "broken") << "the last error stays for the record";
  EXPECT_EQ(Redis({"ZCARD", Key("dead")}).integer, 0);
  EXPECT_EQ(Redis({"LLEN", Key("wake")}).integer, 1);
  ClaimedJob again = ClaimOne();
  EXPECT_EQ(again.id, id);
  EXPECT_EQ(again.attempt, 1);
}

TEST_F(JobQueueRetry, RetryOfANonDeadJobIsRefused) {
  std::string id = Submit("fine");
  Status s = queue_->Retry(id);
  EXPECT_EQ(s.code(), Status::Code::kFailedPrecondition);
  EXPECT_EQ(s.message(), "job '" + id + "' is waiting, only dead jobs can be retried");
}

TEST_F(JobQueueRetry, RetriedJobTakesBackItsKeyOnlyIfFree) {
  JobSpec spec;
  spec.name = "charge";
  spec.max_attempts = 1;
  spec.idempotency_key = "order-7";
  std::string first = Submit(spec);
  ASSERT_TRUE(Finish(ClaimOne(), false, "declined"));
  ASSERT_TRUE(queue_->Retry(first).ok());
  EXPECT_EQ(queue_->Enqueue(spec)->id, first) << "a free key is held again by the retried job";
  ASSERT_TRUE(Finish(ClaimOne(), true));

  spec.idempotency_key = "order-8";
  std::string old_job = Submit(spec);
  ASSERT_TRUE(Finish(ClaimOne(), false, "declined"));
  std::string resubmitted = Submit(spec);
  ASSERT_NE(resubmitted, old_job);
  ASSERT_TRUE(queue_->Retry(old_job).ok());
  EXPECT_EQ(queue_->Enqueue(spec)->id, resubmitted) << "the newer job keeps the key";
}

TEST_F(JobQueueRetention, KeepsOnlyTheNewestCompletedJobs) {
  QueueOptions retention;
  retention.keep_completed = 3;
  queue_ = Open(retention);
  std::vector<std::string> ids;
  for (int i = 0; i < 5; ++i) {
    JobSpec spec;
    spec.name = "j";
    spec.idempotency_key = "key-" + std::to_string(i);
    ids.push_back(Submit(spec));
    // One at a time, so finish times order them.
    ASSERT_TRUE(Finish(ClaimOne(), true));
    usleep(2'000);
  }
  EXPECT_EQ(Redis({"ZCARD", Key("completed")}).integer, 3);
  EXPECT_TRUE(queue_->Get(ids[0]).status().IsNotFound());
  EXPECT_TRUE(queue_->Get(ids[1]).status().IsNotFound());
  EXPECT_TRUE(queue_->Get(ids[2]).ok());
  EXPECT_EQ(Redis({"HLEN", Key("idem")}).integer, 5) << "keys outlive their trimmed jobs";
}

TEST_F(JobQueueRetention, DeletesCompletedJobsPastTheirAge) {
  QueueOptions retention;
  retention.completed_max_age = milliseconds(60'000);
  queue_ = Open(retention);
  std::string old_job = Submit("old");
  ASSERT_TRUE(Finish(ClaimOne(), true));
  Redis({"ZADD", Key("completed"), std::to_string(NowUnixMillis() - 120'000), old_job});
  Submit("new");
  ASSERT_TRUE(Finish(ClaimOne(), true));
  EXPECT_TRUE(queue_->Get(old_job).status().IsNotFound());
  EXPECT_EQ(Redis({"ZCARD", Key("completed")}).integer, 1);
}

// Dead jobs: the newest keep_dead are kept, oldest trimmed first, when jobs finish.
TEST_F(JobQueueRetention, KeepsOnlyTheNewestDeadJobs) {
  QueueOptions retention;
  retention.keep_dead = 2;
  queue_ = Open(retention);
  std::vector<std::string> ids;
  for (int i = 0; i < 4; ++i) {
    JobSpec spec;
    spec.name = "doomed";
    spec.max_attempts = 1;
    ids.push_back(Submit(spec));
    ASSERT_TRUE(Finish(ClaimOne(), false, "boom " + std::to_string(i)));
    // Finish times order them: make each older than the next by a second.
    Redis({"ZADD", Key("dead"), std::to_string(NowUnixMillis() - 10'000 + i * 1'000), ids[i]});
  }
  FinishAJob();
  EXPECT_EQ(Redis({"ZCARD", Key("dead")}).integer, 2);
  EXPECT_TRUE(queue_->Get(ids[0]).status().IsNotFound());
  EXPECT_TRUE(queue_->Get(ids[1]).status().IsNotFound());
  EXPECT_EQ(GetJob(ids[2]).state, JobState::kDead);
  EXPECT_EQ(GetJob(ids[3]).error, "boom 3");
}

TEST_F(JobQueueRetention, DeletesDeadJobsPastTheirAge) {
  QueueOptions retention;
  retention.dead_max_age = milliseconds(60'000);
  queue_ = Open(retention);
  JobSpec spec;
  spec.name = "doomed";
  spec.max_attempts = 1;
  std::string old_job = Submit(spec);
  ASSERT_TRUE(Finish(ClaimOne(), false, "old"));
  std::string recent = Submit(spec);
  ASSERT_TRUE(Finish(ClaimOne(), false, "recent"));
  Redis({"ZADD", Key("dead"), std::to_string(NowUnixMillis() - 120'000), old_job});
  FinishAJob();
  EXPECT_TRUE(queue_->Get(old_job).status().IsNotFound());
  EXPECT_EQ(GetJob(recent).state, JobState::kDead);
  EXPECT_EQ(Redis({"ZCARD", Key("dead")}).integer, 1);
}

// Cancelled jobs follow the dead bounds (keep_dead, dead_max_age).
TEST_F(JobQueueRetention, KeepsOnlyTheNewestCancelledJobsByTheDeadCount) {
  QueueOptions retention;
  retention.keep_dead = 1;
  queue_ = Open(retention);
  std::string older = Submit("a");
  std::string newer = Submit("b");
  ASSERT_TRUE(queue_->Cancel(older).ok());
  ASSERT_TRUE(queue_->Cancel(newer).ok());
  Redis({"ZADD", Key("cancelled"), std::to_string(NowUnixMillis() - 5'000), older});
  EXPECT_EQ(Redis({"ZCARD", Key("cancelled")}).integer, 2) << "cancelling trims nothing";
  FinishAJob();
  EXPECT_TRUE(queue_->Get(older).status().IsNotFound());
  EXPECT_EQ(GetJob(newer).state, JobState::kCancelled);
  EXPECT_EQ(Redis({"ZCARD", Key("cancelled")}).integer, 1);
}

TEST_F(JobQueueRetention, DeletesCancelledJobsPastTheDeadAge) {
  QueueOptions retention;
  retention.dead_max_age = milliseconds(60'000);
  queue_ = Open(retention);
  std::string old_job = Submit("a");
  std::string recent = Submit("b");
  ASSERT_TRUE(queue_->Cancel(old_job).ok());
  ASSERT_TRUE(queue_->Cancel(recent).ok());
  Redis({"ZADD", Key("cancelled"), std::to_string(NowUnixMillis() - 120'000), old_job});
  FinishAJob();
  EXPECT_TRUE(queue_->Get(old_job).status().IsNotFound());
  EXPECT_EQ(GetJob(recent).state, JobState::kCancelled);
}

TEST_F(JobQueueInspect, StatsCountEachStateAndTheOldestWaitingAge) {
  std::string oldest = Submit("low-priority-but-oldest", 10);
  Submit("urgent", -10);
  Submit("normal", 0);
  JobSpec later;
  later.name = "later";
  later.delay = milliseconds(60'000);
  Submit(later);
  Submit("to-run");
  // Claim the urgent job; make the oldest job five seconds old.
  ASSERT_EQ(Claim(1).jobs[0].name, "urgent");
  Redis({"HSET", Key("job:" + oldest), "created_ms", std::to_string(NowUnixMillis() - 5'000)});
  Redis({"SET", Key("epoch"), "9"});
  auto s = queue_->Stats();
  ASSERT_TRUE(s.ok()) << s.status().ToString();
  EXPECT_EQ(s->waiting, 3);
  EXPECT_EQ(s->delayed, 1);
  EXPECT_EQ(s->active, 1);
  EXPECT_EQ(s->completed, 0);
  EXPECT_EQ(s->current_epoch, 9);
  EXPECT_NEAR(s->oldest_waiting_age_ms, 5'000, 1'000)
      << "the oldest job is found even behind higher-priority bands";
}

TEST_F(JobQueueInspect, StatsOfAnEmptyQueue) {
  auto s = queue_->Stats();
  ASSERT_TRUE(s.ok()) << s.status().ToString();
  EXPECT_EQ(s->waiting + s->delayed + s->active + s->completed + s->dead + s->cancelled, 0);
  EXPECT_EQ(s->oldest_waiting_age_ms, -1);
  EXPECT_EQ(s->current_epoch, 0);
}

TEST_F(JobQueueInspect, ListsWaitingInRunOrderAndFinishedNewestFirst) {
  std::string a = Submit("a", 1);
  std::string b = Submit("b", 0);
  std::string c = Submit("c", 0);
  auto waiting = queue_->List(JobState::kWaiting, 10);
  ASSERT_TRUE(waiting.ok()) << waiting.status().ToString();
  ASSERT_EQ(waiting->size(), 3u);
  EXPECT_EQ((*waiting)[0].id, b);
  EXPECT_EQ((*waiting)[1].id, c);
  EXPECT_EQ((*waiting)[2].id, a);
  EXPECT_EQ((*waiting)[0].state, JobState::kWaiting);
  ASSERT_TRUE(Finish(ClaimOne(), true));
  usleep(2'000);
  ASSERT_TRUE(Finish(ClaimOne(), true));
  auto completed = queue_->List(JobState::kCompleted, 1);
  ASSERT_TRUE(completed.ok());
  ASSERT_EQ(completed->size(), 1u);
  EXPECT_EQ((*completed)[0].id, c);
}

TEST_F(JobQueueInspect, AnActiveJobShowsItsClaimAndAFinishedOneKeepsItsAttemptAndStart) {
  JobSpec spec;
  spec.name = "inspected";
  spec.lease = milliseconds(9'000);
  std::string id = Submit(spec);
  int64_t before = NowUnixMillis();
  ClaimedJob claim = ClaimOne();
  Job active = GetJob(id);
  EXPECT_EQ(active.state, JobState::kActive);
  EXPECT_EQ(active.attempts, 1);
  EXPECT_NEAR(active.started_ms, before, 1'000);
  EXPECT_EQ(active.deadline_ms, active.started_ms + 9'000);
  EXPECT_EQ(Redis({"ZSCORE", Key("active"), id}).AsInt(), active.deadline_ms);
  auto listed = queue_->List(JobState::kActive, 10);
  ASSERT_TRUE(listed.ok()) << listed.status().ToString();
  ASSERT_EQ(listed->size(), 1u);
  EXPECT_EQ((*listed)[0].state, JobState::kActive);
  EXPECT_EQ((*listed)[0].deadline_ms, active.deadline_ms);
  EXPECT_EQ((*listed)[0].started_ms, active.started_ms);

  ASSERT_TRUE(Finish(claim, true, "ok"));
  Job done = GetJob(id);
  EXPECT_EQ(done.state, JobState::kCompleted);
  EXPECT_EQ(done.attempts, 1);
  EXPECT_EQ(done.started_ms, active.started_ms);
  EXPECT_GE(done.finished_ms, done.started_ms);
  EXPECT_EQ(Redis({"EXISTS", Key("claim:" + id)}).integer, 0) << "a finished claim is gone";
}

TEST_F(JobQueueInspect, AReapedOrCancelledClaimLeavesItsAttemptAndStartInTheJob) {
  std::string reaped = Submit("stalls");
  ClaimOne();
  int64_t started = GetJob(reaped).started_ms;
  ExpireLease(reaped);
  ASSERT_EQ(*queue_->Reap(100), 1);
  Job back = GetJob(reaped);
  EXPECT_EQ(back.state, JobState::kWaiting);
  EXPECT_EQ(back.attempts, 1);
  EXPECT_EQ(back.started_ms, started);
  EXPECT_EQ(Redis({"EXISTS", Key("claim:" + reaped)}).integer, 0);

  ClaimedJob again = ClaimOne();
  ASSERT_EQ(again.id, reaped);
  EXPECT_EQ(again.attempt, 2);
  Status s = queue_->Retry(reaped);
  EXPECT_EQ(s.message(), "job '" + reaped + "' is active, only dead jobs can be retried");
  ASSERT_TRUE(queue_->Cancel(reaped).ok());
  Job cancelled = GetJob(reaped);
  EXPECT_EQ(cancelled.state, JobState::kCancelled);
  EXPECT_TRUE(cancelled.stopping) << "its handler has not reported yet";
  EXPECT_EQ(cancelled.attempts, 2);
  EXPECT_GT(cancelled.started_ms, 0);
  EXPECT_EQ(Redis({"GET", Key("claim:" + reaped)}).str, again.token + " cancelled");
  EXPECT_FALSE(Finish(again, true));
  EXPECT_EQ(Redis({"EXISTS", Key("claim:" + reaped)}).integer, 0);
  EXPECT_FALSE(GetJob(reaped).stopping);
}

TEST_F(JobQueueInspect, UnknownIdIsNotFound) {
  auto job = queue_->Get("404");
  EXPECT_TRUE(job.status().IsNotFound());
  EXPECT_EQ(job.status().message(), "no job '404' in queue 'q'");
  EXPECT_TRUE(queue_->Retry("404").IsNotFound());
  EXPECT_TRUE(queue_->Cancel("404").IsNotFound());
  EXPECT_EQ(queue_->Cancel("404").message(), "no job '404' in queue 'q'");
}

TEST_F(JobQueueInspect, JobStateNamesRoundTrip) {
  for (JobState s : {JobState::kWaiting, JobState::kDelayed, JobState::kActive,
                     JobState::kCompleted, JobState::kDead, JobState::kCancelled}) {
    EXPECT_EQ(*ParseJobState(JobStateName(s)), s);
  }
  EXPECT_EQ(ParseJobState("failed").status().code(), Status::Code::kInvalidArgument);
}

TEST_F(JobQueueRedis, UnreachableRedisIsUnavailable) {
  int port = testing::FreeLoopbackPort();
  auto q = OpenJobQueue("redis://127.0.0.1:" + std::to_string(port), "q");
  ASSERT_FALSE(q.ok());
  EXPECT_TRUE(q.status().IsUnavailable()) << q.status().ToString();

  server_->Kill();
  auto claim = queue_->ClaimBatch(1, 0);
  EXPECT_TRUE(claim.status().IsUnavailable()) << claim.status().ToString();
  EXPECT_TRUE(queue_->Stats().status().IsUnavailable());
}

TEST_F(JobQueueRedis, ScriptsAreReloadedAfterAScriptFlush) {
  Submit("a");
  Submit("b");
  ClaimedJob a = ClaimOne();
  Redis({"SCRIPT", "FLUSH"});
  JobOutcome done;
  done.id = a.id;
  done.token = a.token;
  auto r = queue_->FinishAndClaim({done}, 1, 0);
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(r->first.accepted, std::vector<bool>{true});
  EXPECT_EQ(r->second.jobs.size(), 1u);
  Redis({"SCRIPT", "FLUSH"});
  EXPECT_EQ(Submit("c"), "3");
  EXPECT_EQ(Claim(1).jobs.size(), 1u);
}

TEST_F(JobQueueRedis, WaitForWorkReturnsWhenAJobIsSubmitted) {
  auto idle = queue_->WaitForWork(milliseconds(200));
  ASSERT_TRUE(idle.ok()) << idle.status().ToString();
  EXPECT_FALSE(*idle);
  Submit("a");
  Submit("b");
  auto woken = queue_->WaitForWork(milliseconds(5'000));
  ASSERT_TRUE(woken.ok()) << woken.status().ToString();
  EXPECT_TRUE(*woken);
  EXPECT_EQ(Redis({"LLEN", Key("wake")}).integer, 0) << "submissions coalesce into one wake-up";
  EXPECT_TRUE(queue_->ClaimBatch(1, 0).ok()) << "the connection is usable after blocking";
}

// A queue written by lanekeeper before this layout: waiting scored (priority + 1000) *
// 2^42 + id, and idempotency keys without an expiry. Opening it upgrades it in place.
TEST_F(JobQueueRedis, AQueueOfTheOldLayoutIsUpgradedWhenOpenedKeepingItsOrder) {
  const int64_t band = int64_t{1} << 42;
  struct Old { std::string id; int priority; };
  const std::vector<Old> old = {{"3", 0}, {"4", -1000}, {"5", 7}, {"6", 0}, {"1200", -1000}};
  for (const Old& o : old) {
    Redis({"HSET", Key("job:" + o.id), "name", "old-" + o.id, "payload", "{}", "priority",
           std::to_string(o.priority), "max_attempts", "3", "lease_ms", "30000", "timeout_ms",
           "0", "created_ms", std::to_string(NowUnixMillis()), "state", "waiting"});
    Redis({"ZADD", Key("waiting"), std::to_string((o.priority + 1000) * band + std::stoll(o.id)),
           o.id});
  }
  Redis({"HSET", Key("job:3"), "idem", "legacy-key"});
  Redis({"HSET", Key("idem"), "legacy-key", "3"});
  Redis({"SET", Key("seq"), "1200"});
  queue_ = Open();
  EXPECT_EQ(Redis({"ZSCORE", Key("waiting"), "A5"}).str, "7");
  EXPECT_EQ(Redis({"EXISTS", Key("waiting:migrating")}).integer, 0);
  EXPECT_NEAR(Redis({"ZSCORE", Key("idem_expiry"), "legacy-key"}).AsInt(),
              NowUnixMillis() + 24 * 3'600'000LL, 5'000);
  std::string fresh = Submit("new", 0);
  ClaimResult r = Claim(10);
  std::vector<std::string> order;
  for (const auto& j : r.jobs) order.push_back(j.id);
  EXPECT_EQ(order, (std::vector<std::string>{"4", "1200", "3", "6", fresh, "5"}));
  JobSpec resubmit;
  resubmit.name = "old-3";
  resubmit.idempotency_key = "legacy-key";
  EXPECT_EQ(queue_->Enqueue(resubmit)->id, "3") << "the legacy key is still held";
}

// docs/queue.md: the upgrade converts 10 000 entries per script call, so that Redis is never
// blocked for long, and several processes opening the queue at once share the work.
TEST_F(JobQueueRedis, AnUpgradeOfManyJobsIsSharedByQueuesOpenedAtOnceInBoundedCalls) {
  constexpr int kJobs = 25'000;  // three steps of 10 000
  // Old-layout jobs 1..kJobs, priorities 1, 0, -1 in turn, written in one call.
  Redis({"EVAL",
         "for i = 1, tonumber(ARGV[1]) do\n"
         "  local p = (i % 3) - 1\n"
         "  redis.call('HSET', KEYS[1] .. 'job:' .. i, 'name', 'old', 'payload', '{}',\n"
         "             'priority', p, 'max_attempts', 3, 'lease_ms', 30000, 'timeout_ms', 0,\n"
         "             'created_ms', 1, 'state', 'waiting')\n"
         "  redis.call('ZADD', KEYS[1] .. 'waiting', (p + 1000) * 4398046511104 + i, i)\n"
         "end\n"
         "redis.call('SET', KEYS[1] .. 'seq', ARGV[1])\n",
         "1", Key(""), std::to_string(kJobs)});
  Redis({"CONFIG", "RESETSTAT"});
  StatusOr<std::unique_ptr<JobQueue>> a = Status::Internal("not opened");
  StatusOr<std::unique_ptr<JobQueue>> b = Status::Internal("not opened");
  std::thread other([&] { b = OpenJobQueue(server_->url(), "q"); });
  a = OpenJobQueue(server_->url(), "q");
  other.join();
  ASSERT_TRUE(a.ok()) << a.status().ToString();
  ASSERT_TRUE(b.ok()) << b.status().ToString();
  EXPECT_EQ(Redis({"ZCARD", Key("waiting")}).integer, kJobs);
  EXPECT_EQ(Redis({"EXISTS", Key("waiting:migrating")}).integer, 0);
  // At least three converting calls and each opener's last one; a single call for all would
  // make three at most.
  std::string stats = Redis({"INFO", "commandstats"}).str;
  size_t at = stats.find("cmdstat_evalsha:calls=");
  ASSERT_NE(at, std::string::npos) << stats;
  EXPECT_GE(std::stoi(stats.substr(at + 22)), 5) << stats;
  ClaimResult r = (*a)->ClaimBatch(4, 0).value();
  std::vector<std::string> order;
  for (const auto& j : r.jobs) order.push_back(j.id);
  // Priority -1 is every third job from 3, in id order.
  EXPECT_EQ(order, (std::vector<std::string>{"3", "6", "9", "12"}));
}

TEST_F(JobQueueRedis, OpeningAQueueOfTheCurrentLayoutWritesNothing) {
  Submit("a");
  Redis({"CONFIG", "RESETSTAT"});
  queue_ = Open();
  auto info = Redis({"INFO", "commandstats"});
  for (const char* write : {"cmdstat_zadd", "cmdstat_hset", "cmdstat_set", "cmdstat_zunionstore"}) {
    EXPECT_EQ(info.str.find(write), std::string::npos) << info.str;
  }
}

TEST(JobQueueRedisVersion, SixAndLaterAreEnoughAndOlderAreRefusedByName) {
  for (const char* ok : {"6.0.0", "6.2.14", "7.0.15", "7.4.1", "10.0.0", "unknown"}) {
    EXPECT_TRUE(CheckRedisVersion(ok, "redis://h:6379/0").ok()) << ok;
  }
  for (const char* old : {"5.0.14", "4.0.9", "2.8.24"}) {
    Status s = CheckRedisVersion(old, "redis://h:6379/0");
    EXPECT_EQ(s.code(), Status::Code::kFailedPrecondition) << old;
    EXPECT_EQ(s.message(), "Redis " + std::string(old) +
                               " at redis://h:6379/0 is too old: the queue needs Redis 6.0 or later");
  }
}

TEST_F(JobQueueRedis, QueueNamesThatWouldBreakTheHashTagAreRefused) {
  EXPECT_EQ(OpenJobQueue(server_->url(), "a{b}").status().code(), Status::Code::kInvalidArgument);
  EXPECT_EQ(OpenJobQueue(server_->url(), "").status().code(), Status::Code::kInvalidArgument);
}

}  // namespace
}  // namespace lk
