#include "worker/handler_config.h"

#include <yaml-cpp/yaml.h>

#include <cerrno>
#include <charconv>
#include <cstring>
#include <fstream>
#include <set>
#include <sstream>

#include "worker/yaml_errors.h"

#include "worker/job_queue.h"

namespace lk {

namespace {

StatusOr<Millis> ParseDurationField(const YAML::Node& n, const std::string& path, const ErrorAt& err) {
  if (!n.IsScalar()) return err(n.Mark(), path, std::string("expected a duration, got ") + KindName(n));
  auto d = ParseDuration(n.Scalar());
  if (!d.ok()) return err(n.Mark(), path, d.status().message());
  return d;
}

StatusOr<HandlerSpec> ParseHandler(const std::string& name, const YAML::Node& node,
                                   const std::string& path, const ErrorAt& err) {
  if (!node.IsMap()) {
    return err(node.Mark(), path, std::string("expected a map with command, got ") + KindName(node));
  }
  HandlerSpec spec;
  spec.name = name;
  bool has_command = false;
  // Iterators hand out proxies that die with the expression: take the pairs by value.
  for (const auto& kv : node) {
    const YAML::Node key = kv.first, value = kv.second;
    std::string field = key.Scalar();
    std::string field_path = path + "." + field;
    if (field == "command") {
      has_command = true;
      if (!value.IsSequence() || value.size() == 0) {
        return err(value.Mark(), field_path,
                   "expected a non-empty list of arguments, like [python3, embed.py] (no shell)");
      }
      for (size_t i = 0; i < value.size(); ++i) {
        const YAML::Node arg = value[i];
        if (!arg.IsScalar() || arg.Scalar().empty()) {
          return err(arg.Mark(), field_path + "[" + std::to_string(i) + "]",
                     "expected a non-empty string");
        }
        spec.command.push_back(arg.Scalar());
      }
    } else if (field == "timeout") {
      auto d = ParseDurationField(value, field_path, err);
      if (!d.ok()) return d.status();
      spec.timeout = *d;
    } else if (field == "lease") {
      auto d = ParseDurationField(value, field_path, err);
      if (!d.ok()) return d.status();
      if (*d < kMinLease || *d > kMaxLease) {
        return err(value.Mark(), field_path,
                   "lease " + value.Scalar() + " is out of range: expected " +
                       FormatDuration(kMinLease) + " to " + FormatDuration(kMaxLease));
      }
      spec.lease = *d;
    } else if (field == "maxAttempts") {
      const std::string s = value.IsScalar() ? value.Scalar() : "";
      int v = 0;
      auto r = std::from_chars(s.data(), s.data() + s.size(), v);
      if (s.empty() || r.ec != std::errc() || r.ptr != s.data() + s.size() || v < 1) {
        return err(value.Mark(), field_path, "expected a whole number >= 1, got '" + s + "'");
      }
      spec.max_attempts = v;
    } else {
      return err(key.Mark(), field_path,
                 "unknown field (expected command, timeout, lease, maxAttempts)");
    }
  }
  if (!has_command) return err(node.Mark(), path + ".command", "missing: every handler needs a command");
  return spec;
}

}  // namespace

StatusOr<std::vector<HandlerSpec>> ParseHandlerConfig(std::string_view text,
                                                      const std::string& source_name) {
  ErrorAt err(source_name);
  auto loaded = LoadOneDocument(std::string(text), err);
  if (!loaded.ok()) return loaded.status();
  const YAML::Node root = *loaded;
  if (!root.IsMap()) {
    return err(root.Mark(), "", std::string("expected a map with 'handlers:', got ") + KindName(root));
  }
  std::vector<HandlerSpec> specs;
  bool has_handlers = false;
  for (const auto& top : root) {
    const YAML::Node key = top.first, handlers = top.second;
    if (key.Scalar() != "handlers") {
      return err(key.Mark(), key.Scalar(), "unknown field (expected handlers)");
    }
    has_handlers = true;
    if (handlers.IsNull()) continue;
    if (!handlers.IsMap()) {
      return err(handlers.Mark(), "handlers",
                 std::string("expected a map of job name to handler, got ") + KindName(handlers));
    }
    std::set<std::string> seen;
    for (const auto& h : handlers) {
      const YAML::Node name_node = h.first, body = h.second;
      std::string name = name_node.Scalar();
      if (name.empty()) return err(name_node.Mark(), "handlers", "a handler needs a name");
      if (!seen.insert(name).second) {
        return err(name_node.Mark(), "handlers." + name, "defined twice");
      }
      auto spec = ParseHandler(name, body, "handlers." + name, err);
      if (!spec.ok()) return spec.status();
      specs.push_back(std::move(spec).value());
    }
  }
  if (!has_handlers) return err(root.Mark(), "handlers", "missing");
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
