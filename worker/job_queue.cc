#include "worker/job_queue.h"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <limits>
#include <nlohmann/json.hpp>

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
  LuaScript migrate{"migrate", lua::kMigrate};
};

// Entries of the waiting set (or idempotency keys) a layout upgrade converts per call.
constexpr int kMigrateStep = 10'000;

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

// A stored number. The scripts store integers, but a job written by an older version may
// hold a float ("6.9175290456015176e+20", an uncapped backoff): read as a double and
// clamped to int64, never cut at its decimal point ("6").
int64_t ToInt(const std::string& s) {
  int64_t v = 0;
  auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  if (ec == std::errc() && end == s.data() + s.size()) return v;
  double d = std::strtod(s.c_str(), nullptr);
  if (!std::isfinite(d)) return d > 0 ? std::numeric_limits<int64_t>::max() : 0;
  if (d >= 9.2e18) return std::numeric_limits<int64_t>::max();
  if (d <= -9.2e18) return std::numeric_limits<int64_t>::min();
  return static_cast<int64_t>(std::llround(d));
}

// "B42" (a waiting member: a letter for the id's length, then the id) -> "42".
std::string IdOfWaitingMember(const std::string& member) {
  return member.empty() ? member : member.substr(1);
}

// A claim cancelled while its job ran (prelude.lua's CANCELLED).
constexpr std::string_view kCancelledClaim = " cancelled";

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
  if (spec.idempotency_window.count() < 0) {
    return Status::InvalidArgument("idempotency_window must not be negative");
  }
  if (spec.max_backoff.count() < 0) return Status::InvalidArgument("max_backoff must not be negative");
  return Status::OK();
}

std::vector<std::string> FinishKeys(const std::string& prefix) {
  return {prefix,          prefix + "active",    prefix + "delayed", prefix + "completed",
          prefix + "dead", prefix + "cancelled", prefix + "idem",    prefix + "idem_expiry"};
}

// The array of {attempt, at_ms, error} objects finish_batch.lua and the reaper keep.
std::vector<AttemptError> ParseAttemptErrors(const std::string& text) {
  std::vector<AttemptError> errors;
  auto list = nlohmann::json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (!list.is_array()) return errors;
  for (const auto& e : list) {
    if (!e.is_object()) continue;
    AttemptError a;
    a.attempt = e.value("attempt", 0);
    a.at_ms = e.value("at_ms", int64_t{0});
    a.error = e.value("error", std::string());
    errors.push_back(std::move(a));
  }
  return errors;
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
    else if (field == "attempt_errors") job.attempt_errors = ParseAttemptErrors(value);
  }
  if (claim.type == RedisReply::Type::kString) {
    // The token: "<attempt>:<started_ms>:<claimseq>.<id>", with " cancelled" appended when
    // the job was cancelled while it ran (its hash then says cancelled).
    const std::string& token = claim.str;
    job.stopping = token.ends_with(kCancelledClaim);
    if (!job.stopping) job.state = JobState::kActive;
    size_t first = token.find(':');
    size_t second = first == std::string::npos ? first : token.find(':', first + 1);
    if (second != std::string::npos) {
      job.attempts = static_cast<int>(ToInt(token.substr(0, first)));
      job.started_ms = ToInt(token.substr(first + 1, second - first - 1));
    }
  }
  if (deadline.type == RedisReply::Type::kString) {
    job.deadline_ms = ToInt(deadline.str);
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
                   QueueOptions options)
    : conn_(std::move(conn)),
      queue_(std::move(queue)),
      prefix_(KeyPrefix(queue_)),
      options_(options) {}

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
  args.reserve(3 + specs.size() * 8);
  args.push_back(std::to_string(specs.size()));
  args.push_back(std::to_string(options_.idempotency_window.count()));
  args.push_back("0");  // how many jobs have settings of their own: counted below
  size_t own = 0;
  for (size_t i = 0; i < specs.size(); ++i) {
    const JobSpec& spec = specs[i];
    if (Status s = CheckSpec(spec); !s.ok()) {
      return specs.size() == 1 ? s
                               : s.WithContext("job " + std::to_string(i + 1) + " of " +
                                               std::to_string(specs.size()));
    }
    if (spec.idempotency_window.count() > 0 || spec.max_backoff.count() > 0) {
      args.push_back(std::to_string(i + 1));
      args.push_back(std::to_string(spec.idempotency_window.count()));
      args.push_back(std::to_string(spec.max_backoff.count()));
      ++own;
    }
  }
  args[2] = std::to_string(own);
  for (const JobSpec& spec : specs) {
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
                                 prefix_ + "delayed", prefix_ + "idem",
                                 prefix_ + "idem_expiry", prefix_ + "wake"},
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
  return {prefix_,           prefix_ + "waiting",   prefix_ + "delayed",
          prefix_ + "active",  prefix_ + "dead",      prefix_ + "cancelled",
          prefix_ + "idem",    prefix_ + "idem_expiry", prefix_ + "epoch",
          prefix_ + "owner",   prefix_ + "claimseq"};
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
  args.reserve(7 + successes * 3 + failures * 6);
  args.push_back(std::to_string(options_.keep_completed));
  args.push_back(std::to_string(options_.completed_max_age.count()));
  args.push_back(std::to_string(options_.keep_dead));
  args.push_back(std::to_string(options_.dead_max_age.count()));
  args.push_back(std::to_string(options_.max_backoff.count()));
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

