#include "controller/spec/lane_types.h"

#include <yaml-cpp/depthguard.h>
#include <yaml-cpp/eventhandler.h>
#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <charconv>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <initializer_list>
#include <map>
#include <optional>
#include <sstream>
#include <utility>

#include <nlohmann/json.hpp>

#include "controller/spec/cycle_file.h"
#include "worker/job_queue.h"
#include "worker/redis_connection.h"

namespace lk {

namespace {

// Limits beyond the types. crds/lane.yaml and docs/lanes.md state the same numbers.
constexpr size_t kMaxSpecBytes = 1 << 20;
constexpr Millis kMaxDuration{30LL * 86'400'000};
constexpr std::string_view kMaxDurationText = "30d";
constexpr int64_t kMinRssMb = 256;
constexpr int64_t kMaxRssMb = 1 << 20;  // 1Ti
constexpr int kMaxConcurrency = 4096;
constexpr int kMaxCrashesLimit = 1000;
constexpr int kMaxAttemptsLimit = 1000;
constexpr size_t kMaxHandlers = 100;
// A file of garbage has an error per line; past this many, the rest are only counted.
constexpr size_t kMaxErrorsPerFile = 100;

constexpr std::string_view kRedisUrlForms =
    "redis://[[user]:password@]host[:port][/db] or unix://[[user]:password@]/path.sock[?db=N]";

// ---- Scalars as YAML 1.2's core schema reads them ---------------------------------------
//
// yaml-cpp hands every scalar over as text with a tag: "?" for a plain scalar, "!" for a
// quoted or block one. The Kubernetes API server gets JSON, where `2` and "2" differ, and
// its schema (crds/lane.yaml) checks that difference; so does this parser, to accept
// exactly what the API server accepts: a plain 2 is a number, "2" is a string, a plain
// true is a boolean and a plain ~ is nothing.

enum class Kind { kNull, kBool, kInt, kFloat, kString, kMap, kList, kOtherTag };

bool AllOf(std::string_view s, bool (*pred)(char)) {
  return !s.empty() && std::all_of(s.begin(), s.end(), pred);
}
bool IsDigit(char c) { return c >= '0' && c <= '9'; }
bool IsOctal(char c) { return c >= '0' && c <= '7'; }
bool IsHex(char c) { return std::isxdigit(static_cast<unsigned char>(c)) != 0; }

bool IsCoreNull(std::string_view s) {
  return s.empty() || s == "~" || s == "null" || s == "Null" || s == "NULL";
}
bool IsCoreBool(std::string_view s) {
  return s == "true" || s == "True" || s == "TRUE" || s == "false" || s == "False" || s == "FALSE";
}
bool IsCoreInt(std::string_view s) {
  if (s.starts_with("0o")) return AllOf(s.substr(2), IsOctal);
  if (s.starts_with("0x")) return AllOf(s.substr(2), IsHex);
  if (!s.empty() && (s[0] == '-' || s[0] == '+')) s.remove_prefix(1);
  return AllOf(s, IsDigit);
}
// [-+]?(\.[0-9]+|[0-9]+(\.[0-9]*)?)([eE][-+]?[0-9]+)?, [-+]?\.inf, \.nan (three spellings).
bool IsCoreFloat(std::string_view s) {
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

Kind PlainKind(std::string_view s) {
  if (IsCoreNull(s)) return Kind::kNull;
  if (IsCoreBool(s)) return Kind::kBool;
  if (IsCoreInt(s)) return Kind::kInt;
  if (IsCoreFloat(s)) return Kind::kFloat;
  return Kind::kString;
}

Kind KindOf(const YAML::Node& n) {
  static const std::string kCore = "tag:yaml.org,2002:";
  const std::string& tag = n.Tag();
  switch (n.Type()) {
    case YAML::NodeType::Map:
      return tag == "?" || tag == kCore + "map" ? Kind::kMap : Kind::kOtherTag;
    case YAML::NodeType::Sequence:
      return tag == "?" || tag == kCore + "seq" ? Kind::kList : Kind::kOtherTag;
    case YAML::NodeType::Scalar: {
      if (tag == "!" || tag == kCore + "str") return Kind::kString;
      Kind plain = PlainKind(n.Scalar());
      if (tag == "?") return plain;
      // An explicit core tag must agree with the text: "!!int 2" is 2, "!!int x" is wrong.
      static const std::pair<std::string, Kind> kTags[] = {{kCore + "int", Kind::kInt},
                                                           {kCore + "bool", Kind::kBool},
                                                           {kCore + "null", Kind::kNull},
                                                           {kCore + "float", Kind::kFloat}};
      for (const auto& [name, kind] : kTags) {
        if (tag == name) return plain == kind ? kind : Kind::kOtherTag;
      }
      return Kind::kOtherTag;
    }
    case YAML::NodeType::Null:
      // An empty value has no tag; an explicit "!!str" on it makes it the empty string.
      return tag == kCore + "str" || tag == "!" ? Kind::kString : Kind::kNull;
    case YAML::NodeType::Undefined: break;
  }
  return Kind::kNull;
}

// A user's text inside a message or a field path: at most max characters, control
// characters escaped, so that one error stays one line.
std::string Escape(std::string_view s, size_t max = 60) {
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
    case Kind::kNull: return "nothing";
    case Kind::kBool: return "the boolean " + Escape(n.Scalar());
    case Kind::kInt:
    case Kind::kFloat: return "the number " + Escape(n.Scalar());
    case Kind::kString: return "the string " + Quote(n.Scalar());
    case Kind::kMap: return "a mapping";
    case Kind::kList: return "a list";
    case Kind::kOtherTag: return "a value tagged " + Quote(n.Tag());
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
size_t Distance(std::string_view a, std::string_view b) {
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

// Where fields belong, for the hint on a field written one level off ("concurrency" under
// spec, "queue" at the top, "steps" as in a cycle file).
constexpr std::pair<std::string_view, std::string_view> kFieldHomes[] = {
    {"name", "metadata.name"},
    {"namespace", "metadata.namespace"},
    {"queue", "spec.queue"},
    {"redis", "spec.redis"},
    {"url", "spec.redis.url"},
    {"autopilot", "spec.autopilot"},
    {"mode", "spec.autopilot.mode"},
    {"repo", "spec.autopilot.repo"},
    {"interval", "spec.autopilot.interval"},
    {"cycle", "spec.autopilot.cycle"},
    {"steps", "spec.autopilot.cycle"},
    {"supervisor", "spec.supervisor"},
    {"enabled", "spec.supervisor.enabled"},
    {"concurrency", "spec.supervisor.concurrency"},
    {"maxRSS", "spec.supervisor.maxRSS"},
    {"maxCrashes", "spec.supervisor.maxCrashes"},
    {"drainTimeout", "spec.supervisor.drainTimeout"},
    {"handlers", "spec.handlers"},
};

std::string Join(const std::string& path, std::string_view key) {
  return path.empty() ? Escape(key) : path + "." + Escape(key);
}

// A value and the key it was written under. An item of a list is its own key.
struct Field {
  YAML::Node key;
  YAML::Node value;
  std::string path;
};

using Names = std::initializer_list<std::string_view>;

// Collects the errors of one document; every check records and carries on, so that one
// run of `validate` shows every mistake at once.
class Checker {
 public:
  Checker(const std::string& file, int first_line, std::vector<SpecError>& errors)
      : file_(file), first_line_(first_line), errors_(errors) {}

  int errors() const { return count_; }

  SpecMark MarkOf(const YAML::Node& n) const {
    YAML::Mark m = n.Mark();
    if (m.is_null() || m.line < 0) return {};
    return {first_line_ + m.line + 1, m.column + 1};
  }

  // An empty value carries the mark of the next token, often on a later line; its key is
  // where the mistake is.
  SpecMark MarkOf(const Field& f) const {
    return MarkOf(KindOf(f.value) == Kind::kNull ? f.key : f.value);
  }

  void Error(SpecMark at, const std::string& field, std::string message) {
    errors_.push_back({file_, at.line, at.column, field, std::move(message)});
    ++count_;
  }
  void Error(const Field& f, std::string message) { Error(MarkOf(f), f.path, std::move(message)); }
  void Missing(const Field& parent, std::string_view key, std::string_view why = "") {
    Error(MarkOf(parent), Join(parent.path, key), "missing" + std::string(why));
  }

  // The entries of a mapping in file order, after reporting keys that are not names or
  // are written twice (YAML forbids it; yaml-cpp would keep both). A null value — an
  // empty section — is an empty mapping. nullopt: not a mapping.
  std::optional<std::vector<std::pair<std::string, Field>>> Entries(const Field& f,
                                                                    std::string_view expected) {
    Kind kind = KindOf(f.value);
    if (kind == Kind::kNull) return std::vector<std::pair<std::string, Field>>{};
    if (kind != Kind::kMap) {
      Error(f, "expected " + std::string(expected) + ", got " + Describe(f.value));
      return std::nullopt;
    }
    std::vector<std::pair<std::string, Field>> out;
    std::map<std::string, SpecMark> seen;
    for (const auto& kv : f.value) {
      YAML::Node key = kv.first, value = kv.second;
      if (!key.IsScalar()) {
        Error(MarkOf(key), f.path, "expected a field name, got " + Describe(key));
        continue;
      }
      std::string name = key.Scalar();
      Field child{key, value, Join(f.path, name)};
      if (auto [it, fresh] = seen.emplace(name, MarkOf(key)); !fresh) {
        Error(MarkOf(key), child.path,
              "written twice (first at line " + std::to_string(it->second.line) + ")");
        continue;
      }
      out.emplace_back(std::move(name), std::move(child));
    }
    return out;
  }

  // Entries of a mapping with a fixed set of fields; unknown fields are errors with a
  // hint. quiet: also accepted, but not offered in hints (server-set metadata).
  std::optional<std::map<std::string, Field>> Fields(const Field& f, Names allowed,
                                                     Names quiet = {}) {
    auto entries = Entries(f, "a mapping");
    if (!entries) return std::nullopt;
    std::map<std::string, Field> out;
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

  bool String(const Field& f, std::string& out) {
    Kind kind = KindOf(f.value);
    if (kind == Kind::kNull) return NoValue(f);
    if (kind != Kind::kString) {
      std::string hint = kind == Kind::kMap || kind == Kind::kList || kind == Kind::kOtherTag
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

  bool Int(const Field& f, int64_t lo, int64_t hi, int64_t& out) {
    Kind kind = KindOf(f.value);
    if (kind == Kind::kNull) return NoValue(f);
    std::string range = std::to_string(lo) + " to " + std::to_string(hi);
    if (kind != Kind::kInt) {
      bool quoted_number = kind == Kind::kString && PlainKind(f.value.Scalar()) == Kind::kInt;
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

  bool Bool(const Field& f, bool& out) {
    Kind kind = KindOf(f.value);
    if (kind == Kind::kNull) return NoValue(f);
    if (kind != Kind::kBool) {
      bool quoted_bool = kind == Kind::kString && IsCoreBool(f.value.Scalar());
      Error(f, "expected true or false, got " + Describe(f.value) +
                   (quoted_bool ? " (remove the quotes)" : ""));
      return false;
    }
    out = f.value.Scalar()[0] == 't' || f.value.Scalar()[0] == 'T';
    return true;
  }

  bool Duration(const Field& f, Millis lo, Millis hi, Millis& out) {
    Kind kind = KindOf(f.value);
    if (kind == Kind::kNull) return NoValue(f);
    if (kind != Kind::kString) {
      std::string hint = kind == Kind::kInt ? " (add a unit: " + Escape(f.value.Scalar()) + "s)" : "";
      Error(f, "expected a duration like 30s or 5m, got " + Describe(f.value) + hint);
      return false;
    }
    const std::string& s = f.value.Scalar();
    std::string range = "must be " + FormatDuration(lo) + " to " +
                        (hi == kMaxDuration ? std::string(kMaxDurationText) : FormatDuration(hi));
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

  // maxRSS: a plain number of MB, or a string with Mi or Gi. 1..255 MB is rejected as the
  // likely mix-up of "2" meaning 2 GB.
  bool Megabytes(const Field& f, int64_t& out) {
    Kind kind = KindOf(f.value);
    if (kind == Kind::kNull) return NoValue(f);
    if (kind != Kind::kInt && kind != Kind::kString) {
      Error(f, "expected a size like 2048Mi or 2Gi, got " + Describe(f.value));
      return false;
    }
    const std::string& s = f.value.Scalar();
    auto mb = ParseMegabytes(s);
    if (!mb.ok()) {
      Error(f, mb.status().message());
      return false;
    }
    if (*mb != 0 && *mb < kMinRssMb) {
      std::string number = s.substr(0, s.find_first_not_of("0123456789"));
      Error(f, Quote(s) + " is only " + std::to_string(*mb) +
                   " MB, which looks like a GB/MB mix-up: write " + number +
                   "Gi for gigabytes, at least 256Mi, or 0 for no limit");
      return false;
    }
    if (*mb > kMaxRssMb) {
      Error(f, "must be at most 1Ti, got " + Quote(s));
      return false;
    }
    out = *mb;
    return true;
  }

  // argv: a non-empty list of non-empty strings, run without a shell.
  bool Argv(const Field& f, std::vector<std::string>& out) {
    Kind kind = KindOf(f.value);
    if (kind == Kind::kNull) return NoValue(f);
    if (kind != Kind::kList || f.value.size() == 0) {
      Error(f, "expected a non-empty list of arguments like [git, pull] (no shell), got " +
                   (kind == Kind::kList ? std::string("an empty list") : Describe(f.value)));
      return false;
    }
    std::vector<std::string> argv;
    bool ok = true;
    for (size_t i = 0; i < f.value.size(); ++i) {
      YAML::Node item = f.value[i];
      Field arg{item, item, f.path + "[" + std::to_string(i) + "]"};
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

 private:
  bool NoValue(const Field& f) {
    Error(f, "has no value (leave the field out for the default)");
    return false;
  }

  static bool Contains(Names names, std::string_view name) {
    return std::find(names.begin(), names.end(), name) != names.end();
  }

  static std::string UnknownField(const std::string& at, const std::string& name, Names allowed) {
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
    for (const auto& [field, home] : kFieldHomes) {
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

  const std::string& file_;
  int first_line_;
  std::vector<SpecError>& errors_;
  int count_ = 0;
};

bool ValidName(std::string_view n) {
  if (n.empty() || n.size() > 63) return false;
  auto ok = [](char c) { return (c >= 'a' && c <= 'z') || IsDigit(c) || c == '-'; };
  return std::all_of(n.begin(), n.end(), ok) && n.front() != '-' && n.back() != '-';
}

bool ValidQueue(std::string_view q) {
  if (q.empty() || q.size() > 100) return false;
  return std::all_of(q.begin(), q.end(), [](char c) {
    return std::isalnum(static_cast<unsigned char>(c)) || c == '-' || c == '_' || c == '.';
  });
}

// The URL with its password replaced, for messages.
std::string RedactUrl(std::string_view url) {
  size_t scheme = url.find("://");
  size_t at = url.rfind('@');
  if (scheme == std::string_view::npos || at == std::string_view::npos || at < scheme) {
    return std::string(url);
  }
  std::string_view userinfo = url.substr(scheme + 3, at - scheme - 3);
  size_t colon = userinfo.find(':');
  std::string user = colon == std::string_view::npos ? "" : std::string(userinfo.substr(0, colon)) + ":";
  return std::string(url.substr(0, scheme + 3)) + user + "***" + std::string(url.substr(at));
}

bool ValidPort(std::string_view s) {
  int port = 0;
  if (!AllOf(s, IsDigit) || s.size() > 5 || s[0] == '0') return false;
  std::from_chars(s.data(), s.data() + s.size(), port);
  return port >= 1 && port <= 65535;
}

bool ValidDb(std::string_view s) {
  return AllOf(s, IsDigit) && s.size() <= 4 && (s.size() == 1 || s[0] != '0');
}

// The Redis URLs a spec may carry: a strict subset of what ParseRedisUrl reads, one that
// a regular expression in crds/lane.yaml can state exactly. Empty: fine; else why not.
std::string RedisUrlProblem(std::string_view url) {
  bool is_unix = url.starts_with("unix://");
  if (!is_unix && !url.starts_with("redis://")) return "unknown scheme";
  std::string_view rest = url.substr(is_unix ? 7 : 8);
  if (size_t at = rest.find('@'); at != std::string_view::npos) {
    if (rest.find('@', at + 1) != std::string_view::npos ||
        rest.substr(0, at).find('/') != std::string_view::npos) {
      return "write '@' and '/' in a user or password as %40 and %2F";
    }
    rest.remove_prefix(at + 1);
  }
  if (is_unix) {
    std::string_view path = rest.substr(0, rest.find('?'));
    if (path.size() < 2 || path[0] != '/') return "a unix socket path must be absolute";
    if (path.size() == rest.size()) return "";
    std::string_view query = rest.substr(path.size() + 1);
    if (!query.starts_with("db=") || !ValidDb(query.substr(3))) {
      return "the only query parameter is db=N, N from 0 to 9999";
    }
    return "";
  }
  std::string_view hostport = rest.substr(0, rest.find('/'));
  if (hostport.size() < rest.size()) {
    std::string_view db = rest.substr(hostport.size() + 1);
    if (!db.empty() && !ValidDb(db)) return "db must be a number from 0 to 9999";
  }
  std::string_view host = hostport.substr(0, hostport.find(':'));
  if (host.size() < hostport.size() && !ValidPort(hostport.substr(host.size() + 1))) {
    return "port must be 1 to 65535";
  }
  if (host.empty()) return "a host is required";
  bool host_ok = std::all_of(host.begin(), host.end(), [](char c) {
    return std::isalnum(static_cast<unsigned char>(c)) || c == '.' || c == '-' || c == '_';
  });
  if (!host_ok) return "a host is letters, digits, '.', '-' and '_'";
  return "";
}

WorkerSettings ParseWorker(Checker& c, const std::map<std::string, Field>& f) {
  WorkerSettings w;
  int64_t v;
  if (auto it = f.find("concurrency"); it != f.end() && c.Int(it->second, 1, kMaxConcurrency, v)) {
    w.concurrency = static_cast<int>(v);
  }
  if (auto it = f.find("maxRSS"); it != f.end()) c.Megabytes(it->second, w.max_rss_mb);
  if (auto it = f.find("drainTimeout"); it != f.end()) {
    c.Duration(it->second, Millis(1000), kMaxDuration, w.drain_timeout);
  }
  return w;
}

void ParseCycle(Checker& c, const Field& f, std::vector<CycleStep>& out) {
  Kind kind = KindOf(f.value);
  if (kind == Kind::kNull) return;
  if (kind != Kind::kList) {
    c.Error(f, "expected a list of steps like [{name: sync, command: [git, pull]}], got " +
                   Describe(f.value));
    return;
  }
  std::map<std::string, SpecMark> names;
  for (size_t i = 0; i < f.value.size(); ++i) {
    YAML::Node item = f.value[i];
    Field sf{item, item, f.path + "[" + std::to_string(i) + "]"};
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
      c.Duration(it->second, Millis(1), kMaxDuration, step.timeout);
    }
    out.push_back(std::move(step));
  }
}

// Who owns the worker, as written: the fields that decide it, and whether both could be
// read (when one could not, the ownership rule is not checked: its error would be noise).
struct OwnerFields {
  std::optional<Field> mode;
  std::optional<Field> enabled;
  bool readable = true;
};

void ParseAutopilot(Checker& c, const Field& f, LaneSpec::Autopilot& a, OwnerFields& owner) {
  auto fields = c.Fields(f, {"mode", "repo", "interval", "cycle", "concurrency", "maxRSS",
                             "drainTimeout"});
  if (!fields) {
    owner.readable = false;
    return;
  }
  a.mode = AutopilotMode::kDispatchOnly;
  if (auto it = fields->find("mode"); it != fields->end()) {
    owner.mode = it->second;
    std::string mode;
    owner.readable = false;
    if (c.String(it->second, mode)) {
      owner.readable = true;
      if (mode == "dispatch-only") a.mode = AutopilotMode::kDispatchOnly;
      else if (mode == "managed-worker") a.mode = AutopilotMode::kManagedWorker;
      else if (mode == "off") a.mode = AutopilotMode::kOff;
      else {
        c.Error(it->second, "must be dispatch-only, managed-worker or off, got " + Quote(mode));
        owner.readable = false;
      }
    }
  }
  if (auto it = fields->find("repo"); it != fields->end()) {
    if (c.String(it->second, a.repo) && !a.repo.starts_with('/')) {
      c.Error(it->second, "must be an absolute path, got " + Quote(a.repo));
    }
  } else if (a.mode != AutopilotMode::kOff) {
    c.Missing(f, "repo", ": required unless mode is off");
  }
  if (auto it = fields->find("interval"); it != fields->end()) {
    c.Duration(it->second, Millis(1000), kMaxDuration, a.interval);
  }
  if (auto it = fields->find("cycle"); it != fields->end()) ParseCycle(c, it->second, a.cycle);
  a.worker = ParseWorker(c, *fields);
  // Settings for a worker that does not run would mislead: say so rather than ignore them.
  if (a.mode != AutopilotMode::kManagedWorker && owner.readable) {
    for (const char* name : {"concurrency", "maxRSS", "drainTimeout"}) {
      if (auto it = fields->find(name); it != fields->end()) {
        c.Error(c.MarkOf(it->second.key), it->second.path,
                "has no effect unless mode is managed-worker (the supervisor's worker takes "
                "spec.supervisor." + std::string(name) + ")");
      }
    }
  }
}

void ParseSupervisor(Checker& c, const Field& f, LaneSpec::Supervisor& s, OwnerFields& owner) {
  auto fields = c.Fields(f, {"enabled", "concurrency", "maxRSS", "maxCrashes", "drainTimeout"});
  if (!fields) {
    owner.readable = false;
    return;
  }
  if (auto it = fields->find("enabled"); it != fields->end()) {
    owner.enabled = it->second;
    if (!c.Bool(it->second, s.enabled)) owner.readable = false;
  }
  s.worker = ParseWorker(c, *fields);
  int64_t v;
  if (auto it = fields->find("maxCrashes"); it != fields->end() &&
                                            c.Int(it->second, 1, kMaxCrashesLimit, v)) {
    s.max_crashes = static_cast<int>(v);
  }
  if (!s.enabled) {
    for (const char* name : {"concurrency", "maxRSS", "maxCrashes", "drainTimeout"}) {
      if (auto it = fields->find(name); it != fields->end()) {
        std::string where = std::string_view(name) == "maxCrashes"
                                ? ""
                                : " (a managed-worker autopilot's worker takes spec.autopilot." +
                                      std::string(name) + ")";
        c.Error(c.MarkOf(it->second.key), it->second.path,
                "has no effect while the supervisor is disabled" + where);
      }
    }
  }
}

void ParseHandlers(Checker& c, const Field& f, std::vector<HandlerSpec>& out) {
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
    if (h->empty() && KindOf(hf.value) == Kind::kNull) {
      c.Error(hf, "has no value: a handler needs a command");
      continue;
    }
    if (auto it = h->find("command"); it == h->end()) {
      c.Missing(hf, "command");
    } else {
      c.Argv(it->second, spec.command);
    }
    if (auto it = h->find("timeout"); it != h->end()) {
      c.Duration(it->second, Millis(1), kMaxDuration, spec.timeout);
    }
    if (auto it = h->find("lease"); it != h->end()) {
      c.Duration(it->second, kMinLease, kMaxLease, spec.lease);
    }
    int64_t v;
    if (auto it = h->find("maxAttempts"); it != h->end() && c.Int(it->second, 1, kMaxAttemptsLimit, v)) {
      spec.max_attempts = static_cast<int>(v);
    }
    out.push_back(std::move(spec));
  }
}

void ParseMetadata(Checker& c, const Field& f, LaneSpec& lane) {
  // Kubernetes objects carry the server's fields too; files rarely do. Accepted, unread.
  auto meta = c.Fields(f, {"name", "namespace", "labels", "annotations"},
                       {"generation", "uid", "resourceVersion", "creationTimestamp",
                        "deletionTimestamp", "deletionGracePeriodSeconds", "managedFields",
                        "finalizers", "ownerReferences", "generateName", "selfLink"});
  if (!meta) return;
  if (auto it = meta->find("name"); it == meta->end()) {
    c.Missing(f, "name");
  } else if (c.String(it->second, lane.name)) {
    lane.name_mark = c.MarkOf(it->second);
    if (!ValidName(lane.name)) {
      c.Error(it->second,
              "must be 1 to 63 lowercase letters, digits or '-', starting and ending with a "
              "letter or digit, got " + Quote(lane.name));
    }
  }
  if (auto it = meta->find("namespace"); it != meta->end() &&
                                         c.String(it->second, lane.namespace_name) &&
                                         !ValidName(lane.namespace_name)) {
    c.Error(it->second, "must be a Kubernetes namespace name (lowercase letters, digits or "
                        "'-', at most 63), got " + Quote(lane.namespace_name));
  }
  for (const char* name : {"labels", "annotations"}) {
    auto it = meta->find(name);
    if (it == meta->end()) continue;
    auto entries = c.Entries(it->second, "a mapping of strings");
    if (!entries) continue;
    for (const auto& [key, value] : *entries) {
      std::string ignored;
      c.String(value, ignored);
    }
  }
  int64_t g;
  if (auto it = meta->find("generation"); it != meta->end() &&
                                          c.Int(it->second, 0, INT64_MAX, g)) {
    lane.generation = g;
  }
}

// Parses one document into lane; returns false when it had errors.
bool ParseDocument(const YAML::Node& doc, Checker& c, LaneSpec& lane) {
  Field root{doc, doc, ""};
  if (KindOf(doc) != Kind::kMap) {
    c.Error(root, "expected a Lane (apiVersion, kind, metadata, spec), got " + Describe(doc));
    return false;
  }
  auto top = c.Fields(root, {"apiVersion", "kind", "metadata", "spec"}, {"status"});
  if (!top) return false;
  std::string s;
  if (auto it = top->find("apiVersion"); it == top->end()) {
    c.Missing(root, "apiVersion", ": expected " + std::string(kLaneApiVersion));
  } else if (c.String(it->second, s) && s != kLaneApiVersion) {
    c.Error(it->second, "must be " + std::string(kLaneApiVersion) + ", got " + Quote(s));
  }
  if (auto it = top->find("kind"); it == top->end()) {
    c.Missing(root, "kind", ": expected Lane");
  } else if (c.String(it->second, s) && s != kLaneKind) {
    c.Error(it->second, "must be Lane, got " + Quote(s));
  }
  if (auto it = top->find("metadata"); it == top->end()) {
    c.Missing(root, "metadata");
  } else {
    ParseMetadata(c, it->second, lane);
  }
  auto spec_it = top->find("spec");
  if (spec_it == top->end()) {
    c.Missing(root, "spec");
    return false;
  }
  const Field& spec_field = spec_it->second;
  if (KindOf(spec_field.value) == Kind::kNull) {
    c.Error(spec_field, "has no value (write spec: {} for a lane with every default)");
    return false;
  }
  auto spec = c.Fields(spec_field, {"queue", "redis", "autopilot", "supervisor", "handlers"});
  if (!spec) return false;
  lane.queue_mark = c.MarkOf(spec_field.key);
  if (auto it = spec->find("queue"); it != spec->end() && c.String(it->second, lane.queue)) {
    lane.queue_mark = c.MarkOf(it->second);
    if (!ValidQueue(lane.queue)) {
      c.Error(it->second,
              "must be 1 to 100 letters, digits, '.', '_' or '-', got " + Quote(lane.queue));
    }
  }
  if (auto it = spec->find("redis"); it != spec->end()) {
    auto redis = c.Fields(it->second, {"url"});
    if (redis) {
      if (auto url = redis->find("url"); url != redis->end() && c.String(url->second, lane.redis_url)) {
        if (std::string why = RedisUrlProblem(lane.redis_url); !why.empty()) {
          c.Error(url->second, "bad Redis URL " + Quote(RedactUrl(lane.redis_url)) + ": " + why +
                                   " (expected " + std::string(kRedisUrlForms) + ")");
        }
      }
    }
  }
  OwnerFields owner;
  // An empty autopilot section is no section, as the API server prunes a null one.
  if (auto it = spec->find("autopilot"); it != spec->end() && KindOf(it->second.value) != Kind::kNull) {
    ParseAutopilot(c, it->second, lane.autopilot, owner);
  }
  if (auto it = spec->find("supervisor"); it != spec->end()) {
    ParseSupervisor(c, it->second, lane.supervisor, owner);
  }
  if (auto it = spec->find("handlers"); it != spec->end()) ParseHandlers(c, it->second, lane.handlers);

  // Exactly one worker owner per lane: the supervisor, or a managed-worker autopilot. A
  // managed autopilot was written so (owner.mode is set), as was a disabled supervisor.
  bool managed = lane.autopilot.mode == AutopilotMode::kManagedWorker;
  if (owner.readable && lane.supervisor.enabled && managed) {
    c.Error(*owner.mode, "two worker owners: set autopilot.mode to dispatch-only, or "
                         "spec.supervisor.enabled to false");
  } else if (owner.readable && !lane.supervisor.enabled && !managed) {
    c.Error(*owner.enabled, "no worker owner: enable the supervisor, or set autopilot.mode to "
                            "managed-worker");
  }
  return c.errors() == 0;
}

// One YAML document's text, and the line (0-based) it starts on in the file.
struct DocumentText {
  std::string_view text;
  int first_line = 0;
};

bool IsMarker(std::string_view line, std::string_view marker) {
  return line.starts_with(marker) &&
         (line.size() == 3 || line[3] == ' ' || line[3] == '\t' || line[3] == '\r' ||
          line[3] == '\n');
}

// Splits a stream at its document markers. YAML forbids "---" and "..." at the start of
// a line inside any scalar (they always end the document there), so the split is exact,
// and it lets each document be parsed alone: a syntax error in one then hides neither the
// documents before it nor those after it. Directives and comments before a "---" stay
// with the document they introduce.
std::vector<DocumentText> SplitDocuments(std::string_view text) {
  std::vector<DocumentText> docs;
  size_t start = 0;
  int start_line = 0;
  bool has_content = false;
  int line_no = 0;
  for (size_t pos = 0; pos < text.size(); ++line_no) {
    size_t end = text.find('\n', pos);
    size_t next = end == std::string_view::npos ? text.size() : end + 1;
    std::string_view line = text.substr(pos, next - pos);
    if (IsMarker(line, "---") && has_content) {
      docs.push_back({text.substr(start, pos - start), start_line});
      start = pos;
      start_line = line_no;
    }
    if (IsMarker(line, "...")) {
      docs.push_back({text.substr(start, next - start), start_line});
      start = next;
      start_line = line_no + 1;
      has_content = false;
    } else {
      size_t first = line.find_first_not_of(" \t\r\n");
      bool blank = first == std::string_view::npos || line[first] == '#' || line[0] == '%';
      has_content = has_content || !blank;
    }
    pos = next;
  }
  if (start < text.size()) docs.push_back({text.substr(start), start_line});
  return docs;
}

// yaml-cpp 0.7 (Debian 12's) loops forever in LoadAll on a document that starts with a
// stray ',' (upstream issue #1040, fixed after 0.7): each turn yields one more empty
// document without consuming the ',', and memory grows until the process dies. So the
// text first goes through the same parser with a handler that builds nothing and stops at
// a document that starts where the previous one did; only then through LoadAll, which
// makes the same moves and so ends too.
class ProgressCheck : public YAML::EventHandler {
 public:
  explicit ProgressCheck(const std::string& text) : text_(text) {}

  void OnDocumentStart(const YAML::Mark& mark) override {
    if (started_ && mark.pos == last_start_) {
      std::string what = mark.pos >= 0 && static_cast<size_t>(mark.pos) < text_.size()
                             ? Quote(text_.substr(mark.pos, 1))
                             : "input";
      throw YAML::ParserException(mark, "unexpected " + what);
    }
    started_ = true;
    last_start_ = mark.pos;
  }
  void OnDocumentEnd() override {}
  void OnNull(const YAML::Mark&, YAML::anchor_t) override {}
  void OnAlias(const YAML::Mark&, YAML::anchor_t) override {}
  void OnScalar(const YAML::Mark&, const std::string&, YAML::anchor_t,
                const std::string&) override {}
  void OnSequenceStart(const YAML::Mark&, const std::string&, YAML::anchor_t,
                       YAML::EmitterStyle::value) override {}
  void OnSequenceEnd() override {}
  void OnMapStart(const YAML::Mark&, const std::string&, YAML::anchor_t,
                  YAML::EmitterStyle::value) override {}
  void OnMapEnd() override {}

 private:
  const std::string& text_;
  bool started_ = false;
  int last_start_ = 0;
};

// The documents of text. Throws YAML::Exception, as yaml-cpp does.
std::vector<YAML::Node> LoadDocuments(const std::string& text) {
  std::istringstream in(text);
  YAML::Parser parser(in);
  ProgressCheck check(text);
  while (parser.HandleNextDocument(check)) {
  }
  return YAML::LoadAll(text);
}

}  // namespace

const char* AutopilotModeName(AutopilotMode m) {
  switch (m) {
    case AutopilotMode::kDispatchOnly: return "dispatch-only";
    case AutopilotMode::kManagedWorker: return "managed-worker";
    case AutopilotMode::kOff: return "off";
  }
  return "?";
}

std::string SpecError::ToString() const {
  std::string where = file;
  if (line > 0) where += ":" + std::to_string(line) + ":" + std::to_string(column);
  return where + ": " + (field.empty() ? "" : field + ": ") + message;
}

StatusOr<int64_t> ParseMegabytes(std::string_view text) {
  auto bad = [&] {
    return Status::InvalidArgument("bad size " + Quote(text) +
                                   ": expected megabytes like 2048, 2048Mi or 2Gi");
  };
  size_t digits = 0;
  while (digits < text.size() && IsDigit(text[digits])) ++digits;
  if (digits == 0 || digits > 9) return bad();
  int64_t n = 0;
  std::from_chars(text.data(), text.data() + digits, n);
  std::string_view unit = text.substr(digits);
  if (unit.empty() || unit == "Mi") return n;
  if (unit == "Gi") return n * 1024;
  return bad();
}

const WorkerSettings& LaneSpec::Worker() const {
  return autopilot.mode == AutopilotMode::kManagedWorker ? autopilot.worker : supervisor.worker;
}

std::string LaneSpec::SpecJson() const {
  auto worker = [](const WorkerSettings& w) {
    return nlohmann::json{{"concurrency", w.concurrency},
                          {"max_rss_mb", w.max_rss_mb},
                          {"drain_timeout_ms", w.drain_timeout.count()}};
  };
  nlohmann::json cycle = nlohmann::json::array();
  for (const auto& s : autopilot.cycle) {
    cycle.push_back({{"name", s.name}, {"command", s.command}, {"timeout_ms", s.timeout.count()}});
  }
  nlohmann::json handler_map = nlohmann::json::object();
  for (const auto& h : handlers) {
    handler_map[h.name] = {{"command", h.command},
                           {"timeout_ms", h.timeout.count()},
                           {"lease_ms", h.lease.count()},
                           {"max_attempts", h.max_attempts}};
  }
  nlohmann::json j = {
      {"queue", queue},
      {"redis", redis_url},
      {"autopilot",
       {{"mode", AutopilotModeName(autopilot.mode)},
        {"repo", autopilot.repo},
        {"interval_ms", autopilot.interval.count()},
        {"cycle", cycle},
        {"worker", worker(autopilot.worker)}}},
      {"supervisor",
       {{"enabled", supervisor.enabled},
        {"worker", worker(supervisor.worker)},
        {"max_crashes", supervisor.max_crashes}}},
      {"handlers", handler_map}};
  // A LaneSpec built by hand may hold bytes that are not UTF-8 (the parser rejects them);
  // replacing them keeps this from throwing.
  return j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

ParsedLanes ParseLaneSpecs(std::string_view text, const std::string& file) {
  ParsedLanes out;
  if (text.size() > kMaxSpecBytes) {
    out.errors.push_back({file, 0, 0, "",
                          "is " + std::to_string(text.size()) +
                              " bytes: a Lane spec file is at most 1 MiB"});
    return out;
  }
  for (const DocumentText& part : SplitDocuments(text)) {
    size_t first_error = out.errors.size();
    std::vector<YAML::Node> docs;
    try {
      docs = LoadDocuments(std::string(part.text));
    } catch (const YAML::Exception& e) {
      // DeepRecursion's own message is "bad file".
      std::string what = dynamic_cast<const YAML::DeepRecursion*>(&e) ? "nested too deeply" : e.msg;
      int line = e.mark.is_null() ? part.first_line + 1 : part.first_line + e.mark.line + 1;
      int column = e.mark.is_null() ? 1 : e.mark.column + 1;
      out.errors.push_back({file, line, column, "", "invalid YAML: " + Escape(what, 200)});
      continue;
    }
    for (const YAML::Node& doc : docs) {
      if (doc.IsNull()) continue;  // an empty document, or one of only comments
      LaneSpec lane;
      lane.source = file;
      Checker checker(file, part.first_line, out.errors);
      // The checks never touch an undefined node, nor convert with as<>; should yaml-cpp
      // throw anyway, the document is reported, not the process ended.
      try {
        if (ParseDocument(doc, checker, lane)) out.lanes.push_back(std::move(lane));
      } catch (const YAML::Exception& e) {
        out.errors.push_back({file, checker.MarkOf(doc).line, checker.MarkOf(doc).column, "",
                              "cannot read this document: " + Escape(e.msg, 200)});
      }
    }
    // Checks run field by field; people read errors top to bottom.
    std::stable_sort(out.errors.begin() + first_error, out.errors.end(),
                     [](const SpecError& a, const SpecError& b) {
                       return std::tie(a.line, a.column) < std::tie(b.line, b.column);
                     });
  }
  if (out.errors.size() > kMaxErrorsPerFile) {
    size_t more = out.errors.size() - kMaxErrorsPerFile;
    out.errors.resize(kMaxErrorsPerFile);
    out.errors.push_back({file, 0, 0, "", "and " + std::to_string(more) + " more errors"});
  }
  return out;
}

std::vector<std::string> ListLaneSpecFiles(const std::string& dir, std::vector<SpecError>* errors) {
  namespace fs = std::filesystem;
  std::vector<std::string> files;
  std::error_code ec;
  // increment(ec), not a range-for: that throws when the directory changes under it.
  for (fs::directory_iterator it(dir, ec), end; !ec && it != end; it.increment(ec)) {
    std::string name = it->path().filename();
    auto ext = it->path().extension();
    std::error_code type_ec;
    if (!name.starts_with('.') && (ext == ".yaml" || ext == ".yml") &&
        it->is_regular_file(type_ec)) {
      files.push_back(it->path());
    }
  }
  if (ec && errors) errors->push_back({dir, 0, 0, "", "cannot read: " + ec.message()});
  std::sort(files.begin(), files.end());
  return files;
}

ParsedLanes LoadLaneSpecs(const std::string& path) {
  namespace fs = std::filesystem;
  ParsedLanes out;
  std::vector<std::string> files;
  std::error_code ec;
  if (fs::is_directory(path, ec)) {
    files = ListLaneSpecFiles(path, &out.errors);
  } else {
    files.push_back(path);
  }
  for (const auto& f : files) {
    // A FIFO or a device would block or never end: only regular files are read.
    if (fs::exists(f, ec) && !fs::is_regular_file(f, ec)) {
      out.errors.push_back({f, 0, 0, "", "cannot read: not a regular file"});
      continue;
    }
    std::ifstream in(f, std::ios::binary);
    if (!in) {
      out.errors.push_back({f, 0, 0, "", "cannot read: " + std::string(std::strerror(errno))});
      continue;
    }
    // One byte past the limit is enough for ParseLaneSpecs to refuse the file.
    std::string text(kMaxSpecBytes + 1, '\0');
    in.read(text.data(), static_cast<std::streamsize>(text.size()));
    text.resize(static_cast<size_t>(in.gcount()));
    ParsedLanes one = ParseLaneSpecs(text, f);
    for (auto& l : one.lanes) out.lanes.push_back(std::move(l));
    for (auto& e : one.errors) out.errors.push_back(std::move(e));
  }
  return out;
}

std::string WhereWritten(const LaneSpec& l, SpecMark m) {
  return m.line > 0 ? l.source + ":" + std::to_string(m.line) + ":" + std::to_string(m.column)
                    : l.source;
}

SpecError QueueTakenError(const LaneSpec& later, const std::string& earlier_name,
                          const std::string& earlier_where, const QueueIdentity& id) {
  return {later.source, later.queue_mark.line, later.queue_mark.column, "spec.queue",
          "lane " + Quote(earlier_name) + " (" + earlier_where + ") already uses queue " +
              Quote(later.queue) + " on " + id.server + ": a queue has exactly one lane"};
}

QueueIdentity IdentifyQueue(const std::string& url, const std::string& queue) {
  QueueIdentity id{Escape(RedactUrl(url), 200), queue};
  if (auto ep = ParseRedisUrl(url); ep.ok()) {
    ep->username.clear();
    ep->password.clear();
    if (ep->host == "localhost") ep->host = "127.0.0.1";
    id.server = Escape(ep->Redacted(), 200);
  }
  return id;
}

QueueIdentity LaneSetChecker::Identify(const LaneSpec& l) const {
  return IdentifyQueue(l.redis_url.empty() ? default_redis_url_ : l.redis_url, l.queue);
}

std::vector<SpecError> LaneSetChecker::Check(const LaneSpec& l) const {
  std::vector<SpecError> errors;
  if (auto it = by_name_.find(l.namespace_name + "/" + l.name); it != by_name_.end()) {
    errors.push_back({l.source, l.name_mark.line, l.name_mark.column, "metadata.name",
                      "lane " + Quote(l.name) + " is already defined at " + it->second.where});
  }
  QueueIdentity id = Identify(l);
  if (auto it = by_queue_.find(id.Key()); it != by_queue_.end()) {
    errors.push_back(QueueTakenError(l, it->second.name, it->second.where, id));
  }
  return errors;
}

void LaneSetChecker::Add(const LaneSpec& l) {
  by_name_.emplace(l.namespace_name + "/" + l.name, Earlier{l.name, WhereWritten(l, l.name_mark)});
  by_queue_.emplace(Identify(l).Key(), Earlier{l.name, WhereWritten(l, l.queue_mark)});
}

std::vector<SpecError> ValidateLaneSet(const std::vector<LaneSpec>& lanes,
                                       const std::string& default_redis_url) {
  LaneSetChecker checker(default_redis_url);
  std::vector<SpecError> errors;
  for (const auto& l : lanes) {
    for (auto& e : checker.Check(l)) errors.push_back(std::move(e));
    checker.Add(l);
  }
  return errors;
}

}  // namespace lk
