// The status server's request seam (controller/status/status_request.h): the head parser and
// the router, as pure functions. tests/fuzz/status_request_fuzzer.cc holds them to the same
// promises over any bytes.
#include "controller/status/status_request.h"

#include <gtest/gtest.h>

#include <string>

namespace lk {
namespace status_request_test {

TEST(StatusRequest, AHeadParsesIntoMethodTargetPathVersionAndFields) {
  auto head = ParseRequestHead("GET /status?x=1 HTTP/1.1\r\nHost: 127.0.0.1:8081\r\n"
                               "Accept:\t */* \t\r\n\r\n");
  ASSERT_TRUE(head.ok()) << head.status().message();
  EXPECT_EQ(head->method, "GET");
  EXPECT_EQ(head->target, "/status?x=1");
  EXPECT_EQ(head->path, "/status");
  EXPECT_EQ(head->minor_version, 1);
  ASSERT_EQ(head->headers.size(), 2u);
  EXPECT_EQ(head->headers[0], (std::pair<std::string, std::string>{"Host", "127.0.0.1:8081"}));
  EXPECT_EQ(head->headers[1].second, "*/*");
  auto bare = ParseRequestHead("GET / HTTP/1.0\n\n");
  ASSERT_TRUE(bare.ok()) << bare.status().message();
  EXPECT_EQ(bare->minor_version, 0);
}

TEST(StatusRequest, MalformedHeadsAreRefusedSayingWhatIsWrong) {
  const std::pair<const char*, const char*> cases[] = {
      {"GET /status HTTP/1.1\r\n", "request head: no blank line after the header fields"},
      {"GET /status\r\n\r\n", "request line: expected METHOD TARGET HTTP/1.x"},
      {"GET  / HTTP/1.1\r\n\r\n", "request line: expected METHOD TARGET HTTP/1.x"},
      {"G(T / HTTP/1.1\r\n\r\n", "request line: bad method"},
      {"GET http://a/ HTTP/1.1\r\n\r\n", "request line: bad target (expected a path such as /status)"},
      {"GET / HTTP/2\r\n\r\n", "request line: bad version (expected HTTP/1.0 or HTTP/1.1)"},
      {"GET / HTTP/1.1\r\nHost : a\r\n\r\n", "header field 1: bad name"},
      {"GET / HTTP/1.1\r\n folded\r\n\r\n", "header field 1: expected NAME: VALUE"},
      {"GET / HTTP/1.1\r\nX: a\rb\r\n\r\n", "header field 1: control character in the value"},
      {"GET / HTTP/1.1\r\n\r\nbody", "request head: bytes after the blank line"},
  };
  for (const auto& [bytes, message] : cases) {
    auto head = ParseRequestHead(bytes);
    ASSERT_FALSE(head.ok()) << bytes;
    EXPECT_EQ(head.status().message(), message) << bytes;
  }
  EXPECT_EQ(ParseRequestHead("GET / HTTP/1.1\r\n\r\n", 10).status().message(),
            "request head over 10 bytes");
}

TEST(StatusRequest, GetOnTheSixPathsIsServedOtherPaths404AndOtherMethods405) {
  EXPECT_EQ(RouteStatusRequest("GET", "/").endpoint, StatusEndpoint::kDashboard);
  EXPECT_EQ(RouteStatusRequest("GET", "/healthz").endpoint, StatusEndpoint::kHealthz);
  EXPECT_EQ(RouteStatusRequest("GET", "/readyz").endpoint, StatusEndpoint::kReadyz);
  EXPECT_EQ(RouteStatusRequest("GET", "/status").endpoint, StatusEndpoint::kStatus);
  EXPECT_EQ(RouteStatusRequest("GET", "/doctor").endpoint, StatusEndpoint::kDoctor);
  EXPECT_EQ(RouteStatusRequest("GET", "/metrics").endpoint, StatusEndpoint::kMetrics);
  StatusRoute missing = RouteStatusRequest("GET", "/nope");
  EXPECT_EQ(missing.code, 404);
  EXPECT_EQ(missing.error, "no such path: /nope; try /, /status, /doctor, /metrics, /healthz or /readyz");
  StatusRoute trace = RouteStatusRequest("TRACE", "/status");
  EXPECT_EQ(trace.code, 405);
  EXPECT_EQ(trace.endpoint, StatusEndpoint::kNone);
  EXPECT_EQ(trace.error, "method TRACE not allowed on /status; use GET");
}

}  // namespace status_request_test
}  // namespace lk
