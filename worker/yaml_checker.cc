#include "worker/yaml_checker.h"

#include <algorithm>
#include <cctype>
#include <charconv>

namespace lk {

// ---- Scalars as YAML 1.2's core schema reads them ---------------------------------------
//
// yaml-cpp hands every scalar over as text with a tag: "?" for a plain scalar, "!" for a
// quoted or block one. The Kubernetes API server gets JSON, where `2` and "2" differ, and
// its schema (crds/lane.yaml) checks that difference; so does this checker, to accept
// exactly what the API server accepts: a plain 2 is a number, "2" is a string, a plain
// true is a boolean and a plain ~ is nothing.

static bool AllOf(std::string_view s, bool (*pred)(char)) {
  return !s.empty() && std::all_of(s.begin(), s.end(), pred);
}
static bool IsDigit(char c) { return c >= '0' && c <= '9'; }
static bool IsOctal(char c) { return c >= '0' && c <= '7'; }
static bool IsHex(char c) { return std::isxdigit(static_cast<unsigned char>(c)) != 0; }

static bool IsCoreNull(std::string_view s) {
  return s.empty() || s == "~" || s == "null" || s == "Null" || s == "NULL";
}
bool IsCoreBool(std::string_view s) {
  return s == "true" || s == "True" || s == "TRUE" || s == "false" || s == "False" || s == "FALSE";
}
static bool IsCoreInt(std::string_view s) {
  if (s.starts_with("0o")) return AllOf(s.substr(2), IsOctal);
  if (s.starts_with("0x")) return AllOf(s.substr(2), IsHex);
  if (!s.empty() && (s[0] == '-' || s[0] == '+')) s.remove_prefix(1);
  return AllOf(s, IsDigit);
}
// [-+]?(\.[0-9]+|[0-9]+(\.[0-9]*)?)([eE][-+]?[0-9]+)?, [-+]?\.inf, \.nan (three spellings).
static bool IsCoreFloat(std::string_view s) {
  if (s == ".nan" || s == ".NaN" || s == ".NAN") return true;
  if (!s.empty() && (s[0] == '-' || s[0] == '+')) s.remove_prefix(1);
  if (s == ".inf" || s == ".Inf" || s == ".INF") return true;
  size_t i = 0, int_digits = 0, frac_digits = 0;
  while (i < s.size() && IsDigit(s[i])) ++i, ++int_digits;
  if (i < s.size() && s[i] == '.') {
    ++i;
    while (i < s.size() && IsDigit(s[i])) ++i, ++frac_digits;
    if (int_digits == 0 && frac_digits == 0) return false;
  } else if (int_digits == 0) {
    return false;
  }
  if (i < s.size() && (s[i] == 'e' || s[i] == 'E')) {
    ++i;
    if (i < s.size() && (s[i] == '-' || s[i] == '+')) ++i;
    return AllOf(s.substr(i), IsDigit);
  }
  return i == s.size();
}

YamlKind PlainKind(std::string_view s) {
  if (IsCoreNull(s)) return YamlKind::kNull;
  if (IsCoreBool(s)) return YamlKind::kBool;
  if (IsCoreInt(s)) return YamlKind::kInt;
  if (IsCoreFloat(s)) return YamlKind::kFloat;
  return YamlKind::kString;
}

YamlKind KindOf(const YAML::Node& n) {
  static const std::string kCore = "tag:yaml.org,2002:";
  const std::string& tag = n.Tag();
  switch (n.Type()) {
    case YAML::NodeType::Map:
      return tag == "?" || tag == kCore + "map" ? YamlKind::kMap : YamlKind::kOtherTag;
    case YAML::NodeType::Sequence:
      return tag == "?" || tag == kCore + "seq" ? YamlKind::kList : YamlKind::kOtherTag;
    case YAML::NodeType::Scalar: {
      if (tag == "!" || tag == kCore + "str") return YamlKind::kString;
      YamlKind plain = PlainKind(n.Scalar());
      if (tag == "?") return plain;
      // An explicit core tag must agree with the text: "!!int 2" is 2, "!!int x" is wrong.
      static const std::pair<std::string, YamlKind> kTags[] = {{kCore + "int", YamlKind::kInt},
                                                           {kCore + "bool", YamlKind::kBool},
                                                           {kCore + "null", YamlKind::kNull},
                                                           {kCore + "float", YamlKind::kFloat}};
      for (const auto& [name, kind] : kTags) {
        if (tag == name) return plain == kind ? kind : YamlKind::kOtherTag;
      }
      return YamlKind::kOtherTag;
    }
    case YAML::NodeType::Null:
      // An empty value has no tag; an explicit "!!str" on it makes it the empty string.
      return tag == kCore + "str" || tag == "!" ? YamlKind::kString : YamlKind::kNull;
    case YAML::NodeType::Undefined: break;
  }
  return YamlKind::kNull;
}

// A user's text inside a message or a field path: at most max characters, control
// characters escaped, so that one error stays one line.
std::string Escape(std::string_view s, size_t max) {
  std::string out;
  size_t n = 0;
  for (size_t i = 0; i < s.size(); ++i) {
    if (n >= max && (static_cast<unsigned char>(s[i]) & 0xC0) != 0x80) {
      out += "...";
      break;
    }
    unsigned char c = static_cast<unsigned char>(s[i]);
    if (c == '\n') out += "\\n";
    else if (c == '\t') out += "\\t";
    else if (c < 0x20 || c == 0x7f) {
      static const char kHex[] = "0123456789abcdef";
      out += "\\x";
      out += kHex[c >> 4];
      out += kHex[c & 15];
    } else {
      out += static_cast<char>(c);
    }
    ++n;
  }
  return out;
}

std::string Quote(std::string_view s) { return "'" + Escape(s) + "'"; }

std::string Describe(const YAML::Node& n) {
  switch (KindOf(n)) {
    case YamlKind::kNull: return "nothing";
    case YamlKind::kBool: return "the boolean " + Escape(n.Scalar());
    case YamlKind::kInt:
    case YamlKind::kFloat: return "the number " + Escape(n.Scalar());
    case YamlKind::kString: return "the string " + Quote(n.Scalar());
    case YamlKind::kMap: return "a mapping";
    case YamlKind::kList: return "a list";
    case YamlKind::kOtherTag: return "a value tagged " + Quote(n.Tag());
  }
  return "?";
}

// Well-formed UTF-8 (no overlong forms, no surrogates), which both YAML and the API
// server's JSON require; yaml-cpp passes bytes through unchecked.
bool ValidUtf8(std::string_view s) {
  size_t i = 0;
  while (i < s.size()) {
    unsigned char c = static_cast<unsigned char>(s[i]);
    size_t len;
    uint32_t cp;
    if (c < 0x80) { ++i; continue; }
    if (c >= 0xC2 && c <= 0xDF) { len = 2; cp = c & 0x1F; }
    else if (c >= 0xE0 && c <= 0xEF) { len = 3; cp = c & 0x0F; }
    else if (c >= 0xF0 && c <= 0xF4) { len = 4; cp = c & 0x07; }
    else return false;
    if (i + len > s.size()) return false;
    for (size_t k = 1; k < len; ++k) {
      unsigned char cc = static_cast<unsigned char>(s[i + k]);
      if ((cc & 0xC0) != 0x80) return false;
      cp = (cp << 6) | (cc & 0x3F);
    }
    if ((len == 3 && (cp < 0x800 || (cp >= 0xD800 && cp <= 0xDFFF))) ||
        (len == 4 && (cp < 0x10000 || cp > 0x10FFFF))) {
      return false;
    }
    i += len;
  }
  return true;
}

// Optimal string alignment distance, ignoring case: a typo is one or two edits away.
// Callers only ask whether it is 0, 1 or 2, so strings whose lengths differ by more are
// 3 without the quadratic table (a field name can be a megabyte long).
static size_t Distance(std::string_view a, std::string_view b) {
  if (a.size() > b.size() + 2 || b.size() > a.size() + 2) return 3;
  auto lower = [](char c) { return std::tolower(static_cast<unsigned char>(c)); };
  std::vector<std::vector<size_t>> d(a.size() + 1, std::vector<size_t>(b.size() + 1));
  for (size_t i = 0; i <= a.size(); ++i) d[i][0] = i;
  for (size_t j = 0; j <= b.size(); ++j) d[0][j] = j;
  for (size_t i = 1; i <= a.size(); ++i) {
    for (size_t j = 1; j <= b.size(); ++j) {
      size_t cost = lower(a[i - 1]) == lower(b[j - 1]) ? 0 : 1;
      d[i][j] = std::min({d[i - 1][j] + 1, d[i][j - 1] + 1, d[i - 1][j - 1] + cost});
      if (i > 1 && j > 1 && lower(a[i - 1]) == lower(b[j - 2]) &&
          lower(a[i - 2]) == lower(b[j - 1])) {
        d[i][j] = std::min(d[i][j], d[i - 2][j - 2] + 1);
      }
    }
  }
  return d[a.size()][b.size()];
}


// ---- The checker ---------------------------------------------------------------------

static std::string Join(const std::string& path, std::string_view key) {
  return path.empty() ? Escape(key) : path + "." + Escape(key);
}

static bool Contains(FieldNames names, std::string_view name) {
  return std::find(names.begin(), names.end(), name) != names.end();
}

YamlChecker::YamlChecker(const std::string& file, int first_line, std::vector<ConfigError>& errors,
                         FieldHomes homes)
    : file_(file), first_line_(first_line), errors_(errors), homes_(homes) {}

ConfigMark YamlChecker::MarkOf(const YAML::Node& n) const {
  YAML::Mark m = n.Mark();
  if (m.is_null() || m.line < 0) return {};
  return {first_line_ + m.line + 1, m.column + 1};
}

ConfigMark YamlChecker::MarkOf(const YamlField& f) const {
  return MarkOf(KindOf(f.value) == YamlKind::kNull ? f.key : f.value);
}

void YamlChecker::Error(ConfigMark at, const std::string& field, std::string message) {
  errors_.push_back({file_, at.line, at.column, field, std::move(message)});
  ++count_;
}

void YamlChecker::Error(const YamlField& f, std::string message) { Error(MarkOf(f), f.path, std::move(message)); }

void YamlChecker::Missing(const YamlField& parent, std::string_view key, std::string_view why) {
  Error(MarkOf(parent), Join(parent.path, key), "missing" + std::string(why));
}

std::optional<std::vector<std::pair<std::string, YamlField>>> YamlChecker::Entries(const YamlField& f,
                                                                  std::string_view expected) {
  YamlKind kind = KindOf(f.value);
  if (kind == YamlKind::kNull) return std::vector<std::pair<std::string, YamlField>>{};
  if (kind != YamlKind::kMap) {
    Error(f, "expected " + std::string(expected) + ", got " + Describe(f.value));
    return std::nullopt;
  }
  std::vector<std::pair<std::string, YamlField>> out;
  std::map<std::string, ConfigMark> seen;
  for (const auto& kv : f.value) {
    YAML::Node key = kv.first, value = kv.second;
    if (!key.IsScalar()) {
      Error(MarkOf(key), f.path, "expected a field name, got " + Describe(key));
      continue;
    }
    std::string name = key.Scalar();
    YamlField child{key, value, Join(f.path, name)};
    if (auto [it, fresh] = seen.emplace(name, MarkOf(key)); !fresh) {
      Error(MarkOf(key), child.path,
            "written twice (first at line " + std::to_string(it->second.line) + ")");
      continue;
    }
    out.emplace_back(std::move(name), std::move(child));
  }
  return out;
}

std::optional<std::map<std::string, YamlField>> YamlChecker::Fields(const YamlField& f, FieldNames allowed,
                                                   FieldNames quiet) {
  auto entries = Entries(f, "a mapping");
  if (!entries) return std::nullopt;
  std::map<std::string, YamlField> out;
  for (auto& entry : *entries) {
    const std::string& name = entry.first;
    if (Contains(allowed, name) || Contains(quiet, name)) {
      out.emplace(name, std::move(entry.second));
    } else {
      Error(MarkOf(entry.second.key), entry.second.path, UnknownField(f.path, name, allowed));
    }
  }
  return out;
}

bool YamlChecker::String(const YamlField& f, std::string& out) {
  YamlKind kind = KindOf(f.value);
  if (kind == YamlKind::kNull) return NoValue(f);
  if (kind != YamlKind::kString) {
    std::string hint = kind == YamlKind::kMap || kind == YamlKind::kList || kind == YamlKind::kOtherTag
                           ? ""
                           : " (quote it: \"" + Escape(f.value.Scalar()) + "\")";
    Error(f, "expected a string, got " + Describe(f.value) + hint);
    return false;
  }
  const std::string& s = f.value.Scalar();
  if (!ValidUtf8(s)) {
    Error(f, "is not valid UTF-8");
    return false;
  }
  if (s.find('\0') != std::string::npos) {
    Error(f, "contains a NUL character");
    return false;
  }
  out = s;
  return true;
}

bool YamlChecker::Int(const YamlField& f, int64_t lo, int64_t hi, int64_t& out) {
  YamlKind kind = KindOf(f.value);
  if (kind == YamlKind::kNull) return NoValue(f);
  std::string range = std::to_string(lo) + " to " + std::to_string(hi);
  if (kind != YamlKind::kInt) {
    bool quoted_number = kind == YamlKind::kString && PlainKind(f.value.Scalar()) == YamlKind::kInt;
    Error(f, "expected a whole number (" + range + "), got " + Describe(f.value) +
                 (quoted_number ? " (remove the quotes)" : ""));
    return false;
  }
  // Decimal only, and no leading zeros: kubectl reads YAML 1.1, where 010 is 8.
  const std::string& s = f.value.Scalar();
  std::string_view digits = s;
  if (digits.starts_with('-')) digits.remove_prefix(1);
  if (!AllOf(digits, IsDigit) || (digits.size() > 1 && digits[0] == '0')) {
    Error(f, "expected a whole number in decimal, got " + Quote(s));
    return false;
  }
  auto r = std::from_chars(s.data(), s.data() + s.size(), out);
  if (r.ec != std::errc() || out < lo || out > hi) {
    Error(f, "must be " + range + ", got " + Escape(s));
    return false;
  }
  return true;
}

bool YamlChecker::Bool(const YamlField& f, bool& out) {
  YamlKind kind = KindOf(f.value);
  if (kind == YamlKind::kNull) return NoValue(f);
  if (kind != YamlKind::kBool) {
    bool quoted_bool = kind == YamlKind::kString && IsCoreBool(f.value.Scalar());
    Error(f, "expected true or false, got " + Describe(f.value) +
                 (quoted_bool ? " (remove the quotes)" : ""));
    return false;
  }
  out = f.value.Scalar()[0] == 't' || f.value.Scalar()[0] == 'T';
  return true;
}

bool YamlChecker::Duration(const YamlField& f, Millis lo, Millis hi, Millis& out) {
  YamlKind kind = KindOf(f.value);
  if (kind == YamlKind::kNull) return NoValue(f);
  if (kind != YamlKind::kString) {
    std::string hint = kind == YamlKind::kInt ? " (add a unit: " + Escape(f.value.Scalar()) + "s)" : "";
    Error(f, "expected a duration like 30s or 5m, got " + Describe(f.value) + hint);
    return false;
  }
  const std::string& s = f.value.Scalar();
  std::string range = "must be " + FormatDuration(lo) + " to " +
                      (hi == kMaxConfigDuration ? std::string(kMaxConfigDurationText) : FormatDuration(hi));
  // ParseDuration multiplies without an overflow check, and twelve digits of days pass
  // int64 milliseconds; anything that long is out of range here anyway.
  size_t zeros = s.find_first_not_of('0');
  size_t digits = zeros;
  while (digits < s.size() && IsDigit(s[digits])) ++digits;
  if (zeros != std::string::npos && digits - zeros > 10 && s.substr(digits) == "d") {
    Error(f, range + ", got " + Quote(s));
    return false;
  }
  // ParseDuration's message would carry the text raw: any length, any character.
  auto d = ParseDuration(s);
  if (!d.ok()) {
    Error(f, "bad duration " + Quote(s) + ": expected a number with a unit, like 500ms, 30s, "
             "5m or 1h");
    return false;
  }
  if (*d < lo || *d > hi) {
    Error(f, range + ", got " + Quote(s));
    return false;
  }
  out = *d;
  return true;
}

bool YamlChecker::Argv(const YamlField& f, std::vector<std::string>& out) {
  YamlKind kind = KindOf(f.value);
  if (kind == YamlKind::kNull) return NoValue(f);
  if (kind != YamlKind::kList || f.value.size() == 0) {
    Error(f, "expected a non-empty list of arguments like [git, pull] (no shell), got " +
                 (kind == YamlKind::kList ? std::string("an empty list") : Describe(f.value)));
    return false;
  }
  std::vector<std::string> argv;
  bool ok = true;
  for (size_t i = 0; i < f.value.size(); ++i) {
    YAML::Node item = f.value[i];
    YamlField arg{item, item, f.path + "[" + std::to_string(i) + "]"};
    std::string s;
    if (!String(arg, s)) {
      ok = false;
    } else if (s.empty()) {
      Error(arg, "must not be empty");
      ok = false;
    }
    argv.push_back(std::move(s));
  }
  if (ok) out = std::move(argv);
  return ok;
}

bool YamlChecker::NoValue(const YamlField& f) {
  Error(f, "has no value (leave the field out for the default)");
  return false;
}

std::string YamlChecker::UnknownField(const std::string& at, const std::string& name,
                                      FieldNames allowed) const {
  if (name == "<<") return "merge keys ('<<') are not supported: write the fields out";
  std::string_view best;
  size_t best_distance = 3;
  for (std::string_view a : allowed) {
    size_t d = Distance(a, name);
    size_t limit = std::min(a.size(), name.size()) <= 4 ? 1 : 2;
    if (d <= limit && d < best_distance) {
      best = a;
      best_distance = d;
    }
  }
  std::string message = "unknown field " + Quote(name);
  if (!best.empty()) return message + " (did you mean '" + std::string(best) + "'?)";
  for (const auto& [field, home] : homes_) {
    if (Distance(field, name) == 0 && home != Join(at, field)) {
      return message + " (did you mean " + std::string(home) + "?)";
    }
  }
  std::string list;
  size_t i = 0;
  for (std::string_view a : allowed) {
    list += (i == 0 ? "" : i + 1 == allowed.size() ? " or " : ", ") + std::string(a);
    ++i;
  }
  return message + " (expected " + list + ")";
}

std::string ConfigError::ToString() const {
  std::string where = file;
  if (line > 0) where += ":" + std::to_string(line) + ":" + std::to_string(column);
  return where + ": " + (field.empty() ? "" : field + ": ") + message;
}

std::string JoinErrors(const std::vector<ConfigError>& errors) {
  std::string out;
  for (const auto& e : errors) out += (out.empty() ? "" : "\n") + e.ToString();
  return out;
}

void EmitArgv(YAML::Emitter& out, const char* key, const std::vector<std::string>& argv) {
  out << YAML::Key << key << YAML::Value << YAML::Flow << YAML::BeginSeq;
  for (const auto& a : argv) out << YAML::DoubleQuoted << a;
  out << YAML::EndSeq;
}

}  // namespace lk
