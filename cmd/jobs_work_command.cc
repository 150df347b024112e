// `lanekeeper jobs work`: flags to JobRunnerOptions, SIGTERM/SIGINT to a drain, and the
// runner's exit code back to main.
#include <signal.h>

#include <atomic>
#include <iostream>
#include <memory>

#include "cmd/commands.h"
#include "worker/duration.h"
#include "worker/exit_codes.h"
#include "worker/handler_config.h"
#include "worker/job_runner.h"

namespace lk::cmd {

namespace {

struct WorkFlags {
  int concurrency = 0;
  int64_t max_rss_mb = -1;
  std::string handlers_file;
  int64_t epoch = 0;
  std::string drain_timeout = "30s";
  int64_t keep_completed = QueueOptions{}.keep_completed;
  int64_t keep_dead = QueueOptions{}.keep_dead;
  std::string max_backoff = FormatDuration(QueueOptions{}.max_backoff);
};

// Below this an --max-rss value is almost surely meant in GB (a worker's own heap is
// tens of MB), and would drain the worker at once.
constexpr int64_t kMinMaxRssMb = 256;

std::atomic<JobRunner*> g_running_worker{nullptr};

extern "C" void RequestWorkerStop(int) {
  if (JobRunner* r = g_running_worker.load()) r->RequestStop();
}

// Validates flags into options; an error is one line for stderr.
StatusOr<JobRunnerOptions> BuildOptions(const WorkFlags& f, const GlobalOptions& global) {
  JobRunnerOptions o;
  if (f.concurrency < 1) {
    return Status::InvalidArgument("--concurrency must be at least 1, got " +
                                   std::to_string(f.concurrency));
  }
  if (f.max_rss_mb < 0) {
    return Status::InvalidArgument("--max-rss must be 0 (off) or at least " +
                                   std::to_string(kMinMaxRssMb) + " (MB)");
  }
  if (f.max_rss_mb > 0 && f.max_rss_mb < kMinMaxRssMb) {
    return Status::InvalidArgument("--max-rss " + std::to_string(f.max_rss_mb) +
                                   " looks like a GB/MB mix-up: the value is in MB; use 0 to "
                                   "disable or at least " + std::to_string(kMinMaxRssMb));
  }
  if (f.epoch < 0) return Status::InvalidArgument("--epoch must be 0 (unmanaged) or positive");
  if (f.keep_completed < 0 || f.keep_dead < 0) {
    return Status::InvalidArgument("--keep-completed and --keep-dead must be 0 or more");
  }
  auto drain = ParseDuration(f.drain_timeout);
  if (!drain.ok()) return drain.status().WithContext("--drain-timeout");
  auto max_backoff = ParseDuration(f.max_backoff);
  if (!max_backoff.ok()) return max_backoff.status().WithContext("--max-backoff");
  if (max_backoff->count() <= 0) return Status::InvalidArgument("--max-backoff must be positive");
  std::string url = global.redis_url.empty() ? DefaultRedisUrl() : global.redis_url;
  if (auto endpoint = ParseRedisUrl(url); !endpoint.ok()) return endpoint.status();
  if (global.queue.empty()) return Status::InvalidArgument("--queue must not be empty");

  o.redis_url = url;
  o.queue = global.queue;
  o.concurrency = f.concurrency;
  o.max_rss_mb = f.max_rss_mb;
  o.epoch = f.epoch;
  o.drain_timeout = *drain;
  o.queue_options.keep_completed = f.keep_completed;
  o.queue_options.keep_dead = f.keep_dead;
  o.queue_options.max_backoff = *max_backoff;
  if (!f.handlers_file.empty()) {
    auto specs = LoadHandlerConfig(f.handlers_file);
    if (!specs.ok()) return specs.status();
    AddCommandHandlers(*specs, o.handlers);
  }
  return o;
}

int RunWorker(const WorkFlags& flags, const GlobalOptions& global) {
  auto options = BuildOptions(flags, global);
  if (!options.ok()) {
    std::cerr << "lanekeeper: " << options.status().message() << "\n";
    return kExitUsage;
  }
  JobRunner runner(std::move(options).value());
  g_running_worker.store(&runner);
  struct sigaction sa = {}, old_term = {}, old_int = {};
  sa.sa_handler = RequestWorkerStop;
  sigemptyset(&sa.sa_mask);
  sa.sa_flags = SA_RESTART;
  sigaction(SIGTERM, &sa, &old_term);
  sigaction(SIGINT, &sa, &old_int);
  int code = runner.Run();
  sigaction(SIGTERM, &old_term, nullptr);
  sigaction(SIGINT, &old_int, nullptr);
  g_running_worker.store(nullptr);
  return code;
}

}  // namespace

void AddJobsWorkCommand(CLI::App& jobs, GlobalOptions& global, int& exit_code) {
  auto flags = std::make_shared<WorkFlags>();
  CLI::App* work = jobs.add_subcommand(
      "work", "Claim and run jobs from --queue, --concurrency at a time. Drains and exits 0 on "
              "SIGTERM/SIGINT, 12 over --max-rss, 13 when fenced by a newer owner epoch.");
  work->add_option("--concurrency", flags->concurrency, "Jobs running at once (>= 1)")->required();
  work->add_option("--max-rss", flags->max_rss_mb,
                   "RSS limit of the worker and its commands, in MB; 0 = off, else >= 256. Over "
                   "it the worker drains and exits 12 so its supervisor restarts it")
      ->required();
  work->add_option("--handlers", flags->handlers_file,
                   "YAML file mapping job names to commands (handlers: NAME: {command: [...], "
                   "timeout, lease, maxAttempts}); noop, sleep and fail are built in");
  work->add_option("--epoch", flags->epoch,
                   "Owner epoch to run under (set by the supervisor); 0 = unmanaged")
      ->capture_default_str();
  work->add_option("--drain-timeout", flags->drain_timeout,
                   "How long running jobs get to finish when draining")
      ->capture_default_str();
  work->add_option("--keep-completed", flags->keep_completed, "Completed jobs to keep")
      ->capture_default_str();
  work->add_option("--keep-dead", flags->keep_dead, "Dead and cancelled jobs to keep")
      ->capture_default_str();
  work->add_option("--max-backoff", flags->max_backoff,
                   "Longest wait before a retry, for jobs that set none (jobs submit "
                   "--max-backoff)")
      ->type_name("DURATION")
      ->capture_default_str();
  work->callback([flags, &global, &exit_code] { exit_code = RunWorker(*flags, global); });
}

}  // namespace lk::cmd
