// `lanekeeper autopilot`: flags to AutopilotOptions, nothing more.
#include <iostream>
#include <memory>

#include "cmd/commands.h"
#include "controller/owner/autopilot.h"
#include "worker/exit_codes.h"

namespace lk::cmd {

namespace {

struct AutopilotFlags {
  AutopilotOptions options;
  std::string interval = "5m";
  std::string drain_timeout = "30s";
};

}  // namespace

void AddAutopilotCommand(CLI::App& app, GlobalOptions& global, int& exit_code) {
  auto flags = std::make_shared<AutopilotFlags>();
  auto& o = flags->options;
  auto* ap = app.add_subcommand(
      "autopilot",
      "Dispatch a repo's autopilot-cycle job every interval; with its own worker only while "
      "nobody else owns the queue");
  ap->add_option("--repo", o.repo, "The repository the cycle's steps run in")->required();
  ap->add_option("--interval", flags->interval, "How often to dispatch a cycle (at least 1s)")
      ->capture_default_str();
  ap->add_flag("--no-worker", o.no_worker,
               "Dispatch only: never take the owner lease, never start a worker");
  ap->add_option("--cycle", o.cycle_file,
                 "Cycle YAML file (steps: [{name, command, timeout}]); default: no steps, "
                 "the job only checks the repo");
  ap->add_option("--concurrency", o.concurrency, "Jobs its own worker runs at once")
      ->check(CLI::Range(1, 4096))
      ->capture_default_str();
  ap->add_option("--max-rss", o.max_rss_mb,
                 "Its own worker drains and is restarted past this many MB (0: off)");
  ap->add_option("--handlers", o.handlers_file, "Handlers YAML file for its own worker");
  ap->add_option("--drain-timeout", flags->drain_timeout,
                 "How long its draining worker may finish")
      ->capture_default_str();

  ap->callback([flags, &global, &exit_code] {
    AutopilotOptions o = flags->options;
    if (o.max_rss_mb != 0 && o.max_rss_mb < 256) {
      std::cerr << "lanekeeper: --max-rss " << o.max_rss_mb
                << " looks like a GB/MB mix-up: the value is in MB; use 0 to disable or at "
                   "least 256\n";
      exit_code = kExitUsage;
      return;
    }
    if (o.max_rss_mb < 0) {
      std::cerr << "lanekeeper: --max-rss must be 0 or more\n";
      exit_code = kExitUsage;
      return;
    }
    if (!ParseDurationFlag("--interval", flags->interval, o.interval) ||
        !ParseDurationFlag("--drain-timeout", flags->drain_timeout, o.drain_timeout)) {
      exit_code = kExitUsage;
      return;
    }
    if (o.interval < Millis(1000)) {
      std::cerr << "lanekeeper: --interval must be at least 1s\n";
      exit_code = kExitUsage;
      return;
    }
    o.redis_url = global.redis_url;
    o.redis_replicas = global.redis_replicas;
    o.queue = global.queue;
    o.log_format = global.log_format;
    o.log_level = global.log_level;
    exit_code = RunAutopilot(o);
  });
}

}  // namespace lk::cmd
