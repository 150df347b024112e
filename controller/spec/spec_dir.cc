#include "controller/spec/spec_dir.h"

#include <unistd.h>
#include <yaml-cpp/yaml.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <set>
#include <sstream>

#include "controller/spec/lane_parser.h"
#include "controller/spec/lane_set.h"
#include "controller/spec/redis_password.h"
#include "worker/atomic_file.h"
#include "worker/redis_connection.h"

namespace lk {

namespace fs = std::filesystem;

namespace {

StatusOr<std::string> ReadFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return Status::NotFound(path + ": cannot read: " + std::strerror(errno));
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// The documents of a YAML stream as text, split at "---" document markers, each with the
// line it starts on. Good enough to re-write each Lane on its own: ParseLaneSpecs has
// already accepted the whole stream, and the caller checks that the split finds the same
// lanes.
std::vector<std::string> SplitDocuments(const std::string& text) {
  std::vector<std::string> docs(1);
  std::istringstream in(text);
  std::string line;
  while (std::getline(in, line)) {
    if (line.starts_with("---") &&
        (line.size() == 3 || line[3] == ' ' || line[3] == '\t' || line[3] == '\r')) {
      docs.emplace_back();
      continue;
    }
    if (line.starts_with("...")) continue;
    docs.back() += line + "\n";
  }
  return docs;
}

std::string SizeText(int64_t mb) {
  if (mb == 0) return "0";
  if (mb % 1024 == 0) return std::to_string(mb / 1024) + "Gi";
  return std::to_string(mb) + "Mi";
}

void EmitYaml(YAML::Emitter& out, const nlohmann::json& j) {
  if (j.is_object()) {
    if (j.empty()) {
      out << YAML::Flow << YAML::BeginMap << YAML::EndMap;
      return;
    }
    out << YAML::BeginMap;
    for (auto& [k, v] : j.items()) {
      out << YAML::Key << k << YAML::Value;
      EmitYaml(out, v);
    }
    out << YAML::EndMap;
  } else if (j.is_array()) {
    bool scalars = true;
    for (const auto& v : j) scalars &= !v.is_structured();
    if (scalars) out << YAML::Flow;
    out << YAML::BeginSeq;
    for (const auto& v : j) EmitYaml(out, v);
    out << YAML::EndSeq;
  } else if (j.is_string()) {
    const std::string& s = j.get_ref<const std::string&>();
    // Quote what YAML would read as something else (off, 2, true, null, "").
    YAML::Node probe;
    bool plain = !s.empty();
    try {
      YAML::Node n = YAML::Load(s);
      plain = plain && n.IsScalar() && n.Scalar() == s && n.Tag() != "!" &&
              s.find_first_of(":#{}[],&*!|>'\"%@`") == std::string::npos;
      static const std::set<std::string> special = {"true", "false", "yes", "no", "on", "off",
                                                    "null", "~", "y", "n"};
      std::string lower;
      for (char c : s) lower += static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
      if (special.count(lower)) plain = false;
      if (!s.empty() && (std::isdigit(static_cast<unsigned char>(s[0])) || s[0] == '-' ||
                         s[0] == '.' || s[0] == '+')) {
        // Numbers and things that look like them; "300s" stays readable either way.
        bool all_number = s.find_first_not_of("0123456789.-+eE") == std::string::npos;
        if (all_number) plain = false;
      }
    } catch (const YAML::Exception&) {
      plain = false;
    }
    if (plain) {
      out << s;
    } else {
      out << YAML::DoubleQuoted << s;
    }
  } else if (j.is_boolean()) {
    out << (j.get<bool>() ? "true" : "false");
  } else if (j.is_null()) {
    out << YAML::Null;
  } else {
    out << j.dump();
  }
}

}  // namespace

std::vector<ApplyResult> ApplyLaneFile(const std::string& file, const std::string& specs_dir,
                                       const std::string& default_redis_url,
                                       std::vector<SpecError>& errors) {
  std::vector<ApplyResult> out;
  std::error_code ec;
  if (!fs::is_directory(specs_dir, ec)) {
    errors.push_back({specs_dir, 0, 0, "", "not a directory (create it first: mkdir -p " +
                                               specs_dir + ")"});
    return out;
  }
  ParsedLanes parsed = LoadLaneSpecs(file);
  if (!parsed.errors.empty()) {
    errors = parsed.errors;
    return out;
  }
  if (parsed.lanes.empty()) {
    errors.push_back({file, 0, 0, "", "no Lane specs here"});
    return out;
  }
  auto text = ReadFile(file);
  if (!text.ok()) {
    errors.push_back({file, 0, 0, "", text.status().message()});
    return out;
  }
  // Each lane's own document, so that DIR holds one lane per file.
  std::map<std::string, std::string> doc_of;
  for (const auto& doc : SplitDocuments(*text)) {
    ParsedLanes one = ParseLaneSpecs(doc, file);
    if (one.lanes.size() == 1 && one.errors.empty()) doc_of[one.lanes[0].name] = doc;
  }
  std::set<std::string> names;
  for (const auto& l : parsed.lanes) names.insert(l.name);
  if (doc_of.size() != parsed.lanes.size()) {
    errors.push_back({file, 0, 0, "",
                      "cannot split into one document per lane: separate Lanes with a line "
                      "holding only ---"});
    return out;
  }
  // The rest of the directory: lanes of other names, plus any file that already defines
  // one of ours under another file name.
  std::vector<LaneSpec> others;
  for (const auto& f : ListLaneSpecFiles(specs_dir, &errors)) {
    ParsedLanes p = LoadLaneSpecs(f);
    for (auto& l : p.lanes) {
      if (!names.count(l.name)) {
        others.push_back(std::move(l));
        continue;
      }
      if (fs::path(f).filename() != l.name + ".yaml") {
        errors.push_back({file, l.name_mark.line, l.name_mark.column, "metadata.name",
                          "lane '" + l.name + "' is already defined in " + f +
                              ": edit that file, or `lanekeeper delete " + l.name + "` first"});
      }
    }
  }
  std::vector<LaneSpec> all = others;
  for (const auto& l : parsed.lanes) all.push_back(l);
  for (auto& e : ValidateLaneSet(all, default_redis_url)) errors.push_back(std::move(e));
  if (!errors.empty()) return out;

  for (const auto& l : parsed.lanes) {
    ApplyResult r{l.name, specs_dir + "/" + l.name + ".yaml", "created"};
    std::string content = doc_of[l.name];
    if (auto old = ReadFile(r.path); old.ok()) {
      r.action = *old == content ? "unchanged" : "configured";
    }
    if (r.action != "unchanged") {
      // A spec that carries a password inline is readable by its owner alone.
      auto ep = ParseRedisUrl(l.redis_url);
      mode_t mode = ep.ok() && !ep->password.empty() && l.redis_password_file.empty() ? 0600
                                                                                     : 0644;
      if (Status s = WriteFileAtomically(r.path, content, mode); !s.ok()) {
        errors.push_back({r.path, 0, 0, "", s.message()});
        return out;
      }
    }
    if (Status s = KeepInlinePassword(specs_dir, l); !s.ok()) {
      errors.push_back({r.path, 0, 0, "spec.redis.url", s.message()});
      return out;
    }
    out.push_back(r);
  }
  return out;
}

StatusOr<std::string> DeleteLaneFile(const std::string& name, const std::string& specs_dir) {
  std::error_code ec;
  if (!fs::is_directory(specs_dir, ec)) {
    return Status::NotFound(specs_dir + ": not a directory");
  }
  for (const auto& f : ListLaneSpecFiles(specs_dir)) {
    ParsedLanes p = LoadLaneSpecs(f);
    bool here = false;
    std::vector<std::string> rest;
    for (const auto& l : p.lanes) {
      if (l.name == name) {
        here = true;
      } else {
        rest.push_back(l.name);
      }
    }
    if (!here) continue;
    if (!rest.empty() || !p.errors.empty()) {
      std::string also;
      for (const auto& r : rest) also += (also.empty() ? "" : ", ") + r;
      return Status::FailedPrecondition(
          "lane '" + name + "' shares " + f + " with " +
          (also.empty() ? std::string("documents that do not parse") : "lane(s) " + also) +
          ": remove its document from that file instead");
    }
    fs::remove(f, ec);
    if (ec) return Status::Internal(f + ": cannot remove: " + ec.message());
    fs::remove(KeptPasswordPath(specs_dir, name), ec);
    return f;
  }
  return Status::NotFound("lane '" + name + "' not found in " + specs_dir);
}

std::string LaneToJson(const LaneSpec& l) {
  nlohmann::json spec;
  spec["queue"] = l.queue;
  if (!l.redis_url.empty()) {
    spec["redis"] = {{"url", UrlWithoutPassword(l.redis_url)}};
    std::string dir = fs::path(l.source).parent_path().string();
    if (std::string ref = PasswordReference(dir.empty() ? "." : dir, l); !ref.empty()) {
      spec["redis"]["passwordFile"] = ref;
    }
  } else if (!l.redis_url_from.empty()) {
    nlohmann::json ref{{"name", l.redis_url_from.name}, {"key", l.redis_url_from.key}};
    spec["redis"]["urlFrom"]["secretKeyRef"] = ref;
  }
  auto worker = [](nlohmann::json& j, const WorkerSettings& w) {
    j["concurrency"] = w.concurrency;
    j["maxRSS"] = SizeText(w.max_rss_mb);
    j["drainTimeout"] = FormatDuration(w.drain_timeout);
  };
  if (l.autopilot.mode != AutopilotMode::kOff || !l.autopilot.repo.empty()) {
    nlohmann::json ap{{"mode", AutopilotModeName(l.autopilot.mode)}};
    if (!l.autopilot.repo.empty()) ap["repo"] = l.autopilot.repo;
    ap["interval"] = FormatDuration(l.autopilot.interval);
    nlohmann::json cycle = nlohmann::json::array();
    for (const auto& s : l.autopilot.cycle) {
      cycle.push_back({{"name", s.name}, {"command", s.command},
                       {"timeout", FormatDuration(s.timeout)}});
    }
    ap["cycle"] = cycle;
    if (l.autopilot.mode == AutopilotMode::kManagedWorker) worker(ap, l.autopilot.worker);
    spec["autopilot"] = ap;
  }
  nlohmann::json sup{{"enabled", l.supervisor.enabled}};
  if (l.supervisor.enabled) {
    worker(sup, l.supervisor.worker);
    sup["maxCrashes"] = l.supervisor.max_crashes;
  }
  spec["supervisor"] = sup;
  nlohmann::json handlers = nlohmann::json::object();
  for (const auto& h : l.handlers) {
    nlohmann::json hj{{"command", h.command}};
    if (h.timeout.count() > 0) hj["timeout"] = FormatDuration(h.timeout);
    if (h.lease.count() > 0) hj["lease"] = FormatDuration(h.lease);
    if (h.max_attempts > 0) hj["maxAttempts"] = h.max_attempts;
    handlers[h.name] = hj;
  }
  spec["handlers"] = handlers;
  nlohmann::json meta{{"name", l.name}};
  if (!l.namespace_name.empty()) meta["namespace"] = l.namespace_name;
  nlohmann::json j{{"apiVersion", std::string(kLaneApiVersion)},
                   {"kind", std::string(kLaneKind)},
                   {"metadata", meta},
                   {"spec", spec}};
  return j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

std::string JsonToYaml(const std::string& json) {
  nlohmann::json j = nlohmann::json::parse(json);
  YAML::Emitter out;
  EmitYaml(out, j);
  return std::string(out.c_str()) + "\n";
}

}  // namespace lk
