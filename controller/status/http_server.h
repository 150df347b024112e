// HttpServer: the status server's listener — a small HTTP/1.1 server built to be reachable
// by strangers. It serves GET and HEAD and nothing else, and bounds what a client can cost:
//   - request line + headers at most max_header_bytes, else 431 and the connection closes;
//   - a request with a body (Content-Length > 0, or any Transfer-Encoding) gets 413 and the
//     body is never stored: the connection is shut for writing and what still arrives is
//     discarded for at most a second before it closes;
//   - any method but GET and HEAD gets 405 with `Allow: GET, HEAD` (TRACE included: no
//     request header is ever echoed);
//   - a request's headers must arrive within header_timeout of its first byte (of the
//     connection, for the first request), and a kept-alive connection closes after
//     idle_timeout without a request;
//   - at most max_connections at once: one more evicts the connection that has waited
//     longest for its request, so slow clients cannot lock out a probe that sends its
//     request at once;
//   - with an auth token, every path outside open_paths needs `Authorization: Bearer
//     TOKEN` (compared in constant time), else 401.
//
// Owns: the listening socket, the connections, one thread that accepts and reads requests
// (poll) and handler_threads threads that run the handler and write its answer. Does not
// own: what a path means (the handler). Thread-safe: the handler runs on several threads at
// once; Stop() may be called from any thread.
#pragma once

#include <functional>
#include <memory>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "worker/duration.h"
#include "worker/status.h"

namespace lk {

struct HttpRequest {
  std::string method;  // GET or HEAD: the handler sees no other
  std::string path;    // the target without its query, e.g. "/status"
  std::string query;   // what follows '?', as sent (not decoded); "" when none
};

struct HttpResponse {
  int code = 200;
  std::string content_type;
  std::string body;  // omitted from the answer to HEAD; Content-Length stays
  std::vector<std::pair<std::string, std::string>> headers;  // extra headers
};

struct HttpServerOptions {
  // host:port ([v6]:port for IPv6); port 0 takes a free one, which port() names.
  std::string addr = "127.0.0.1:8081";
  // Non-empty: the bearer token every path outside open_paths needs.
  std::string auth_token;
  // Paths served without the token: the probes of a kubelet or a load balancer.
  std::set<std::string> open_paths = {"/healthz", "/readyz"};
  // Listening on an address that is not loopback without an auth token is refused unless
  // insecure is set (behind a firewall or a network policy that already decides who asks).
  bool insecure = false;
  size_t max_header_bytes = 16 * 1024;
  Millis header_timeout{10'000};
  Millis idle_timeout{60'000};
  int max_connections = 128;
  int handler_threads = 4;
};

class HttpServer {
 public:
  using Handler = std::function<HttpResponse(const HttpRequest&)>;

  // Listens on options.addr and serves until Stop() or destruction. InvalidArgument for an
  // address that does not parse or resolve; FailedPrecondition for a non-loopback address
  // without a token or insecure; Unavailable when it cannot be bound.
  static StatusOr<std::unique_ptr<HttpServer>> Start(const HttpServerOptions& options,
                                                     Handler handler);
  virtual ~HttpServer() = default;

  // Stops listening and closes every connection; handlers running finish first.
  // Idempotent; the destructor calls it.
  virtual void Stop() = 0;

  // The port it listens on: the one the kernel chose when options.addr asked for 0.
  virtual int port() const = 0;
};

// Whether host (a name or an address as in HttpServerOptions::addr, brackets allowed)
// resolves only to loopback addresses (127.0.0.0/8, ::1).
bool IsLoopbackHost(const std::string& host);

// The bearer token in path: its first line, surrounding whitespace dropped. InvalidArgument
// when it cannot be read, is empty, or is readable by group or others (a token anyone on
// the host can read protects nothing; the message says to chmod 600 it).
StatusOr<std::string> ReadAuthTokenFile(const std::string& path);

}  // namespace lk
