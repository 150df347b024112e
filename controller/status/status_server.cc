#include "controller/status/status_server.h"

#include <arpa/inet.h>
#include <cpprest/http_listener.h>
#include <dirent.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include <algorithm>
#include <charconv>
#include <cmath>
#include <cstdlib>
#include <exception>
#include <mutex>
#include <nlohmann/json.hpp>
#include <set>
#include <string_view>
#include <utility>
#include <vector>

#include "worker/redis_connection.h"

namespace lk {

namespace {

using Json = nlohmann::ordered_json;

struct Response {
  int code = 200;
  std::string content_type;
  std::string body;
};

constexpr const char* kText = "text/plain; charset=utf-8";
constexpr const char* kJson = "application/json";
constexpr const char* kHtml = "text/html; charset=utf-8";
constexpr const char* kMetrics = "text/plain; version=0.0.4; charset=utf-8";

// The reasons a supervisor restarts its worker (SupervisorStatus::worker_restarts), listed
// even at zero so that every lane has the same series from its first scrape.
constexpr const char* kWorkerRestartReasons[] = {"crash", "rss", "wedge", "lease_lost"};

std::string RedactedUrl(const LaneState& lane) {
  if (!lane.redis_url_redacted.empty()) return lane.redis_url_redacted;
  auto ep = ParseRedisUrl(lane.redis_url);
  return ep.ok() ? ep->Redacted() : "(a Redis URL that does not parse)";
}

// ---- /status ----------------------------------------------------------------------------

Json ConditionJson(const LaneCondition& c) {
  return Json{{"type", c.type}, {"status", c.status}, {"reason", c.reason}, {"message", c.message}};
}

Json LaneJson(const LaneState& lane, const LaneObservation& obs) {
  const QueueView& q = obs.queue;
  Json conditions = Json::array();
  for (const auto& c : obs.conditions) conditions.push_back(ConditionJson(c));
  Json owner = nullptr;
  if (q.owner) {
    owner = Json{{"holder", q.owner->holder},   {"role", q.owner->role},
                 {"epoch", q.owner->epoch},     {"sinceMs", q.owner->since_ms},
                 {"ttlMs", q.owner->ttl_ms}};
  }
  Json workers = Json::array();
  for (const auto& w : q.workers) {
    workers.push_back(Json{{"id", w.id},
                           {"host", w.host},
                           {"pid", w.pid},
                           {"epoch", w.epoch},
                           {"concurrency", w.concurrency},
                           {"running", w.running},
                           {"rssMb", w.rss_mb},
                           {"maxRssMb", w.max_rss_mb},
                           {"startedMs", w.started_ms},
                           {"lastSeenMs", w.last_seen_ms}});
  }
  Json supervisors = Json::array();
  for (const auto& s : q.supervisors) {
    supervisors.push_back(Json{{"holder", s.holder},
                               {"pid", s.pid},
                               {"state", s.state},
                               {"epoch", s.epoch},
                               {"workerPid", s.worker_pid},
                               {"degraded", s.degraded},
                               {"crashesInWindow", s.crashes_in_window},
                               {"workerRestarts", s.worker_restarts},
                               {"lastExit", s.last_exit},
                               {"updatedMs", s.updated_ms}});
  }
  Json roles = Json::array();
  for (const auto& r : lane.roles) {
    roles.push_back(Json{{"role", r.role},
                         {"pid", r.pid},
                         {"state", r.state},
                         {"adopted", r.adopted},
                         {"restarts", r.restarts},
                         {"lastExit", r.last_exit},
                         {"generation", r.generation},
                         {"startedMs", r.started_ms}});
  }
  Json counts = nullptr;
  Json oldest = nullptr;
  if (q.redis.ok()) {
    counts = Json{{"waiting", q.counts.waiting},     {"delayed", q.counts.delayed},
                  {"active", q.counts.active},       {"completed", q.counts.completed},
                  {"dead", q.counts.dead},           {"cancelled", q.counts.cancelled}};
    if (q.counts.oldest_waiting_age_ms >= 0) oldest = q.counts.oldest_waiting_age_ms / 1000.0;
  }
  return Json{{"name", lane.name},
              {"source", lane.source},
              {"queue", lane.spec.queue},
              {"redis", RedactedUrl(lane)},
              {"generation", lane.generation},
              {"observedGeneration", lane.observed_generation},
              {"ready", obs.ready()},
              {"conditions", conditions},
              {"owner", owner},
              {"epoch", q.redis.ok() ? Json(q.counts.current_epoch) : Json(nullptr)},
              {"workers", workers},
              {"supervisors", supervisors},
              {"roles", roles},
              {"counts", counts},
              {"oldestWaitingSeconds", oldest},
              {"redisError", q.redis.ok() ? Json(nullptr) : Json(q.redis.message())},
              {"observedMs", q.read_ms}};
}

std::string StatusJson(const ControllerSnapshot& snap, const std::vector<LaneObservation>& obs) {
  Json lanes = Json::array();
  for (size_t i = 0; i < snap.lanes.size(); ++i) lanes.push_back(LaneJson(snap.lanes[i], obs[i]));
  Json errors = Json::array();
  for (const auto& e : snap.errors) errors.push_back(e.ToString());
  Json out{{"ready", snap.ready},
           {"specsDir", snap.specs_dir},
           {"startedMs", snap.started_ms},
           {"lanes", lanes},
           {"errors", errors}};
  return out.dump(2) + "\n";
}

// ---- /doctor ----------------------------------------------------------------------------

std::string DoctorJson(const ControllerSnapshot& snap, LaneObserver& observer,
                       const DoctorOptions& options) {
  CheckLevel worst = CheckLevel::kOk;
  Json lanes = Json::array();
  for (const auto& lane : snap.lanes) {
    DoctorReport report = observer.Doctor(lane, options);
    worst = std::max(worst, report.Worst());
    Json entry{{"lane", lane.name}};
    // The same object `lanekeeper doctor --json` prints, after the lane's name.
    Json checks = Json::parse(report.ToJson());
    for (auto& [key, value] : checks.items()) entry[key] = value;
    lanes.push_back(std::move(entry));
  }
  return Json{{"status", CheckLevelName(worst)}, {"lanes", lanes}}.dump(2) + "\n";
}

// ---- /metrics ---------------------------------------------------------------------------

// The text exposition format 0.0.4: each family once, "# HELP" and "# TYPE" before its
// samples; label values escape backslash, double quote and newline, HELP text backslash and
// newline.
class Exposition {
 public:
  using Labels = std::vector<std::pair<std::string, std::string>>;

