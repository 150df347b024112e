#include "controller/spec/lane_types.h"

#include <charconv>

#include <nlohmann/json.hpp>

namespace lk {

const char* AutopilotModeName(AutopilotMode m) {
  switch (m) {
    case AutopilotMode::kDispatchOnly: return "dispatch-only";
    case AutopilotMode::kManagedWorker: return "managed-worker";
    case AutopilotMode::kOff: return "off";
  }
  return "?";
}

StatusOr<int64_t> ParseMegabytes(std::string_view text) {
  auto bad = [&] {
    return Status::InvalidArgument("bad size " + Quote(text) +
                                   ": expected megabytes like 2048, 2048Mi or 2Gi");
  };
  size_t digits = 0;
  while (digits < text.size() && text[digits] >= '0' && text[digits] <= '9') ++digits;
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
      {"redis_from",
       redis_url_from.empty()
           ? nlohmann::json(nullptr)
           : nlohmann::json{{"secret", redis_url_from.name}, {"key", redis_url_from.key}}},
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

}  // namespace lk