StatusOr<std::vector<bool>> JobQueue::CheckClaims(
    const std::vector<std::pair<std::string, std::string>>& id_tokens) {
  if (id_tokens.empty()) return std::vector<bool>{};
  std::vector<std::string> mget = {"MGET"};
  mget.reserve(1 + id_tokens.size());
  for (const auto& [id, token] : id_tokens) mget.push_back(prefix_ + "claim:" + id);
  auto reply = conn_->Command(mget);
  if (!reply.ok()) return reply.status();
  if (!reply->is_array() || reply->elements.size() != id_tokens.size()) {
    return UnexpectedReply("MGET", *reply);
  }
  std::vector<bool> held;
  held.reserve(id_tokens.size());
  for (size_t i = 0; i < id_tokens.size(); ++i) {
    const RedisReply& claim = reply->elements[i];
    held.push_back(claim.type == RedisReply::Type::kString && claim.str == id_tokens[i].second);
  }
  return held;
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
      {prefix_, prefix_ + "active", prefix_ + "waiting", prefix_ + "cancelled", prefix_ + "idem",
       prefix_ + "idem_expiry", prefix_ + "wake"},
      args);
  if (!reply.ok()) return reply.status();
  if (reply->type != RedisReply::Type::kInteger) return UnexpectedReply("release_batch", *reply);
  return static_cast<int>(reply->integer);
}

