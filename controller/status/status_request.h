// StatusRequest: what the status server makes of a request before anything is rendered —
// pure functions over bytes, with no socket and no state, so that they can be fuzzed
// (tests/fuzz/status_request_fuzzer.cc) and tested alone.
//
//   ParseRequestHead   an HTTP/1.x request head (request line and header fields, up to the
//                      blank line), as RFC 9112 defines it; every malformed head is an
//                      InvalidArgument naming what is wrong (a server answers 400; 431
//                      when bytes.size() > max_bytes, which is refused first).
//   RouteStatusRequest a method and a request target to one of the status endpoints, or to
//                      the 404 or 405 the server answers (docs/status.md).
// Not used by the status server since its own listener (status/http_server.h) replaced
// cpprestsdk's: that listener's head parser is what tests/fuzz/status_request_fuzzer.cc
// should be pointed at next; until then these functions state the same rules, fuzzed.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "worker/status.h"

namespace lk {

struct RequestHead {
  std::string method;   // a token: "GET"
  std::string target;   // origin form, as sent: "/status?x=1"
  std::string path;     // target without its query: "/status"
  int minor_version = 1;  // HTTP/1.minor_version
  // Field names as sent (compare case-insensitively); values without surrounding blanks.
  std::vector<std::pair<std::string, std::string>> headers;
};

inline constexpr size_t kMaxRequestHeadBytes = 16 * 1024;

// bytes: the head up to and including its blank line ("\r\n\r\n"; bare "\n" line ends are
// accepted, as RFC 9112 allows). Nothing may follow the blank line.
StatusOr<RequestHead> ParseRequestHead(std::string_view bytes,
                                       size_t max_bytes = kMaxRequestHeadBytes);

enum class StatusEndpoint { kNone, kDashboard, kHealthz, kReadyz, kStatus, kDoctor, kMetrics };

struct StatusRoute {
  int code = 200;  // 200: serve endpoint; 404: no such path; 405: not GET
  StatusEndpoint endpoint = StatusEndpoint::kNone;  // kNone unless code is 200
  std::string error;  // the message of a 404 or 405, naming the path or the method
};

// path: the request target's path ("/status"; no query).
StatusRoute RouteStatusRequest(std::string_view method, std::string_view path);

}  // namespace lk
