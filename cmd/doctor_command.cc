// `lanekeeper doctor [--queue Q] [--json] [--controller URL]`: runs the health checks
// (controller/status/doctor.h) and prints one line per check, "name: ok|info|warn|fail  message", or
// one JSON object. With --controller it adds `controller` checks: what a running
// `lanekeeper controller` says about its lanes, read over HTTP from its /readyz and /status
// (docs/status.md). Exit code: 0 when every check is ok (or info), 1 when the worst is warn,
// 2 when it is fail, so scripts and monitoring can act on it without parsing.
#include <cpprest/http_client.h>

#include <chrono>
#include <iostream>
#include <memory>
#include <nlohmann/json.hpp>

#include "cmd/commands.h"
#include "controller/status/doctor.h"
#include "worker/exit_codes.h"

namespace lk::cmd {

namespace {

struct DoctorFlags {
  bool json = false;
  std::string controller;  // empty: no controller checks
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

// How long one request to the controller may take. Its /status reads each lane's Redis with
// a 500 ms timeout, cached for a second, so a healthy controller answers well within this.
constexpr std::chrono::seconds kControllerTimeout{10};

struct HttpAnswer {
  int code = 0;
  std::string body;
};

// GET base+path. cpprestsdk throws on connection errors and timeouts: Unavailable here.
StatusOr<HttpAnswer> HttpGet(const std::string& base, const std::string& path) {
  try {
    web::http::client::http_client_config config;
    config.set_timeout(kControllerTimeout);
    web::http::client::http_client client(base, config);
    web::http::http_response response = client.request(web::http::methods::GET, path).get();
    return HttpAnswer{response.status_code(), response.extract_utf8string(true).get()};
  } catch (const std::exception& e) {
    return Status::Unavailable(e.what());
  }
}

DoctorCheck ControllerCheck(CheckLevel level, std::string message,
                            std::map<std::string, std::string> details) {
  return DoctorCheck{"controller", level, std::move(message), std::move(details)};
}

// The controller's view: one check when it is unreachable, not ready, or every lane is
// ready; else one warn per lane that is not Ready (its Ready reason and message), per lane
// whose latest spec edit is invalid, and one for spec errors that keep lanes from running.
// Every message is in docs/production.md.
std::vector<DoctorCheck> ControllerChecks(const std::string& url) {
  const std::string at = "controller at " + url;
  auto unexpected = [&](const std::string& path, const std::string& why) {
    return std::vector<DoctorCheck>{ControllerCheck(
        CheckLevel::kFail, at + " gave an unexpected answer to " + path + ": " + why +
                               "; is it a `lanekeeper controller` status address?",
        {{"url", url}})};
  };
  auto readyz = HttpGet(url, "/readyz");
  if (!readyz.ok()) {
    return {ControllerCheck(CheckLevel::kFail,
                            at + " unreachable: " + readyz.status().message() +
                                "; is `lanekeeper controller` running?",
                            {{"url", url}})};
  }
  if (readyz->code == 503) {
    return {ControllerCheck(CheckLevel::kWarn,
                            at + " is not ready: first reconcile not done; run doctor again in "
                                 "a few seconds, and if it persists see the controller's log",
                            {{"url", url}})};
  }
  if (readyz->code != 200) return unexpected("/readyz", "HTTP " + std::to_string(readyz->code));
  auto status = HttpGet(url, "/status");
  if (!status.ok()) {
    return {ControllerCheck(CheckLevel::kFail,
                            at + " unreachable: " + status.status().message() +
                                "; is `lanekeeper controller` running?",
                            {{"url", url}})};
  }
  if (status->code != 200) return unexpected("/status", "HTTP " + std::to_string(status->code));
  auto j = nlohmann::json::parse(status->body, nullptr, false);
  if (j.is_discarded() || !j.is_object() || !j.contains("lanes") || !j["lanes"].is_array()) {
    return unexpected("/status", "not the status JSON");
  }

  std::vector<DoctorCheck> checks;
  auto condition = [](const nlohmann::json& lane, const std::string& type) {
    for (const auto& c : lane.value("conditions", nlohmann::json::array())) {
      if (c.is_object() && c.value("type", "") == type) return c;
    }
    return nlohmann::json::object();
  };
  size_t lanes = j["lanes"].size();
  for (const auto& lane : j["lanes"]) {
    if (!lane.is_object()) continue;
    std::string name = lane.value("name", "");
    auto ready = condition(lane, "Ready");
    if (ready.value("status", "") != "True") {
      std::string reason = ready.value("reason", "Unknown");
      checks.push_back(ControllerCheck(
          CheckLevel::kWarn,
          at + ": lane " + name + " is not ready: " + reason + ": " + ready.value("message", ""),
          {{"url", url}, {"lane", name}, {"condition", "Ready"}, {"reason", reason}}));
      continue;
    }
    auto spec = condition(lane, "SpecValid");
    if (spec.value("status", "") == "False") {
      std::string reason = spec.value("reason", "InvalidSpec");
      checks.push_back(ControllerCheck(
          CheckLevel::kWarn,
          at + ": lane " + name + " runs, but its spec is invalid: " + reason + ": " +
              spec.value("message", ""),
          {{"url", url}, {"lane", name}, {"condition", "SpecValid"}, {"reason", reason}}));
    }
  }
  auto errors = j.value("errors", nlohmann::json::array());
  if (!errors.empty() && errors.front().is_string()) {
    std::string message = at + ": " + std::to_string(errors.size()) +
                           " spec error(s) keep lanes from running: " +
                           errors.front().get<std::string>();
    if (errors.size() > 1) message += " (+" + std::to_string(errors.size() - 1) + " more)";
    checks.push_back(ControllerCheck(CheckLevel::kWarn,
                                     message + "; see `lanekeeper validate -f DIR`",
                                     {{"url", url}, {"errors", std::to_string(errors.size())}}));
  }
  if (checks.empty()) {
    checks.push_back(ControllerCheck(
        CheckLevel::kOk, at + ": " + std::to_string(lanes) + " lane(s), all ready",
        {{"url", url}, {"lanes", std::to_string(lanes)}}));
  }
  return checks;
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
  std::string controller = flags.controller;
  while (!controller.empty() && controller.back() == '/') controller.pop_back();
  if (!flags.controller.empty() && (!controller.starts_with("http://") ||
                                    !web::uri::validate(controller))) {
    std::cerr << "lanekeeper: --controller: bad URL '" << flags.controller
              << "': expected http://HOST:PORT, e.g. http://127.0.0.1:8081\n";
    return kExitUsage;
  }
  DoctorOptions options;
  options.waiting_threshold = flags.waiting_threshold;
  options.wedge_time = *wedge;
  DoctorReport report = RunDoctor(global.redis_url, global.queue, options);
  if (!controller.empty()) {
    for (auto& check : ControllerChecks(controller)) report.checks.push_back(std::move(check));
  }
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
  cmd->add_option("--controller", flags->controller,
                  "Also check a running `lanekeeper controller` at this status URL, e.g. "
                  "http://127.0.0.1:8081");
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
