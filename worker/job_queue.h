// JobQueue: one Redis-backed job queue — enqueue, claim, finish, renew, reap, inspect.
//
// Owns: the queue's keys, all under the hash tag lk:{QUEUE}: so the whole queue lives in
// one Redis Cluster slot, and every multi-key change is one Lua script (worker/lua/).
// Does not own: running jobs (worker/job_runner.h), the owner lease (controller/); the
// claim script only reads the owner's epoch to fence stale workers.
// Not thread-safe: one JobQueue per thread, each with its own RedisConnection.
//
// States: waiting -> active -> completed
//                           -> delayed (failed, retry after min(2^(n-1) s +-20%, max backoff))
//                              -> waiting
//                           -> dead (max_attempts spent, by failures or stalls; stalled 5
//                              times; no handler)
//         waiting | delayed | active -> cancelled;  dead -> waiting (Retry)
// Job ids are decimal numbers, unique per queue, increasing in submission order, at most
// kMaxJobId. A job is stored in the hash job:<id>; while it is claimed, the claim (token,
// attempt, start) is the string claim:<id> and its lease deadline its score in active, so
// that the hot path writes the hash only to record outcomes. Get and List report all of it.
// OpenJobQueue upgrades a queue stored in an older key layout (worker/lua/migrate.lua).
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
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
  int max_attempts = 3;        // >= 1; every claim is an attempt, whether it fails or stalls
  Millis lease{30'000};        // clamped to 5 s .. 1 h
  Millis timeout{0};           // 0: no timeout
  std::string idempotency_key;  // non-empty: a resubmit returns the existing job
  // How long the key is held after submission (and at least until the job has finished).
  // 0: the queue's (QueueOptions::idempotency_window).
  Millis idempotency_window{0};
  Millis max_backoff{0};       // the longest wait before a retry; 0: the queue's
};

