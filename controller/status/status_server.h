// StatusServer: the controller's HTTP status endpoints, GET only —
//   /healthz  200 "ok" while the process serves
//   /readyz   200 "ready" after the first full reconcile, else 503
//   /status   JSON: every lane with its conditions, owner, workers, supervisors, roles and
//             queue counts, and the spec errors not tied to a lane
//   /doctor   JSON: doctor's checks per lane (controller/status/doctor.h, as `lanekeeper doctor`)
//   /metrics  Prometheus text exposition format 0.0.4
//   /         a small HTML dashboard that refreshes itself every 2 s
// Every route, field, condition and metric is in docs/status.md.
//
// Owns: the listening socket (cpprestsdk's http_listener: its exceptions are caught here and
// become a Status or a 500); which route a request takes is status/status_request.h, the
// rendering status/status_views.h. Does not own: the controller's state (one
// snapshot from the ControllerStateStore per request) nor Redis (the LaneObserver reads it,
// cached about a second). Never renders a Redis password: URLs come out redacted.
// Thread-safe: requests are served concurrently on cpprestsdk's thread pool; the store and
// the observer must outlive the server.
#pragma once

#include <memory>
#include <string>

#include "controller/status/controller_state.h"
#include "controller/status/doctor.h"
#include "controller/status/lane_observer.h"
#include "worker/status.h"

namespace lk {

struct StatusServerOptions {
  // host:port to listen on ([v6]:port for IPv6); port 0 takes a free one, which url()
  // names. Loopback by default: status names queues, hosts and pids and needs no
  // authentication; bind wider only behind a firewall or a network policy (in Kubernetes
  // the probes reach the pod IP: 0.0.0.0:8081).
  std::string addr = "127.0.0.1:8081";
  // The thresholds /doctor's checks use, as `lanekeeper doctor`'s flags.
  DoctorOptions doctor;
};

class StatusServer {
 public:
  // Listens on options.addr and serves until Stop() or destruction. InvalidArgument for an
  // address that does not parse; Unavailable when it cannot be bound, e.g.
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
