// `lanekeeper doctor [--queue Q] [--json] [--controller URL [--auth-token-file F]]`: runs the
// health checks (controller/status/doctor.h) and prints one line per check, "name:
// ok|info|warn|fail  message", or one JSON object. With --controller it adds `controller`
// checks: what a running `lanekeeper controller` says about its lanes, read over HTTP from
// its /readyz and /status (docs/status.md), with the bearer token of F if given. Exit code: 0 when every check is ok (or info), 1 when the worst is warn,
// 2 when it is fail, so scripts and monitoring can act on it without parsing.
//
// `doctor --kube --lane NS/NAME [--kubeconfig F] [--context C]`: the same checks for a Lane
// of a cluster — its queue, and its Redis URL from its Secret — with owners and supervisors
// that run in the lane's pods named `pod NAME`, and a `lane` check of the status the
// controller wrote. (`kubectl lanekeeper doctor NAME -n NS` runs exactly this.)
//
// `doctor --probe ready|live --role supervisor|autopilot [--pod NAME]`: the probes of a lane's
// pods (controller/backend/kube_deployment.h), one line and exit 0 (pass) or 1 (fail):
//   ready  the queue's owner lease is held by this pod ($POD_NAME); a dispatch-only
//          autopilot: its heartbeat is this pod's and fresh
//   live   this pod's supervisor (autopilot) published its status lately; passes when Redis
//          cannot be read, so that a Redis outage never restarts the pods
#include <cpprest/http_client.h>

#include <algorithm>
#include <cctype>
#include <chrono>
#include <cstdlib>
#include <iostream>
#include <memory>
#include <nlohmann/json.hpp>

#include "cmd/commands.h"
#include "cmd/controller_client.h"
#include "controller/kube/kube_config.h"
#include "controller/kube/kube_names.h"
#include "controller/kube/kube_secret.h"
#include "controller/owner/autopilot_record.h"
#include "controller/owner/owner_lease.h"
#include "controller/owner/supervisor_status.h"
#include "controller/source/kube_lane_doctor.h"
#include "controller/source/kube_lane_source.h"
#include "controller/status/doctor.h"
#include "worker/exit_codes.h"
#include "worker/redis_connection.h"

