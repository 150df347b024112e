// jobs submit | get | list | stats | retry | cancel: the queue from the command line.
//
// Each command checks all of its input (payload JSON, durations, state, job id) before it
// opens Redis, and changes the queue in at most one script call, so bad input or a failure
// never leaves anything half-written. A failure prints one line, "lanekeeper: <what was
// wrong>", on stderr and sets the exit code: kExitUsage (2) for bad input, kExitFailure (1)
// for everything else (Redis unreachable, no such job, a job in the wrong state).
#include <spdlog/spdlog.h>
#include <time.h>

#include <charconv>
#include <climits>
#include <iostream>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "cmd/commands.h"
#include "worker/duration.h"
#include "worker/exit_codes.h"
#include "worker/job_queue.h"

namespace lk::cmd {

namespace {

// Insertion order: objects print id first, as people read them, and payloads keep the
// submitter's key order.
using json = nlohmann::ordered_json;

// An integer flag within [min, max]. CLI11's Range says "Value abc not in range" for text
// that is no number at all; this names the actual problem.
CLI::Validator WholeNumber(int min, int max) {
  std::string desc = max == INT_MAX ? ">= " + std::to_string(min)
                                    : std::to_string(min) + ".." + std::to_string(max);
  return CLI::Validator(
      [min, max](std::string& text) -> std::string {
        int value = 0;
        auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
        if (ec != std::errc() || end != text.data() + text.size()) {
          return "'" + text + "' is not a whole number";
        }
        if (value < min) return "must be at least " + std::to_string(min) + ", got " + text;
        if (value > max) return "must be at most " + std::to_string(max) + ", got " + text;
        return "";
      },
      desc);
}

StatusOr<std::unique_ptr<JobQueue>> OpenQueue(const GlobalOptions& global) {
  auto queue = OpenJobQueue(global.redis_url, global.queue);
  if (queue.ok()) {
    spdlog::debug("queue '{}' at {}", global.queue, (*queue)->connection().endpoint().Redacted());
  }
  return queue;
}

// Validates JSON without building a document: the payload is stored as the text given.
// A SAX handler (rather than parse() with exceptions off) because it alone yields the
// parser's message, which says where the text went wrong.
class JsonChecker : public json::json_sax_t {
 public:
  bool null() override { return true; }
  bool boolean(bool) override { return true; }
  bool number_integer(number_integer_t) override { return true; }
  bool number_unsigned(number_unsigned_t) override { return true; }
  bool number_float(number_float_t, const string_t&) override { return true; }
  bool string(string_t&) override { return true; }
  bool binary(binary_t&) override { return true; }
  bool start_object(std::size_t) override { return true; }
  bool key(string_t&) override { return true; }
  bool end_object() override { return true; }
  bool start_array(std::size_t) override { return true; }
  bool end_array() override { return true; }
  bool parse_error(std::size_t, const std::string&,
                   const nlohmann::detail::exception& e) override {
    // "[json.exception.parse_error.101] parse error at line 1, column 2: ..." -> from "parse error".
    std::string what = e.what();
    auto bracket = what.find("] ");
    error = bracket == std::string::npos ? what : what.substr(bracket + 2);
    return false;
  }
  std::string error;
};

Status CheckPayload(const std::string& text) {
  JsonChecker checker;
  if (json::sax_parse(text, &checker)) return Status::OK();
  return Status::InvalidArgument("invalid --payload: " + checker.error);
}

// The duration flag's text into out; an error names the flag.
Status ReadDuration(const std::string& flag, const std::string& text, Millis& out) {
  auto d = ParseDuration(text);
  if (!d.ok()) return d.status().WithContext(flag);
  out = *d;
  return Status::OK();
}

// Job ids are decimal numbers (worker/job_queue.h); anything else is a typo, not a lookup.
Status CheckJobId(const std::string& id) {
  bool digits = !id.empty() && id.size() <= 20 &&
                id.find_first_not_of("0123456789") == std::string::npos;
  if (digits) return Status::OK();
  return Status::InvalidArgument("bad job id '" + id + "': job ids are decimal numbers");
}

std::string Timestamp(int64_t unix_ms) {
  time_t secs = static_cast<time_t>(unix_ms / 1000);
  tm utc;
  gmtime_r(&secs, &utc);
  char buf[40];
  size_t n = strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%S", &utc);
  snprintf(buf + n, sizeof buf - n, ".%03dZ", static_cast<int>(unix_ms % 1000));
  return buf;
}

// "850ms", "42s", "5m12s", "3h4m", "2d3h": two units at most, for people.
std::string Span(int64_t ms) {
  if (ms < 0) ms = -ms;
  if (ms < 1000) return std::to_string(ms) + "ms";
  int64_t s = ms / 1000;
  auto two = [](int64_t big, const char* big_unit, int64_t small, const char* small_unit) {
    std::string out = std::to_string(big) + big_unit;
    if (small != 0) out += std::to_string(small) + small_unit;
    return out;
  };
  if (s < 60) return std::to_string(s) + "s";
  if (s < 3600) return two(s / 60, "m", s % 60, "s");
  if (s < 86400) return two(s / 3600, "h", s / 60 % 60, "m");
  return two(s / 86400, "d", s / 3600 % 24, "h");
}

std::string When(int64_t unix_ms, int64_t now_ms) {
  std::string rel = unix_ms <= now_ms ? Span(now_ms - unix_ms) + " ago"
                                      : "in " + Span(unix_ms - now_ms);
  return Timestamp(unix_ms) + " (" + rel + ")";
}

// Text that is JSON (a payload, normally) is embedded as JSON; anything else as a string,
// so --json output is always valid whatever a producer stored.
json EmbedJson(const std::string& text) {
  json parsed = json::parse(text, nullptr, /*allow_exceptions=*/false);
  return parsed.is_discarded() ? json(text) : parsed;
}

std::string Dump(const json& j) {
  // Replace, not throw, on invalid UTF-8 in stored strings (handler errors, results).
  return j.dump(2, ' ', false, json::error_handler_t::replace);
}

json JobToJson(const Job& job) {
  json j = {
      {"id", job.id},
      {"name", job.name},
      {"state", JobStateName(job.state)},
      {"priority", job.priority},
      {"attempts", job.attempts},
      {"max_attempts", job.max_attempts},
      {"stalls", job.stalls},
      {"lease_ms", job.lease.count()},
      {"timeout_ms", job.timeout.count()},
      {"created_ms", job.created_ms},
      {"payload", EmbedJson(job.payload)},
  };
  // A due time and a lease deadline mean something only in their state; the stored
  // fields outlive it (a completed job keeps its last deadline).
  if (job.state == JobState::kDelayed) j["run_at_ms"] = job.run_at_ms;
  if (job.state == JobState::kActive) j["deadline_ms"] = job.deadline_ms;
  if (job.started_ms) j["started_ms"] = job.started_ms;
  if (job.finished_ms) j["finished_ms"] = job.finished_ms;
  if (!job.error.empty()) j["error"] = job.error;
  if (!job.attempt_errors.empty()) {
    json errors = json::array();
    for (const AttemptError& e : job.attempt_errors) {
      errors.push_back({{"attempt", e.attempt}, {"at_ms", e.at_ms}, {"error", e.error}});
    }
    j["attempt_errors"] = errors;
  }
  if (!job.result.empty()) j["result"] = job.result;
  if (!job.idempotency_key.empty()) j["idempotency_key"] = job.idempotency_key;
  if (job.stopping) j["stopping"] = true;
  return j;
}

// An error's first line, cut to fit a table row; `jobs get` shows the last error whole.
std::string Headline(const std::string& text) {
  constexpr size_t kMax = 100;
  std::string line = text.substr(0, text.find('\n'));
  if (line.size() > kMax) line = line.substr(0, kMax - 3) + "...";
  return line;
}

void PrintJob(const Job& job, int64_t now_ms) {
  auto row = [](const char* label, const std::string& value) {
    std::cout << label << std::string(15 - std::string(label).size(), ' ') << value << "\n";
  };
  row("id", job.id);
  row("name", job.name);
  row("state", std::string(JobStateName(job.state)) +
                   (job.stopping ? " (its handler is still stopping)" : ""));
  row("priority", std::to_string(job.priority));
  row("attempts", std::to_string(job.attempts) + " of " + std::to_string(job.max_attempts));
  if (job.stalls) row("stalls", std::to_string(job.stalls));
  row("lease", FormatDuration(job.lease));
  row("timeout", job.timeout.count() ? FormatDuration(job.timeout) : "none");
  row("created", When(job.created_ms, now_ms));
  if (job.state == JobState::kDelayed) row("due", When(job.run_at_ms, now_ms));
  if (job.started_ms) row("started", When(job.started_ms, now_ms));
  if (job.state == JobState::kActive) row("lease ends", When(job.deadline_ms, now_ms));
  if (job.finished_ms) row("finished", When(job.finished_ms, now_ms));
  if (!job.idempotency_key.empty()) row("idempotency", job.idempotency_key);
  // A command handler's output usually ends in a newline; the row supplies its own.
  auto chomp = [](std::string text) {
    if (!text.empty() && text.back() == '\n') text.pop_back();
    return text;
  };
  row("payload", job.payload);
  if (!job.result.empty()) row("result", chomp(job.result));
  if (!job.error.empty()) row("error", chomp(job.error));
  for (const AttemptError& e : job.attempt_errors) {
    row(("attempt " + std::to_string(e.attempt)).c_str(),
        Timestamp(e.at_ms) + "  " + Headline(e.error));
  }
}

// One line per job, columns aligned; the last column says what matters in that state.
void PrintJobTable(const std::vector<Job>& jobs, int64_t now_ms) {
  std::vector<std::vector<std::string>> rows = {{"ID", "NAME", "PRI", "ATTEMPTS", "AGE", ""}};
  for (const Job& job : jobs) {
    std::string note;
    switch (job.state) {
      case JobState::kDelayed:
        note = job.run_at_ms > now_ms ? "due in " + Span(job.run_at_ms - now_ms) : "due now";
        break;
      case JobState::kActive:
        note = job.deadline_ms > now_ms ? "lease ends in " + Span(job.deadline_ms - now_ms)
                                        : "lease expired " + Span(now_ms - job.deadline_ms) + " ago";
        break;
      case JobState::kDead:
      case JobState::kCancelled: note = Headline(job.error); break;
      default: break;
    }
    rows.push_back({job.id, job.name, std::to_string(job.priority),
                    std::to_string(job.attempts) + "/" + std::to_string(job.max_attempts),
                    Span(now_ms - job.created_ms), note});
  }
  std::vector<size_t> width(rows[0].size(), 0);
  for (const auto& r : rows) {
    for (size_t i = 0; i < r.size(); ++i) width[i] = std::max(width[i], r[i].size());
  }
  for (const auto& r : rows) {
    std::string line;
    for (size_t i = 0; i < r.size(); ++i) {
      line += r[i];
      if (i + 1 < r.size()) line += std::string(width[i] - r[i].size() + 2, ' ');
    }
    while (!line.empty() && line.back() == ' ') line.pop_back();
    std::cout << line << "\n";
  }
}

// --- submit ---

struct SubmitFlags {
  std::string name;
  std::string payload = "{}";
  int priority = 0;
  std::string delay = "0s";
  int max_attempts = JobSpec().max_attempts;
  std::string idempotency_key;
  std::string timeout = "0s";
  std::string lease = FormatDuration(JobSpec().lease);
  std::string idempotency_window = "0s";
  std::string max_backoff = "0s";
};

StatusOr<JobSpec> SpecFromFlags(const SubmitFlags& f) {
  JobSpec spec;
  spec.name = f.name;
  LK_RETURN_IF_ERROR(CheckPayload(f.payload));
  spec.payload = f.payload;
  spec.priority = f.priority;
  spec.max_attempts = f.max_attempts;
  spec.idempotency_key = f.idempotency_key;
  LK_RETURN_IF_ERROR(ReadDuration("--delay", f.delay, spec.delay));
  LK_RETURN_IF_ERROR(ReadDuration("--timeout", f.timeout, spec.timeout));
  LK_RETURN_IF_ERROR(ReadDuration("--lease", f.lease, spec.lease));
  LK_RETURN_IF_ERROR(ReadDuration("--idempotency-window", f.idempotency_window,
                                  spec.idempotency_window));
  LK_RETURN_IF_ERROR(ReadDuration("--max-backoff", f.max_backoff, spec.max_backoff));
  return spec;
}

int RunSubmit(const GlobalOptions& global, const SubmitFlags& flags) {
  auto spec = SpecFromFlags(flags);
  if (!spec.ok()) return Fail(spec.status());
  auto queue = OpenQueue(global);
  if (!queue.ok()) return Fail(queue.status());
  auto result = (*queue)->Enqueue(*spec);
  if (!result.ok()) return Fail(result.status());
  if (!result->created) {
    std::cerr << "lanekeeper: existing job " << result->id << " has idempotency key '"
              << flags.idempotency_key << "'; nothing submitted\n";
  }
  std::cout << result->id << "\n";
  return kExitOk;
}

void AddSubmit(CLI::App& jobs, GlobalOptions& global, int& exit_code) {
  auto flags = std::make_shared<SubmitFlags>();
  CLI::App* cmd = jobs.add_subcommand("submit", "Submit a job; prints its id");
  cmd->add_option("name", flags->name, "Job name; selects the handler that runs it")
      ->type_name("NAME")
      ->required();
  cmd->add_option("--payload", flags->payload, "Job payload, a JSON document")
      ->type_name("JSON")
      ->capture_default_str();
  cmd->add_option("--priority", flags->priority, "Lower runs first; FIFO within a priority")
      ->check(WholeNumber(kMinPriority, kMaxPriority))
      ->capture_default_str();
  cmd->add_option("--delay", flags->delay, "Start delayed; waiting once this has passed")
      ->type_name("DURATION")
      ->capture_default_str();
  cmd->add_option("--max-attempts", flags->max_attempts, "Runs before the job is dead")
      ->check(WholeNumber(1, INT_MAX))
      ->capture_default_str();
  cmd->add_option("--idempotency-key", flags->idempotency_key,
                  "Resubmits with the same key return the existing job");
  cmd->add_option("--idempotency-window", flags->idempotency_window,
                  "How long the key is held after submission (at least until the job "
                  "finishes); 0s = the queue's, 24h")
      ->type_name("DURATION")
      ->capture_default_str();
  cmd->add_option("--max-backoff", flags->max_backoff,
                  "Longest wait before a retry; 0s = the worker's --max-backoff, 1h")
      ->type_name("DURATION")
      ->capture_default_str();
  cmd->add_option("--timeout", flags->timeout, "Per-attempt time limit; 0s = none")
      ->type_name("DURATION")
      ->capture_default_str();
  cmd->add_option("--lease", flags->lease,
                  "How long a claim holds without renewal (clamped to 5s..1h)")
      ->type_name("DURATION")
      ->capture_default_str();
  cmd->callback([&global, &exit_code, flags] { exit_code = RunSubmit(global, *flags); });
}

// --- get ---

struct GetFlags {
  std::string id;
  bool json = false;
};

int RunGet(const GlobalOptions& global, const GetFlags& flags) {
  if (Status s = CheckJobId(flags.id); !s.ok()) return Fail(s);
  auto queue = OpenQueue(global);
  if (!queue.ok()) return Fail(queue.status());
  auto job = (*queue)->Get(flags.id);
  if (!job.ok()) return Fail(job.status());
  if (flags.json) {
    std::cout << Dump(JobToJson(*job)) << "\n";
  } else {
    PrintJob(*job, NowUnixMillis());
  }
  return kExitOk;
}

void AddGet(CLI::App& jobs, GlobalOptions& global, int& exit_code) {
  auto flags = std::make_shared<GetFlags>();
  CLI::App* cmd = jobs.add_subcommand("get", "Show one job");
  cmd->add_option("id", flags->id, "Job id")->type_name("ID")->required();
  cmd->add_flag("--json", flags->json, "Print the job as a JSON object");
  cmd->callback([&global, &exit_code, flags] { exit_code = RunGet(global, *flags); });
}

// --- list ---

struct ListFlags {
  std::string state;
  int limit = 50;
  bool json = false;
};

int RunList(const GlobalOptions& global, const ListFlags& flags) {
  auto state = ParseJobState(flags.state);
  if (!state.ok()) return Fail(state.status().WithContext("--state"));
  auto queue = OpenQueue(global);
  if (!queue.ok()) return Fail(queue.status());
  auto jobs = (*queue)->List(*state, flags.limit);
  if (!jobs.ok()) return Fail(jobs.status());
  if (flags.json) {
    json array = json::array();
    for (const Job& job : *jobs) array.push_back(JobToJson(job));
    std::cout << Dump(array) << "\n";
  } else if (jobs->empty()) {
    std::cout << "no " << JobStateName(*state) << " jobs in queue '" << global.queue << "'\n";
  } else {
    PrintJobTable(*jobs, NowUnixMillis());
  }
  return kExitOk;
}

void AddList(CLI::App& jobs, GlobalOptions& global, int& exit_code) {
  auto flags = std::make_shared<ListFlags>();
  CLI::App* cmd = jobs.add_subcommand(
      "list", "List jobs in one state: waiting in run order, delayed by due time, active by "
              "lease deadline, finished ones newest first");
  cmd->add_option("--state", flags->state,
                  "waiting, delayed, active, completed, dead or cancelled")
      ->type_name("STATE")
      ->required();
  cmd->add_option("--limit", flags->limit, "At most this many jobs")
      ->check(WholeNumber(1, 100'000))
      ->capture_default_str();
  cmd->add_flag("--json", flags->json, "Print a JSON array of job objects");
  cmd->callback([&global, &exit_code, flags] { exit_code = RunList(global, *flags); });
}

// --- stats ---

int RunStats(const GlobalOptions& global, bool as_json) {
  auto queue = OpenQueue(global);
  if (!queue.ok()) return Fail(queue.status());
  auto stats = (*queue)->Stats();
  if (!stats.ok()) return Fail(stats.status());
  const QueueStats& s = *stats;
  if (as_json) {
    json j = {{"queue", global.queue},       {"waiting", s.waiting},
              {"delayed", s.delayed},         {"active", s.active},
              {"completed", s.completed},     {"dead", s.dead},
              {"cancelled", s.cancelled},     {"epoch", s.current_epoch},
              {"oldest_waiting_age_ms", nullptr}};
    if (s.oldest_waiting_age_ms >= 0) j["oldest_waiting_age_ms"] = s.oldest_waiting_age_ms;
    std::cout << Dump(j) << "\n";
    return kExitOk;
  }
  auto row = [](const char* label, const std::string& value) {
    std::cout << label << std::string(12 - std::string(label).size(), ' ') << value << "\n";
  };
  row("queue", global.queue);
  row("waiting", std::to_string(s.waiting) +
                     (s.oldest_waiting_age_ms >= 0
                          ? "  (oldest waiting " + Span(s.oldest_waiting_age_ms) + ")"
                          : ""));
  row("delayed", std::to_string(s.delayed));
  row("active", std::to_string(s.active));
  row("completed", std::to_string(s.completed));
  row("dead", std::to_string(s.dead));
  row("cancelled", std::to_string(s.cancelled));
  row("epoch", std::to_string(s.current_epoch));
  return kExitOk;
}

void AddStats(CLI::App& jobs, GlobalOptions& global, int& exit_code) {
  auto as_json = std::make_shared<bool>(false);
  CLI::App* cmd = jobs.add_subcommand(
      "stats", "Count jobs per state, the oldest waiting job's age and the owner epoch");
  cmd->add_flag("--json", *as_json, "Print a JSON object");
  cmd->callback([&global, &exit_code, as_json] { exit_code = RunStats(global, *as_json); });
}

// --- retry, cancel ---

// Runs one state change on job id and prints "job ID: <done>" on success.
template <typename Change>
int RunStateChange(const GlobalOptions& global, const std::string& id, const char* done,
                   Change change) {
  if (Status s = CheckJobId(id); !s.ok()) return Fail(s);
  auto queue = OpenQueue(global);
  if (!queue.ok()) return Fail(queue.status());
  if (Status s = change(**queue, id); !s.ok()) return Fail(s);
  std::cout << "job " << id << ": " << done << "\n";
  return kExitOk;
}

void AddRetry(CLI::App& jobs, GlobalOptions& global, int& exit_code) {
  auto id = std::make_shared<std::string>();
  CLI::App* cmd = jobs.add_subcommand(
      "retry", "Send a dead job back to waiting, with its attempts reset");
  cmd->add_option("id", *id, "Job id")->type_name("ID")->required();
  cmd->callback([&global, &exit_code, id] {
    exit_code = RunStateChange(global, *id, "waiting again",
                               [](JobQueue& q, const std::string& i) { return q.Retry(i); });
  });
}

void AddCancel(CLI::App& jobs, GlobalOptions& global, int& exit_code) {
  auto id = std::make_shared<std::string>();
  CLI::App* cmd = jobs.add_subcommand(
      "cancel",
      "Cancel a waiting, delayed or active job (an active job's worker stops its handler "
      "within a second)");
  cmd->add_option("id", *id, "Job id")->type_name("ID")->required();
  cmd->callback([&global, &exit_code, id] {
    exit_code = RunStateChange(global, *id, "cancelled",
                               [](JobQueue& q, const std::string& i) { return q.Cancel(i); });
  });
}

}  // namespace

void AddJobsQueueCommands(CLI::App& jobs, GlobalOptions& global, int& exit_code) {
  AddSubmit(jobs, global, exit_code);
  AddGet(jobs, global, exit_code);
  AddList(jobs, global, exit_code);
  AddStats(jobs, global, exit_code);
  AddRetry(jobs, global, exit_code);
  AddCancel(jobs, global, exit_code);
}

}  // namespace lk::cmd
