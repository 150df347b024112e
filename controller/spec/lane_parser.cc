// The Lane spec reader, in one file on purpose (about 650 lines): it reads one document
// top to bottom (the value rules first, then one Parse function per section in the order a
// spec lists them: redis, worker, autopilot, supervisor, metadata), and every error it
// reports names the file, line and field through one YamlChecker. The limits at the top
// are the ones crds/lane.yaml and docs/lanes.md state; LaneSpecSchema.* compares them.

#include "controller/spec/lane_parser.h"

#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <cctype>
#include <charconv>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <optional>
#include <tuple>

#include "controller/spec/cycle_file.h"
#include "controller/spec/redis_password.h"
#include "worker/handler_config.h"
#include "worker/redis_connection.h"

namespace lk {

namespace {

// Limits beyond the types. crds/lane.yaml and docs/lanes.md state the same numbers.
constexpr size_t kMaxSpecBytes = 1 << 20;
constexpr int64_t kMinRssMb = 256;
constexpr int64_t kMaxRssMb = 1 << 20;  // 1Ti
constexpr int kMaxConcurrency = 4096;
constexpr int kMaxCrashesLimit = 1000;
// Bounds on lists and strings, which the API server's CEL cost estimator needs (the CRD's
// header has the numbers) and which keep a spec's size sane. In characters (code points),
// as OpenAPI's maxLength counts.
constexpr size_t kMaxCycleSteps = 50;
constexpr size_t kMaxCommandArgs = 100;
constexpr size_t kMaxArgChars = 4096;
constexpr size_t kMaxStepNameChars = 100;
constexpr size_t kMaxRepoChars = 4096;
constexpr size_t kMaxSecretRefChars = 253;
constexpr size_t kMaxHandlers = 100;  // CheckHandlers (worker/handler_config.cc) enforces it
// A file of garbage has an error per line; past this many, the rest are only counted.
constexpr size_t kMaxErrorsPerFile = 100;

constexpr std::string_view kRedisUrlForms =
    "redis://[[user]:password@]host[:port][/db] or unix://[[user]:password@]/path.sock[?db=N]";

// Where fields belong, for the hint on a field written one level off ("concurrency" under
// spec, "queue" at the top, "steps" as in a cycle file).
constexpr std::pair<std::string_view, std::string_view> kLaneFieldHomes[] = {
    {"name", "metadata.name"},
    {"namespace", "metadata.namespace"},
    {"queue", "spec.queue"},
    {"redis", "spec.redis"},
    {"url", "spec.redis.url"},
    {"urlFrom", "spec.redis.urlFrom"},
    {"passwordFile", "spec.redis.passwordFile"},
    {"replicas", "spec.redis.replicas"},
    {"secretKeyRef", "spec.redis.urlFrom.secretKeyRef"},
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

// maxRSS: a plain number of MB, or a string with Mi or Gi. 1..255 MB is rejected as the
// likely mix-up of "2" meaning 2 GB.
bool CheckMegabytes(YamlChecker& c, const YamlField& f, int64_t& out) {
  YamlKind kind = KindOf(f.value);
  if (kind == YamlKind::kNull) return c.NoValue(f);
  if (kind != YamlKind::kInt && kind != YamlKind::kString) {
    c.Error(f, "expected a size like 2048Mi or 2Gi, got " + Describe(f.value));
    return false;
  }
  const std::string& s = f.value.Scalar();
  auto mb = ParseMegabytes(s);
  if (!mb.ok()) {
    c.Error(f, mb.status().message());
    return false;
  }
  if (*mb != 0 && *mb < kMinRssMb) {
    std::string number = s.substr(0, s.find_first_not_of("0123456789"));
    c.Error(f, Quote(s) + " is only " + std::to_string(*mb) +
                 " MB, which looks like a GB/MB mix-up: write " + number +
                 "Gi for gigabytes, at least 256Mi, or 0 for no limit");
    return false;
  }
  if (*mb > kMaxRssMb) {
    c.Error(f, "must be at most 1Ti, got " + Quote(s));
    return false;
  }
  out = *mb;
  return true;
}

bool ValidName(std::string_view n) {
  if (n.empty() || n.size() > 63) return false;
  auto ok = [](char c) { return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-'; };
  return std::all_of(n.begin(), n.end(), ok) && n.front() != '-' && n.back() != '-';
}

bool ValidQueue(std::string_view q) {
  if (q.empty() || q.size() > 100) return false;
  return std::all_of(q.begin(), q.end(), [](char c) {
    return std::isalnum(static_cast<unsigned char>(c)) || c == '-' || c == '_' || c == '.';
  });
}

bool AllDigits(std::string_view s) {
  return !s.empty() && std::all_of(s.begin(), s.end(), [](char c) { return c >= '0' && c <= '9'; });
}

bool ValidPort(std::string_view s) {
  int port = 0;
  if (!AllDigits(s) || s.size() > 5 || s[0] == '0') return false;
  std::from_chars(s.data(), s.data() + s.size(), port);
  return port >= 1 && port <= 65535;
}

bool ValidDb(std::string_view s) {
  return AllDigits(s) && s.size() <= 4 && (s.size() == 1 || s[0] != '0');
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
    if (path.size() > kMaxUnixSocketPath) return UnixSocketPathTooLong(path.size());
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

// Unicode code points of UTF-8 text: what OpenAPI's maxLength counts.
size_t Characters(std::string_view utf8) {
  return static_cast<size_t>(std::count_if(utf8.begin(), utf8.end(), [](char ch) {
    return (static_cast<unsigned char>(ch) & 0xC0) != 0x80;
  }));
}

// Records "at most N characters, got M" when f's string is longer than max.
void CheckLength(YamlChecker& c, const YamlField& f, size_t max) {
  if (KindOf(f.value) != YamlKind::kString) return;  // the type's own check reports it
  if (size_t n = Characters(f.value.Scalar()); n > max) {
    c.Error(f, "at most " + std::to_string(max) + " characters, got " + std::to_string(n));
  }
}

// The value of key in the mapping node map, as a field under path; nullopt when absent.
std::optional<YamlField> FieldOf(const YAML::Node& map, std::string_view key,
                                 const std::string& path) {
  if (!map.IsMap()) return std::nullopt;
  for (const auto& kv : map) {
    if (kv.first.IsScalar() && kv.first.Scalar() == key) {
      return YamlField{kv.first, kv.second, path + "." + std::string(key)};
    }
  }
  return std::nullopt;
}

// A command's bounds: at most kMaxCommandArgs arguments of kMaxArgChars each. Its type and
// emptiness are YamlChecker::Argv's to check.
void CheckCommandLimits(YamlChecker& c, const YamlField& f) {
  if (KindOf(f.value) != YamlKind::kList) return;
  if (f.value.size() > kMaxCommandArgs) {
    c.Error(f, "at most " + std::to_string(kMaxCommandArgs) + " arguments, got " +
                   std::to_string(f.value.size()));
  }
  for (size_t i = 0; i < f.value.size(); ++i) {
    YAML::Node item = f.value[i];
    CheckLength(c, {item, item, f.path + "[" + std::to_string(i) + "]"}, kMaxArgChars);
  }
}

// spec.autopilot.cycle with its bounds: at most kMaxCycleSteps steps, each name at most
// kMaxStepNameChars, each command bounded. The steps themselves are read by the one reader
// of cycle steps (cycle files have no such bounds: they are not Kubernetes objects).
void CheckLaneCycle(YamlChecker& c, const YamlField& f, std::vector<CycleStep>& out) {
  if (KindOf(f.value) == YamlKind::kList && f.value.size() > kMaxCycleSteps) {
    c.Error(f, "at most " + std::to_string(kMaxCycleSteps) + " steps, got " +
                   std::to_string(f.value.size()));
    return;
  }
  CheckCycleSteps(c, f, out);
  if (KindOf(f.value) != YamlKind::kList) return;
  for (size_t i = 0; i < f.value.size(); ++i) {
    std::string at = f.path + "[" + std::to_string(i) + "]";
    if (auto name = FieldOf(f.value[i], "name", at)) CheckLength(c, *name, kMaxStepNameChars);
    if (auto command = FieldOf(f.value[i], "command", at)) CheckCommandLimits(c, *command);
  }
}

// spec.handlers, read by the one reader of handlers, and each command bounded.
void CheckLaneHandlers(YamlChecker& c, const YamlField& f, std::vector<HandlerSpec>& out) {
  CheckHandlers(c, f, out);
  // Not a mapping, or past the handler limit: nothing more to say about the commands.
  if (!f.value.IsMap() || f.value.size() > kMaxHandlers) return;
  for (const auto& kv : f.value) {
    if (!kv.first.IsScalar()) continue;
    if (auto command = FieldOf(kv.second, "command", f.path + "." + kv.first.Scalar())) {
      CheckCommandLimits(c, *command);
    }
  }
}

bool ValidSecretName(std::string_view n) {
  if (n.empty() || n.size() > kMaxSecretRefChars) return false;
  // A DNS subdomain: dot-separated labels of [a-z0-9-], each starting and ending with a
  // letter or digit.
  size_t start = 0;
  for (;;) {
    size_t dot = n.find('.', start);
    std::string_view label = n.substr(start, dot == std::string_view::npos ? n.npos : dot - start);
    bool ok = !label.empty() && label.front() != '-' && label.back() != '-' &&
              std::all_of(label.begin(), label.end(), [](char c) {
                return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-';
              });
    if (!ok) return false;
    if (dot == std::string_view::npos) return true;
    start = dot + 1;
  }
}

// A Secret's key, as Kubernetes takes it: [-._a-zA-Z0-9]+, and neither '.', '..' nor
// anything starting with '..' (a path that leaves a mounted directory).
bool ValidSecretKey(std::string_view k) {
  if (k.empty() || k.size() > kMaxSecretRefChars || k == "." || k.starts_with("..")) return false;
  return std::all_of(k.begin(), k.end(), [](char c) {
    return std::isalnum(static_cast<unsigned char>(c)) || c == '-' || c == '_' || c == '.';
  });
}

// spec.redis: exactly one of url (files, laptops) and urlFrom.secretKeyRef (clusters: the
// password stays in a Secret).
void ParseRedis(YamlChecker& c, const YamlField& f, LaneSpec& lane) {
  auto redis = c.Fields(f, {"url", "urlFrom", "passwordFile", "replicas"});
  if (!redis) return;
  auto url = redis->find("url");
  auto from = redis->find("urlFrom");
  if (url != redis->end() && from != redis->end()) {
    c.Error(f, "url and urlFrom are both set: write one, the URL inline or from a Secret");
  } else if (url == redis->end() && from == redis->end()) {
    c.Error(f, "expected url or urlFrom (leave spec.redis out for the default Redis)");
  }
  if (url != redis->end() && c.String(url->second, lane.redis_url)) {
    if (std::string why = RedisUrlProblem(lane.redis_url); !why.empty()) {
      c.Error(url->second, "bad Redis URL " + Quote(RedactUrlText(lane.redis_url)) + ": " + why +
                               " (expected " + std::string(kRedisUrlForms) + ")");
    }
  }
  if (auto pw = redis->find("passwordFile"); pw != redis->end() &&
                                             c.String(pw->second, lane.redis_password_file)) {
    lane.redis_password_file_mark = c.MarkOf(pw->second);
    auto ep = ParseRedisUrl(lane.redis_url);
    if (url == redis->end()) {
      c.Error(pw->second, "goes with url (the URL without its password)");
    } else if (ep.ok() && !ep->password.empty()) {
      c.Error(pw->second, "url carries a password too: write it in one place");
    }
    if (lane.redis_password_file.empty() || lane.redis_password_file.front() != '/') {
      c.Error(pw->second, "must be an absolute path, got " + Quote(lane.redis_password_file));
    }
  }
  if (auto it = redis->find("replicas"); it != redis->end()) {
    int64_t n = 0;
    if (c.Int(it->second, 0, kMaxRedisReplicas, n)) lane.redis_replicas = static_cast<int>(n);
  }
  if (from == redis->end()) return;
  auto ref_fields = c.Fields(from->second, {"secretKeyRef"});
  if (!ref_fields) return;
  auto ref = ref_fields->find("secretKeyRef");
  if (ref == ref_fields->end()) {
    c.Missing(from->second, "secretKeyRef", ": the Secret and key that hold the Redis URL");
    return;
  }
  auto kv = c.Fields(ref->second, {"name", "key"});
  if (!kv) return;
  SecretKeyRef out;
  if (auto it = kv->find("name"); it == kv->end()) {
    c.Missing(ref->second, "name");
  } else if (c.String(it->second, out.name) && !ValidSecretName(out.name)) {
    c.Error(it->second, "must be a Secret name (lowercase letters, digits, '-' and '.', at "
                        "most 253), got " + Quote(out.name));
  }
  if (auto it = kv->find("key"); it == kv->end()) {
    c.Missing(ref->second, "key");
  } else if (c.String(it->second, out.key) && !ValidSecretKey(out.key)) {
    c.Error(it->second, "must be a Secret key (letters, digits, '-', '_' and '.', at most 253, "
                        "not starting with '..'), got " + Quote(out.key));
  }
  lane.redis_url_from = std::move(out);
}

WorkerSettings ParseWorker(YamlChecker& c, const std::map<std::string, YamlField>& f) {
  WorkerSettings w;
  int64_t v;
  if (auto it = f.find("concurrency"); it != f.end() && c.Int(it->second, 1, kMaxConcurrency, v)) {
    w.concurrency = static_cast<int>(v);
  }
  if (auto it = f.find("maxRSS"); it != f.end()) CheckMegabytes(c, it->second, w.max_rss_mb);
  if (auto it = f.find("drainTimeout"); it != f.end()) {
    c.Duration(it->second, Millis(1000), kMaxConfigDuration, w.drain_timeout);
  }
  return w;
}

// Who owns the worker, as written: the fields that decide it, and whether both could be
// read (when one could not, the ownership rule is not checked: its error would be noise).
struct OwnerFields {
  std::optional<YamlField> mode;
  std::optional<YamlField> enabled;
  bool readable = true;
};

void ParseAutopilot(YamlChecker& c, const YamlField& f, LaneSpec::Autopilot& a, OwnerFields& owner) {
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
    CheckLength(c, it->second, kMaxRepoChars);
  } else if (a.mode != AutopilotMode::kOff) {
    c.Missing(f, "repo", ": required unless mode is off");
  }
  if (auto it = fields->find("interval"); it != fields->end()) {
    c.Duration(it->second, Millis(1000), kMaxConfigDuration, a.interval);
  }
  if (auto it = fields->find("cycle"); it != fields->end()) CheckLaneCycle(c, it->second, a.cycle);
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

void ParseSupervisor(YamlChecker& c, const YamlField& f, LaneSpec::Supervisor& s, OwnerFields& owner) {
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

void ParseMetadata(YamlChecker& c, const YamlField& f, LaneSpec& lane) {
  // Kubernetes objects carry the server's fields too; files rarely do. Accepted, unread.
  auto meta = c.Fields(f, {"name", "namespace", "labels", "annotations"},
                       kServerSetMetadataFields);
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
bool ParseDocument(const YAML::Node& doc, YamlChecker& c, LaneSpec& lane) {
  YamlField root{doc, doc, ""};
  if (KindOf(doc) != YamlKind::kMap) {
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
  const YamlField& spec_field = spec_it->second;
  if (KindOf(spec_field.value) == YamlKind::kNull) {
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
  OwnerFields owner;
  // An empty redis or autopilot section is no section, as the API server prunes a null one.
  if (auto it = spec->find("redis"); it != spec->end() && KindOf(it->second.value) != YamlKind::kNull) {
    ParseRedis(c, it->second, lane);
  }
  if (auto it = spec->find("autopilot"); it != spec->end() && KindOf(it->second.value) != YamlKind::kNull) {
    ParseAutopilot(c, it->second, lane.autopilot, owner);
  }
  if (auto it = spec->find("supervisor"); it != spec->end()) {
    ParseSupervisor(c, it->second, lane.supervisor, owner);
  }
  if (auto it = spec->find("handlers"); it != spec->end()) CheckLaneHandlers(c, it->second, lane.handlers);

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

}  // namespace

ParsedLanes ParseLaneSpecs(std::string_view text, const std::string& file) {
  ParsedLanes out;
  if (text.size() > kMaxSpecBytes) {
    out.errors.push_back({file, 0, 0, "",
                          "is " + std::to_string(text.size()) +
                              " bytes: a Lane spec file is at most 1 MiB"});
    return out;
  }
  for (const YamlDocument& part : ReadYamlDocuments(std::string(text), file, out.errors)) {
    {
      const YAML::Node& doc = part.node;
      LaneSpec lane;
      lane.source = file;
      YamlChecker checker(file, part.first_line, out.errors, kLaneFieldHomes);
      // The checks never touch an undefined node, nor convert with as<>; should yaml-cpp
      // throw anyway, the document is reported, not the process ended.
      try {
        if (ParseDocument(doc, checker, lane)) out.lanes.push_back(std::move(lane));
      } catch (const YAML::Exception& e) {
        out.errors.push_back({file, checker.MarkOf(doc).line, checker.MarkOf(doc).column, "",
                              "cannot read this document: " + Escape(e.msg, 200)});
      }
    }
  }
  // Checks run field by field, and syntax errors are found before any document is
  // checked; people read errors top to bottom.
  std::stable_sort(out.errors.begin(), out.errors.end(),
                   [](const SpecError& a, const SpecError& b) {
                     return std::tie(a.line, a.column) < std::tie(b.line, b.column);
                   });
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
    for (auto& l : one.lanes) {
      if (!l.redis_password_file.empty()) {
        auto password = ReadPasswordFile(l.redis_password_file);
        if (!password.ok()) {
          out.errors.push_back({f, l.redis_password_file_mark.line,
                                l.redis_password_file_mark.column, "spec.redis.passwordFile",
                                password.status().message()});
          continue;
        }
        l.redis_url = UrlWithPassword(l.redis_url, *password);
      }
      out.lanes.push_back(std::move(l));
    }
    for (auto& e : one.errors) out.errors.push_back(std::move(e));
  }
  return out;
}

}  // namespace lk