namespace lk::cmd {

namespace {

struct DoctorFlags {
  bool json = false;
  bool kube = false;
  std::string lane;  // NS/NAME (or NAME: the kubeconfig context's namespace)
  std::string kubeconfig;
  std::string context;
  std::string probe;  // "" | ready | live
  std::string role = "supervisor";
  std::string pod;    // "": $POD_NAME
  std::string controller;  // empty: no controller checks
  std::string auth_token_file;  // the controller's bearer token (ReadControllerToken)
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

DoctorCheck ControllerCheck(CheckLevel level, std::string message,
                            std::map<std::string, std::string> details) {
  return DoctorCheck{"controller", level, std::move(message), std::move(details)};
}

// The controller's view: one check when it is unreachable, not ready, or every lane is
// ready; else one warn per lane that is not Ready (its Ready reason and message), per lane
// whose latest spec edit is invalid, and one for spec errors that keep lanes from running.
// Every message is in docs/production.md.
std::vector<DoctorCheck> ControllerChecks(const std::string& url, const std::string& token,
                                          const std::string& token_file) {
  const std::string at = "controller at " + url;
  auto unauthorized = [&] {
    return std::vector<DoctorCheck>{ControllerCheck(
        CheckLevel::kFail, ControllerUnauthorized(url, token_file), {{"url", url}})};
  };
  auto unexpected = [&](const std::string& path, const std::string& why) {
    return std::vector<DoctorCheck>{ControllerCheck(
        CheckLevel::kFail, at + " gave an unexpected answer to " + path + ": " + why +
                               "; is it a `lanekeeper controller` status address?",
        {{"url", url}})};
  };
  auto readyz = ControllerGet(url, "/readyz", token, kControllerTimeout);
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
  if (readyz->code == 401) return unauthorized();
  if (readyz->code != 200) return unexpected("/readyz", "HTTP " + std::to_string(readyz->code));
  auto status = ControllerGet(url, "/status", token, kControllerTimeout);
  if (!status.ok()) {
    return {ControllerCheck(CheckLevel::kFail,
                            at + " unreachable: " + status.status().message() +
                                "; is `lanekeeper controller` running?",
                            {{"url", url}})};
  }
  if (status->code == 401) return unauthorized();
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


// --- doctor --probe ------------------------------------------------------------------

std::string HostOf(const std::string& holder) {
  auto colon = holder.rfind(':');
  return colon == std::string::npos ? holder : holder.substr(0, colon);
}

int ProbeResult(bool pass, const std::string& line) {
  std::cout << (pass ? "pass: " : "fail: ") << line << "\n";
  return pass ? kExitOk : kExitFailure;
}

int RunProbe(const GlobalOptions& global, const DoctorFlags& flags) {
  std::string pod = flags.pod;
  if (pod.empty()) {
    if (const char* env = std::getenv("POD_NAME"); env != nullptr) pod = env;
  }
  if (pod.empty()) {
    std::cerr << "lanekeeper: --probe: which pod? pass --pod or set $POD_NAME\n";
    return kExitUsage;
  }
  const bool live = flags.probe == "live";
  const std::string& q = global.queue;
  auto ep = ParseRedisUrl(global.redis_url);
  if (!ep.ok()) return Fail(ep.status());
  auto conn = RedisConnection::Connect(*ep, Millis(2'000));
  if (!conn.ok()) {
    // Liveness cannot judge without Redis; a restart would not bring Redis back.
    return ProbeResult(live, "cannot read queue " + q + ": " + conn.status().message());
  }
  RedisConnection& c = **conn;
  auto owner = ReadOwner(c, q);
  if (!owner.ok()) return ProbeResult(live, "cannot read queue " + q + ": " + owner.status().message());
  auto holds = [&](const std::optional<OwnerRecord>& o) { return o && HostOf(o->holder) == pod; };
  auto who = [&](const std::optional<OwnerRecord>& o) {
    return o ? o->role + " " + o->holder + " holds the owner lease of queue " + q + " (epoch " +
                   std::to_string(o->epoch) + ")"
             : "nobody holds the owner lease of queue " + q;
  };
  if (flags.role == "supervisor") {
    if (!live) return ProbeResult(holds(*owner), who(*owner));
    auto sups = ReadLiveSupervisors(c, q);
    if (!sups.ok()) return ProbeResult(true, "cannot read queue " + q + ": " + sups.status().message());
    for (const auto& sup : *sups) {
      if (HostOf(sup.holder) == pod) {
        return ProbeResult(true, "supervisor " + sup.holder + " is " + sup.state);
      }
    }
    return ProbeResult(false, "no supervisor of pod " + pod + " published its status within " +
                                  FormatDuration(kSupervisorStaleAfter) + " on queue " + q);
  }
  auto record = ReadAutopilotRecord(c, q);
  if (!record.ok()) return ProbeResult(live, "cannot read queue " + q + ": " + record.status().message());
  const bool mine = *record && HostOf((*record)->holder) == pod;
  const int64_t age = mine ? NowUnixMillis() - (*record)->updated_ms : 0;
  const int64_t stale_after = mine ? 3 * std::max<int64_t>((*record)->interval_ms, 5'000) : 0;
  const bool fresh = mine && age <= stale_after;
  if (live || !mine || (*record)->mode != "managed-worker") {
    if (!mine) return ProbeResult(false, "no autopilot of pod " + pod + " on queue " + q);
    return ProbeResult(fresh, "autopilot " + (*record)->holder + " (" + (*record)->mode + ") reported " +
                                  FormatAge(age) + " ago");
  }
  return ProbeResult(fresh && holds(*owner), who(*owner));
}

// --- doctor --kube -------------------------------------------------------------------

// "kb" -> {ns, "kb"}; "prod/kb" -> {"prod", "kb"}.
LaneKey ParseLaneName(const std::string& text, const std::string& default_ns) {
  auto slash = text.find('/');
  if (slash == std::string::npos) return {default_ns, text};
  return {text.substr(0, slash), text.substr(slash + 1)};
}

StatusOr<DoctorReport> KubeDoctor(const GlobalOptions& global, const DoctorFlags& flags,
                                  const DoctorOptions& options) {
  auto config = kube::LoadKubeConfig(flags.kubeconfig, flags.context);
  if (!config.ok()) return config.status();
  auto client = kube::NewKubeClient(*config);
  if (!client.ok()) return client.status();
  const LaneKey key = ParseLaneName(flags.lane, config->ns);
  auto lane = (*client)->Get(kube::LanesRef(key.ns).Named(key.name));
  if (!lane.ok()) {
    if (lane.status().IsNotFound()) {
      return Status::NotFound("lane " + key.ToString() + " not found on " + (*client)->server() +
                              " (kubectl get lanes -n " + key.ns + ")");
    }
    return lane.status();
  }
  std::vector<std::optional<kube::Json>> secrets;
  Status secret_error;
  SourcedLane sourced = KubeLaneSource::ReadLane(*lane, [&](const std::string& secret_key) -> const kube::Json* {
    auto slash = secret_key.find('/');
    auto got = (*client)->Get(kube::ResourceRef{"", "v1", "secrets", secret_key.substr(0, slash),
                                                secret_key.substr(slash + 1)});
    if (!got.ok() && !got.status().IsNotFound()) secret_error = got.status();
    secrets.push_back(got.ok() ? std::optional<kube::Json>(std::move(*got)) : std::nullopt);
    return secrets.back() ? &*secrets.back() : nullptr;
  });
  if (!secret_error.ok()) return secret_error;
  DoctorReport report;
  if (!sourced.valid) {
    std::string message = "lane " + key.ToString() + " cannot be checked: ";
    for (size_t i = 0; i < sourced.errors.size(); ++i) {
      message += (i ? "; " : "") + sourced.errors[i].ToString();
    }
    report.checks.push_back(DoctorCheck{"lane", CheckLevel::kFail, message, {{"lane", key.ToString()}}});
    return report;
  }
  const std::string url = sourced.spec.redis_url.empty() ? global.redis_url : sourced.spec.redis_url;
  report = RunDoctor(url, sourced.spec.queue, options);
  AddClusterChecks(**client, *lane, key, report);
  return report;
}

int RunDoctorCommand(const GlobalOptions& global, const DoctorFlags& flags) {
  auto wedge = ParseDuration(flags.wedge_time);
  if (!wedge.ok()) {
    std::cerr << "lanekeeper: --wedge-time: " << wedge.status().message() << "\n";
    return kExitUsage;
  }
  if (!flags.probe.empty()) return RunProbe(global, flags);
  if (flags.kube && flags.lane.empty()) {
    std::cerr << "lanekeeper: --kube: which lane? pass --lane NAMESPACE/NAME\n";
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
  auto token = ReadControllerToken(flags.auth_token_file);
  if (!token.ok()) {
    std::cerr << "lanekeeper: " << token.status().message() << "\n";
    return kExitUsage;
  }
  DoctorOptions options;
  options.waiting_threshold = flags.waiting_threshold;
  options.wedge_time = *wedge;
  DoctorReport report;
  if (flags.kube) {
    auto kube_report = KubeDoctor(global, flags, options);
    if (!kube_report.ok()) return Fail(kube_report.status());
    report = std::move(*kube_report);
  } else {
    report = RunDoctor(global.redis_url, global.queue, options);
  }
  if (!controller.empty()) {
    for (auto& check : ControllerChecks(controller, *token, flags.auth_token_file)) {
      report.checks.push_back(std::move(check));
    }
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
  cmd->add_flag("--kube", flags->kube,
                "Check a Lane of a Kubernetes cluster (--lane): its queue, with its Redis URL "
                "from its Secret, owners named by pod, and the status the controller wrote");
  cmd->add_option("--lane", flags->lane,
                  "(--kube) NAMESPACE/NAME of the Lane (NAME alone: the kubeconfig context's namespace)");
  cmd->add_option("--kubeconfig", flags->kubeconfig,
                  "(--kube) kubeconfig file (default: $KUBECONFIG, in-cluster, ~/.kube/config)");
  cmd->add_option("--context", flags->context, "(--kube) kubeconfig context");
  cmd->add_option("--probe", flags->probe,
                  "A lane pod's probe, exit 0 or 1: ready (this pod owns the queue), live (this "
                  "pod's role reports; passes when Redis cannot be read)")
      ->check(CLI::IsMember({"ready", "live"}));
  cmd->add_option("--role", flags->role, "(--probe) supervisor or autopilot")
      ->check(CLI::IsMember({"supervisor", "autopilot"}))
      ->capture_default_str();
  cmd->add_option("--pod", flags->pod, "(--probe) this pod's name (default: $POD_NAME)");
  CLI::Option* controller =
      cmd->add_option("--controller", flags->controller,
                      "Also check a running `lanekeeper controller` at this status URL, e.g. "
                      "http://127.0.0.1:8081");
  cmd->add_option("--auth-token-file", flags->auth_token_file,
                  "(--controller) File (mode 0600) holding the bearer token the controller's "
                  "status server requires (its own --auth-token-file)")
      ->needs(controller);
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
