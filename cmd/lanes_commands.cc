// `lanekeeper apply -f FILE`, `get [NAME] [-o table|yaml|json]`, `delete NAME`: the specs
// directory a file-backed controller watches (controller/spec/spec_dir.h). They change files;
// the controller converges. `get` adds the controller's view (READY, owner) when one
// answers at --controller (with the bearer token of --auth-token-file, if given).
#include <iomanip>
#include <iostream>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "controller/spec/lane_parser.h"
#include "cmd/commands.h"
#include "cmd/controller_client.h"
#include "controller/lane_controller.h"
#include "controller/spec/redis_password.h"
#include "controller/spec/spec_dir.h"
#include "worker/exit_codes.h"
#include "worker/redis_connection.h"

namespace lk::cmd {

namespace {

struct LanesFlags {
  std::string specs_dir = DefaultSpecsDir();
  std::string file;
  std::string name;
  std::string output = "table";
  std::string controller_url = "http://127.0.0.1:8081";
  std::string auth_token_file;  // the controller's bearer token (ReadControllerToken)
};

// The controller's /status; null when none answers within a second, or it refused us.
struct ControllerView {
  nlohmann::json status;
  std::string refused;  // the 401 message (ControllerUnauthorized), or ""
};

ControllerView FetchControllerStatus(const LanesFlags& f, const std::string& token) {
  ControllerView view;
  auto answer = ControllerGet(f.controller_url, "/status", token, std::chrono::seconds(1));
  if (!answer.ok()) return view;
  if (answer->code == 401) {
    view.refused = ControllerUnauthorized(f.controller_url, f.auth_token_file);
  } else if (answer->code == 200) {
    view.status = nlohmann::json::parse(answer->body, nullptr, /*allow_exceptions=*/false);
    if (view.status.is_discarded()) view.status = nullptr;
  }
  return view;
}

const nlohmann::json* FindLane(const nlohmann::json& status, const std::string& name) {
  if (!status.is_object() || !status.contains("lanes")) return nullptr;
  for (const auto& l : status["lanes"]) {
    if (l.value("name", "") == name) return &l;
  }
  return nullptr;
}

std::string ReadyText(const nlohmann::json* lane) {
  if (!lane) return "unknown";
  for (const auto& c : lane->value("conditions", nlohmann::json::array())) {
    if (c.value("type", "") == "Ready") {
      return c.value("status", "") == "True" ? "True" : "False(" + c.value("reason", "") + ")";
    }
  }
  return "unknown";
}

std::string OwnerText(const nlohmann::json* lane) {
  if (!lane || !lane->contains("owner") || (*lane)["owner"].is_null()) return "-";
  const auto& o = (*lane)["owner"];
  return o.value("holder", "?") + " (epoch " + std::to_string(o.value("epoch", 0)) + ")";
}

int RunApply(const LanesFlags& f, const GlobalOptions& global) {
  std::vector<SpecError> errors;
  auto results = ApplyLaneFile(f.file, f.specs_dir, global.redis_url, errors);
  if (!errors.empty()) {
    for (const auto& e : errors) std::cerr << e.ToString() << "\n";
    std::cerr << "lanekeeper: nothing applied\n";
    return kExitUsage;
  }
  for (const auto& r : results) std::cout << "lane/" << r.name << " " << r.action << "\n";
  return kExitOk;
}

int RunDelete(const LanesFlags& f) {
  auto removed = DeleteLaneFile(f.name, f.specs_dir);
  if (!removed.ok()) {
    std::cerr << "lanekeeper: " << removed.status().message() << "\n";
    return removed.status().code() == Status::Code::kNotFound ? kExitFailure : kExitUsage;
  }
  std::cout << "lane/" << f.name << " deleted (" << *removed << ")\n";
  return kExitOk;
}

int RunGet(const LanesFlags& f, const GlobalOptions& global) {
  ParsedLanes all = LoadLaneSpecs(f.specs_dir);
  std::vector<LaneSpec> lanes;
  for (auto& l : all.lanes) {
    if (f.name.empty() || l.name == f.name) lanes.push_back(std::move(l));
  }
  for (const auto& e : all.errors) std::cerr << "warning: " << e.ToString() << "\n";
  if (!f.name.empty() && lanes.empty()) {
    std::cerr << "lanekeeper: lane '" << f.name << "' not found in " << f.specs_dir << "\n";
    return kExitFailure;
  }
  auto token = ReadControllerToken(f.auth_token_file);
  if (!token.ok()) {
    std::cerr << "lanekeeper: " << token.status().message() << "\n";
    return kExitUsage;
  }
  const ControllerView view = FetchControllerStatus(f, *token);
  const nlohmann::json& status = view.status;
  // yaml and json stay parseable: the refusal goes to stderr there.
  if (!view.refused.empty() && f.output != "table") {
    std::cerr << "warning: " << view.refused << "\n";
  }
  auto with_status = [&](const LaneSpec& l) {
    // The passwordFile printed for an inline password is apply's copy; a spec written by
    // hand gets it here, so that the output applies back.
    if (Status s = KeepInlinePassword(f.specs_dir, l); !s.ok()) {
      std::cerr << "warning: lane " << l.name << ": " << s.message() << "\n";
    }
    nlohmann::json j = nlohmann::json::parse(LaneToJson(l));
    if (const nlohmann::json* s = FindLane(status, l.name)) {
      nlohmann::json st = *s;
      st.erase("name");
      j["status"] = st;
    }
    return j;
  };
  if (f.output == "json" || f.output == "yaml") {
    nlohmann::json out;
    if (!f.name.empty()) {
      out = with_status(lanes[0]);
    } else {
      out = {{"apiVersion", "v1"}, {"kind", "List"}, {"items", nlohmann::json::array()}};
      for (const auto& l : lanes) out["items"].push_back(with_status(l));
    }
    if (f.output == "json") {
      std::cout << out.dump(2) << "\n";
    } else {
      std::cout << JsonToYaml(out.dump());
    }
    return kExitOk;
  }
  if (lanes.empty()) {
    std::cout << "No lanes in " << f.specs_dir << "\n";
    return kExitOk;
  }
  auto redis_text = [&](const LaneSpec& l) {
    auto ep = ParseRedisUrl(l.redis_url.empty() ? global.redis_url : l.redis_url);
    return ep.ok() ? ep->Redacted() : std::string("(invalid)");
  };
  std::vector<std::vector<std::string>> rows = {
      {"NAME", "QUEUE", "REDIS", "OWNER ROLE", "CONCURRENCY", "READY", "OWNER"}};
  for (const auto& l : lanes) {
    const nlohmann::json* s = FindLane(status, l.name);
    rows.push_back({l.name, l.queue, redis_text(l),
                    l.supervisor.enabled ? "supervisor" : "autopilot",
                    std::to_string(l.Worker().concurrency), status.is_null() ? "-" : ReadyText(s),
                    OwnerText(s)});
  }
  std::vector<size_t> width(rows[0].size(), 0);
  for (const auto& r : rows) {
    for (size_t i = 0; i < r.size(); ++i) width[i] = std::max(width[i], r[i].size());
  }
  for (const auto& r : rows) {
    for (size_t i = 0; i < r.size(); ++i) {
      std::cout << r[i];
      if (i + 1 < r.size()) std::cout << std::string(width[i] - r[i].size() + 3, ' ');
    }
    std::cout << "\n";
  }
  if (!view.refused.empty()) {
    std::cout << "(" << view.refused << "; READY and OWNER unknown)\n";
  } else if (status.is_null()) {
    std::cout << "(no controller answered at " << f.controller_url
              << ": READY and OWNER unknown)\n";
  }
  return kExitOk;
}

void AddSpecsFlag(CLI::App* cmd, LanesFlags& f) {
  cmd->add_option("--specs", f.specs_dir,
                  "The specs directory the controller watches (default: $LANEKEEPER_SPECS_DIR, "
                  "else /etc/lanekeeper/lanes for root, else ~/.config/lanekeeper/lanes)")
      ->capture_default_str();
}

}  // namespace

void AddLanesCommands(CLI::App& app, GlobalOptions& global, int& exit_code) {
  auto f = std::make_shared<LanesFlags>();
  CLI::App* apply = app.add_subcommand(
      "apply", "Validate a Lane spec file and write its lanes into the specs directory "
               "(DIR/NAME.yaml); the controller converges");
  apply->add_option("-f,--filename", f->file, "A Lane spec file")->required();
  AddSpecsFlag(apply, *f);
  apply->callback([f, &global, &exit_code] { exit_code = RunApply(*f, global); });

  CLI::App* get = app.add_subcommand("get", "List the lanes of the specs directory, with the "
                                            "controller's view when one answers");
  get->add_option("name", f->name, "One lane");
  get->add_option("-o,--output", f->output, "Output format")
      ->check(CLI::IsMember({"table", "yaml", "json"}))
      ->capture_default_str();
  get->add_option("--controller", f->controller_url, "The controller's status address")
      ->capture_default_str();
  get->add_option("--auth-token-file", f->auth_token_file,
                  "File (mode 0600) holding the bearer token the controller's status server "
                  "requires (its own --auth-token-file)");
  AddSpecsFlag(get, *f);
  get->callback([f, &global, &exit_code] { exit_code = RunGet(*f, global); });

  CLI::App* del = app.add_subcommand("delete", "Remove a lane's spec file; the controller "
                                               "stops the lane (its worker drains)");
  del->add_option("name", f->name, "The lane")->required();
  AddSpecsFlag(del, *f);
  del->callback([f, &exit_code] { exit_code = RunDelete(*f); });
}

}  // namespace lk::cmd
