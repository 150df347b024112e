// SystemdUnits: the production shape of one lane as two systemd services —
//   lanekeeper-supervisor-<queue>.service   `jobs supervisor` (owns the worker)
//   lanekeeper-autopilot-<queue>.service    `autopilot --no-worker` (dispatches only)
//   lanekeeper-<queue>.env                  LANEKEEPER_REDIS_URL, mode 0600, when one is given
// named per queue so that two lanes on one host never overwrite each other. A Redis URL
// (and its password) is never in a unit file nor on a command line: the units read it with
// EnvironmentFile=, and lanekeeper reads LANEKEEPER_REDIS_URL when --redis is absent.
//
// Owns: validating the install inputs, rendering the unit files, writing them atomically.
// Does not own: systemctl (the caller prints the commands to run; nothing here talks to
// systemd, so it works in CI and in a chroot). Pure functions except WriteSystemdUnits.
// Thread-safe.
#pragma once

#include <string>
#include <vector>

#include "worker/duration.h"
#include "worker/status.h"

namespace lk {

struct SystemdInstallOptions {
  std::string binary;  // absolute path of the lanekeeper binary the units run
  std::string repo;    // absolute path of an existing directory: the autopilot's --repo and
                       // working directory
  std::string queue = "default";  // letters, digits, '-', '_', '.', ':' (it names the units)
  int concurrency = 1;  // 1..4096
  int max_rss_mb = 0;   // 0 (no limit) or >= 256, as `jobs supervisor --max-rss`
  Millis interval{300'000};       // autopilot --interval, >= 1 s
  // The supervisor's drain timeout; TimeoutStopSec is twice it, so systemd's SIGKILL never
  // cuts a drain short that the supervisor itself would have allowed.
  Millis drain_timeout{30'000};
  // Non-empty: written to lanekeeper-<queue>.env (0600) beside the units, which name it in
  // EnvironmentFile=. Empty: --redis with lanekeeper's built-in default.
  std::string redis_url;
  std::string handlers_file;  // non-empty: absolute path, the supervisor's --handlers
  std::string cycle_file;     // non-empty: absolute path, the autopilot's --cycle
  bool user = false;     // a user service (systemctl --user) instead of a system one
  std::string unit_dir;  // empty: DefaultUnitDir(user)
};

// A file install writes: a unit, or the environment file of the units (mode 0600).
struct SystemdUnit {
  std::string name;  // lanekeeper-supervisor-QUEUE.service, lanekeeper-QUEUE.env
  std::string path;  // unit_dir/name
  std::string text;  // the file's contents
  unsigned mode = 0644;
};

// The controller's shape: one service, `lanekeeper controller`, that runs every Lane of a
// specs directory (controller/lane_controller.h).
//   lanekeeper-controller.service
//   lanekeeper-controller.env   LANEKEEPER_REDIS_URL, mode 0600, when one is given
struct ControllerInstallOptions {
  std::string binary;     // absolute path of the lanekeeper binary
  std::string specs_dir;  // absolute path of an existing directory: --specs
  std::string state_dir;  // absolute path: --state-dir (the controller creates it)
  std::string status_addr = "127.0.0.1:8081";
  // The status server's access (docs/status.md): off loopback it needs one of them, as
  // `lanekeeper controller` does. auth_token_file: absolute path of the bearer token file
  // (mode 0600), named in ExecStart as --auth-token-file; the token itself is never in a
  // unit. insecure: --insecure, serve without a token (a firewall decides who connects).
  std::string auth_token_file;
  bool insecure = false;
  // The longest drainTimeout among the lanes: TimeoutStopSec leaves every supervisor that
  // long to drain, plus the controller's own 15 s grace, twice over.
  Millis drain_timeout{30'000};
  std::string redis_url;  // as SystemdInstallOptions::redis_url
  bool user = false;
  std::string unit_dir;
};

inline constexpr const char* kControllerUnitName = "lanekeeper-controller.service";
inline constexpr const char* kControllerEnvName = "lanekeeper-controller.env";

// Checks every input (InvalidArgument naming the flag) and renders the controller's unit,
// then its environment file when there is one.
StatusOr<std::vector<SystemdUnit>> RenderControllerUnit(const ControllerInstallOptions& options);

std::string SupervisorUnitName(const std::string& queue);
std::string AutopilotUnitName(const std::string& queue);

// /etc/systemd/system, or ${XDG_CONFIG_HOME:-$HOME/.config}/systemd/user for --user.
// InvalidArgument when --user and neither variable is set.
StatusOr<std::string> DefaultUnitDir(bool user);

// Checks every input (InvalidArgument naming the flag) and renders both units, the
// supervisor's first, then their environment file when there is one.
StatusOr<std::vector<SystemdUnit>> RenderSystemdUnits(const SystemdInstallOptions& options);

// Writes each file to its path, with its mode, through a temporary file and rename(), so
// systemd never reads half a unit; creates the directory when missing.
Status WriteSystemdUnits(const std::vector<SystemdUnit>& units);

// The commands that load and start the units (daemon-reload, enable --now); for user units
// also enable-linger, without which they stop when the user's last session ends.
std::vector<std::string> ActivationCommands(const std::vector<SystemdUnit>& units, bool user);

}  // namespace lk
