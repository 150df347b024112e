#include "controller/status/status_request.h"

#include <array>

namespace lk {

namespace status_request {

// RFC 9110 tchar: the characters of a method and of a field name.
bool IsTokenChar(unsigned char c) {
  if (c >= '0' && c <= '9') return true;
  if ((c | 0x20) >= 'a' && (c | 0x20) <= 'z') return true;
  return std::string_view("!#$%&'*+-.^_`|~").find(static_cast<char>(c)) != std::string_view::npos;
}

bool IsToken(std::string_view s) {
  if (s.empty()) return false;
  for (unsigned char c : s) {
    if (!IsTokenChar(c)) return false;
  }
  return true;
}

// A field value: visible characters, blanks and obs-text; no other control character.
bool IsFieldValue(std::string_view s) {
  for (unsigned char c : s) {
    if ((c < 0x20 && c != '\t') || c == 0x7f) return false;
  }
  return true;
}

// An origin-form target ("/path?query") or "*": visible ASCII only.
bool IsOriginTarget(std::string_view s) {
  if (s == "*") return true;
  if (s.empty() || s.front() != '/') return false;
  for (unsigned char c : s) {
    if (c <= 0x20 || c >= 0x7f) return false;
  }
  return true;
}

std::string_view TrimBlanks(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
  return s;
}

// Splits off the next line; its end is "\r\n" or "\n". A lone '\r' is refused by the
// callers' character checks.
bool NextLine(std::string_view& rest, std::string_view& line) {
  size_t nl = rest.find('\n');
  if (nl == std::string_view::npos) return false;
  line = rest.substr(0, nl);
  if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
  rest.remove_prefix(nl + 1);
  return true;
}

Status ParseRequestLine(std::string_view line, RequestHead& head) {
  size_t sp1 = line.find(' ');
  size_t sp2 = sp1 == std::string_view::npos ? sp1 : line.find(' ', sp1 + 1);
  if (sp2 == std::string_view::npos || line.find(' ', sp2 + 1) != std::string_view::npos) {
    return Status::InvalidArgument("request line: expected METHOD TARGET HTTP/1.x");
  }
  std::string_view method = line.substr(0, sp1);
  std::string_view target = line.substr(sp1 + 1, sp2 - sp1 - 1);
  std::string_view version = line.substr(sp2 + 1);
  if (!IsToken(method)) return Status::InvalidArgument("request line: bad method");
  if (!IsOriginTarget(target)) {
    return Status::InvalidArgument("request line: bad target (expected a path such as /status)");
  }
  if (version.size() != 8 || version.substr(0, 7) != "HTTP/1." || version[7] < '0' ||
      version[7] > '9') {
    return Status::InvalidArgument("request line: bad version (expected HTTP/1.0 or HTTP/1.1)");
  }
  head.method = method;
  head.target = target;
  head.path = target.substr(0, target.find('?'));
  head.minor_version = version[7] - '0';
  return Status::OK();
}

}  // namespace status_request

StatusOr<RequestHead> ParseRequestHead(std::string_view bytes, size_t max_bytes) {
  using namespace status_request;
  if (bytes.size() > max_bytes) {
    return Status::InvalidArgument("request head over " + std::to_string(max_bytes) + " bytes");
  }
  RequestHead head;
  std::string_view rest = bytes;
  std::string_view line;
  if (!NextLine(rest, line)) return Status::InvalidArgument("request head: no line end");
  LK_RETURN_IF_ERROR(ParseRequestLine(line, head));
  for (size_t n = 1;; ++n) {
    if (!NextLine(rest, line)) {
      return Status::InvalidArgument("request head: no blank line after the header fields");
    }
    if (line.empty()) break;
    const std::string at = "header field " + std::to_string(n);
    size_t colon = line.find(':');
    if (colon == std::string_view::npos) {
      return Status::InvalidArgument(at + ": expected NAME: VALUE");
    }
    // RFC 9112 5.1: no blank between the name and the colon (and no line folding).
    if (!IsToken(line.substr(0, colon))) return Status::InvalidArgument(at + ": bad name");
    std::string_view value = TrimBlanks(line.substr(colon + 1));
    if (!IsFieldValue(value)) {
      return Status::InvalidArgument(at + ": control character in the value");
    }
    head.headers.emplace_back(line.substr(0, colon), value);
  }
  if (!rest.empty()) return Status::InvalidArgument("request head: bytes after the blank line");
  return head;
}

StatusRoute RouteStatusRequest(std::string_view method, std::string_view path) {
  static constexpr std::array<std::pair<std::string_view, StatusEndpoint>, 6> kRoutes = {{
      {"/", StatusEndpoint::kDashboard},
      {"/healthz", StatusEndpoint::kHealthz},
      {"/readyz", StatusEndpoint::kReadyz},
      {"/status", StatusEndpoint::kStatus},
      {"/doctor", StatusEndpoint::kDoctor},
      {"/metrics", StatusEndpoint::kMetrics},
  }};
  StatusEndpoint endpoint = StatusEndpoint::kNone;
  for (const auto& [p, e] : kRoutes) {
    if (p == path) endpoint = e;
  }
  if (endpoint == StatusEndpoint::kNone) {
    return {404, StatusEndpoint::kNone,
            "no such path: " + std::string(path) +
                "; try /, /status, /doctor, /metrics, /healthz or /readyz"};
  }
  if (method != "GET") {
    return {405, StatusEndpoint::kNone,
            "method " + std::string(method) + " not allowed on " + std::string(path) + "; use GET"};
  }
  return {200, endpoint, ""};
}

}  // namespace lk
