// lanekeeper: builds the command tree, parses the command line, runs one command and
// returns its exit code. Wiring only; each command group lives in its own file
// (cmd/commands.h) and sets the exit code it wants (worker/exit_codes.h).
#include <csignal>
#include <CLI/CLI.hpp>
#include <exception>
#include <iostream>
#include <string>
#include <vector>

#include "cmd/commands.h"
#include "cmd/kubectl_plugin.h"
#include "cmd/logging.h"
#include "worker/exit_codes.h"
#include "worker/redis_connection.h"

namespace {

// CLI11 reports a missing or misspelt subcommand as "A subcommand is required", naming
// neither the command nor the choices. This says both:
//   "jobs: unknown command 'sumbit'; expected submit, get, list, ...".
std::string UsageMessage(const CLI::ParseError& e, CLI::App& app) {
  std::string what = e.what();
  if (!what.starts_with("A subcommand is required")) return what;
  CLI::App* at = &app;
  std::string path;
  while (!at->get_subcommands().empty()) {
    at = at->get_subcommands().front();
    path += (path.empty() ? "" : " ") + at->get_name();
  }
  std::string choices;
  auto named = [](CLI::App* s) { return !s->get_name().empty(); };  // not option groups
  for (const CLI::App* sub : at->get_subcommands(named)) {
    choices += (choices.empty() ? "" : ", ") + sub->get_name();
  }
  std::string word;
  for (const std::string& arg : app.remaining(true)) {
    if (!arg.starts_with("-")) {
      word = arg;
      break;
    }
  }
  return (path.empty() ? "" : path + ": ") +
         (word.empty() ? "missing command" : "unknown command '" + word + "'") + "; expected " +
         choices;
}

}  // namespace

// CMake passes the project version; the fallback keeps a hand-compiled binary honest.
#ifndef LANEKEEPER_VERSION
#define LANEKEEPER_VERSION "0.1.0"
#endif

int main(int argc, char** argv) {
  // Every command talks to Redis over a socket; a write to one whose peer went away (a
  // Redis restart) must be an error to handle, not a SIGPIPE that kills a supervisor
  // before it drains its worker. Children get the default back (ProcessSpawner).
  ::signal(SIGPIPE, SIG_IGN);
  // Run by kubectl as its plugin (cmd/kubectl_plugin.h): the words after `kubectl
  // lanekeeper` become lanekeeper's own command line, parsed below as any other.
  std::vector<std::string> plugin_args;
  std::vector<char*> plugin_argv;
  if (argc > 0 && lk::cmd::RunsAsKubectlPlugin(argv[0])) {
    auto command = lk::cmd::TranslateKubectlPluginArgs({argv + 1, argv + argc},
                                                       lk::cmd::KubeconfigNamespace);
    if (!command.ok()) {
      std::cerr << command.status().message() << "\n";
      return lk::kExitUsage;
    }
    if (!command->usage.empty()) {
      std::cout << command->usage;
      return lk::kExitOk;
    }
    plugin_args = std::move(command->args);
    plugin_argv.push_back(argv[0]);
    for (std::string& arg : plugin_args) plugin_argv.push_back(arg.data());
    plugin_argv.push_back(nullptr);
    argc = static_cast<int>(plugin_argv.size()) - 1;
    argv = plugin_argv.data();
  }
  lk::cmd::GlobalOptions global;
  global.redis_url = lk::DefaultRedisUrl();
  int exit_code = lk::kExitOk;

  CLI::App app{"lanekeeper: background job lanes on Redis, with exactly one worker owner",
               "lanekeeper"};
  app.set_version_flag("--version", "lanekeeper " LANEKEEPER_VERSION);
  app.require_subcommand(1);
  // Subcommands hand the options they do not know to their parent, so the global options
  // work before or after the subcommand: "lanekeeper jobs stats --queue q" is the same as
  // "lanekeeper --queue q jobs stats". Subcommands inherit this setting when created.
  app.fallthrough();
  // No capture_default_str on --redis: the default may come from the environment and carry
  // a password, which --help must not print.
  app.add_option("--redis", global.redis_url,
                 "Redis URL, redis://[:password@]host[:port][/db] or unix:///path.sock[?db=N] "
                 "(default: $LANEKEEPER_REDIS_URL, else redis://127.0.0.1:6379/0)");
  app.add_option("--queue", global.queue, "Queue name")->capture_default_str();
  app.add_option("--log-format", global.log_format, "Log format on stderr")
      ->check(CLI::IsMember(lk::cmd::LogFormats()))
      ->capture_default_str();
  app.add_option("--log-level", global.log_level, "Lowest level logged")
      ->check(CLI::IsMember(lk::cmd::LogLevels()))
      ->capture_default_str();
  // Runs after every option is stored and before any subcommand's callback.
  app.parse_complete_callback(
      [&global] { lk::cmd::ConfigureLogging(global.log_format, global.log_level); });

  CLI::App* jobs = app.add_subcommand("jobs", "The job queue: submit, inspect and run jobs");
  jobs->require_subcommand(1);
  lk::cmd::AddJobsQueueCommands(*jobs, global, exit_code);
  lk::cmd::AddJobsWorkCommand(*jobs, global, exit_code);
  lk::cmd::AddJobsSupervisorCommand(*jobs, global, exit_code);
  lk::cmd::AddAutopilotCommand(app, global, exit_code);
  lk::cmd::AddDoctorCommand(app, global, exit_code);
  lk::cmd::AddInstallCommand(app, global, exit_code);
  lk::cmd::AddValidateCommand(app, global, exit_code);
  lk::cmd::AddControllerCommand(app, global, exit_code);
  lk::cmd::AddLanesCommands(app, global, exit_code);
  lk::cmd::AddUpCommand(app, global, exit_code);

  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    // --help and --version are "errors" with exit code 0; CLI11 prints them.
    if (e.get_exit_code() == static_cast<int>(CLI::ExitCodes::Success)) return app.exit(e);
    std::cerr << "lanekeeper: " << UsageMessage(e, app) << " (see --help)\n";
    return lk::kExitUsage;
  } catch (const std::exception& e) {
    // Commands report expected failures as Status values; this is a bug or resource
    // exhaustion, still reported in one line rather than by std::terminate.
    std::cerr << "lanekeeper: internal error: " << e.what() << "\n";
    return lk::kExitFailure;
  }
  return exit_code;
}
