#include "controller/spec/cycle_file.h"

#include <yaml-cpp/yaml.h>

#include <cerrno>
#include <cstring>
#include <fstream>
#include <set>
#include <sstream>


namespace lk {

void CheckCycleSteps(YamlChecker& c, const YamlField& f, std::vector<CycleStep>& out) {
  YamlKind kind = KindOf(f.value);
  if (kind == YamlKind::kNull) return;
  if (kind != YamlKind::kList) {
    c.Error(f, "expected a list of steps like [{name: sync, command: [git, pull]}], got " +
                   Describe(f.value));
    return;
  }
  std::map<std::string, ConfigMark> names;
  for (size_t i = 0; i < f.value.size(); ++i) {
    YAML::Node item = f.value[i];
    YamlField sf{item, item, f.path + "[" + std::to_string(i) + "]"};
    auto s = c.Fields(sf, {"name", "command", "timeout"});
    if (!s) continue;
    CycleStep step;
    step.timeout = kDefaultCycleStepTimeout;
    if (auto it = s->find("name"); it == s->end()) {
      c.Missing(sf, "name");
    } else if (c.String(it->second, step.name)) {
      if (step.name.empty()) {
        c.Error(it->second, "must not be empty");
      } else if (auto [seen, fresh] = names.emplace(step.name, c.MarkOf(it->second)); !fresh) {
        c.Error(it->second, "duplicate step name " + Quote(step.name) + " (first at line " +
                                std::to_string(seen->second.line) + ")");
      }
    }
    if (auto it = s->find("command"); it == s->end()) {
      c.Missing(sf, "command");
    } else {
      c.Argv(it->second, step.command);
    }
    if (auto it = s->find("timeout"); it != s->end()) {
      c.Duration(it->second, Millis(1), kMaxConfigDuration, step.timeout);
    }
    out.push_back(std::move(step));
  }
}

StatusOr<std::vector<CycleStep>> ParseCycleSpec(std::string_view text,
                                                const std::string& source_name) {
  std::vector<ConfigError> errors;
  std::vector<CycleStep> steps;
  ReadSingleFieldFile(
      std::string(text), source_name, "steps",
      [&](YamlChecker& c, const YamlField& f) { CheckCycleSteps(c, f, steps); }, errors);
  if (!errors.empty()) return Status::InvalidArgument(JoinErrors(errors));
  return steps;
}

StatusOr<std::vector<CycleStep>> LoadCycleSpec(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    return Status::InvalidArgument("cannot read cycle file '" + path + "': " + std::strerror(errno));
  }
  std::stringstream text;
  text << in.rdbuf();
  return ParseCycleSpec(text.str(), path);
}

std::string RenderCycleFile(const std::vector<CycleStep>& steps) {
  YAML::Emitter out;
  out << YAML::BeginMap << YAML::Key << "steps" << YAML::Value << YAML::BeginSeq;
  for (const auto& s : steps) {
    out << YAML::BeginMap << YAML::Key << "name" << YAML::Value << YAML::DoubleQuoted << s.name;
    EmitArgv(out, "command", s.command);
    out << YAML::Key << "timeout" << YAML::Value << std::to_string(s.timeout.count()) + "ms";
    out << YAML::EndMap;
  }
  out << YAML::EndSeq << YAML::EndMap;
  return std::string(out.c_str()) + "\n";
}

}  // namespace lk