StatusOr<int> JobQueue::Reap(int max) {
  if (max < 1) return Status::InvalidArgument("reap max must be at least 1");
  auto reply = conn_->RunScript(scripts().reap,
                                {prefix_, prefix_ + "waiting", prefix_ + "delayed",
                                 prefix_ + "active", prefix_ + "dead", prefix_ + "cancelled",
                                 prefix_ + "idem", prefix_ + "idem_expiry", prefix_ + "wake"},
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
  // Finished sets are scored by finish time; people look for the latest first. ZREVRANGE,
  // not ZRANGE ... REV, which needs Redis 6.2.
  const bool newest_first =
      state == JobState::kCompleted || state == JobState::kDead || state == JobState::kCancelled;
  auto reply = conn_->Command({newest_first ? "ZREVRANGE" : "ZRANGE",
                               prefix_ + JobStateName(state), "0", std::to_string(limit - 1)});
  if (!reply.ok()) return reply.status();
  if (!reply->is_array()) return UnexpectedReply("ZRANGE", *reply);
  std::vector<std::string> ids;
  ids.reserve(reply->elements.size());
  for (const RedisReply& id : reply->elements) {
    ids.push_back(state == JobState::kWaiting ? IdOfWaitingMember(id.str) : id.str);
  }
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
  auto reply = conn_->RunScript(scripts().retry,
                                {prefix_, prefix_ + "dead", prefix_ + "waiting", prefix_ + "idem",
                                 prefix_ + "idem_expiry", prefix_ + "wake"},
                                {id});
  if (!reply.ok()) return reply.status();
  if (reply->AsInt() == 0) return Status::NotFound("no job '" + id + "' in queue '" + queue_ + "'");
  return Status::OK();
}

Status JobQueue::Cancel(const std::string& id) {
  auto reply = conn_->RunScript(scripts().cancel,
                                {prefix_, prefix_ + "waiting", prefix_ + "delayed",
                                 prefix_ + "cancelled", prefix_ + "idem", prefix_ + "idem_expiry"},
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

Status JobQueue::Wake() {
  const std::string wake = prefix_ + "wake";
  // As enqueue.lua does: one element at most, whoever pops it first is woken.
  for (const auto& cmd : {std::vector<std::string>{"LPUSH", wake, "1"},
                          std::vector<std::string>{"LTRIM", wake, "0", "0"}}) {
    auto reply = conn_->Command(cmd);
    if (!reply.ok()) return reply.status();
    if (reply->is_error()) return UnexpectedReply(cmd[0], *reply);
  }
  return Status::OK();
}

Status CheckRedisVersion(std::string_view version, const std::string& where) {
  int major = 0, minor = 0;
  const char* end = version.data() + version.size();
  auto [dot, ec] = std::from_chars(version.data(), end, major);
  if (ec != std::errc()) return Status::OK();  // not a version we can read: not ours to refuse
  if (dot < end && *dot == '.') std::from_chars(dot + 1, end, minor);
  if (major > 6 || (major == 6 && minor >= 0)) return Status::OK();
  return Status::FailedPrecondition("Redis " + std::string(version) + " at " + where +
                                    " is too old: the queue needs Redis 6.0 or later");
}

namespace {

// HELLO (Redis 6.0+) answers the version without the INFO permission, which managed
// Redis services often withhold; a Redis without HELLO is older than 6.0, and INFO, if
// allowed, says which version it is. A Redis that refuses both is not refused here.
Status CheckServerVersion(RedisConnection& conn) {
  const std::string where = conn.endpoint().Redacted();
  auto hello = conn.Command({"HELLO", "2"});
  if (!hello.ok()) return hello.status();
  if (hello->is_array()) {
    const auto& e = hello->elements;
    for (size_t i = 0; i + 1 < e.size(); i += 2) {
      if (e[i].str == "version") return CheckRedisVersion(e[i + 1].str, where);
    }
    return Status::OK();
  }
  const bool no_hello = hello->str.find("unknown command") != std::string::npos;
  auto info = conn.Command({"INFO", "server"});
  if (!info.ok()) return info.status();
  const std::string key = "redis_version:";
  if (auto at = info->str.find(key); !info->is_error() && at != std::string::npos) {
    at += key.size();
    return CheckRedisVersion(info->str.substr(at, info->str.find_first_of("\r\n", at) - at), where);
  }
  if (!no_hello) return Status::OK();
  return Status::FailedPrecondition("Redis at " + where + " is too old (it has no HELLO command, "
                                    "which came with 6.0): the queue needs Redis 6.0 or later");
}

}  // namespace

// A queue stored by an older version is upgraded in steps (migrate.lua); concurrent
// openers each take steps of the same upgrade, and none goes on before it is done.
Status JobQueue::EnsureLayout() {
  std::string cursor = "0";
  for (;;) {
    auto reply = conn_->RunScript(scripts().migrate,
                                  {prefix_, prefix_ + "waiting", prefix_ + "idem",
                                   prefix_ + "idem_expiry"},
                                  {std::to_string(kMigrateStep), cursor});
    if (!reply.ok()) return reply.status();
    if (!reply->is_array() || reply->elements.size() != 2) return UnexpectedReply("migrate", *reply);
    if (reply->elements[0].AsInt() == 1) return Status::OK();
    cursor = Text(reply->elements[1]);
  }
}

StatusOr<std::unique_ptr<JobQueue>> OpenJobQueue(const std::string& redis_url,
                                                 const std::string& queue,
                                                 QueueOptions options) {
  // The name becomes the hash tag of every key; braces would split the queue across slots.
  if (queue.empty() || queue.find_first_of("{}") != std::string::npos) {
    return Status::InvalidArgument("bad queue name '" + queue +
                                   "': it must be non-empty and contain no '{' or '}'");
  }
  auto endpoint = ParseRedisUrl(redis_url);
  if (!endpoint.ok()) return endpoint.status();
  auto conn = RedisConnection::Connect(*endpoint, kRedisTimeout);
  if (!conn.ok()) return conn.status();
  if (Status s = CheckServerVersion(**conn); !s.ok()) return s;
  auto q = std::make_unique<JobQueue>(std::move(conn).value(), queue, options);
  if (Status s = q->EnsureLayout(); !s.ok()) return s;
  return q;
}

}  // namespace lk
