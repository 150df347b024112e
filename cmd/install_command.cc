// `lanekeeper install --target systemd --repo R --concurrency N --max-rss MB [--user]
// [--dry-run] [--unit-dir DIR] ...` (one lane's supervisor and autopilot), or
// `install --target systemd --controller --specs DIR [--state-dir D] [--status-addr A]
// [--auth-token-file F | --insecure]`
// (the controller that runs every Lane of DIR): flags to options, then prints the units
// (--dry-run) or writes them and prints the systemctl commands to run. It never runs
// systemctl itself: enabling services is the operator's step (and there is no systemd in CI).
#include <cstdlib>
#include <iostream>
#include <memory>

#include "cmd/commands.h"
#include "controller/install/systemd_units.h"
#include "controller/process/process_spawner.h"
#include "worker/exit_codes.h"
#include "worker/redis_connection.h"

namespace lk::cmd {

namespace {

struct InstallFlags {
  std::string target;
  SystemdInstallOptions options;
  bool controller = false;
  ControllerInstallOptions controller_options;
  std::string interval = "5m";
  std::string drain_timeout = "30s";
  bool dry_run = false;
};

StatusOr<std::vector<SystemdUnit>> RenderLaneUnits(const GlobalOptions& global,
                                                    const InstallFlags& flags,
                                                    const std::string& chosen_url,
                                                    Millis drain);

int RunInstall(const CLI::App& root, const GlobalOptions& global, const InstallFlags& flags) {
  if (flags.target != "systemd") {
    return Fail(Status::InvalidArgument("--target " + flags.target +
                                        " is not supported; the one target is systemd"));
  }
  // Only a URL someone chose goes into the units; otherwise they use the built-in default.
  std::string chosen_url;
  const char* env_url = std::getenv("LANEKEEPER_REDIS_URL");
  if (root.get_option("--redis")->count() > 0 || (env_url && *env_url)) {
    auto ep = ParseRedisUrl(global.redis_url);
    if (!ep.ok()) return Fail(ep.status());
    chosen_url = global.redis_url;
  }
  auto drain = ParseDuration(flags.drain_timeout);
  if (!drain.ok()) return Fail(drain.status().WithContext("--drain-timeout"));

  std::vector<SystemdUnit> units;
  std::string check;
  if (flags.controller) {
    ControllerInstallOptions c = flags.controller_options;
    c.binary = SelfExecutable();
    c.redis_url = chosen_url;
    c.drain_timeout = *drain;
    c.user = flags.options.user;
    c.unit_dir = flags.options.unit_dir;
    auto rendered = RenderControllerUnit(c);
    if (!rendered.ok()) return Fail(rendered.status());
    units = *rendered;
    check = "lanekeeper doctor --controller http://" + c.status_addr;
    if (!c.auth_token_file.empty()) check += " --auth-token-file " + c.auth_token_file;
  } else {
    for (const char* flag : {"--repo", "--concurrency", "--max-rss"}) {
      if (root.get_subcommand("install")->get_option(flag)->count() == 0) {
        return Fail(Status::InvalidArgument(std::string(flag) +
                                            " is required (or --controller for the "
                                            "controller's unit)"));
      }
    }
    auto rendered = RenderLaneUnits(global, flags, chosen_url, *drain);
    if (!rendered.ok()) return Fail(rendered.status());
    units = *rendered;
    check = "lanekeeper doctor --queue " + global.queue;
  }

  if (flags.dry_run) {
    for (size_t i = 0; i < units.size(); ++i) {
      const SystemdUnit& u = units[i];
      // The environment file may carry a password: shown here without it.
      std::cout << (i ? "\n" : "") << "# file: " << u.path
                << (u.mode == 0600 ? " (mode 0600)" : "") << "\n"
                << (u.mode == 0600 ? RedactUrlText(u.text) : u.text);
    }
    return kExitOk;
  }
  if (Status s = WriteSystemdUnits(units); !s.ok()) return Fail(s);
  for (const auto& u : units) std::cout << "wrote " << u.path << "\n";
  std::cout << "now run:\n";
  for (const auto& c : ActivationCommands(units, flags.options.user)) {
    std::cout << "  " << c << "\n";
  }
  std::cout << "then check with:\n  " << check << "\n";
  return kExitOk;
}

StatusOr<std::vector<SystemdUnit>> RenderLaneUnits(const GlobalOptions& global,
                                                    const InstallFlags& flags,
                                                    const std::string& chosen_url,
                                                    Millis drain) {
  SystemdInstallOptions o = flags.options;
  auto interval = ParseDuration(flags.interval);
  if (!interval.ok()) return interval.status().WithContext("--interval");
  o.interval = *interval;
  o.drain_timeout = drain;
  o.queue = global.queue;
  o.binary = SelfExecutable();
  o.redis_url = chosen_url;
  return RenderSystemdUnits(o);
}

}  // namespace

void AddInstallCommand(CLI::App& app, GlobalOptions& global, int& exit_code) {
  auto flags = std::make_shared<InstallFlags>();
  auto& o = flags->options;
  CLI::App* cmd = app.add_subcommand(
      "install", "Write the production services of a lane: `jobs supervisor` (owns the worker) "
                 "and `autopilot --no-worker` (dispatches only)");
  cmd->add_option("--target", flags->target, "Where to install; only systemd")->required();
  cmd->add_option("--repo", o.repo,
                  "Absolute path of the repository the autopilot serves (required for a lane)");
  cmd->add_option("--concurrency", o.concurrency,
                  "Jobs the worker runs at once (required for a lane)");
  cmd->add_option("--max-rss", o.max_rss_mb,
                  "Restart the worker past this many MB of RSS (0: off, else at least 256; "
                  "required for a lane)");
  auto& c = flags->controller_options;
  c.specs_dir = "/etc/lanekeeper/lanes";
  c.state_dir = "/var/lib/lanekeeper";
  cmd->add_flag("--controller", flags->controller,
                "Write the controller's unit instead (`lanekeeper controller`, which runs "
                "every Lane of --specs)");
  cmd->add_option("--specs", c.specs_dir, "With --controller: the Lane specs directory")
      ->capture_default_str();
  cmd->add_option("--state-dir", c.state_dir, "With --controller: the controller's state")
      ->capture_default_str();
  cmd->add_option("--status-addr", c.status_addr,
                  "With --controller: the status server's HOST:PORT, or off")
      ->capture_default_str();
  cmd->add_option("--auth-token-file", c.auth_token_file,
                  "With --controller: the status server's bearer token file (mode 0600); the "
                  "unit names the file, never the token");
  cmd->add_flag("--insecure", c.insecure,
                "With --controller: serve a non-loopback --status-addr without a token");
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
