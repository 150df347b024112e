// Locating errors in YAML files read with yaml-cpp: "file:line:col: path: message" from a
// node's mark, and a word for what a node is. Shared by every strict config parser (the
// handlers file, the autopilot cycle file). Pure functions, thread-safe.
#pragma once

#include <yaml-cpp/yaml.h>

#include <string>
#include <vector>

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

// The one YAML document of a config file. A second document with content (after `---`)
// is an error at its first line, not silently ignored as YAML::Load would; so is invalid
// YAML. Empty documents (a stray `---`, only comments) do not count; none at all is a null
// node.
inline StatusOr<YAML::Node> LoadOneDocument(const std::string& text, const ErrorAt& err) {
  std::vector<YAML::Node> docs;
  try {
    for (YAML::Node& doc : YAML::LoadAll(text)) {
      if (!doc.IsNull()) docs.push_back(doc);
    }
  } catch (const YAML::Exception& e) {
    return err(e.mark, "", "invalid YAML: " + e.msg);
  }
  if (docs.size() > 1) {
    return err(docs[1].Mark(), "",
               "a second YAML document: this file holds one (remove the '---' and merge them)");
  }
  return docs.empty() ? YAML::Node() : docs[0];
}

// Writes `key: ["a", "b"]`: an argv, every argument double-quoted (no YAML 1.1 surprise
// on the way back: a "yes" or "010" stays a string).
inline void EmitArgv(YAML::Emitter& out, const char* key, const std::vector<std::string>& argv) {
  out << YAML::Key << key << YAML::Value << YAML::Flow << YAML::BeginSeq;
  for (const auto& a : argv) out << YAML::DoubleQuoted << a;
  out << YAML::EndSeq;
}

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
