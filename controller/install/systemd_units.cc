#include "controller/install/systemd_units.h"

#include <fcntl.h>
#include <unistd.h>

#include <cctype>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <optional>

#include "controller/status/http_server.h"
#include "worker/atomic_file.h"

namespace lk {

namespace {

// `lanekeeper --redis` when nothing else is set (worker/redis_connection.h).
constexpr const char* kBuiltinRedisUrl = "redis://127.0.0.1:6379/0";

bool HasControlChar(const std::string& s) {
  for (unsigned char c : s) {
    if (c < 0x20 || c == 0x7f) return true;
  }
  return false;
}

bool UnitNameSafe(const std::string& queue) {
  if (queue.empty() || queue.size() > 200) return false;
  for (char c : queue) {
    if (!std::isalnum(static_cast<unsigned char>(c)) && c != '-' && c != '_' && c != '.' &&
        c != ':') {
      return false;
    }
  }
  return true;
}

// systemd expands %-specifiers in most settings; a literal % is written %%.
std::string EscapeSpecifiers(const std::string& s) {
  std::string out;
  for (char c : s) {
    out += c;
    if (c == '%') out += '%';
  }
  return out;
}

// One ExecStart argument: specifiers escaped, $ doubled (systemd substitutes ${VAR} and
// $VAR there), and double-quoted when it holds anything systemd would split or unescape.
std::string ExecArg(const std::string& arg) {
  std::string escaped;
  bool quote = arg.empty();
  for (char c : EscapeSpecifiers(arg)) {
    if (c == '$') escaped += '$';
    if (c == '"' || c == '\\') escaped += '\\';
    if (c == ' ' || c == '\t' || c == '"' || c == '\'' || c == '\\' || c == ';') quote = true;
    escaped += c;
  }
  return quote ? "\"" + escaped + "\"" : escaped;
}

// One Environment= assignment: quoted, with specifiers escaped and C escapes for " and \.
// Environment= substitutes no variables, so $ stays as it is.
std::string EnvAssignment(const std::string& name, const std::string& value) {
  std::string out = "\"" + name + "=";
  for (char c : EscapeSpecifiers(value)) {
    if (c == '"' || c == '\\') out += '\\';
    out += c;
  }
  return out + "\"";
}

// Joins ExecStart arguments that are already safe: escaped by ExecArg, or made of
// characters systemd leaves alone (flag names, numbers, durations, validated queue names).
std::string ExecLine(const std::vector<std::string>& args) {
  std::string out;
  for (const auto& a : args) out += (out.empty() ? "" : " ") + a;
  return out;
}

Status CheckAbsoluteFile(const std::string& flag, const std::string& path, bool directory) {
  if (path.empty() || path.front() != '/') {
    return Status::InvalidArgument(flag + " must be an absolute path, got '" + path + "'");
  }
  if (HasControlChar(path)) {
    return Status::InvalidArgument(flag + " must not contain control characters");
  }
  std::error_code ec;
  bool ok = directory ? std::filesystem::is_directory(path, ec)
                      : std::filesystem::is_regular_file(path, ec);
  if (!ok) {
    return Status::InvalidArgument(flag + " " + path + " is not " +
                                   (directory ? "a directory" : "a file"));
  }
  return Status::OK();
}

Status Validate(const SystemdInstallOptions& o) {
  LK_RETURN_IF_ERROR(CheckAbsoluteFile("the lanekeeper binary", o.binary, false));
  LK_RETURN_IF_ERROR(CheckAbsoluteFile("--repo", o.repo, true));
  if (!UnitNameSafe(o.queue)) {
    return Status::InvalidArgument("--queue '" + o.queue +
                                   "' cannot name a systemd unit: use up to 200 letters, "
                                   "digits, '-', '_', '.' or ':'");
  }
  if (o.concurrency < 1 || o.concurrency > 4096) {
    return Status::InvalidArgument("--concurrency must be 1..4096, got " +
                                   std::to_string(o.concurrency));
  }
  if (o.max_rss_mb < 0) return Status::InvalidArgument("--max-rss must be 0 or more");
  if (o.max_rss_mb != 0 && o.max_rss_mb < 256) {
    return Status::InvalidArgument("--max-rss " + std::to_string(o.max_rss_mb) +
                                   " looks like a GB/MB mix-up: the value is in MB; use 0 to "
                                   "disable or at least 256");
  }
  if (o.interval < Millis(1000)) return Status::InvalidArgument("--interval must be at least 1s");
  if (o.drain_timeout < Millis(1000)) {
    return Status::InvalidArgument("--drain-timeout must be at least 1s");
  }
  if (!o.handlers_file.empty()) {
    LK_RETURN_IF_ERROR(CheckAbsoluteFile("--handlers", o.handlers_file, false));
  }
  if (!o.cycle_file.empty()) LK_RETURN_IF_ERROR(CheckAbsoluteFile("--cycle", o.cycle_file, false));
  if (HasControlChar(o.redis_url)) {
    return Status::InvalidArgument("--redis must not contain control characters");
  }
  return Status::OK();
}

// TimeoutStopSec in whole seconds, rounded up.
std::string Seconds(Millis d) { return std::to_string((d.count() + 999) / 1000) + "s"; }

// [Unit] ordering: after the network and a local Redis, and after `also` when given.
std::string Dependencies(bool user, const std::string& also) {
  std::string after, wants;
  if (!user) {
    // A user manager cannot see system units, so user units skip these; the supervisor
    // retries Redis until it answers either way.
    after = "network-online.target redis-server.service";
    wants = "network-online.target";
  }
  if (!also.empty()) {
    after += (after.empty() ? "" : " ") + also;
    wants += (wants.empty() ? "" : " ") + also;
  }
  return (after.empty() ? "" : "After=" + after + "\n") +
         (wants.empty() ? "" : "Wants=" + wants + "\n");
}

// The parts both units share.
struct Common {
  std::string environment;  // EnvironmentFile= line, or empty
  std::vector<std::string> redis_args;  // --redis URL in ExecStart, or nothing
  std::string wanted_by;
};

// The environment file that carries a chosen Redis URL (password included): written 0600
// beside the units, read by systemd as root, never shown by `systemctl show` nor put on a
// command line — every lanekeeper command reads LANEKEEPER_REDIS_URL when --redis is absent.
SystemdUnit EnvironmentFileFor(const std::string& dir, const std::string& name,
                               const std::string& redis_url) {
  std::string value;
  for (char c : redis_url) {
    if (c == '"' || c == '\\' || c == '$' || c == '`') value += '\\';
    value += c;
  }
  return {name, dir + "/" + name,
          "# Written by `lanekeeper install`: the Redis URL of the units that name this\n"
          "# file in EnvironmentFile=. Mode 0600: it may carry a password.\n"
          "LANEKEEPER_REDIS_URL=\"" + value + "\"\n",
          0600};
}

Common CommonParts(bool user, const SystemdUnit* env_file) {
  Common c;
  c.wanted_by = user ? "default.target" : "multi-user.target";
  if (env_file == nullptr) {
    c.redis_args = {"--redis", kBuiltinRedisUrl};
  } else {
    c.environment = "EnvironmentFile=" + EscapeSpecifiers(env_file->path) + "\n";
  }
  return c;
}

std::string Header(const SystemdInstallOptions& o, const std::string& unit) {
  return "# Written by `lanekeeper install --target systemd` for queue " + o.queue +
         ". Re-run it to\n# change the flags; keep local changes in a drop-in (systemctl " +
         (o.user ? "--user " : "") + "edit " + unit + ").\n";
}

}  // namespace

std::string SupervisorUnitName(const std::string& queue) {
  return "lanekeeper-supervisor-" + queue + ".service";
}
std::string AutopilotUnitName(const std::string& queue) {
  return "lanekeeper-autopilot-" + queue + ".service";
}

StatusOr<std::string> DefaultUnitDir(bool user) {
  if (!user) return std::string("/etc/systemd/system");
  if (const char* xdg = std::getenv("XDG_CONFIG_HOME"); xdg && *xdg == '/') {
    return std::string(xdg) + "/systemd/user";
  }
  if (const char* home = std::getenv("HOME"); home && *home == '/') {
    return std::string(home) + "/.config/systemd/user";
  }
  return Status::InvalidArgument("--user needs HOME (or XDG_CONFIG_HOME) to find "
                                 "~/.config/systemd/user; or pass --unit-dir");
}

StatusOr<std::vector<SystemdUnit>> RenderSystemdUnits(const SystemdInstallOptions& o) {
  LK_RETURN_IF_ERROR(Validate(o));
  std::string dir = o.unit_dir;
  if (dir.empty()) {
    auto d = DefaultUnitDir(o.user);
    if (!d.ok()) return d.status();
    dir = *d;
  }
  const std::string sup_name = SupervisorUnitName(o.queue);
  const std::string ap_name = AutopilotUnitName(o.queue);
  const std::string bin = ExecArg(o.binary);

  std::vector<SystemdUnit> env;
  if (!o.redis_url.empty()) env.push_back(EnvironmentFileFor(dir, "lanekeeper-" + o.queue + ".env", o.redis_url));
  const Common c = CommonParts(o.user, env.empty() ? nullptr : &env[0]);
  std::vector<std::string> sup_args = {bin, "jobs", "supervisor"};
  sup_args.insert(sup_args.end(), c.redis_args.begin(), c.redis_args.end());
  sup_args.insert(sup_args.end(), {"--queue", o.queue,
      "--concurrency", std::to_string(o.concurrency), "--max-rss", std::to_string(o.max_rss_mb),
      "--drain-timeout", FormatDuration(o.drain_timeout),
      // %t is /run for system units and $XDG_RUNTIME_DIR for user ones: the supervisor's
      // default pid file location, so `jobs supervisor status` finds it there.
      "--pid-file", "%t/lanekeeper-supervisor-" + o.queue + ".pid"});
  if (!o.handlers_file.empty()) {
    sup_args.insert(sup_args.end(), {"--handlers", ExecArg(o.handlers_file)});
  }
  std::string sup =
      Header(o, sup_name) +
      "[Unit]\n"
      "Description=lanekeeper supervisor of queue " + o.queue + " (owns its worker)\n" +
      Dependencies(o.user, "") +
      // Never give up restarting: a lane without its supervisor runs no jobs.
      "StartLimitIntervalSec=0\n"
      "\n"
      "[Service]\n"
      "Type=simple\n" +
      c.environment +
      "ExecStart=" + ExecLine(sup_args) + "\n"
      "# On stop the supervisor drains its worker itself: mixed sends SIGTERM to the\n"
      "# supervisor alone, and SIGKILL to whatever is left only after TimeoutStopSec,\n"
      "# which is twice the drain timeout.\n"
      "KillMode=mixed\n"
      "TimeoutStopSec=" + Seconds(o.drain_timeout * 2) + "\n"
      "Restart=always\n"
      "RestartSec=2\n"
      "\n"
      "[Install]\n"
      "WantedBy=" + c.wanted_by + "\n";

  std::vector<std::string> ap_args = {bin, "autopilot"};
  ap_args.insert(ap_args.end(), c.redis_args.begin(), c.redis_args.end());
  ap_args.insert(ap_args.end(), {"--queue", o.queue, "--repo", ExecArg(o.repo), "--no-worker",
                                 "--interval", FormatDuration(o.interval)});
  if (!o.cycle_file.empty()) ap_args.insert(ap_args.end(), {"--cycle", ExecArg(o.cycle_file)});
  std::string ap =
      Header(o, ap_name) +
      "[Unit]\n"
      "Description=lanekeeper autopilot of queue " + o.queue +
      " (dispatches cycles; the supervisor owns the worker)\n" +
      Dependencies(o.user, sup_name) +
      "StartLimitIntervalSec=0\n"
      "\n"
      "[Service]\n"
      "Type=simple\n"
      "WorkingDirectory=" + EscapeSpecifiers(o.repo) + "\n" +
      c.environment +
      "ExecStart=" + ExecLine(ap_args) + "\n"
      "Restart=always\n"
      "RestartSec=2\n"
      "\n"
      "[Install]\n"
      "WantedBy=" + c.wanted_by + "\n";

  std::vector<SystemdUnit> out = {{sup_name, dir + "/" + sup_name, std::move(sup)},
                                  {ap_name, dir + "/" + ap_name, std::move(ap)}};
  out.insert(out.end(), env.begin(), env.end());
  return out;
}

namespace {

// The controller refuses to serve its status off loopback without a token or --insecure
// (controller/status/http_server.h): refused here already, so that the unit never
// crash-loops on it. A token file that exists must be one the controller will read.
Status CheckStatusAccess(const ControllerInstallOptions& o) {
  if (!o.auth_token_file.empty() && o.insecure) {
    return Status::InvalidArgument("--auth-token-file and --insecure: give one (a token, or "
                                   "no token behind a firewall)");
  }
  if (!o.auth_token_file.empty()) {
    if (o.auth_token_file.front() != '/' || HasControlChar(o.auth_token_file)) {
      return Status::InvalidArgument("--auth-token-file must be an absolute path, got '" +
                                     o.auth_token_file + "'");
    }
    std::error_code ec;
    if (std::filesystem::exists(o.auth_token_file, ec)) {
      if (auto token = ReadAuthTokenFile(o.auth_token_file); !token.ok()) return token.status();
    }
    return Status::OK();
  }
  if (o.insecure || o.status_addr == "off") return Status::OK();
  std::string host = o.status_addr.substr(0, o.status_addr.rfind(':'));
  if (!IsLoopbackHost(host)) {
    return Status::InvalidArgument(
        "--status-addr " + o.status_addr + " is not a loopback address, where the controller "
        "serves its status only with a token: give --auth-token-file FILE (mode 0600), or "
        "--insecure when a firewall or network policy decides who connects");
  }
  return Status::OK();
}

}  // namespace

StatusOr<std::vector<SystemdUnit>> RenderControllerUnit(const ControllerInstallOptions& o) {
  LK_RETURN_IF_ERROR(CheckAbsoluteFile("the lanekeeper binary", o.binary, false));
  LK_RETURN_IF_ERROR(CheckAbsoluteFile("--specs", o.specs_dir, true));
  if (o.state_dir.empty() || o.state_dir.front() != '/' || HasControlChar(o.state_dir)) {
    return Status::InvalidArgument("--state-dir must be an absolute path, got '" + o.state_dir +
                                   "'");
  }
  if (o.status_addr.empty() || HasControlChar(o.status_addr) ||
      o.status_addr.find_first_of(" \t\"'\\;$%") != std::string::npos) {
    return Status::InvalidArgument("--status-addr must be HOST:PORT or off, got '" +
                                   o.status_addr + "'");
  }
  LK_RETURN_IF_ERROR(CheckStatusAccess(o));
  if (o.drain_timeout < Millis(1000)) {
    return Status::InvalidArgument("--drain-timeout must be at least 1s");
  }
  if (HasControlChar(o.redis_url)) {
    return Status::InvalidArgument("--redis must not contain control characters");
  }
  std::string dir = o.unit_dir;
  if (dir.empty()) {
    auto d = DefaultUnitDir(o.user);
    if (!d.ok()) return d.status();
    dir = *d;
  }
  std::optional<SystemdUnit> env;
  if (!o.redis_url.empty()) env = EnvironmentFileFor(dir, kControllerEnvName, o.redis_url);
  const Common c = CommonParts(o.user, env ? &*env : nullptr);
  std::vector<std::string> args = {ExecArg(o.binary)};
  args.insert(args.end(), c.redis_args.begin(), c.redis_args.end());
  args.insert(args.end(), {"controller", "--specs", ExecArg(o.specs_dir), "--state-dir",
                           ExecArg(o.state_dir), "--status-addr", o.status_addr});
  if (!o.auth_token_file.empty()) {
    args.insert(args.end(), {"--auth-token-file", ExecArg(o.auth_token_file)});
  }
  if (o.insecure) args.push_back("--insecure");
  const std::string name = kControllerUnitName;
  std::string text =
      "# Written by `lanekeeper install --target systemd --controller`. Re-run it to change\n"
      "# the flags; keep local changes in a drop-in (systemctl " +
      std::string(o.user ? "--user " : "") + "edit " + name + ").\n"
      "[Unit]\n"
      "Description=lanekeeper controller (runs the Lanes of " + EscapeSpecifiers(o.specs_dir) +
      ")\n" +
      Dependencies(o.user, "") +
      "StartLimitIntervalSec=0\n"
      "\n"
      "[Service]\n"
      "Type=simple\n" +
      c.environment +
      "ExecStart=" + ExecLine(args) + "\n"
      "# The controller owns its lanes' processes. On stop it stops every lane itself, each\n"
      "# supervisor draining its worker; if it crashes, the lanes keep running and the\n"
      "# restarted controller adopts them (pid and start time in --state-dir) instead of\n"
      "# starting them twice. So systemd signals the controller alone.\n"
      "KillMode=process\n"
      "TimeoutStopSec=" + Seconds((o.drain_timeout + Millis(15'000)) * 2) + "\n"
      "Restart=always\n"
      "RestartSec=2\n"
      "\n"
      "[Install]\n"
      "WantedBy=" + c.wanted_by + "\n";
  std::vector<SystemdUnit> out = {{name, dir + "/" + name, std::move(text)}};
  if (env) out.push_back(*env);
  return out;
}

Status WriteSystemdUnits(const std::vector<SystemdUnit>& units) {
  for (const auto& u : units) {
    std::error_code ec;
    std::filesystem::path dir = std::filesystem::path(u.path).parent_path();
    std::filesystem::create_directories(dir, ec);
    if (ec) return Status::Internal("cannot create " + dir.string() + ": " + ec.message());
    LK_RETURN_IF_ERROR(WriteFileAtomically(u.path, u.text, u.mode));
  }
  return Status::OK();
}

std::vector<std::string> ActivationCommands(const std::vector<SystemdUnit>& units, bool user) {
  const std::string systemctl = user ? "systemctl --user" : "systemctl";
  std::string names;
  for (const auto& u : units) {
    if (u.name.ends_with(".service")) names += " " + u.name;
  }
  std::vector<std::string> out = {systemctl + " daemon-reload && " + systemctl +
                                  " enable --now" + names};
  if (user) out.push_back("loginctl enable-linger \"$USER\"");
  return out;
}

}  // namespace lk
