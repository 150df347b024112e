#include "worker/handler_config.h"

#include <yaml-cpp/yaml.h>

#include <cerrno>
#include <charconv>
#include <cstring>
#include <fstream>
#include <set>
#include <sstream>

#include "worker/yaml_checker.h"

#include "worker/job_queue.h"

namespace lk {

namespace {
// Limits the Lane spec states too (crds/lane.yaml, docs/lanes.md).
constexpr size_t kMaxHandlers = 100;
constexpr int kMaxHandlerAttempts = 1000;
}  // namespace

void CheckHandlers(YamlChecker& c, const YamlField& f, std::vector<HandlerSpec>& out) {
  auto entries = c.Entries(f, "a mapping of job name to handler");
  if (!entries) return;
  if (entries->size() > kMaxHandlers) {
    c.Error(f, "at most " + std::to_string(kMaxHandlers) + " handlers, got " +
                   std::to_string(entries->size()));
    return;
  }
  for (auto& [name, hf] : *entries) {
    HandlerSpec spec;
    if (name.empty() || !ValidUtf8(name) || name.find('\0') != std::string::npos) {
      c.Error(c.MarkOf(hf.key), hf.path, "a handler's name is a job name: non-empty UTF-8 text");
    }
    spec.name = name;
    auto h = c.Fields(hf, {"command", "timeout", "lease", "maxAttempts"});
    if (!h) continue;
    if (h->empty() && KindOf(hf.value) == YamlKind::kNull) {
      c.Error(hf, "has no value: a handler needs a command");
      continue;
    }
    if (auto it = h->find("command"); it == h->end()) {
      c.Missing(hf, "command");
    } else {
      c.Argv(it->second, spec.command);
    }
    if (auto it = h->find("timeout"); it != h->end()) {
      c.Duration(it->second, Millis(1), kMaxConfigDuration, spec.timeout);
    }
    if (auto it = h->find("lease"); it != h->end()) {
      c.Duration(it->second, kMinLease, kMaxLease, spec.lease);
    }
    int64_t v;
    if (auto it = h->find("maxAttempts"); it != h->end() && c.Int(it->second, 1, kMaxHandlerAttempts, v)) {
      spec.max_attempts = static_cast<int>(v);
    }
    out.push_back(std::move(spec));
  }
}

StatusOr<std::vector<HandlerSpec>> ParseHandlerConfig(std::string_view text,
                                                      const std::string& source_name) {
  std::vector<ConfigError> errors;
  std::vector<HandlerSpec> specs;
  ReadSingleFieldFile(
      std::string(text), source_name, "handlers",
      [&](YamlChecker& c, const YamlField& f) { CheckHandlers(c, f, specs); }, errors);
  if (!errors.empty()) return Status::InvalidArgument(JoinErrors(errors));
  return specs;
}

StatusOr<std::vector<HandlerSpec>> LoadHandlerConfig(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    return Status::InvalidArgument("cannot read handlers file '" + path + "': " + strerror(errno));
  }
  std::stringstream text;
  text << in.rdbuf();
  return ParseHandlerConfig(text.str(), path);
}

void AddCommandHandlers(const std::vector<HandlerSpec>& specs, HandlerSet& set) {
  for (const auto& spec : specs) {
    set[spec.name] = HandlerEntry{std::make_shared<CommandHandler>(spec.command), spec.timeout,
                                  spec.lease, spec.max_attempts};
  }
}

std::string RenderHandlersFile(const std::vector<HandlerSpec>& specs) {
  auto ms = [](Millis d) { return std::to_string(d.count()) + "ms"; };
  YAML::Emitter out;
  out << YAML::BeginMap << YAML::Key << "handlers" << YAML::Value << YAML::BeginMap;
  for (const auto& h : specs) {
    out << YAML::Key << YAML::DoubleQuoted << h.name << YAML::Value << YAML::BeginMap;
    EmitArgv(out, "command", h.command);
    if (h.timeout.count() > 0) out << YAML::Key << "timeout" << YAML::Value << ms(h.timeout);
    if (h.lease.count() > 0) out << YAML::Key << "lease" << YAML::Value << ms(h.lease);
    if (h.max_attempts > 0) out << YAML::Key << "maxAttempts" << YAML::Value << h.max_attempts;
    out << YAML::EndMap;
  }
  out << YAML::EndMap << YAML::EndMap;
  return std::string(out.c_str()) + "\n";
}

}  // namespace lk
