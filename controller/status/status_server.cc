#include "controller/status/status_server.h"

#include <algorithm>
#include <cctype>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <utility>
#include <vector>

#include "controller/status/status_views.h"

namespace lk {

namespace status_server_impl {

using Json = nlohmann::ordered_json;

constexpr const char* kText = "text/plain; charset=utf-8";
constexpr const char* kJson = "application/json";
constexpr const char* kHtml = "text/html; charset=utf-8";
constexpr const char* kMetrics = "text/plain; version=0.0.4; charset=utf-8";

std::string ErrorJson(const std::string& message) {
  return Json{{"error", message}}.dump() + "\n";
}

// The value of key in a query string ("lane=prod%2Fkb&x=1"), percent-decoded ('+' is a
// space); "" when absent.
std::string QueryValue(const std::string& query, const std::string& key) {
  for (size_t at = 0; at <= query.size();) {
    size_t end = query.find('&', at);
    if (end == std::string::npos) end = query.size();
    const std::string pair = query.substr(at, end - at);
    at = end + 1;
    if (pair.rfind(key + "=", 0) != 0) continue;
    std::string out;
    for (size_t i = key.size() + 1; i < pair.size(); ++i) {
      if (pair[i] == '+') {
        out += ' ';
      } else if (pair[i] == '%' && i + 2 < pair.size() &&
                 std::isxdigit(static_cast<unsigned char>(pair[i + 1])) &&
                 std::isxdigit(static_cast<unsigned char>(pair[i + 2]))) {
        out += static_cast<char>(std::stoi(pair.substr(i + 1, 2), nullptr, 16));
        i += 2;
      } else {
        out += pair[i];
      }
    }
    return out;
  }
  return "";
}

class RoutedStatusServer : public StatusServer {
 public:
  RoutedStatusServer(const StatusServerOptions& options, const ControllerStateStore& state,
                     LaneObserver& observer)
      : options_(options), state_(state), observer_(observer) {}

  ~RoutedStatusServer() override { Stop(); }

  Status Open() {
    HttpServerOptions http = options_.limits;
    http.addr = options_.addr;
    http.auth_token = options_.auth_token;
    http.insecure = options_.insecure;
    auto started = HttpServer::Start(http, [this](const HttpRequest& r) { return Route(r); });
    if (!started.ok()) return started.status();
    server_ = std::move(*started);
    url_ = "http://" + options_.addr.substr(0, options_.addr.rfind(':')) + ":" +
           std::to_string(server_->port());
    return Status::OK();
  }

  void Stop() override {
    if (server_) server_->Stop();
  }

  const std::string& url() const override { return url_; }

 private:
  std::vector<LaneObservation> ObserveAll(const ControllerSnapshot& snap) {
    std::vector<LaneObservation> out;
    out.reserve(snap.lanes.size());
    for (const auto& lane : snap.lanes) out.push_back(observer_.Observe(lane));
    return out;
  }

  // GET and HEAD alone reach here (the listener answers every other method with 405).
  HttpResponse Route(const HttpRequest& request) {
    const std::string& path = request.path;
    if (path == "/healthz") return {200, kText, "ok\n", {}};
    std::shared_ptr<const ControllerSnapshot> snap = state_.Get();
    if (path == "/readyz") {
      if (snap->ready) return {200, kText, "ready\n", {}};
      return {503, kText, "not ready: first reconcile not done\n", {}};
    }
    if (path == "/doctor") return Doctor(*snap, request.query);
    if (path != "/status" && path != "/metrics" && path != "/") {
      return {404, kJson,
              ErrorJson("no such path: " + path +
                        "; try /, /status, /doctor, /metrics, /healthz or /readyz"),
              {}};
    }
    std::vector<LaneObservation> obs = ObserveAll(*snap);
    if (path == "/status") return {200, kJson, StatusJson(*snap, obs), {}};
    if (path == "/metrics") return {200, kMetrics, MetricsText(*snap, obs), {}};
    return {200, kHtml, DashboardHtml(*snap, obs), {}};
  }

  // /doctor, or /doctor?lane=NS/NAME for one lane.
  HttpResponse Doctor(const ControllerSnapshot& snap, const std::string& query) {
    const std::string only = QueryValue(query, "lane");
    if (!only.empty() && std::none_of(snap.lanes.begin(), snap.lanes.end(),
                                      [&](const LaneState& l) { return LaneNamed(l, only); })) {
      return {404, kJson, ErrorJson("no lane " + only + "; /status lists the lanes"), {}};
    }
    return {200, kJson, DoctorJson(snap, observer_, options_.doctor, options_.doctor_more_checks, only), {}};
  }

  StatusServerOptions options_;
  const ControllerStateStore& state_;
  LaneObserver& observer_;
  std::string url_;
  std::unique_ptr<HttpServer> server_;
};

}  // namespace status_server_impl

StatusOr<std::unique_ptr<StatusServer>> StatusServer::Start(const StatusServerOptions& options,
                                                            const ControllerStateStore& state,
                                                            LaneObserver& observer) {
  auto server = std::make_unique<status_server_impl::RoutedStatusServer>(options, state, observer);
  LK_RETURN_IF_ERROR(server->Open());
  return std::unique_ptr<StatusServer>(std::move(server));
}

}  // namespace lk
