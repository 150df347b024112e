// Locating errors in YAML files read with yaml-cpp: "file:line:col: path: message" from a
// node's mark, and a word for what a node is. Shared by every strict config parser (the
// handlers file, the autopilot cycle file). Pure functions, thread-safe.
#pragma once

#include <yaml-cpp/yaml.h>

#include <string>

#include "worker/status.h"

namespace lk {

// Builds InvalidArgument errors located by yaml-cpp marks (0-based there, 1-based here).
class ErrorAt {
 public:
  explicit ErrorAt(const std::string& source) : source_(source) {}
  Status operator()(const YAML::Mark& mark, const std::string& path, const std::string& msg) const {
    std::string where = source_;
    if (!mark.is_null()) {
      where += ":" + std::to_string(mark.line + 1) + ":" + std::to_string(mark.column + 1);
    }
    return Status::InvalidArgument(where + ": " + (path.empty() ? "" : path + ": ") + msg);
  }

 private:
  const std::string& source_;
};

// "a map", "a list", "a scalar" or "nothing", for "expected X, got Y" messages.
inline const char* KindName(const YAML::Node& n) {
  switch (n.Type()) {
    case YAML::NodeType::Map: return "a map";
    case YAML::NodeType::Sequence: return "a list";
    case YAML::NodeType::Scalar: return "a scalar";
    default: return "nothing";
  }
}

}  // namespace lk