  void Family(std::string_view name, std::string_view type, std::string_view help) {
    out_ += "# HELP ";
    out_ += name;
    out_ += ' ';
    for (char c : help) {
      if (c == '\\') out_ += "\\\\";
      else if (c == '\n') out_ += "\\n";
      else out_ += c;
    }
    out_ += "\n# TYPE ";
    out_ += name;
    out_ += ' ';
    out_ += type;
    out_ += '\n';
  }

  void Sample(std::string_view name, const Labels& labels, const std::string& value) {
    out_ += name;
    if (!labels.empty()) {
      out_ += '{';
      for (size_t i = 0; i < labels.size(); ++i) {
        if (i > 0) out_ += ',';
        out_ += labels[i].first;
        out_ += "=\"";
        for (char c : labels[i].second) {
          if (c == '\\') out_ += "\\\\";
          else if (c == '"') out_ += "\\\"";
          else if (c == '\n') out_ += "\\n";
          else out_ += c;
        }
        out_ += '"';
      }
      out_ += '}';
    }
    out_ += ' ';
    out_ += value;
    out_ += '\n';
  }

  std::string Take() { return std::move(out_); }

 private:
  std::string out_;
};

std::string Number(double v) {
  if (std::isnan(v)) return "NaN";
  if (std::isinf(v)) return v > 0 ? "+Inf" : "-Inf";
  char buf[64];
  auto r = std::to_chars(buf, buf + sizeof(buf), v);  // shortest text that reads back as v
  return std::string(buf, r.ptr);
}
std::string Number(int64_t v) { return std::to_string(v); }
std::string Number(uint64_t v) { return std::to_string(v); }

std::string Metrics(const ControllerSnapshot& snap, const std::vector<LaneObservation>& obs) {
  Exposition m;
  m.Family("lanekeeper_reconcile_total", "counter",
           "Reconciles of a lane run since the controller started.");
  m.Sample("lanekeeper_reconcile_total", {}, Number(snap.reconcile_total));
  m.Family("lanekeeper_reconcile_errors_total", "counter",
           "Reconciles of a lane that failed since the controller started.");
  m.Sample("lanekeeper_reconcile_errors_total", {}, Number(snap.reconcile_errors_total));

  // Every reconcile is observed once, so the count is reconcile_total; never below the last
  // bucket, which would make +Inf smaller than a finite bucket.
  const std::string h = "lanekeeper_reconcile_duration_seconds";
  m.Family(h, "histogram", "How long one reconcile of a lane took, in seconds.");
  uint64_t count = snap.reconcile_total;
  if (snap.reconcile_buckets.size() == snap.reconcile_bucket_counts.size()) {
    for (size_t i = 0; i < snap.reconcile_buckets.size(); ++i) {
      m.Sample(h + "_bucket", {{"le", Number(snap.reconcile_buckets[i])}},
               Number(snap.reconcile_bucket_counts[i]));
    }
    if (!snap.reconcile_bucket_counts.empty()) {
      count = std::max(count, snap.reconcile_bucket_counts.back());
    }
  }
  m.Sample(h + "_bucket", {{"le", "+Inf"}}, Number(count));
  m.Sample(h + "_sum", {}, Number(snap.reconcile_seconds_sum));
  m.Sample(h + "_count", {}, Number(count));

  m.Family("lanekeeper_lanes", "gauge", "Lanes the controller runs (valid specs).");
  m.Sample("lanekeeper_lanes", {}, Number(static_cast<int64_t>(snap.lanes.size())));

  m.Family("lanekeeper_lane_ready", "gauge", "1 when the lane's Ready condition is True, else 0.");
  for (size_t i = 0; i < snap.lanes.size(); ++i) {
    m.Sample("lanekeeper_lane_ready", {{"lane", snap.lanes[i].name}}, obs[i].ready() ? "1" : "0");
  }

  // Queue-derived families have no sample for a lane whose Redis cannot be read: an absent
  // series says "unknown", a zero would say "empty".
  m.Family("lanekeeper_queue_jobs", "gauge", "Jobs in the lane's queue, by state.");
  for (size_t i = 0; i < snap.lanes.size(); ++i) {
    const QueueView& q = obs[i].queue;
    if (!q.redis.ok()) continue;
    const std::string& lane = snap.lanes[i].name;
    const std::string& queue = snap.lanes[i].spec.queue;
    const std::pair<const char*, int64_t> states[] = {
        {"waiting", q.counts.waiting}, {"delayed", q.counts.delayed},
        {"active", q.counts.active},   {"completed", q.counts.completed},
        {"dead", q.counts.dead},       {"cancelled", q.counts.cancelled}};
    for (const auto& [state, n] : states) {
      m.Sample("lanekeeper_queue_jobs", {{"lane", lane}, {"queue", queue}, {"state", state}},
               Number(n));
    }
  }

  m.Family("lanekeeper_owner_epoch", "gauge",
           "The queue's owner epoch: incremented each time an owner takes the lease.");
  for (size_t i = 0; i < snap.lanes.size(); ++i) {
    const QueueView& q = obs[i].queue;
    if (!q.redis.ok()) continue;
    m.Sample("lanekeeper_owner_epoch",
             {{"lane", snap.lanes[i].name}, {"queue", snap.lanes[i].spec.queue}},
             Number(q.counts.current_epoch));
  }

  m.Family("lanekeeper_worker_restarts_total", "counter",
           "Worker restarts by the lane's live supervisors since each started, by reason.");
  for (size_t i = 0; i < snap.lanes.size(); ++i) {
    const QueueView& q = obs[i].queue;
    if (!q.redis.ok()) continue;
    std::map<std::string, int64_t> by_reason;
    for (const char* reason : kWorkerRestartReasons) by_reason[reason] = 0;
    for (const auto& s : q.supervisors) {
      for (const auto& [reason, n] : s.worker_restarts) by_reason[reason] += n;
    }
    for (const auto& [reason, n] : by_reason) {
      m.Sample("lanekeeper_worker_restarts_total",
               {{"lane", snap.lanes[i].name},
                {"queue", snap.lanes[i].spec.queue},
                {"reason", reason}},
               Number(n));
    }
  }

  m.Family("lanekeeper_role_restarts_total", "counter",
           "Role processes the controller started again, by lane and reason (drift: it died; "
           "spec_change: its spec changed).");
  for (const auto& [key, n] : snap.role_restarts) {
    m.Sample("lanekeeper_role_restarts_total", {{"lane", key.first}, {"reason", key.second}},
             Number(n));
  }
  return m.Take();
}

// ---- / ----------------------------------------------------------------------------------

std::string Html(std::string_view text) {
  std::string out;
  out.reserve(text.size());
  for (char c : text) {
    switch (c) {
      case '&': out += "&amp;"; break;
      case '<': out += "&lt;"; break;
      case '>': out += "&gt;"; break;
      case '"': out += "&quot;"; break;
      case '\'': out += "&#39;"; break;
      default: out += c;
    }
  }
  return out;
}

std::string Ago(int64_t ms) {
  int64_t s = std::max<int64_t>(ms, 0) / 1000;
  if (s < 120) return std::to_string(s) + "s";
  if (s < 120 * 60) return std::to_string(s / 60) + "m";
  if (s < 48 * 3600) return std::to_string(s / 3600) + "h";
  return std::to_string(s / 86400) + "d";
}

constexpr const char* kDashboardStyle = R"(
body{font:14px/1.45 system-ui,-apple-system,Segoe UI,sans-serif;margin:0;background:#f5f6f8;color:#1d2129}
header{background:#1d2129;color:#fff;padding:12px 20px}
header h1{margin:0;font-size:18px}
header p{margin:2px 0 0;color:#b8bec9}
main{padding:16px 20px;max-width:1200px}
section{background:#fff;border:1px solid #dde1e7;border-radius:6px;padding:12px 16px;margin:0 0 14px}
h2{margin:0 0 6px;font-size:16px}
.badge{display:inline-block;border-radius:10px;padding:1px 9px;font-size:12px;margin-left:8px;vertical-align:1px}
.ok{background:#dff5e3;color:#17612a}.bad{background:#fde2e1;color:#8c1d18}.unk{background:#eceff3;color:#4a5261}
.why{margin:0 0 8px;color:#8c1d18}
.meta{color:#5b6372;margin:0 0 8px}
table{border-collapse:collapse;width:100%}
th,td{text-align:left;padding:3px 10px 3px 0;vertical-align:top}
th{width:110px;color:#5b6372;font-weight:600}
code{font:12px ui-monospace,SFMono-Regular,Menlo,monospace}
ul{margin:0;padding-left:18px}
.errors{border-color:#f0b4b0}
)";

std::string Badge(const std::string& status, const std::string& yes, const std::string& no) {
  if (status == "True") return "<span class=\"badge ok\">" + Html(yes) + "</span>";
  if (status == "False") return "<span class=\"badge bad\">" + Html(no) + "</span>";
  return "<span class=\"badge unk\">unknown</span>";
}

std::string LaneHtml(const LaneState& lane, const LaneObservation& obs, int64_t now_ms) {
  const QueueView& q = obs.queue;
  const LaneCondition* ready = obs.Condition("Ready");
  std::string h = "<section class=\"lane\" id=\"lane-" + Html(lane.name) + "\">\n<h2>" +
                  Html(lane.name) + Badge(ready->status, "Ready", "Not ready") + "</h2>\n";
  if (ready->status != "True") {
    h += "<p class=\"why\">" + Html(ready->reason) + ": " + Html(ready->message) + "</p>\n";
  }
  h += "<p class=\"meta\">queue <code>" + Html(lane.spec.queue) + "</code> on <code>" +
       Html(RedactedUrl(lane)) + "</code> · generation " + std::to_string(lane.generation) +
       " (running " + std::to_string(lane.observed_generation) + ") · <code>" +
       Html(lane.source) + "</code></p>\n<table>\n";

  std::string owner;
  if (!q.redis.ok()) {
    owner = "unknown: " + Html(q.redis.message());
  } else if (q.owner) {
    owner = Html(q.owner->role) + " <code class=\"holder\">" + Html(q.owner->holder) +
            "</code>, <span class=\"epoch\">epoch " + std::to_string(q.owner->epoch) +
            "</span>, since " + Ago(now_ms - q.owner->since_ms) + " ago";
  } else {
    owner = "none (epoch " + std::to_string(q.counts.current_epoch) + ")";
  }
  h += "<tr><th>Owner</th><td>" + owner + "</td></tr>\n";

  std::string workers;
  for (const auto& w : q.workers) {
    workers += "<li><code>" + Html(w.id) + "</code> epoch " + std::to_string(w.epoch) +
               ", running " + std::to_string(w.running) + "/" + std::to_string(w.concurrency) +
               ", " + std::to_string(w.rss_mb) + " MB</li>";
  }
  h += "<tr><th>Workers</th><td>" +
       (workers.empty() ? std::string(q.redis.ok() ? "none live" : "unknown")
                        : "<ul>" + workers + "</ul>") +
       "</td></tr>\n";

  std::string counts = "unknown";
  if (q.redis.ok()) {
    const auto& c = q.counts;
    counts = "waiting " + std::to_string(c.waiting) + " · delayed " + std::to_string(c.delayed) +
             " · active " + std::to_string(c.active) + " · completed " +
             std::to_string(c.completed) + " · dead " + std::to_string(c.dead) + " · cancelled " +
             std::to_string(c.cancelled) + "; " +
             (c.oldest_waiting_age_ms >= 0 ? "oldest waiting " + Ago(c.oldest_waiting_age_ms)
                                           : std::string("nothing waiting"));
  }
  h += "<tr><th>Queue</th><td>" + counts + "</td></tr>\n";

  std::string roles;
  for (const auto& r : lane.roles) {
    roles += "<li>" + Html(r.role) + " pid " + std::to_string(r.pid) + " " + Html(r.state) +
             (r.adopted ? " (adopted)" : "") + ", restarts " + std::to_string(r.restarts) +
             (r.last_exit.empty() ? "" : ", last exit " + Html(r.last_exit)) + "</li>";
  }
  h += "<tr><th>Roles</th><td>" + (roles.empty() ? std::string("none") : "<ul>" + roles + "</ul>") +
       "</td></tr>\n";

  std::string conditions;
  for (const auto& c : obs.conditions) {
    conditions += "<li>" + Html(c.type) + "=" + Html(c.status) + " " + Html(c.reason) + ": " +
                  Html(c.message) + "</li>";
  }
  h += "<tr><th>Conditions</th><td><ul>" + conditions + "</ul></td></tr>\n";

  if (!lane.spec_errors.empty()) {
    std::string errors;
    for (const auto& e : lane.spec_errors) errors += "<li><code>" + Html(e.ToString()) + "</code></li>";
    h += "<tr><th>Spec errors</th><td><ul>" + errors + "</ul></td></tr>\n";
  }
  return h + "</table>\n</section>\n";
}

std::string Dashboard(const ControllerSnapshot& snap, const std::vector<LaneObservation>& obs) {
  int64_t now_ms = NowUnixMillis();
  size_t ready = 0;
  for (const auto& o : obs) ready += o.ready() ? 1 : 0;
  std::string h =
      "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
      "<meta http-equiv=\"refresh\" content=\"2\">"
      "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">"
      "<title>lanekeeper</title><style>";
  h += kDashboardStyle;
  h += "</style></head>\n<body>\n<header><h1>lanekeeper</h1><p>" +
       std::to_string(snap.lanes.size()) + " lane(s), " + std::to_string(ready) + " ready · specs " +
       Html(snap.specs_dir) + " · " +
       (snap.ready ? std::string("controller ready") : "controller not ready: first reconcile not done") +
       "</p></header>\n<main>\n";
  if (!snap.errors.empty()) {
    h += "<section class=\"errors\"><h2>Spec errors</h2><ul>";
    for (const auto& e : snap.errors) h += "<li><code>" + Html(e.ToString()) + "</code></li>";
    h += "</ul></section>\n";
  }
  if (snap.lanes.empty()) h += "<section><p>No lanes.</p></section>\n";
  for (size_t i = 0; i < snap.lanes.size(); ++i) h += LaneHtml(snap.lanes[i], obs[i], now_ms);
  return h + "</main>\n</body></html>\n";
}

// ---- routing and the listener -------------------------------------------------------------

std::string ErrorJson(const std::string& message) {
  return Json{{"error", message}}.dump() + "\n";
}

// host:port, host possibly [v6]; port 0..65535 (0: one the kernel picks).
Status CheckAddr(const std::string& addr) {
  auto bad = [&] {
    return Status::InvalidArgument("status server: bad address '" + addr +
                                   "': expected host:port, e.g. 127.0.0.1:8081");
  };
  size_t colon = addr.rfind(':');
  if (colon == std::string::npos || colon == 0) return bad();
  std::string_view host(addr.data(), colon);
  std::string_view port(addr.data() + colon + 1, addr.size() - colon - 1);
  if (host.find(':') != std::string_view::npos && !(host.front() == '[' && host.back() == ']')) {
    return bad();
  }
  if (host.find_first_of("/?#@ ") != std::string_view::npos) return bad();
  int p = 0;
  auto r = std::from_chars(port.data(), port.data() + port.size(), p);
  if (port.empty() || r.ec != std::errc() || r.ptr != port.data() + port.size() || p < 0 ||
      p > 65535) {
    return bad();
  }
  return Status::OK();
}

// The ports of this process's listening TCP sockets.
std::set<int> ListeningPorts() {
  std::set<int> ports;
  DIR* dir = opendir("/proc/self/fd");
  if (dir == nullptr) return ports;
  while (dirent* e = readdir(dir)) {
    if (e->d_name[0] < '0' || e->d_name[0] > '9') continue;
    int fd = std::atoi(e->d_name);
    if (fd == dirfd(dir)) continue;
    int listening = 0;
    socklen_t len = sizeof(listening);
    if (getsockopt(fd, SOL_SOCKET, SO_ACCEPTCONN, &listening, &len) != 0 || !listening) continue;
    sockaddr_storage addr{};
    socklen_t addr_len = sizeof(addr);
    if (getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &addr_len) != 0) continue;
    if (addr.ss_family == AF_INET) {
      ports.insert(ntohs(reinterpret_cast<sockaddr_in*>(&addr)->sin_port));
    } else if (addr.ss_family == AF_INET6) {
      ports.insert(ntohs(reinterpret_cast<sockaddr_in6*>(&addr)->sin6_port));
    }
  }
  closedir(dir);
  return ports;
}

class HttpStatusServer : public StatusServer {
 public:
  HttpStatusServer(const StatusServerOptions& options, const ControllerStateStore& state,
                   LaneObserver& observer, web::uri uri)
      : options_(options),
        state_(state),
        observer_(observer),
        url_("http://" + options.addr),
        listener_(std::move(uri)) {}

  ~HttpStatusServer() override { Stop(); }

  Status Open() {
    listener_.support([this](web::http::http_request request) { Serve(std::move(request)); });
    // Port 0: the kernel picks one, and cpprestsdk does not say which. The listening socket
    // that appeared during open() is ours; url() names its port. (Only the status server
    // listens in a lanekeeper process, so no other one appears meanwhile; if one did, the
    // answer would be ambiguous and Start fails instead of guessing.)
    const size_t colon = options_.addr.rfind(':');
    const bool any_port = options_.addr.substr(colon + 1) == "0";
    std::set<int> before;
    if (any_port) before = ListeningPorts();
    try {
      listener_.open().wait();
    } catch (const std::exception& e) {
      return Status::Unavailable("status server: cannot listen on " + options_.addr + ": " +
                                 e.what());
    }
    open_ = true;
    if (any_port) {
      std::vector<int> opened;
      for (int p : ListeningPorts()) {
        if (!before.count(p)) opened.push_back(p);
      }
      if (opened.size() != 1) {
        Stop();
        return Status::Unavailable("status server: listening on " + options_.addr +
                                   ", but cannot tell which port it got (" +
                                   std::to_string(opened.size()) + " new listening sockets)");
      }
      url_ = "http://" + options_.addr.substr(0, colon) + ":" + std::to_string(opened[0]);
    }
    return Status::OK();
  }

  void Stop() override {
    std::lock_guard<std::mutex> lock(stop_mu_);
    if (!open_) return;
    open_ = false;
    try {
      listener_.close().wait();
    } catch (const std::exception&) {
      // Closing a listener whose socket already failed: nothing left to stop.
    }
  }

  const std::string& url() const override { return url_; }

 private:
  void Serve(web::http::http_request request) {
    Response r;
    try {
      r = Route(request.method(), request.relative_uri().path());
    } catch (const std::exception& e) {
      r = Response{500, kJson, ErrorJson(std::string("internal error: ") + e.what())};
    }
    web::http::http_response response(static_cast<web::http::status_code>(r.code));
    response.headers().add("Cache-Control", "no-store");
    if (r.code == 405) response.headers().add("Allow", "GET");
    response.set_body(std::move(r.body), r.content_type);
    // A client that hung up makes reply() fail; nothing to do about it but not to throw.
    request.reply(response).then([](pplx::task<void> t) {
      try {
        t.get();
      } catch (const std::exception&) {
      }
    });
  }

  std::vector<LaneObservation> ObserveAll(const ControllerSnapshot& snap) {
    std::vector<LaneObservation> out;
    out.reserve(snap.lanes.size());
    for (const auto& lane : snap.lanes) out.push_back(observer_.Observe(lane));
    return out;
  }

  Response Route(const std::string& method, const std::string& path) {
    static const std::set<std::string> kPaths = {"/",       "/healthz", "/readyz",
                                                 "/status", "/doctor",  "/metrics"};
    if (kPaths.count(path) == 0) {
      return {404, kJson,
              ErrorJson("no such path: " + path +
                        "; try /, /status, /doctor, /metrics, /healthz or /readyz")};
    }
    if (method != web::http::methods::GET) {
      return {405, kJson, ErrorJson("method " + method + " not allowed on " + path + "; use GET")};
    }
    if (path == "/healthz") return {200, kText, "ok\n"};
    std::shared_ptr<const ControllerSnapshot> snap = state_.Get();
    if (path == "/readyz") {
      if (snap->ready) return {200, kText, "ready\n"};
      return {503, kText, "not ready: first reconcile not done\n"};
    }
    if (path == "/doctor") return {200, kJson, DoctorJson(*snap, observer_, options_.doctor)};
    std::vector<LaneObservation> obs = ObserveAll(*snap);
    if (path == "/status") return {200, kJson, StatusJson(*snap, obs)};
    if (path == "/metrics") return {200, kMetrics, Metrics(*snap, obs)};
    return {200, kHtml, Dashboard(*snap, obs)};
  }

  StatusServerOptions options_;
  const ControllerStateStore& state_;
  LaneObserver& observer_;
  std::string url_;
  web::http::experimental::listener::http_listener listener_;
  std::mutex stop_mu_;
  bool open_ = false;
};

}  // namespace

StatusOr<std::unique_ptr<StatusServer>> StatusServer::Start(const StatusServerOptions& options,
                                                            const ControllerStateStore& state,
                                                            LaneObserver& observer) {
  LK_RETURN_IF_ERROR(CheckAddr(options.addr));
  std::unique_ptr<HttpStatusServer> server;
  try {
    server = std::make_unique<HttpStatusServer>(options, state, observer,
                                                web::uri("http://" + options.addr));
  } catch (const std::exception& e) {
    return Status::InvalidArgument("status server: bad address '" + options.addr + "': " +
                                   e.what());
  }
  LK_RETURN_IF_ERROR(server->Open());
  return std::unique_ptr<StatusServer>(std::move(server));
}

}  // namespace lk
