#include "controller/spec/cycle_file.h"

#include <yaml-cpp/yaml.h>

#include <cerrno>
#include <cstring>
#include <fstream>
#include <set>
#include <sstream>

#include "worker/yaml_errors.h"

namespace lk {

namespace {

StatusOr<CycleStep> ParseStep(const YAML::Node& node, const std::string& path, const ErrorAt& err) {
  if (!node.IsMap()) {
    return err(node.Mark(), path,
               std::string("expected a map with name and command, got ") + KindName(node));
  }
  CycleStep step;
  step.timeout = kDefaultCycleStepTimeout;
  bool has_name = false, has_command = false;
  // Range-for, not it->second: yaml-cpp's operator-> returns a proxy temporary, and a
  // reference into it would dangle after the statement.
  for (const auto& kv : node) {
    std::string field = kv.first.Scalar();
    std::string field_path = path + "." + field;
    const YAML::Node& value = kv.second;
    if (field == "name") {
      if (!value.IsScalar() || value.Scalar().empty()) {
        return err(value.Mark(), field_path, "expected a non-empty string");
      }
      has_name = true;
      step.name = value.Scalar();
    } else if (field == "command") {
      if (!value.IsSequence() || value.size() == 0) {
        return err(value.Mark(), field_path,
                   "expected a non-empty list of arguments, like [git, pull, --ff-only] (no shell)");
      }
      for (size_t i = 0; i < value.size(); ++i) {
        if (!value[i].IsScalar() || value[i].Scalar().empty()) {
          return err(value[i].Mark(), field_path + "[" + std::to_string(i) + "]",
                     "expected a non-empty string");
        }
        step.command.push_back(value[i].Scalar());
      }
      has_command = true;
    } else if (field == "timeout") {
      if (!value.IsScalar()) {
        return err(value.Mark(), field_path, std::string("expected a duration, got ") + KindName(value));
      }
      auto d = ParseDuration(value.Scalar());
      if (!d.ok()) return err(value.Mark(), field_path, d.status().message());
      if (d->count() == 0) return err(value.Mark(), field_path, "must be more than 0");
      step.timeout = *d;
    } else {
      return err(kv.first.Mark(), field_path, "unknown field (expected name, command, timeout)");
    }
  }
  if (!has_name) return err(node.Mark(), path + ".name", "missing: every step needs a name");
  if (!has_command) return err(node.Mark(), path + ".command", "missing: every step needs a command");
  return step;
}

}  // namespace

StatusOr<std::vector<CycleStep>> ParseCycleSpec(std::string_view text,
                                                const std::string& source_name) {
  ErrorAt err(source_name);
  auto loaded = LoadOneDocument(std::string(text), err);
  if (!loaded.ok()) return loaded.status();
  const YAML::Node root = *loaded;
  if (!root.IsMap()) {
    return err(root.Mark(), "", std::string("expected a map with 'steps:', got ") + KindName(root));
  }
  std::vector<CycleStep> steps;
  bool has_steps = false;
  for (const auto& kv : root) {
    std::string key = kv.first.Scalar();
    if (key != "steps") return err(kv.first.Mark(), key, "unknown field (expected steps)");
    has_steps = true;
    const YAML::Node& list = kv.second;
    if (list.IsNull()) continue;
    if (!list.IsSequence()) {
      return err(list.Mark(), "steps", std::string("expected a list of steps, got ") + KindName(list));
    }
    std::set<std::string> seen;
    for (size_t i = 0; i < list.size(); ++i) {
      std::string path = "steps[" + std::to_string(i) + "]";
      auto step = ParseStep(list[i], path, err);
      if (!step.ok()) return step.status();
      if (!seen.insert(step->name).second) {
        return err(list[i]["name"].Mark(), path + ".name", "step '" + step->name + "' is defined twice");
      }
      steps.push_back(std::move(step).value());
    }
  }
  if (!has_steps) return err(root.Mark(), "steps", "missing");
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