inline constexpr int kMinPriority = -1000;
inline constexpr int kMaxPriority = 1000;
inline constexpr Millis kMinLease{5'000};
inline constexpr Millis kMaxLease{3'600'000};
inline constexpr int kMaxStalls = 5;
// 2^53 - 1: the largest integer a Lua number (a double) holds exactly. Past it a queue
// refuses submissions (FailedPrecondition): 285 years at a million jobs a second.
inline constexpr int64_t kMaxJobId = (int64_t{1} << 53) - 1;
inline constexpr int kMaxAttemptErrors = 10;  // the newest kept per job, each cut to 1 KB

// The oldest Redis the queue runs on: 6.0 (AUTH with a user, BRPOP with a fractional
// timeout). OK when version ("7.0.15") is at least that; otherwise FailedPrecondition
// "Redis V at WHERE is too old: the queue needs Redis 6.0 or later".
Status CheckRedisVersion(std::string_view version, const std::string& where);

struct EnqueueResult {
  std::string id;
  bool created = true;  // false: the idempotency key returned an existing job
};

// One attempt that did not succeed: the handler's error, or a stall.
struct AttemptError {
  int attempt = 0;
  int64_t at_ms = 0;
  std::string error;
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
  // How many of its attempts ended with an expired lease (the reaper took the job back),
  // since submission or the last Retry. Each is also an attempt: max_attempts bounds both.
  int stalls = 0;
  Millis lease{30'000};
  Millis timeout{0};
  int64_t created_ms = 0;
  int64_t run_at_ms = 0;       // delayed: when it becomes due
  int64_t deadline_ms = 0;     // active: lease deadline
  int64_t started_ms = 0;      // active: when it was claimed
  int64_t finished_ms = 0;     // completed, dead, cancelled
  std::string error;           // the last failure's error (a stall that the job survives
                               // does not replace it)
  std::vector<AttemptError> attempt_errors;  // oldest first, the last kMaxAttemptErrors
  std::string result;          // completed: the handler's result
  std::string idempotency_key;
  // Cancelled while active, and its handler has not stopped yet: the job is still in active
  // and holds its idempotency key until its worker reports or its lease expires.
  bool stopping = false;
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

// A queue's settings, given to the JobQueue that works on it (`jobs work` sets them).
struct QueueOptions {
  // How long finished jobs are kept. Completed and dead jobs past either bound are deleted,
  // oldest first, as jobs finish (FinishBatch). Cancelled jobs follow the dead bounds.
  int64_t keep_completed = 1'000;
  Millis completed_max_age{24 * 3'600'000LL};
  int64_t keep_dead = 10'000;
  Millis dead_max_age{7 * 24 * 3'600'000LL};
  // How long an idempotency key is held, for jobs this JobQueue submits that set none:
  // longer than any retry of a lost submit, shorter than the moment the same key means new
  // work. Independent of retention: a key outlives its trimmed job.
  Millis idempotency_window{24 * 3'600'000LL};
  // The longest wait before a retry (FinishBatch), for jobs that set none: 2^(n-1) s grows
  // past any useful wait; a long cap retries a broken dependency less often.
  Millis max_backoff{3'600'000};
};

struct QueueStats {
  int64_t waiting = 0, delayed = 0, active = 0, completed = 0, dead = 0, cancelled = 0;
  int64_t oldest_waiting_age_ms = -1;  // -1: nothing waiting
  int64_t current_epoch = 0;
};

class JobQueue {
 public:
  JobQueue(std::unique_ptr<RedisConnection> conn, std::string queue, QueueOptions options = {});
  ~JobQueue();

  const std::string& name() const { return queue_; }
  RedisConnection& connection() { return *conn_; }
  // "lk:{QUEUE}:" — every key of this queue starts with it.
  static std::string KeyPrefix(const std::string& queue);

  // Validates spec (name non-empty, priority and attempts in range; clamps the lease) and
  // stores the job waiting or delayed. With an idempotency key already held (by an
  // unfinished job, or one that completed within the key's window, even if the job itself
  // was trimmed since), returns that job's id with created = false.
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

  // Per (id, token): whether that claim is still current. Read-only, one MGET: a worker asks
  // often (every 250 ms) to stop a cancelled job's handler promptly.
  StatusOr<std::vector<bool>> CheckClaims(
      const std::vector<std::pair<std::string, std::string>>& id_tokens);

  // Gives claimed-but-unstarted jobs back to waiting without counting an attempt.
  StatusOr<int> ReleaseBatch(const std::vector<std::pair<std::string, std::string>>& id_tokens);

  // Returns expired leases to waiting (or to dead when out of attempts or after kMaxStalls)
  // and due delayed jobs to waiting. Returns how many jobs it moved.
  StatusOr<int> Reap(int max);

  StatusOr<Job> Get(const std::string& id);
  // Jobs in a state: waiting in run order, delayed by due time, active by deadline,
  // finished ones newest first.
  StatusOr<std::vector<Job>> List(JobState state, int limit);
  StatusOr<QueueStats> Stats();

  // dead -> waiting with attempts reset. FailedPrecondition when the job is not dead.
  Status Retry(const std::string& id);
  // waiting | delayed | active -> cancelled. An active job's worker stops its handler within
  // half a second (it checks the claims of jobs running for 250 ms every 250 ms); until
  // then the job stays in active and holds its idempotency key. FailedPrecondition when
  // already finished.
  Status Cancel(const std::string& id);

  // Blocks in Redis (BRPOP on the queue's wake-up list) until a submission arrives or
  // timeout passes. Returns true when woken by a submission.
  StatusOr<bool> WaitForWork(Millis timeout);
  // Wakes whoever waits in WaitForWork now (as a submission does): a stopping worker's own
  // waker returns at once instead of at its timeout. A spare wake-up costs one empty claim.
  Status Wake();

 private:
  std::vector<std::string> ClaimKeys() const;
  std::vector<std::string> ClaimArgs(int max, int64_t epoch) const;
  std::vector<std::string> FinishArgs(const std::vector<JobOutcome>& outcomes) const;
  static StatusOr<ClaimResult> ParseClaim(RedisReply&& reply);
  static StatusOr<FinishResult> ParseFinish(const RedisReply& reply,
                                            const std::vector<JobOutcome>& outcomes);
  StatusOr<std::vector<Job>> ReadJobs(const std::vector<std::string>& ids);
  Status EnsureLayout();
  friend StatusOr<std::unique_ptr<JobQueue>> OpenJobQueue(const std::string&, const std::string&,
                                                          QueueOptions);

  std::unique_ptr<RedisConnection> conn_;
  std::string queue_;
  std::string prefix_;
  QueueOptions options_;
};

// Connects to url, checks that Redis is recent enough (CheckRedisVersion) and that the
// queue is in the current key layout (upgrading an older one, a bounded step at a time;
// a queue already in it is only read), and opens queue; the usual way to get a JobQueue.
StatusOr<std::unique_ptr<JobQueue>> OpenJobQueue(const std::string& redis_url,
                                                 const std::string& queue,
                                                 QueueOptions options = {});

}  // namespace lk
