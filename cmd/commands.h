// Subcommand registration. main.cc builds the CLI11 tree and calls one Add* function per
// command group; each lives in its own file in cmd/ and only wires flags to library calls.
// A command's callback sets *exit_code; main returns it.
#pragma once

#include <CLI/CLI.hpp>
#include <functional>
#include <string>

#include "controller/lane_controller.h"
#include "worker/duration.h"
#include "worker/status.h"

namespace lk::cmd {

// Flags every command shares (filled before any callback runs).
struct GlobalOptions {
  std::string redis_url;          // --redis, default from LANEKEEPER_REDIS_URL
  std::string queue = "default";  // --queue
  std::string log_format = "text";  // --log-format text|json
  std::string log_level = "info";   // --log-level
};

// jobs submit/get/list/stats/retry/cancel  (cmd/jobs_queue_commands.cc)
void AddJobsQueueCommands(CLI::App& jobs, GlobalOptions& global, int& exit_code);
// jobs work  (cmd/jobs_work_command.cc)
void AddJobsWorkCommand(CLI::App& jobs, GlobalOptions& global, int& exit_code);
// jobs supervisor [status|stop]  (cmd/jobs_supervisor_command.cc)
void AddJobsSupervisorCommand(CLI::App& jobs, GlobalOptions& global, int& exit_code);
// autopilot  (cmd/autopilot_command.cc)
void AddAutopilotCommand(CLI::App& app, GlobalOptions& global, int& exit_code);
// doctor  (cmd/doctor_command.cc)
void AddDoctorCommand(CLI::App& app, GlobalOptions& global, int& exit_code);
// install  (cmd/install_command.cc)
void AddInstallCommand(CLI::App& app, GlobalOptions& global, int& exit_code);
// validate -f FILE|DIR  (cmd/validate_command.cc)
void AddValidateCommand(CLI::App& app, GlobalOptions& global, int& exit_code);
// controller  (cmd/controller_command.cc)
void AddControllerCommand(CLI::App& app, GlobalOptions& global, int& exit_code);
// apply / get / delete  (cmd/lanes_commands.cc)
void AddLanesCommands(CLI::App& app, GlobalOptions& global, int& exit_code);
// up -f FILE  (cmd/up_command.cc)
void AddUpCommand(CLI::App& app, GlobalOptions& global, int& exit_code);

// Prints status as one line on stderr, "lanekeeper: <message>" (messages from Redis or a
// parser may hold newlines; they are folded), and returns the exit code: kExitUsage (2)
// for bad input, kExitFailure (1) otherwise.  (cmd/commands.cc)
int Fail(const Status& status);
// Parses the duration text of flag into out; false, after printing
// "lanekeeper: <flag>: <why>", when it is not a duration.  (cmd/commands.cc)
bool ParseDurationFlag(const std::string& flag, const std::string& text, Millis& out);

// The status server's flags, as `controller` and `up` take them  (cmd/status_flags.cc):
//   --status-addr HOST:PORT|off   loopback by default
//   --auth-token-file FILE        bearer token (mode 0600) required on all but the probes
//   --insecure                    serve a non-loopback address without a token
struct StatusFlags {
  std::string addr = "127.0.0.1:8081";
  std::string auth_token_file;
  bool insecure = false;
};
void AddStatusFlags(CLI::App* cmd, StatusFlags& flags);

// The controller with its status server, until SIGTERM/SIGINT; on_listening gets the
// status URL once it serves. `controller` and `up` share it.
int RunController(LaneControllerOptions options, const StatusFlags& status,
                  const std::function<void(const std::string& url)>& on_listening);

}  // namespace lk::cmd
