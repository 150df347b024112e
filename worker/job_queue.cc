#include "worker/job_queue.h"

#include <algorithm>
#include <charconv>
#include <cstdio>
#include <cstdlib>

#include "worker/lua_scripts.h"

namespace lk {

namespace {

// OpenJobQueue's connect and read timeout; WaitForWork restores it after a blocking call.
constexpr Millis kRedisTimeout{2'000};
// How long BRPOP may outlive its own timeout before the read gives up.
constexpr Millis kBlockingSlack{2'000};

struct Scripts {
  LuaScript enqueue{"enqueue", lua::kEnqueue};
  LuaScript claim_batch{"claim_batch", lua::kClaimBatch};
  LuaScript finish_batch{"finish_batch", lua::kFinishBatch};
  LuaScript renew_batch{"renew_batch", lua::kRenewBatch};
  LuaScript release_batch{"release_batch", lua::kReleaseBatch};
  LuaScript reap{"reap", lua::kReap};
  LuaScript cancel{"cancel", lua::kCancel};
  LuaScript retry{"retry", lua::kRetry};
  LuaScript stats{"stats", lua::kStats};
};

// Built on first use, after the embedded sources are initialised; sha1s computed once.
const Scripts& scripts() {
  static const Scripts s;
  return s;
}

constexpr const char* kStateNames[] = {"waiting", "delayed", "active",
                                       "completed", "dead", "cancelled"};

// A reply element as text: ids come back as integers when a script made them and as
// strings when it read them from Redis.
std::string Text(const RedisReply& r) {
  return r.type == RedisReply::Type::kInteger ? std::to_string(r.integer) : r.str;
}

int64_t ToInt(const std::string& s) {
  int64_t v = 0;
  std::from_chars(s.data(), s.data() + s.size(), v);
  return v;
}

Status UnexpectedReply(const std::string& what, const RedisReply& r) {
  return Status::Internal("unexpected reply to " + what + " from Redis" +
                          (r.is_error() ? ": " + r.str : ""));
}

Status CheckSpec(const JobSpec& spec) {
  if (spec.name.empty()) return Status::InvalidArgument("job name must not be empty");
  if (spec.priority < kMinPriority || spec.priority > kMaxPriority) {
    return Status::InvalidArgument("priority " + std::to_string(spec.priority) +
                                   " is out of range " + std::to_string(kMinPriority) + ".." +
                                   std::to_string(kMaxPriority));
  }
  if (spec.max_attempts < 1) {
    return Status::InvalidArgument("max_attempts must be at least 1, got " +
                                   std::to_string(spec.max_attempts));
  }
  if (spec.delay.count() < 0) return Status::InvalidArgument("delay must not be negative");
  if (spec.timeout.count() < 0) return Status::InvalidArgument("timeout must not be negative");
  return Status::OK();
}

std::vector<std::string> FinishKeys(const std::string& prefix) {
  return {prefix,          prefix + "active",    prefix + "delayed", prefix + "completed",
          prefix + "dead", prefix + "cancelled", prefix + "idem"};
}

Millis ClampLease(Millis lease) { return std::clamp(lease, kMinLease, kMaxLease); }

// A job from its hash, its claim (claim:<id>, a string while the job is active, else nil)
// and its score in active (the lease deadline, nil when not active). A claim is not written
// into the hash, so while one exists it says the state (active), the attempt and the start
// time; the hash has them from before the claim.
Job ParseJob(const std::string& id, const RedisReply& hash, const RedisReply& claim,
             const RedisReply& deadline) {
  Job job;
  job.id = id;
  for (size_t i = 0; i + 1 < hash.elements.size(); i += 2) {
    const std::string& field = hash.elements[i].str;
    const std::string& value = hash.elements[i + 1].str;
    if (field == "state") {
      if (auto s = ParseJobState(value); s.ok()) job.state = *s;
      continue;
    }
    if (field == "name") job.name = value;
    else if (field == "payload") job.payload = value;
    else if (field == "priority") job.priority = static_cast<int>(ToInt(value));
    else if (field == "attempts") job.attempts = static_cast<int>(ToInt(value));
    else if (field == "max_attempts") job.max_attempts = static_cast<int>(ToInt(value));
    else if (field == "stalls") job.stalls = static_cast<int>(ToInt(value));
    else if (field == "lease_ms") job.lease = Millis(ToInt(value));
    else if (field == "timeout_ms") job.timeout = Millis(ToInt(value));
    else if (field == "created_ms") job.created_ms = ToInt(value);
    else if (field == "run_at_ms") job.run_at_ms = ToInt(value);
    else if (field == "started_ms") job.started_ms = ToInt(value);
    else if (field == "finished_ms") job.finished_ms = ToInt(value);
    else if (field == "error") job.error = value;
    else if (field == "result") job.result = value;
    else if (field == "idem") job.idempotency_key = value;
  }
  if (claim.type == RedisReply::Type::kString) {
    // The token: "<attempt>:<started_ms>:<claimseq>.<id>".
    job.state = JobState::kActive;
    const std::string& token = claim.str;
    size_t first = token.find(':');
    size_t second = first == std::string::npos ? first : token.find(':', first + 1);
    if (second != std::string::npos) {
      job.attempts = static_cast<int>(ToInt(token.substr(0, first)));
      job.started_ms = ToInt(token.substr(first + 1, second - first - 1));
    }
  }
  if (deadline.type == RedisReply::Type::kString) {
    job.deadline_ms = static_cast<int64_t>(std::strtod(deadline.str.c_str(), nullptr));
  }
  return job;
}

}  // namespace

// Reads the jobs in one MULTI/EXEC, so that each job's hash, claim and lease deadline are
// one consistent snapshot. A job that does not exist (never, or trimmed) is left out.
StatusOr<std::vector<Job>> JobQueue::ReadJobs(const std::vector<std::string>& ids) {
  std::vector<Job> jobs;
  if (ids.empty()) return jobs;
  const std::string active = prefix_ + "active";
  conn_->Append({"MULTI"});
  for (const std::string& id : ids) {
    conn_->Append({"HGETALL", prefix_ + "job:" + id});
    conn_->Append({"GET", prefix_ + "claim:" + id});
    conn_->Append({"ZSCORE", active, id});
  }
  conn_->Append({"EXEC"});
  // Read every reply before judging any, so the connection stays in step.
  std::vector<RedisReply> replies;
  replies.reserve(ids.size() * 3 + 2);
  for (size_t i = 0; i < ids.size() * 3 + 2; ++i) {
    auto r = conn_->GetReply();
    if (!r.ok()) return r.status();
    replies.push_back(std::move(r).value());
  }
  for (const RedisReply& r : replies) {
    if (r.is_error()) return UnexpectedReply("a job read", r);
  }
  const RedisReply& exec = replies.back();
  if (!exec.is_array() || exec.elements.size() != ids.size() * 3) {
    return UnexpectedReply("EXEC", exec);
  }
  jobs.reserve(ids.size());
  for (size_t i = 0; i < ids.size(); ++i) {
    const RedisReply& hash = exec.elements[i * 3];
    if (!hash.is_array()) return UnexpectedReply("HGETALL", hash);
    if (hash.elements.empty()) continue;
    jobs.push_back(ParseJob(ids[i], hash, exec.elements[i * 3 + 1], exec.elements[i * 3 + 2]));
  }
  return jobs;
}

const char* JobStateName(JobState s) { return kStateNames[static_cast<int>(s)]; }

StatusOr<JobState> ParseJobState(std::string_view name) {
  for (int i = 0; i < 6; ++i) {
    if (name == kStateNames[i]) return static_cast<JobState>(i);
  }
  return Status::InvalidArgument("unknown job state '" + std::string(name) +
                                 "' (expected waiting, delayed, active, completed, dead or "
                                 "cancelled)");
}

JobQueue::JobQueue(std::unique_ptr<RedisConnection> conn, std::string queue,
                   RetentionPolicy retention)
    : conn_(std::move(conn)),
      queue_(std::move(queue)),
      prefix_(KeyPrefix(queue_)),
      retention_(retention) {}

JobQueue::~JobQueue() = default;

std::string JobQueue::KeyPrefix(const std::string& queue) { return "lk:{" + queue + "}:"; }

StatusOr<EnqueueResult> JobQueue::Enqueue(const JobSpec& spec) {
  auto results = EnqueueBatch({spec});
  if (!results.ok()) return results.status();
  return std::move(results->front());
}

StatusOr<std::vector<EnqueueResult>> JobQueue::EnqueueBatch(const std::vector<JobSpec>& specs) {
  if (specs.empty()) return std::vector<EnqueueResult>{};
  std::vector<std::string> args;
  args.reserve(1 + specs.size() * 8);
  args.push_back(std::to_string(specs.size()));
  for (size_t i = 0; i < specs.size(); ++i) {
    const JobSpec& spec = specs[i];
    if (Status s = CheckSpec(spec); !s.ok()) {
      return specs.size() == 1 ? s
                               : s.WithContext("job " + std::to_string(i + 1) + " of " +
                                               std::to_string(specs.size()));
    }
    args.push_back(spec.name);
    args.push_back(spec.payload);
    args.push_back(std::to_string(spec.priority));
    args.push_back(std::to_string(spec.max_attempts));
    args.push_back(std::to_string(ClampLease(spec.lease).count()));
    args.push_back(std::to_string(spec.timeout.count()));
    args.push_back(std::to_string(spec.delay.count()));
    args.push_back(spec.idempotency_key);
  }
  auto reply = conn_->RunScript(scripts().enqueue,
                                {prefix_, prefix_ + "seq", prefix_ + "waiting",
                                 prefix_ + "delayed", prefix_ + "idem", prefix_ + "wake"},
                                args);
  if (!reply.ok()) return reply.status();
  // {first, then index, id per job that already existed}: the others were created, with
  // ids first, first + 1, ... in input order.
  const auto& e = reply->elements;
  if (!reply->is_array() || e.empty() || e.size() % 2 != 1 || e.size() > specs.size() * 2 + 1) {
    return UnexpectedReply("enqueue", *reply);
  }
  std::vector<EnqueueResult> results(specs.size());
  for (size_t i = 1; i < e.size(); i += 2) {
    long long index = e[i].AsInt();
    if (index < 1 || index > static_cast<long long>(specs.size())) {
      return UnexpectedReply("enqueue", *reply);
    }
    results[index - 1].id = Text(e[i + 1]);
    results[index - 1].created = false;
  }
  long long next = e[0].AsInt();
  for (EnqueueResult& r : results) {
    if (r.created) r.id = std::to_string(next++);
  }
  return results;
}

std::vector<std::string> JobQueue::ClaimKeys() const {
  return {prefix_,          prefix_ + "waiting", prefix_ + "delayed",
          prefix_ + "active", prefix_ + "dead",  prefix_ + "idem",
          prefix_ + "epoch",  prefix_ + "owner", prefix_ + "claimseq"};
}

std::vector<std::string> JobQueue::ClaimArgs(int max, int64_t epoch) const {
  return {std::to_string(max), std::to_string(epoch), std::to_string(kMaxStalls)};
}

StatusOr<ClaimResult> JobQueue::ParseClaim(RedisReply&& reply) {
  if (!reply.is_array() || reply.elements.size() < 3 || (reply.elements.size() - 3) % 6 != 0) {
    return UnexpectedReply("claim_batch", reply);
  }
  auto& e = reply.elements;
  ClaimResult result;
  switch (e[0].AsInt()) {
    case 0: result.outcome = ClaimResult::Outcome::kClaimed; break;
    case 1: result.outcome = ClaimResult::Outcome::kStaleEpoch; break;
    case 2: result.outcome = ClaimResult::Outcome::kOwned; break;
    default: return UnexpectedReply("claim_batch", reply);
  }
  result.current_epoch = e[1].AsInt();
  result.next_due_in_ms = e[2].AsInt();
  result.jobs.reserve((e.size() - 3) / 6);
  for (size_t i = 3; i < e.size(); i += 6) {
    // Per job: token, name, payload, max_attempts, lease_ms, timeout_ms. The token
    // "<attempt>:<started_ms>:<claimseq>.<id>" names the job and the attempt.
    std::string& token = e[i].str;
    size_t colon = token.find(':');
    size_t dot = token.rfind('.');
    if (colon == std::string::npos || dot == std::string::npos) {
      return UnexpectedReply("claim_batch", reply);
    }
    ClaimedJob job;
    job.id = token.substr(dot + 1);
    job.attempt = static_cast<int>(ToInt(token.substr(0, colon)));
    job.token = std::move(token);
    job.name = std::move(e[i + 1].str);
    job.payload = std::move(e[i + 2].str);
    job.max_attempts = static_cast<int>(e[i + 3].AsInt());
    job.lease = Millis(e[i + 4].AsInt());
    job.timeout = Millis(e[i + 5].AsInt());
    result.jobs.push_back(std::move(job));
  }
  return result;
}

StatusOr<ClaimResult> JobQueue::ClaimBatch(int max, int64_t epoch) {
  if (max < 0) return Status::InvalidArgument("claim max must not be negative");
  if (epoch < 0) return Status::InvalidArgument("epoch must not be negative");
  auto reply = conn_->RunScript(scripts().claim_batch, ClaimKeys(), ClaimArgs(max, epoch));
  if (!reply.ok()) return reply.status();
  return ParseClaim(std::move(reply).value());
}

// Successes first, three arguments each (the hot path), then failures; ParseFinish puts
// the replies back in the caller's order.
std::vector<std::string> JobQueue::FinishArgs(const std::vector<JobOutcome>& outcomes) const {
  size_t successes = 0;
  for (const JobOutcome& o : outcomes) successes += o.success ? 1 : 0;
  const size_t failures = outcomes.size() - successes;
  std::vector<std::string> args;
  args.reserve(6 + successes * 3 + failures * 6);
  args.push_back(std::to_string(retention_.keep_completed));
  args.push_back(std::to_string(retention_.completed_max_age.count()));
  args.push_back(std::to_string(retention_.keep_dead));
  args.push_back(std::to_string(retention_.dead_max_age.count()));
  args.push_back(std::to_string(successes));
  args.push_back(std::to_string(failures));
  for (const JobOutcome& o : outcomes) {
    if (!o.success) continue;
    args.push_back(o.id);
    args.push_back(o.token);
    args.push_back(o.result);
  }
  for (const JobOutcome& o : outcomes) {
    if (o.success) continue;
    args.push_back(o.id);
    args.push_back(o.token);
    args.push_back(o.error);
    args.push_back(o.retryable ? "1" : "0");
    args.push_back(std::to_string(o.max_attempts_override));
    char jitter[32];
    std::snprintf(jitter, sizeof(jitter), "%.6f", o.jitter);
    args.push_back(jitter);
  }
  return args;
}

StatusOr<FinishResult> JobQueue::ParseFinish(const RedisReply& reply,
                                             const std::vector<JobOutcome>& outcomes) {
  if (!reply.is_array() || reply.elements.size() != outcomes.size()) {
    return UnexpectedReply("finish_batch", reply);
  }
  // The script answers successes first, then failures (FinishArgs' order).
  FinishResult result;
  result.accepted.reserve(outcomes.size());
  size_t next_success = 0, next_failure = 0;
  for (const JobOutcome& o : outcomes) next_failure += o.success ? 1 : 0;
  for (const JobOutcome& o : outcomes) {
    size_t i = o.success ? next_success++ : next_failure++;
    result.accepted.push_back(reply.elements[i].AsInt() == 1);
  }
  return result;
}

StatusOr<FinishResult> JobQueue::FinishBatch(const std::vector<JobOutcome>& outcomes) {
  auto reply = conn_->RunScript(scripts().finish_batch, FinishKeys(prefix_), FinishArgs(outcomes));
  if (!reply.ok()) return reply.status();
  return ParseFinish(*reply, outcomes);
}

StatusOr<std::pair<FinishResult, ClaimResult>> JobQueue::FinishAndClaim(
    const std::vector<JobOutcome>& outcomes, int max, int64_t epoch) {
  if (max < 0) return Status::InvalidArgument("claim max must not be negative");
  if (epoch < 0) return Status::InvalidArgument("epoch must not be negative");
  const std::vector<std::string> finish_keys = FinishKeys(prefix_);
  const std::vector<std::string> finish_args = FinishArgs(outcomes);
  const std::vector<std::string> claim_keys = ClaimKeys();
  const std::vector<std::string> claim_args = ClaimArgs(max, epoch);
  // One round trip: both EVALSHAs go out before either reply is read. Both replies are
  // read before either is interpreted, so a NOSCRIPT fallback (a new command) never
  // interleaves with a pending reply.
  conn_->AppendScript(scripts().finish_batch, finish_keys, finish_args);
  conn_->AppendScript(scripts().claim_batch, claim_keys, claim_args);
  auto finish_reply = conn_->GetReply();
  if (!finish_reply.ok()) return finish_reply.status();
  auto claim_reply = conn_->GetReply();
  if (!claim_reply.ok()) return claim_reply.status();
  auto finish = conn_->FinishScript(scripts().finish_batch, finish_keys, finish_args,
                                    std::move(finish_reply).value());
  auto claim = conn_->FinishScript(scripts().claim_batch, claim_keys, claim_args,
                                   std::move(claim_reply).value());
  StatusOr<FinishResult> finished =
      finish.ok() ? ParseFinish(*finish, outcomes) : finish.status();
  StatusOr<ClaimResult> claimed = claim.ok() ? ParseClaim(std::move(claim).value()) : claim.status();
  if (!finished.ok()) {
    // The claim went through although the outcomes did not: give its jobs back now rather
    // than let them wait out their leases and count as stalls.
    if (claimed.ok() && !claimed->jobs.empty()) {
      std::vector<std::pair<std::string, std::string>> id_tokens;
      for (const ClaimedJob& job : claimed->jobs) id_tokens.emplace_back(job.id, job.token);
      ReleaseBatch(id_tokens);
    }
    return finished.status();
  }
  if (!claimed.ok()) return claimed.status();
  return std::make_pair(std::move(finished).value(), std::move(claimed).value());
}

StatusOr<RenewResult> JobQueue::RenewBatch(const std::vector<LeaseRenewal>& renewals) {
  if (renewals.empty()) return RenewResult{};
  std::vector<std::string> args;
  args.reserve(1 + renewals.size() * 3);
  args.push_back(std::to_string(renewals.size()));
  for (const LeaseRenewal& r : renewals) {
    args.push_back(r.id);
    args.push_back(r.token);
    args.push_back(std::to_string(ClampLease(r.lease).count()));
  }
  auto reply = conn_->RunScript(scripts().renew_batch, {prefix_, prefix_ + "active"}, args);
  if (!reply.ok()) return reply.status();
  if (!reply->is_array() || reply->elements.size() != renewals.size()) {
    return UnexpectedReply("renew_batch", *reply);
  }
  RenewResult result;
  result.still_held.reserve(renewals.size());
  for (const RedisReply& e : reply->elements) result.still_held.push_back(e.AsInt() == 1);
  return result;
}

StatusOr<int> JobQueue::ReleaseBatch(
    const std::vector<std::pair<std::string, std::string>>& id_tokens) {
  if (id_tokens.empty()) return 0;
  std::vector<std::string> args;
  args.reserve(1 + id_tokens.size() * 2);
  args.push_back(std::to_string(id_tokens.size()));
  for (const auto& [id, token] : id_tokens) {
    args.push_back(id);
    args.push_back(token);
  }
  auto reply = conn_->RunScript(
      scripts().release_batch,
      {prefix_, prefix_ + "active", prefix_ + "waiting", prefix_ + "wake"}, args);
  if (!reply.ok()) return reply.status();
  if (reply->type != RedisReply::Type::kInteger) return UnexpectedReply("release_batch", *reply);
  return static_cast<int>(reply->integer);
}

StatusOr<int> JobQueue::Reap(int max) {
  if (max < 1) return Status::InvalidArgument("reap max must be at least 1");
  auto reply = conn_->RunScript(scripts().reap,
                                {prefix_, prefix_ + "waiting", prefix_ + "delayed",
                                 prefix_ + "active", prefix_ + "dead", prefix_ + "idem",
                                 prefix_ + "wake"},
                                {std::to_string(max), std::to_string(kMaxStalls)});
  if (!reply.ok()) return reply.status();
  if (reply->type != RedisReply::Type::kInteger) return UnexpectedReply("reap", *reply);
  return static_cast<int>(reply->integer);
}

StatusOr<Job> JobQueue::Get(const std::string& id) {
  auto jobs = ReadJobs({id});
  if (!jobs.ok()) return jobs.status();
  if (jobs->empty()) return Status::NotFound("no job '" + id + "' in queue '" + queue_ + "'");
  return std::move(jobs->front());
}

StatusOr<std::vector<Job>> JobQueue::List(JobState state, int limit) {
  if (limit <= 0) return std::vector<Job>{};
  // Finished sets are scored by finish time; people look for the latest first.
  const bool newest_first =
      state == JobState::kCompleted || state == JobState::kDead || state == JobState::kCancelled;
  std::vector<std::string> range = {"ZRANGE", prefix_ + JobStateName(state), "0",
                                    std::to_string(limit - 1)};
  if (newest_first) range.push_back("REV");
  auto reply = conn_->Command(range);
  if (!reply.ok()) return reply.status();
  if (!reply->is_array()) return UnexpectedReply("ZRANGE", *reply);
  std::vector<std::string> ids;
  ids.reserve(reply->elements.size());
  for (const RedisReply& id : reply->elements) ids.push_back(id.str);
  // A job trimmed between the two reads is simply gone.
  return ReadJobs(ids);
}

StatusOr<QueueStats> JobQueue::Stats() {
  auto reply = conn_->RunScript(scripts().stats,
                                {prefix_, prefix_ + "waiting", prefix_ + "delayed",
                                 prefix_ + "active", prefix_ + "completed", prefix_ + "dead",
                                 prefix_ + "cancelled", prefix_ + "epoch"},
                                {});
  if (!reply.ok()) return reply.status();
  if (!reply->is_array() || reply->elements.size() != 8) return UnexpectedReply("stats", *reply);
  const auto& e = reply->elements;
  QueueStats stats;
  stats.waiting = e[0].AsInt();
  stats.delayed = e[1].AsInt();
  stats.active = e[2].AsInt();
  stats.completed = e[3].AsInt();
  stats.dead = e[4].AsInt();
  stats.cancelled = e[5].AsInt();
  stats.oldest_waiting_age_ms = e[6].AsInt();
  stats.current_epoch = e[7].AsInt();
  return stats;
}

Status JobQueue::Retry(const std::string& id) {
  auto reply = conn_->RunScript(
      scripts().retry,
      {prefix_, prefix_ + "dead", prefix_ + "waiting", prefix_ + "idem", prefix_ + "wake"}, {id});
  if (!reply.ok()) return reply.status();
  if (reply->AsInt() == 0) return Status::NotFound("no job '" + id + "' in queue '" + queue_ + "'");
  return Status::OK();
}

Status JobQueue::Cancel(const std::string& id) {
  auto reply = conn_->RunScript(scripts().cancel,
                                {prefix_, prefix_ + "waiting", prefix_ + "delayed",
                                 prefix_ + "active", prefix_ + "cancelled", prefix_ + "idem"},
                                {id});
  if (!reply.ok()) return reply.status();
  if (reply->AsInt() == 0) return Status::NotFound("no job '" + id + "' in queue '" + queue_ + "'");
  return Status::OK();
}

StatusOr<bool> JobQueue::WaitForWork(Millis timeout) {
  const std::string wake = prefix_ + "wake";
  // BRPOP 0 would block forever; a non-positive timeout only looks.
  if (timeout.count() <= 0) {
    auto reply = conn_->Command({"RPOP", wake});
    if (!reply.ok()) return reply.status();
    if (reply->is_error()) return UnexpectedReply("RPOP", *reply);
    return !reply->is_nil();
  }
  char seconds[32];
  std::snprintf(seconds, sizeof(seconds), "%.3f", timeout.count() / 1000.0);
  const Millis previous = conn_->read_timeout();
  conn_->SetReadTimeout(timeout + kBlockingSlack);
  auto reply = conn_->Command({"BRPOP", wake, seconds});
  conn_->SetReadTimeout(previous);
  if (!reply.ok()) return reply.status();
  if (reply->is_error()) return UnexpectedReply("BRPOP", *reply);
  return reply->is_array();
}

StatusOr<std::unique_ptr<JobQueue>> OpenJobQueue(const std::string& redis_url,
                                                 const std::string& queue,
                                                 RetentionPolicy retention) {
  // The name becomes the hash tag of every key; braces would split the queue across slots.
  if (queue.empty() || queue.find_first_of("{}") != std::string::npos) {
    return Status::InvalidArgument("bad queue name '" + queue +
                                   "': it must be non-empty and contain no '{' or '}'");
  }
  auto endpoint = ParseRedisUrl(redis_url);
  if (!endpoint.ok()) return endpoint.status();
  auto conn = RedisConnection::Connect(*endpoint, kRedisTimeout);
  if (!conn.ok()) return conn.status();
  return std::make_unique<JobQueue>(std::move(conn).value(), queue, retention);
}

}  // namespace lk
