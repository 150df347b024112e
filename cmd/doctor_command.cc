// `lanekeeper doctor [--queue Q] [--json]`: runs the health checks (controller/doctor.h) and
// prints one line per check, "name: ok|info|warn|fail  message", or one JSON object.
// Exit code: 0 when every check is ok (or info), 1 when the worst is warn, 2 when it is fail,
// so scripts and monitoring can act on it without parsing.
#include <iostream>
#include <memory>

#include "cmd/commands.h"
#include "controller/doctor.h"
#include "worker/exit_codes.h"

namespace lk::cmd {

namespace {

struct DoctorFlags {
  bool json = false;
  int64_t waiting_threshold = DoctorOptions{}.waiting_threshold;
  std::string wedge_time = FormatDuration(DoctorOptions{}.wedge_time);
};

int ExitCodeFor(CheckLevel worst) {
  switch (worst) {
    case CheckLevel::kOk:
    case CheckLevel::kInfo: return kExitOk;
    case CheckLevel::kWarn: return 1;
    case CheckLevel::kFail: return 2;
  }
  return 2;
}

int RunDoctorCommand(const GlobalOptions& global, const DoctorFlags& flags) {
  auto wedge = ParseDuration(flags.wedge_time);
  if (!wedge.ok()) {
    std::cerr << "lanekeeper: --wedge-time: " << wedge.status().message() << "\n";
    return kExitUsage;
  }
  if (auto ep = ParseRedisUrl(global.redis_url); !ep.ok()) {
    std::cerr << "lanekeeper: " << ep.status().message() << "\n";
    return kExitUsage;
  }
  DoctorOptions options;
  options.waiting_threshold = flags.waiting_threshold;
  options.wedge_time = *wedge;
  DoctorReport report = RunDoctor(global.redis_url, global.queue, options);
  if (flags.json) {
    std::cout << report.ToJson() << "\n";
  } else {
    for (const auto& c : report.checks) {
      std::cout << c.name << ": " << CheckLevelName(c.level) << "  " << c.message << "\n";
    }
  }
  return ExitCodeFor(report.Worst());
}

}  // namespace

void AddDoctorCommand(CLI::App& app, GlobalOptions& global, int& exit_code) {
  auto flags = std::make_shared<DoctorFlags>();
  CLI::App* cmd = app.add_subcommand(
      "doctor", "Check a queue's lane: worker owner, supervisor, queue health, autopilot, "
                "Redis durability (exit 0 ok, 1 warn, 2 fail)");
  cmd->add_flag("--json", flags->json, "Print one JSON object");
  cmd->add_option("--waiting-threshold", flags->waiting_threshold,
                  "queue_health warns when more jobs than this wait")
      ->check(CLI::NonNegativeNumber)
      ->capture_default_str();
  cmd->add_option("--wedge-time", flags->wedge_time,
                  "wedged_queue fails when work waited this long with nothing active and "
                  "nothing finished")
      ->capture_default_str();
  cmd->callback([&global, &exit_code, flags] { exit_code = RunDoctorCommand(global, *flags); });
}

}  // namespace lk::cmd
