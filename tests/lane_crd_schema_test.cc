// crds/lane.yaml's schema against the parser, field by field: the two are compared here
// rather than one generated from the other. For every property of the schema's spec the
// parser knows the field and nothing else (at every level), takes the schema's type and
// refuses another, holds the same bounds (minimum, maximum, minLength, maxLength, minItems,
// maxItems, maxProperties, enum, the ranges of the duration and size rules) and fills in
// the default the schema states. Each probe is a Lane written as JSON (which YAML 1.2 reads
// exactly) with one field changed from a valid base, so every refusal is that field's.
// And the shape that keeps the CEL cost bounded: every list and map under spec has a
// length bound, every string a rule reads has maxLength or an enum.
#include <gtest/gtest.h>
#include <yaml-cpp/yaml.h>

#include <functional>
#include <regex>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "controller/spec/lane_parser.h"
#include "tests/support/fake_apiserver.h"

namespace lk::lane_crd_schema_test {

using nlohmann::json;

std::vector<std::string> Split(const std::string& s, const std::string& sep) {
  std::vector<std::string> out;
  for (size_t pos = 0;;) {
    size_t end = s.find(sep, pos);
    out.push_back(s.substr(pos, end == std::string::npos ? std::string::npos : end - pos));
    if (end == std::string::npos) return out;
    pos = end + sep.size();
  }
}

// "a, b or c" as {a, b, c}.
std::set<std::string> ListOf(const std::string& text) {
  std::vector<std::string> words = Split(std::regex_replace(text, std::regex(" or "), ", "), ", ");
  return {words.begin(), words.end()};
}

YAML::Node Crd() { return YAML::LoadFile(testing::SourceDir() + "/crds/lane.yaml"); }
YAML::Node RootSchema() { return Crd()["spec"]["versions"][0]["schema"]["openAPIV3Schema"]; }

// A path through the schema: "spec.autopilot.cycle[].timeout", "[]" an item of a list and
// "*" any value of a map. Concrete() is where the probes write: item 0, handler "h".
std::string Concrete(const std::string& path) {
  return std::regex_replace(std::regex_replace(path, std::regex(R"(\[\])"), "[0]"),
                            std::regex(R"(\.\*)"), ".h");
}

// A valid spec in which the field at path can be set on its own.
json Base(const std::string& path) {
  if (path == "spec.autopilot.mode") return {{"autopilot", {{"repo", "/r"}}}};
  if (path.starts_with("spec.redis.urlFrom")) {
    return {{"redis", {{"urlFrom", {{"secretKeyRef", {{"name", "r"}, {"key", "k"}}}}}}}};
  }
  if (path.starts_with("spec.redis")) return {{"redis", {{"url", "redis://h"}}}};
  if (path.starts_with("spec.autopilot")) {
    return {{"autopilot",
             {{"mode", "managed-worker"},
              {"repo", "/r"},
              {"cycle", json::array({{{"name", "a"}, {"command", {"a"}}}})}}},
            {"supervisor", {{"enabled", false}}}};
  }
  if (path.starts_with("spec.supervisor")) return {{"supervisor", json::object()}};
  if (path.starts_with("spec.handlers")) return {{"handlers", {{"h", {{"command", {"a"}}}}}}};
  return json::object();
}

// spec with the field at path (a spec.* path) set to value, or removed when value is
// discarded.
json With(json spec, const std::string& path, const json& value) {
  std::vector<std::string> parts;  // a name, or "#N" for item N of a list
  std::string concrete = Concrete(path).substr(5);
  std::regex token(R"(([^.\[\]]+)|\[([0-9]+)\])");
  for (std::sregex_iterator it(concrete.begin(), concrete.end(), token), end; it != end; ++it) {
    parts.push_back((*it)[1].matched ? (*it)[1].str() : "#" + (*it)[2].str());
  }
  json* at = &spec;
  auto step = [](json& j, const std::string& part) -> json& {
    return part.starts_with("#") ? j[std::stoul(part.substr(1))] : j[part];
  };
  for (size_t i = 0; i + 1 < parts.size(); ++i) at = &step(*at, parts[i]);
  const std::string& last = parts.back();
  if (!value.is_discarded()) {
    step(*at, last) = value;
  } else if (last.starts_with("#")) {
    at->erase(std::stoul(last.substr(1)));
  } else {
    at->erase(last);
  }
  return spec;
}

ParsedLanes ParseSpec(const json& spec) {
  json lane = {{"apiVersion", "lanekeeper.dev/v1alpha1"},
               {"kind", "Lane"},
               {"metadata", {{"name", "kb"}}},
               {"spec", spec}};
  return ParseLaneSpecs(lane.dump(), "lane.json");
}

// "" when the parser accepts spec, else its errors (field: message, one per line).
std::string Errors(const json& spec) {
  ParsedLanes parsed = ParseSpec(spec);
  std::string out;
  for (const auto& e : parsed.errors) out += e.field + ": " + e.message + "\n";
  return out;
}

bool Accepts(const std::string& path, const json& value) {
  std::string errors = Errors(With(Base(path), path, value));
  EXPECT_EQ(errors, "") << path << " = " << value.dump();
  return errors.empty();
}

// The parser refuses value at path, naming that field (and, when given, with part of
// message).
void Refuses(const std::string& path, const json& value, const std::string& message = "") {
  std::string errors = Errors(With(Base(path), path, value));
  std::string at = Concrete(path) + ": ";
  bool named = false;
  std::istringstream lines(errors);
  for (std::string line; std::getline(lines, line);) {
    if (line.starts_with(at) && line.find(message) != std::string::npos) named = true;
  }
  EXPECT_TRUE(named) << path << " = " << value.dump().substr(0, 200) << ": expected an error at "
                     << Concrete(path) << (message.empty() ? "" : " with '" + message + "'")
                     << ", got:\n" << errors.substr(0, 2000);
}

// A valid string of n characters for the field at path.
std::string Sample(const std::string& path, size_t n) {
  if (path == "spec.autopilot.repo") return "/" + std::string(n - 1, 'r');
  if (path.ends_with("secretKeyRef.key")) return std::string(n, 'k');
  return std::string(n, 'a');
}

bool IsDuration(const YAML::Node& s) {
  return s["pattern"] && s["pattern"].as<std::string>() == "^[0-9]{1,12}(ms|s|m|h|d)$";
}
bool IsSize(const YAML::Node& s) { return s["x-kubernetes-int-or-string"].IsDefined(); }

// The fields the parser knows in the mapping at path, read from its unknown-field message
// "unknown field 'zzz' (expected a, b or c)".
std::set<std::string> ParserFields(const std::string& path) {
  std::string errors = Errors(With(Base(path + ".zzz"), path + ".zzz", 1));
  std::smatch m;
  if (!std::regex_search(errors, m, std::regex(R"(unknown field 'zzz' \(expected ([^)]*)\))"))) {
    ADD_FAILURE() << path << ": no unknown-field message listing the fields:\n" << errors;
    return {};
  }
  return ListOf(m[1].str());
}

struct Field {
  std::string path;
  YAML::Node schema;
  bool required = false;
};

// Every property under spec, depth first; objects and lists too.
void Collect(const YAML::Node& schema, const std::string& path, std::vector<Field>& out) {
  if (schema["properties"]) {
    std::set<std::string> required;
    if (schema["required"]) {
      for (const auto& r : schema["required"]) required.insert(r.as<std::string>());
    }
    for (const auto& kv : schema["properties"]) {
      std::string name = kv.first.as<std::string>();
      out.push_back({path + "." + name, kv.second, required.count(name) > 0});
      Collect(kv.second, path + "." + name, out);
    }
  }
  if (schema["items"]) {
    out.push_back({path + "[]", schema["items"], true});
    Collect(schema["items"], path + "[]", out);
  }
  if (schema["additionalProperties"]) {
    out.push_back({path + ".*", schema["additionalProperties"], false});
    Collect(schema["additionalProperties"], path + ".*", out);
  }
}

std::vector<Field> SpecFields() {
  std::vector<Field> out;
  Collect(RootSchema()["properties"]["spec"], "spec", out);
  return out;
}

TEST(LaneSpecSchema, EveryBaseIsAValidLane) {
  for (const Field& f : SpecFields()) EXPECT_EQ(Errors(Base(f.path)), "") << f.path;
}

TEST(LaneSpecSchema, TheParserKnowsEveryPropertyAndNoOther) {
  std::vector<std::string> objects = {"spec"};
  for (const Field& f : SpecFields()) {
    if (f.schema["properties"]) objects.push_back(f.path);
  }
  EXPECT_GE(objects.size(), 8u) << "spec, redis, urlFrom, secretKeyRef, autopilot, cycle "
                                   "steps, supervisor, handlers";
  YAML::Node spec = RootSchema()["properties"]["spec"];
  for (const std::string& path : objects) {
    YAML::Node s = spec;  // reset(), not =: assigning a YAML::Node writes into the tree
    for (const Field& f : SpecFields()) {
      if (f.path == path) s.reset(f.schema);
    }
    std::set<std::string> schema_fields;
    for (const auto& kv : s["properties"]) schema_fields.insert(kv.first.as<std::string>());
    EXPECT_EQ(ParserFields(path), schema_fields) << path;
  }
}

TEST(LaneSpecSchema, TheParserTakesEachTypeAndRefusesAnother) {
  int checked = 0;
  for (const Field& f : SpecFields()) {
    if (f.path.ends_with("cycle[]")) continue;  // a step: its fields are checked one by one
    std::string type = f.schema["type"] ? f.schema["type"].as<std::string>() : "";
    SCOPED_TRACE(f.path);
    ++checked;
    if (IsSize(f.schema)) {
      Accepts(f.path, 0);
      Accepts(f.path, "0");
      Refuses(f.path, true, "expected a size");
    } else if (type == "integer") {
      int64_t lo = f.schema["minimum"].as<int64_t>();
      Accepts(f.path, lo);
      Refuses(f.path, std::to_string(lo), "expected a whole number");
    } else if (type == "boolean") {
      Accepts(f.path, true);
      Refuses(f.path, "true", "expected true or false");
    } else if (IsDuration(f.schema)) {
      Refuses(f.path, 300, "expected a duration");
    } else if (type == "string") {
      Refuses(f.path, 5, "expected a string, got the number 5");
    } else if (type == "array") {
      Refuses(f.path, "a", "expected a");
    } else if (type == "object") {
      Refuses(f.path, "a", "expected a");
    } else {
      ADD_FAILURE() << "a field of type '" << type << "' the test does not know";
    }
  }
  EXPECT_GE(checked, 25);
}

TEST(LaneSpecSchema, TheParserHoldsTheSameBounds) {
  for (const Field& f : SpecFields()) {
    SCOPED_TRACE(f.path);
    const YAML::Node& s = f.schema;
    if (s["minimum"]) {
      int64_t lo = s["minimum"].as<int64_t>();
      Accepts(f.path, lo);
      Refuses(f.path, lo - 1, "must be " + std::to_string(lo) + " to ");
    }
    if (s["maximum"]) {
      int64_t hi = s["maximum"].as<int64_t>();
      Accepts(f.path, hi);
      Refuses(f.path, hi + 1, " to " + std::to_string(hi) + ", got");
    }
    if (s["maxLength"] && (IsDuration(s) || IsSize(s))) {
      // Bounded by the pattern's digits and a unit of at most two letters.
      std::smatch m;
      std::string pattern = s["pattern"].as<std::string>();
      ASSERT_TRUE(std::regex_search(pattern, m, std::regex(R"(\{1,([0-9]+)\})")));
      EXPECT_EQ(s["maxLength"].as<size_t>(), std::stoul(m[1]) + 2);
    } else if (s["maxLength"]) {
      size_t n = s["maxLength"].as<size_t>();
      Accepts(f.path, Sample(f.path, n));
      Refuses(f.path, Sample(f.path, n + 1));
    }
    if (s["minLength"]) {
      ASSERT_EQ(s["minLength"].as<int>(), 1);
      Refuses(f.path, "", "must not be empty");
    }
    if (s["minItems"]) {
      ASSERT_EQ(s["minItems"].as<int>(), 1);
      Refuses(f.path, json::array(), "an empty list");
    }
    if (s["maxItems"]) {
      size_t n = s["maxItems"].as<size_t>();
      auto items = [&](size_t count) {
        json list = json::array();
        for (size_t i = 0; i < count; ++i) {
          if (f.path.ends_with("cycle")) {
            list.push_back({{"name", "s" + std::to_string(i)}, {"command", {"a"}}});
          } else {
            list.push_back("a");
          }
        }
        return list;
      };
      Accepts(f.path, items(n));
      Refuses(f.path, items(n + 1), "at most " + std::to_string(n));
    }
    if (s["maxProperties"]) {
      size_t n = s["maxProperties"].as<size_t>();
      auto handlers = [&](size_t count) {
        json map = json::object();
        for (size_t i = 0; i < count; ++i) map["h" + std::to_string(i)] = {{"command", {"a"}}};
        return map;
      };
      Accepts(f.path, handlers(n));
      Refuses(f.path, handlers(n + 1), "at most " + std::to_string(n));
    }
    if (s["enum"]) {
      std::set<std::string> schema_values;
      for (const auto& v : s["enum"]) schema_values.insert(v.as<std::string>());
      std::string errors = Errors(With(Base(f.path), f.path, "zzz"));
      std::smatch m;
      ASSERT_TRUE(std::regex_search(errors, m, std::regex(R"(must be ([^\n]*), got 'zzz')")))
          << errors;
      EXPECT_EQ(ListOf(m[1].str()), schema_values);
    }
  }
}

// The range a duration rule states ("ms >= 1000.0 && ms <= 2592000000.0"), at its edges.
TEST(LaneSpecSchema, DurationAndSizeRulesHoldTheParsersRanges) {
  int durations = 0, sizes = 0;
  for (const Field& f : SpecFields()) {
    SCOPED_TRACE(f.path);
    if (!f.schema["x-kubernetes-validations"]) continue;
    std::string rule = f.schema["x-kubernetes-validations"][0]["rule"].as<std::string>();
    std::smatch m;
    if (IsDuration(f.schema)) {
      ASSERT_TRUE(std::regex_search(rule, m, std::regex(R"(ms >= ([0-9]+)\.0 && ms <= ([0-9]+)\.0)")));
      int64_t lo = std::stoll(m[1]), hi = std::stoll(m[2]);
      Accepts(f.path, std::to_string(lo) + "ms");
      Accepts(f.path, std::to_string(hi) + "ms");
      Refuses(f.path, std::to_string(lo - 1) + "ms", "must be ");
      Refuses(f.path, std::to_string(hi + 1) + "ms", "must be ");
      ++durations;
    } else if (IsSize(f.schema)) {
      ASSERT_TRUE(std::regex_search(rule, m, std::regex(R"(self >= ([0-9]+) && self <= ([0-9]+))")));
      int64_t lo = std::stoll(m[1]), hi = std::stoll(m[2]);
      for (const json& v : {json(0), json(lo), json(hi), json(std::to_string(lo) + "Mi"),
                            json(std::to_string(hi / 1024) + "Gi")}) {
        Accepts(f.path, v);
      }
      Refuses(f.path, lo - 1, "mix-up");
      Refuses(f.path, hi + 1, "at most 1Ti");
      Refuses(f.path, std::to_string(hi / 1024 + 1) + "Gi", "at most 1Ti");
      ++sizes;
    }
  }
  EXPECT_EQ(durations, 6);
  EXPECT_EQ(sizes, 2);
}

// The default a field's schema states (`default:`, or "Default X." in its description) is
// what the parser fills in: a spec without the field and one with the default written are
// the same lane. A field that is neither required nor defaulted says so ("Default none").
TEST(LaneSpecSchema, TheParserFillsInTheDefaultsTheSchemaStates) {
  int checked = 0;
  for (const Field& f : SpecFields()) {
    if (f.required || f.path.ends_with("[]") || f.path.ends_with("*")) continue;
    SCOPED_TRACE(f.path);
    const YAML::Node& s = f.schema;
    std::string description = s["description"] ? s["description"].as<std::string>() : "";
    std::string text;
    if (s["default"]) {
      text = s["default"].as<std::string>();
    } else {
      std::smatch m;
      if (!std::regex_search(description, m, std::regex(R"(Default[ ,:]+([^ .,:;]+))"))) {
        // Sections: absent is "none" (redis: the default Redis; autopilot: no autopilot).
        EXPECT_TRUE(s["type"] && s["type"].as<std::string>() == "object" &&
                    description.find("ithout this section") != std::string::npos)
            << "no default stated: " << description;
        continue;
      }
      text = m[1];
    }
    if (text == "none" || text == "the") continue;  // "Default none", "Default: the job's"
    json value = text;
    if (s["type"] && s["type"].as<std::string>() == "integer") value = std::stoll(text);
    if (s["type"] && s["type"].as<std::string>() == "boolean") value = text == "true";
    if (IsSize(s) && text.find_first_not_of("0123456789") == std::string::npos) {
      value = std::stoll(text);
    }
    json base = Base(f.path);
    ParsedLanes without = ParseSpec(With(base, f.path, json(json::value_t::discarded)));
    ParsedLanes with = ParseSpec(With(base, f.path, value));
    ASSERT_EQ(without.lanes.size(), 1u) << Errors(With(base, f.path, json(json::value_t::discarded)));
    ASSERT_EQ(with.lanes.size(), 1u) << Errors(With(base, f.path, value));
    EXPECT_EQ(without.lanes[0].SpecJson(), with.lanes[0].SpecJson())
        << "the default " << value.dump() << " is not what the parser fills in";
    ++checked;
  }
  EXPECT_GE(checked, 12);
}

// The CEL cost of a rule grows with the sizes of what it reads and with how often its field
// can occur (the CRD's header has the numbers): every list and map under spec is bounded,
// and every string a rule reads has a maxLength or an enum.
TEST(LaneSpecSchema, EveryRuleReadsBoundedValues) {
  for (const Field& f : SpecFields()) {
    SCOPED_TRACE(f.path);
    const YAML::Node& s = f.schema;
    std::string type = s["type"] ? s["type"].as<std::string>() : "";
    if (type == "array") {
      EXPECT_TRUE(s["maxItems"]) << "a list without maxItems";
    }
    if (s["additionalProperties"]) {
      EXPECT_TRUE(s["maxProperties"]) << "a map without maxProperties";
    }
    if (s["x-kubernetes-validations"] && (type == "string" || IsSize(s))) {
      EXPECT_TRUE(s["maxLength"] || s["enum"]) << "a rule reads a string of unbounded length";
    }
    if (f.path.ends_with(".mode")) {
      EXPECT_TRUE(s["enum"]) << "the one-owner rules read mode";
    }
  }
}

// kubectl get lanes reads these status fields; the controller writes them.
TEST(LaneSpecSchema, EveryPrinterColumnReadsAFieldOfItsType) {
  YAML::Node version = Crd()["spec"]["versions"][0];
  YAML::Node root = version["schema"]["openAPIV3Schema"];
  std::vector<std::string> names;
  for (const auto& column : version["additionalPrinterColumns"]) {
    names.push_back(column["name"].as<std::string>());
    std::string path = column["jsonPath"].as<std::string>();
    std::string type = column["type"].as<std::string>();
    if (path.find('[') != std::string::npos || path == ".metadata.creationTimestamp") continue;
    YAML::Node s = root;
    for (const std::string& name : Split(path.substr(1), ".")) {
      s.reset(s["properties"][name]);
      ASSERT_TRUE(s.IsDefined()) << path;
    }
    EXPECT_EQ(s["type"].as<std::string>(), type) << path;
  }
  EXPECT_EQ(names, (std::vector<std::string>{"Queue", "Mode", "Concurrency", "MaxRSS", "Owner",
                                             "Ready", "Age"}));
  EXPECT_EQ(Crd()["spec"]["names"]["shortNames"][0].as<std::string>(), "lk");
  EXPECT_EQ(Crd()["spec"]["names"]["categories"][0].as<std::string>(), "lanekeeper");
}

// The Mode column reads status.mode, which the controller writes from the parsed spec (an
// absent autopilot section is off): its enum is the code's names of the modes.
TEST(LaneSpecSchema, TheStatusModeTakesTheNamesTheCodeWrites) {
  YAML::Node mode = Crd()["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["status"]
                        ["properties"]["mode"];
  ASSERT_TRUE(mode.IsDefined());
  std::vector<std::string> names;
  for (const auto& v : mode["enum"]) names.push_back(v.as<std::string>());
  EXPECT_EQ(names, (std::vector<std::string>{AutopilotModeName(AutopilotMode::kDispatchOnly),
                                             AutopilotModeName(AutopilotMode::kManagedWorker),
                                             AutopilotModeName(AutopilotMode::kOff)}));
  EXPECT_EQ(LaneSpec{}.autopilot.mode, AutopilotMode::kOff) << "no section: no autopilot";
}

}  // namespace lk::lane_crd_schema_test
