// `lanekeeper install --target systemd --repo R --concurrency N --max-rss MB [--user]
// [--dry-run] [--unit-dir DIR] ...`: flags to SystemdInstallOptions, then prints the units
// (--dry-run) or writes them and prints the systemctl commands to run. It never runs
// systemctl itself: enabling services is the operator's step (and there is no systemd in CI).
#include <cstdlib>
#include <iostream>
#include <memory>

#include "cmd/commands.h"
#include "controller/systemd_units.h"
#include "controller/worker_process.h"
#include "worker/exit_codes.h"
#include "worker/redis_connection.h"

namespace lk::cmd {

namespace {

struct InstallFlags {
  std::string target;
  SystemdInstallOptions options;
  std::string interval = "5m";
  std::string drain_timeout = "30s";
  bool dry_run = false;
};

int Fail(const Status& s) {
  std::cerr << "lanekeeper: " << s.message() << "\n";
  return s.code() == Status::Code::kInvalidArgument ? kExitUsage : kExitFailure;
}

int RunInstall(const CLI::App& root, const GlobalOptions& global, const InstallFlags& flags) {
  if (flags.target != "systemd") {
    return Fail(Status::InvalidArgument("--target " + flags.target +
                                        " is not supported; the one target is systemd"));
  }
  SystemdInstallOptions o = flags.options;
  auto interval = ParseDuration(flags.interval);
  if (!interval.ok()) return Fail(interval.status().WithContext("--interval"));
  auto drain = ParseDuration(flags.drain_timeout);
  if (!drain.ok()) return Fail(drain.status().WithContext("--drain-timeout"));
  o.interval = *interval;
  o.drain_timeout = *drain;
  o.queue = global.queue;
  o.binary = SelfExecutable();
  // Only a URL someone chose goes into the units; otherwise they use the built-in default.
  const char* env_url = std::getenv("LANEKEEPER_REDIS_URL");
  if (root.get_option("--redis")->count() > 0 || (env_url && *env_url)) {
    auto ep = ParseRedisUrl(global.redis_url);
    if (!ep.ok()) return Fail(ep.status());
    o.redis_url = global.redis_url;
    if (!ep->password.empty()) {
      std::cerr << "lanekeeper: warning: the Redis URL carries a password, which the unit's "
                   "Environment= shows to every local user (systemctl show); move it to an "
                   "EnvironmentFile= readable only by root (see docs/production.md)\n";
    }
  }
  auto units = RenderSystemdUnits(o);
  if (!units.ok()) return Fail(units.status());

  if (flags.dry_run) {
    for (size_t i = 0; i < units->size(); ++i) {
      const SystemdUnit& u = (*units)[i];
      std::cout << (i ? "\n" : "") << "# file: " << u.path << "\n" << u.text;
    }
    return kExitOk;
  }
  if (Status s = WriteSystemdUnits(*units); !s.ok()) return Fail(s);
  for (const auto& u : *units) std::cout << "wrote " << u.path << "\n";
  std::cout << "now run:\n";
  for (const auto& c : ActivationCommands(*units, o.user)) std::cout << "  " << c << "\n";
  std::cout << "then check the lane with:\n  lanekeeper doctor --queue " << o.queue << "\n";
  return kExitOk;
}

}  // namespace

void AddInstallCommand(CLI::App& app, GlobalOptions& global, int& exit_code) {
  auto flags = std::make_shared<InstallFlags>();
  auto& o = flags->options;
  CLI::App* cmd = app.add_subcommand(
      "install", "Write the production services of a lane: `jobs supervisor` (owns the worker) "
                 "and `autopilot --no-worker` (dispatches only)");
  cmd->add_option("--target", flags->target, "Where to install; only systemd")->required();
  cmd->add_option("--repo", o.repo, "Absolute path of the repository the autopilot serves")
      ->required();
  cmd->add_option("--concurrency", o.concurrency, "Jobs the worker runs at once")->required();
  cmd->add_option("--max-rss", o.max_rss_mb,
                  "Restart the worker past this many MB of RSS (0: off, else at least 256)")
      ->required();
  cmd->add_option("--interval", flags->interval, "Autopilot dispatch interval")
      ->capture_default_str();
  cmd->add_option("--drain-timeout", flags->drain_timeout,
                  "How long a stopping worker may finish its jobs; TimeoutStopSec is twice it")
      ->capture_default_str();
  cmd->add_option("--handlers", o.handlers_file, "Absolute path of the worker's handlers file");
  cmd->add_option("--cycle", o.cycle_file, "Absolute path of the autopilot's cycle file");
  cmd->add_flag("--user", o.user,
                "User services (~/.config/systemd/user, systemctl --user) instead of system ones");
  cmd->add_option("--unit-dir", o.unit_dir,
                  "Write the units here instead of /etc/systemd/system (or the user directory)");
  cmd->add_flag("--dry-run", flags->dry_run, "Print the units; write nothing");
  cmd->callback([&app, &global, &exit_code, flags] {
    exit_code = RunInstall(app, global, *flags);
  });
}

}  // namespace lk::cmd
