#include "controller/status/status_views.h"

#include <charconv>
#include <cmath>
#include <string_view>
#include <utility>
#include <vector>

namespace lk {

namespace {

// The reasons a supervisor restarts its worker (SupervisorStatus::worker_restarts), listed
// even at zero so that every lane has the same series from its first scrape.
constexpr const char* kWorkerRestartReasons[] = {"crash", "rss", "wedge", "lease_lost"};

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

}  // namespace

std::string MetricsText(const ControllerSnapshot& snap, const std::vector<LaneObservation>& obs) {
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

}  // namespace lk
