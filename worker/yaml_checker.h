// YamlChecker: strict reading of lanekeeper's YAML config files — Lane specs, handlers
// files, autopilot cycle files — the one checker all three go through.
//
//   - values as YAML 1.2's core schema reads them, which is what the Kubernetes API server
//     sees once kubectl sends JSON: a plain 2 is a number and "2" a string, a plain true
//     a boolean; a value of the wrong kind is an error that says what was found
//   - every error located: file:line:column, the field path (spec.supervisor.maxRSS,
//     handlers.embed.timeout, steps[0].command) and a message; unknown fields get a
//     did-you-mean hint; a key written twice is an error (yaml-cpp would keep both)
//   - every error of a document at once: each check records and carries on, so one run
//     of `validate` shows every mistake
//   - documents read safely: a stream is split at its `---` markers so a syntax error
//     in one hides no other, and yaml-cpp 0.7's endless loop on a stray ',' (upstream
//     #1040) is caught before it can hang the process
// yaml-cpp throws; this is where its exceptions become errors. Owns no file: callers read
// the text. Pure functions and a checker per document; not thread-safe per checker.
#pragma once

#include <yaml-cpp/yaml.h>

#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "worker/duration.h"
#include "worker/status.h"

namespace lk {

// Where something was written, 1-based; 0 when unknown.
struct ConfigMark {
  int line = 0;
  int column = 0;
};

// One problem in a config file, located.
struct ConfigError {
  std::string file;
  int line = 0;       // 1-based; 0 when unknown (a file that cannot be read)
  int column = 0;     // 1-based
  std::string field;  // path, e.g. spec.supervisor.maxRSS; empty for YAML syntax errors
  std::string message;

  // "file:line:column: field: message", leaving out what is unknown.
  std::string ToString() const;
};

// Every message of errors, one per line.
std::string JoinErrors(const std::vector<ConfigError>& errors);

// What a YAML node is under the core schema.
enum class YamlKind { kNull, kBool, kInt, kFloat, kString, kMap, kList, kOtherTag };
YamlKind KindOf(const YAML::Node& n);
// What a plain scalar's text reads as ("2" -> kInt, "yes" -> kString: YAML 1.2).
YamlKind PlainKind(std::string_view s);
bool IsCoreBool(std::string_view s);
// "the number 2", "the string 'x'", "a mapping": for "expected X, got Y" messages.
std::string Describe(const YAML::Node& n);
// A user's text inside a message: at most max characters, control characters escaped, so
// that one error stays one line.
std::string Escape(std::string_view s, size_t max = 60);
std::string Quote(std::string_view s);  // 'Escape(s)'
bool ValidUtf8(std::string_view s);

// The longest duration any config file takes: 30 days.
inline constexpr Millis kMaxConfigDuration{30LL * 86'400'000};
inline constexpr std::string_view kMaxConfigDurationText = "30d";

// A value and the key it was written under. An item of a list is its own key.
struct YamlField {
  YAML::Node key;
  YAML::Node value;
  std::string path;
};

// "did you mean" hints for a field written one level off: name -> its full path
// ("concurrency" -> "spec.supervisor.concurrency").
using FieldHomes = std::span<const std::pair<std::string_view, std::string_view>>;

using FieldNames = std::initializer_list<std::string_view>;

// Collects the errors of one document; every check records and carries on.
class YamlChecker {
 public:
  // first_line: the 0-based line the document starts on in file (marks are relative).
  YamlChecker(const std::string& file, int first_line, std::vector<ConfigError>& errors,
              FieldHomes homes = {});

  int errors() const { return count_; }

  ConfigMark MarkOf(const YAML::Node& n) const;
  // An empty value carries the mark of the next token, often on a later line; its key is
  // where the mistake is.
  ConfigMark MarkOf(const YamlField& f) const;

  void Error(ConfigMark at, const std::string& field, std::string message);
  void Error(const YamlField& f, std::string message);
  void Missing(const YamlField& parent, std::string_view key, std::string_view why = "");
  // Records "has no value (leave the field out for the default)"; returns false.
  bool NoValue(const YamlField& f);

  // The entries of a mapping in file order, after reporting keys that are not names or
  // are written twice. A null value (an empty section) is an empty mapping. nullopt: not a
  // mapping.
  std::optional<std::vector<std::pair<std::string, YamlField>>> Entries(const YamlField& f,
                                                                        std::string_view expected);
  // Entries of a mapping with a fixed set of fields; unknown fields are errors with a
  // hint. quiet: also accepted, but not offered in hints (server-set metadata).
  std::optional<std::map<std::string, YamlField>> Fields(const YamlField& f, FieldNames allowed,
                                                         FieldNames quiet = {});

  // Each reads one value into out and returns true, or records why not and returns false.
  bool String(const YamlField& f, std::string& out);
  bool Int(const YamlField& f, int64_t lo, int64_t hi, int64_t& out);
  bool Bool(const YamlField& f, bool& out);
  bool Duration(const YamlField& f, Millis lo, Millis hi, Millis& out);
  // argv: a non-empty list of non-empty strings, run without a shell.
  bool Argv(const YamlField& f, std::vector<std::string>& out);

 private:
  std::string UnknownField(const std::string& at, const std::string& name,
                           FieldNames allowed) const;

  const std::string& file_;
  int first_line_;
  std::vector<ConfigError>& errors_;
  FieldHomes homes_;
  int count_ = 0;
};

// One document of a stream, and the line (0-based) it starts on.
struct YamlDocument {
  YAML::Node node;
  int first_line = 0;
};

// Every non-empty document of text; syntax errors go to errors (one per broken part, the
// others still read).
std::vector<YamlDocument> ReadYamlDocuments(const std::string& text, const std::string& file,
                                            std::vector<ConfigError>& errors);
// The one document of a config file: a second one with content is an error at its first
// line, not silently ignored as YAML::Load would. Null when the file has none.
YAML::Node ReadOneYamlDocument(const std::string& text, const std::string& file,
                               std::vector<ConfigError>& errors);

// A config file whose one document is a mapping with the one field key (handlers:,
// steps:): reads it and hands that field to check. Every error goes to errors.
void ReadSingleFieldFile(const std::string& text, const std::string& file, std::string_view key,
                         const std::function<void(YamlChecker&, const YamlField&)>& check,
                         std::vector<ConfigError>& errors);

// Writes `key: ["a", "b"]`: every argument double-quoted, so that a "yes" or an "010"
// reads back as the string it is.
void EmitArgv(YAML::Emitter& out, const char* key, const std::vector<std::string>& argv);

}  // namespace lk
