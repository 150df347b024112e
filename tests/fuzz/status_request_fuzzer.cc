// Fuzz target for the status server's request handling (controller/status/status_request.h):
// any bytes through ParseRequestHead and, when they parse, RouteStatusRequest, which must
// return and keep what docs/status.md promises:
//   - a head that parses has a token method, an origin-form target whose path is the
//     target up to '?', HTTP/1.0 to 1.9, token field names and values without CR, LF or
//     other control characters — nothing a response or a log line could be split on;
//   - written back in canonical form (CRLF line ends, "NAME: VALUE") it parses to the same;
//   - a head over the limit is refused whatever it holds;
//   - the route is 200 only for GET on /, /healthz, /readyz, /status, /doctor or /metrics,
//     404 for any other path, 405 for any other method, and its message is one line that
//     names the path or the method.
// scripts/fuzz runs it with libFuzzer; ctest replays tests/fuzz/corpus/status_request.
#include <cstdint>
#include <set>
#include <string>
#include <string_view>

#include "controller/status/status_request.h"
#include "tests/fuzz/fuzz_check.h"

namespace {

using lk::fuzz::Check;

bool NoControl(std::string_view s, bool tab_ok) {
  for (unsigned char c : s) {
    if ((c < 0x20 && !(tab_ok && c == '\t')) || c == 0x7f) return false;
  }
  return true;
}

std::string Canonical(const lk::RequestHead& h) {
  std::string out = h.method + " " + h.target + " HTTP/1." + std::to_string(h.minor_version) + "\r\n";
  for (const auto& [name, value] : h.headers) out += name + ": " + value + "\r\n";
  return out + "\r\n";
}

void CheckRoute(const std::string& method, const std::string& path) {
  static const std::set<std::string> kPaths = {"/", "/healthz", "/readyz",
                                               "/status", "/doctor", "/metrics"};
  lk::StatusRoute r = lk::RouteStatusRequest(method, path);
  const bool known = kPaths.count(path) > 0;
  if (!known) {
    Check(r.code == 404, "an unknown path is 404: " + path);
    Check(r.error.find(path) != std::string::npos, "a 404 names the path");
  } else if (method != "GET") {
    Check(r.code == 405, "a method other than GET is 405: " + method);
    Check(r.error.find(method) != std::string::npos, "a 405 names the method");
  } else {
    Check(r.code == 200 && r.endpoint != lk::StatusEndpoint::kNone && r.error.empty(),
          "GET on a status path is served: " + path);
  }
  Check(r.code == 200 || r.endpoint == lk::StatusEndpoint::kNone, "an error serves nothing");
  if (NoControl(path, false) && NoControl(method, false)) {
    Check(lk::fuzz::OneLine(r.error), "an error message is one line");
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view bytes(reinterpret_cast<const char*>(data), size);
  // The limit holds whatever the head: a small one makes the fuzzer meet it.
  if (size > 64) {
    Check(!lk::ParseRequestHead(bytes, 64).ok(), "a head over the limit is refused");
  }
  auto head = lk::ParseRequestHead(bytes);
  // The raw bytes as a method and a path, as the server's listener hands them over.
  const size_t split = bytes.find('\0');
  if (split != std::string_view::npos) {
    CheckRoute(std::string(bytes.substr(0, split)), std::string(bytes.substr(split + 1)));
  }
  if (!head.ok()) {
    Check(!head.status().message().empty() && lk::fuzz::OneLine(head.status().message()),
          "a refusal says, in one line, what is wrong");
    return 0;
  }
  Check(!head->method.empty() && NoControl(head->method, false) &&
            head->method.find_first_of(" :/") == std::string::npos,
        "a method is a token: " + head->method);
  Check(head->target == "*" || (head->target.front() == '/' && NoControl(head->target, false) &&
                                head->target.find(' ') == std::string::npos),
        "a target is origin-form, without blanks or control characters");
  Check(head->path == head->target.substr(0, head->target.find('?')), "a path is the target to '?'");
  Check(head->minor_version >= 0 && head->minor_version <= 9, "the version is HTTP/1.x");
  for (const auto& [name, value] : head->headers) {
    Check(!name.empty() && NoControl(name, false) && name.find_first_of(" :") == std::string::npos,
          "a field name is a token: " + name);
    Check(NoControl(value, true), "a field value holds no CR, LF or other control character");
    Check(value.empty() || (value.front() != ' ' && value.back() != ' '),
          "a field value comes without surrounding blanks");
  }
  const std::string canonical = Canonical(*head);
  auto again = lk::ParseRequestHead(canonical, canonical.size());
  Check(again.ok(), "a head written back parses: " + canonical);
  Check(again->method == head->method && again->target == head->target &&
            again->minor_version == head->minor_version && again->headers == head->headers,
        "a head written back parses to the same");
  CheckRoute(head->method, head->path);
  return 0;
}
