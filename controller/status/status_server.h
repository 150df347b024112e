// StatusServer: the controller's HTTP status endpoints, GET and HEAD only —
//   /healthz  200 "ok" while the process serves
//   /readyz   200 "ready" after the first full reconcile, else 503
//   /status   JSON: every lane with its conditions, owner, workers, supervisors, roles and
//             queue counts, and the spec errors not tied to a lane
//   /doctor   JSON: doctor's checks per lane (controller/status/doctor.h, as `lanekeeper doctor`;
//             with --kube as `doctor --kube`); ?lane=NS/NAME (or NAME) checks that one lane,
//             404 when there is none
//   /metrics  Prometheus text exposition format 0.0.4
//   /         a small HTML dashboard that refreshes itself every 2 s
// Every route, field, condition and metric is in docs/status.md.
//
// Locked down by default: loopback unless told otherwise, a bearer token required on any
// other address (or --insecure), and every limit of status/http_server.h (sizes, timeouts,
// connections, methods). /healthz and /readyz never need the token: probes carry none.
//
// Owns: the routes; the listener is status/http_server.h, the rendering status/status_views.h.
// Does not own: the controller's state (one snapshot from the ControllerStateStore per
// request) nor Redis (the LaneObserver reads it, cached about a second). Never renders a
// Redis password: URLs come out redacted.
// Thread-safe: requests are served concurrently on the server's handler threads; the store
// and the observer must outlive the server.
#pragma once

#include <memory>
#include <string>

#include "controller/status/controller_state.h"
#include "controller/status/doctor.h"
#include "controller/status/http_server.h"
#include "controller/status/lane_observer.h"
#include "controller/status/status_views.h"
#include "worker/status.h"

namespace lk {

struct StatusServerOptions {
  // host:port to listen on ([v6]:port for IPv6); port 0 takes a free one, which url()
  // names. Loopback by default: status names queues, hosts and pids. Any other address
  // (in Kubernetes the probes reach the pod IP: 0.0.0.0:8081) needs auth_token or insecure.
  std::string addr = "127.0.0.1:8081";
  std::string auth_token;  // non-empty: Authorization: Bearer TOKEN on all but the probes
  bool insecure = false;   // serve a non-loopback address without a token
  // Sizes, timeouts and the connection cap (status/http_server.h); addr, auth_token and
  // insecure above take precedence over the same fields here.
  HttpServerOptions limits;
  // The thresholds /doctor's checks use, as `lanekeeper doctor`'s flags.
  DoctorOptions doctor;
  // What /doctor adds to each lane's checks beyond Redis (controller --kube: the Lane's
  // status, owners named as pods, as `doctor --kube`); empty: nothing.
  LaneDoctorChecks doctor_more_checks;
};

class StatusServer {
 public:
  // Listens on options.addr and serves until Stop() or destruction. InvalidArgument for an
  // address that does not parse; FailedPrecondition for a non-loopback address without a
  // token or insecure; Unavailable when it cannot be bound, e.g.
  // "status server: cannot listen on 127.0.0.1:8081: bind: Address already in use".
  static StatusOr<std::unique_ptr<StatusServer>> Start(const StatusServerOptions& options,
                                                       const ControllerStateStore& state,
                                                       LaneObserver& observer);

  virtual ~StatusServer() = default;

  // Stops listening; requests in flight finish first. Idempotent; the destructor calls it.
  virtual void Stop() = 0;

  // "http://HOST:PORT", where it listens: the port it got when options.addr asked for 0.
  virtual const std::string& url() const = 0;
};

}  // namespace lk
