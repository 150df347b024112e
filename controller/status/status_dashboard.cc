#include "controller/status/status_views.h"

#include <string_view>

#include "worker/duration.h"

namespace lk {

namespace {

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

}  // namespace

std::string DashboardHtml(const ControllerSnapshot& snap, const std::vector<LaneObservation>& obs) {
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

}  // namespace lk
