// JobQueue: one Redis-backed job queue — enqueue, claim, finish, renew, reap, inspect.
//
// Owns: the queue's keys, all under the hash tag lk:{QUEUE}: so the whole queue lives in
// one Redis Cluster slot, and every multi-key change is one Lua script (worker/lua/).
// Does not own: running jobs (worker/job_runner.h), the owner lease (controller/); the
// claim script only reads the owner's epoch to fence stale workers.
// Not thread-safe: one JobQueue per thread, each with its own RedisConnection.
//
// States: waiting -> active -> completed
//                           -> delayed (failed, retry after 2^(n-1) s +-20%) -> waiting
//                           -> dead (failed max_attempts times, stalled 5 times, no handler)
//         waiting | delayed | active -> cancelled;  dead -> waiting (Retry)
// Job ids are decimal numbers, unique per queue, increasing in submission order.
// A job is stored in the hash job:<id>; while it is claimed, the claim (token, attempt,
// start) is the string claim:<id> and its lease deadline its score in active, so that the
// hot path writes the hash only to record outcomes. Get and List report all of it.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "worker/duration.h"
#include "worker/redis_connection.h"
#include "worker/status.h"

namespace lk {

enum class JobState { kWaiting, kDelayed, kActive, kCompleted, kDead, kCancelled };
const char* JobStateName(JobState s);
StatusOr<JobState> ParseJobState(std::string_view name);

// What a submitter asks for. Defaults are the documented ones.
struct JobSpec {
  std::string name;
  std::string payload = "{}";  // JSON text, validated by the caller
  int priority = 0;            // -1000..1000; lower runs first, FIFO within a priority
  Millis delay{0};             // > 0: the job starts delayed and becomes waiting when due
  int max_attempts = 3;        // >= 1
  Millis lease{30'000};        // clamped to 5 s .. 1 h
  Millis timeout{0};           // 0: no timeout
  std::string idempotency_key;  // non-empty: a resubmit returns the existing job
};

inline constexpr int kMinPriority = -1000;
inline constexpr int kMaxPriority = 1000;
inline constexpr Millis kMinLease{5'000};
inline constexpr Millis kMaxLease{3'600'000};
inline constexpr int kMaxStalls = 5;

struct EnqueueResult {
  std::string id;
  bool created = true;  // false: the idempotency key returned an existing job
};

// A job as stored, for inspection.
struct Job {
  std::string id;
  std::string name;
  std::string payload;
  JobState state = JobState::kWaiting;
  int priority = 0;
  int attempts = 0;  // how many times it was claimed
  int max_attempts = 3;
  int stalls = 0;    // how many times its lease expired and the reaper took it back
  Millis lease{30'000};
  Millis timeout{0};
  int64_t created_ms = 0;
  int64_t run_at_ms = 0;       // delayed: when it becomes due
  int64_t deadline_ms = 0;     // active: lease deadline
  int64_t started_ms = 0;      // active: when it was claimed
  int64_t finished_ms = 0;     // completed, dead, cancelled
  std::string error;           // last error
  std::string result;          // completed: the handler's result
  std::string idempotency_key;
};

// A job handed to a worker by ClaimBatch.
struct ClaimedJob {
  std::string id;
  std::string name;
  std::string payload;
  std::string token;  // proves this claim; Finish and Renew check it
  int attempt = 1;    // 1 for the first run
  int max_attempts = 3;
  Millis lease{30'000};
  Millis timeout{0};
};

struct ClaimResult {
  enum class Outcome {
    kClaimed,     // jobs holds 0..max jobs
    kStaleEpoch,  // the epoch given is no longer the owner's: this worker is fenced
    kOwned,       // an unfenced claim (epoch 0) while an owner holds the queue
  };
  Outcome outcome = Outcome::kClaimed;
  std::vector<ClaimedJob> jobs;
  int64_t current_epoch = 0;
  // When something may next become claimable without a new submission (the earliest
  // delayed job or active lease deadline), as milliseconds from now; -1 = nothing pending.
  int64_t next_due_in_ms = -1;
};

// How a claimed job ended, for FinishBatch.
struct JobOutcome {
  std::string id;
  std::string token;
  bool success = true;
  std::string result;            // success: stored on the job
  std::string error;             // failure: the last error
  bool retryable = true;         // false: dead at once (e.g. no handler)
  int max_attempts_override = 0;  // > 0: a handler's max attempts replaces the job's
  double jitter = 1.0;           // backoff factor, the caller draws it in [0.8, 1.2]
};

// Per job: whether the outcome was recorded. false means the claim was no longer valid
// (the job was reclaimed after a stall, cancelled, or completed by someone else).
struct FinishResult {
  std::vector<bool> accepted;
};

struct LeaseRenewal {
  std::string id;
  std::string token;
  Millis lease{30'000};
};

// Per job: true = lease extended; false = the claim is gone (cancelled or reclaimed): the
// worker should stop the job's handler.
struct RenewResult {
  std::vector<bool> still_held;
};

// How long finished jobs are kept. Completed and dead jobs past either bound are deleted,
// oldest first, as new ones arrive. Cancelled jobs follow the dead bounds.
struct RetentionPolicy {
  int64_t keep_completed = 1'000;
  Millis completed_max_age{24 * 3'600'000LL};
  int64_t keep_dead = 10'000;
  Millis dead_max_age{7 * 24 * 3'600'000LL};
};

struct QueueStats {
  int64_t waiting = 0, delayed = 0, active = 0, completed = 0, dead = 0, cancelled = 0;
  int64_t oldest_waiting_age_ms = -1;  // -1: nothing waiting
  int64_t current_epoch = 0;
};

class JobQueue {
 public:
  JobQueue(std::unique_ptr<RedisConnection> conn, std::string queue,
           RetentionPolicy retention = {});
  ~JobQueue();

  const std::string& name() const { return queue_; }
  RedisConnection& connection() { return *conn_; }
  // "lk:{QUEUE}:" — every key of this queue starts with it.
  static std::string KeyPrefix(const std::string& queue);

  // Validates spec (name non-empty, priority and attempts in range; clamps the lease) and
  // stores the job waiting or delayed. With an idempotency key already held by a live or
  // completed job, returns that job with created = false.
  StatusOr<EnqueueResult> Enqueue(const JobSpec& spec);
  // The same for many jobs in one script call; results in input order.
  StatusOr<std::vector<EnqueueResult>> EnqueueBatch(const std::vector<JobSpec>& specs);

  // Atomically: returns due delayed jobs and expired leases (the reaper's work, bounded)
  // to waiting, checks the epoch, and claims up to max jobs in priority-then-FIFO order.
  // epoch > 0 must equal the queue's current owner epoch; epoch 0 is an unmanaged worker,
  // refused while an owner lease is held.
  StatusOr<ClaimResult> ClaimBatch(int max, int64_t epoch);

  // Records outcomes in one script call. Failures retry with backoff or go dead.
  StatusOr<FinishResult> FinishBatch(const std::vector<JobOutcome>& outcomes);

  // FinishBatch then ClaimBatch in one round trip (both scripts pipelined).
  StatusOr<std::pair<FinishResult, ClaimResult>> FinishAndClaim(
      const std::vector<JobOutcome>& outcomes, int max, int64_t epoch);

  StatusOr<RenewResult> RenewBatch(const std::vector<LeaseRenewal>& renewals);

  // Gives claimed-but-unstarted jobs back to waiting without counting an attempt.
  StatusOr<int> ReleaseBatch(const std::vector<std::pair<std::string, std::string>>& id_tokens);

  // Returns expired leases to waiting (or to dead after kMaxStalls) and due delayed jobs to
  // waiting. Returns how many jobs it moved.
  StatusOr<int> Reap(int max);

  StatusOr<Job> Get(const std::string& id);
  // Jobs in a state: waiting in run order, delayed by due time, active by deadline,
  // finished ones newest first.
  StatusOr<std::vector<Job>> List(JobState state, int limit);
  StatusOr<QueueStats> Stats();

  // dead -> waiting with attempts reset. FailedPrecondition when the job is not dead.
  Status Retry(const std::string& id);
  // waiting | delayed | active -> cancelled. An active job's worker learns it at its next
  // lease renewal and stops the handler. FailedPrecondition when already finished.
  Status Cancel(const std::string& id);

  // Blocks in Redis (BRPOP on the queue's wake-up list) until a submission arrives or
  // timeout passes. Returns true when woken by a submission.
  StatusOr<bool> WaitForWork(Millis timeout);

 private:
  std::vector<std::string> ClaimKeys() const;
  std::vector<std::string> ClaimArgs(int max, int64_t epoch) const;
  std::vector<std::string> FinishArgs(const std::vector<JobOutcome>& outcomes) const;
  static StatusOr<ClaimResult> ParseClaim(RedisReply&& reply);
  static StatusOr<FinishResult> ParseFinish(const RedisReply& reply,
                                            const std::vector<JobOutcome>& outcomes);
  StatusOr<std::vector<Job>> ReadJobs(const std::vector<std::string>& ids);

  std::unique_ptr<RedisConnection> conn_;
  std::string queue_;
  std::string prefix_;
  RetentionPolicy retention_;
};

// Connects to url and opens queue; the usual way to get a JobQueue.
StatusOr<std::unique_ptr<JobQueue>> OpenJobQueue(const std::string& redis_url,
                                                 const std::string& queue,
                                                 RetentionPolicy retention = {});

}  // namespace lk
