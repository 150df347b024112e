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

#include "controller/status/status_request.h"
#include "controller/status/status_views.h"
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
    StatusRoute route = RouteStatusRequest(method, path);
    if (route.code != 200) return {route.code, kJson, ErrorJson(route.error)};
    if (route.endpoint == StatusEndpoint::kHealthz) return {200, kText, "ok\n"};
    std::shared_ptr<const ControllerSnapshot> snap = state_.Get();
    switch (route.endpoint) {
      case StatusEndpoint::kReadyz:
        if (snap->ready) return {200, kText, "ready\n"};
        return {503, kText, "not ready: first reconcile not done\n"};
      case StatusEndpoint::kDoctor:
        return {200, kJson, DoctorJson(*snap, observer_, options_.doctor)};
      default:
        break;
    }
    std::vector<LaneObservation> obs = ObserveAll(*snap);
    if (route.endpoint == StatusEndpoint::kStatus) return {200, kJson, StatusJson(*snap, obs)};
    if (route.endpoint == StatusEndpoint::kMetrics) return {200, kMetrics, MetricsText(*snap, obs)};
    return {200, kHtml, DashboardHtml(*snap, obs)};
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
