#include <gtest/gtest.h>

#include "worker/duration.h"
#include "worker/redis_connection.h"

namespace lk {
namespace {

TEST(Duration, AcceptsMillisecondsSecondsMinutesHours) {
  EXPECT_EQ(ParseDuration("500ms")->count(), 500);
  EXPECT_EQ(ParseDuration("30s")->count(), 30'000);
  EXPECT_EQ(ParseDuration("5m")->count(), 300'000);
  EXPECT_EQ(ParseDuration("1h")->count(), 3'600'000);
}

TEST(Duration, RejectsNumbersWithoutUnitsAndUnknownUnits) {
  for (const char* bad : {"30", "", "s", "5x", "-5s", "1.5s", "5 s"}) {
    auto d = ParseDuration(bad);
    ASSERT_FALSE(d.ok()) << bad;
    EXPECT_NE(d.status().message().find("bad duration"), std::string::npos);
  }
}

TEST(Duration, RejectsValuesThatOverflowMilliseconds) {
  auto d = ParseDuration("999999999999d");
  ASSERT_FALSE(d.ok());
  EXPECT_NE(d.status().message().find("too large"), std::string::npos);
}

TEST(Duration, FormatsTheShortestExactUnit) {
  EXPECT_EQ(FormatDuration(Millis(1500)), "1500ms");
  EXPECT_EQ(FormatDuration(Millis(30'000)), "30s");
  EXPECT_EQ(FormatDuration(Millis(300'000)), "5m");
}

TEST(RedisUrl, ParsesHostPortPasswordAndDb) {
  auto ep = ParseRedisUrl("redis://:s3cret@10.1.2.3:6380/4");
  ASSERT_TRUE(ep.ok());
  EXPECT_EQ(ep->host, "10.1.2.3");
  EXPECT_EQ(ep->port, 6380);
  EXPECT_EQ(ep->password, "s3cret");
  EXPECT_EQ(ep->db, 4);
  EXPECT_EQ(ep->Redacted(), "redis://:***@10.1.2.3:6380/4");
}

TEST(RedisUrl, DefaultsPortAndDb) {
  auto ep = ParseRedisUrl("redis://localhost");
  ASSERT_TRUE(ep.ok());
  EXPECT_EQ(ep->port, 6379);
  EXPECT_EQ(ep->db, 0);
}

TEST(RedisUrl, ParsesUnixSocketsWithDb) {
  auto ep = ParseRedisUrl("unix:///run/lk/redis.sock?db=2");
  ASSERT_TRUE(ep.ok());
  EXPECT_EQ(ep->unix_path, "/run/lk/redis.sock");
  EXPECT_EQ(ep->db, 2);
}

// hiredis 0.14 leaves a socket path of 107 bytes unterminated: refused when the URL is read,
// with the limit and the length, rather than connecting to garbage.
TEST(RedisUrl, AcceptsAUnixSocketPathOf106BytesAndRefuses107) {
  const std::string path106 = "/" + std::string(99, 'd') + "/r.soc";
  ASSERT_EQ(path106.size(), 106u);
  auto ok = ParseRedisUrl("unix://:pw@" + path106 + "?db=1");
  ASSERT_TRUE(ok.ok()) << ok.status().message();
  EXPECT_EQ(ok->unix_path, path106);

  const std::string path107 = path106 + "k";
  auto refused = ParseRedisUrl("unix://:s3cret@" + path107 + "?db=1");
  ASSERT_FALSE(refused.ok());
  EXPECT_NE(refused.status().message().find(
                "a unix socket path is at most 106 bytes (hiredis 0.14), this one is 107"),
            std::string::npos)
      << refused.status().message();
  EXPECT_EQ(refused.status().message().find("s3cret"), std::string::npos);
}

TEST(RedisUrl, RejectsUnknownSchemesAndBadPorts) {
  EXPECT_FALSE(ParseRedisUrl("http://localhost").ok());
  EXPECT_FALSE(ParseRedisUrl("redis://localhost:99999").ok());
  EXPECT_FALSE(ParseRedisUrl("redis://localhost/x").ok());
  EXPECT_FALSE(ParseRedisUrl("unix://relative.sock").ok());
}

}  // namespace
}  // namespace lk
