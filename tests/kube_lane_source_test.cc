// KubeLaneSource::ReadLane: how a Lane object from the API server becomes a lane or an
// error. No server: the object and the Secrets are JSON in the test.
#include <gtest/gtest.h>

#include <map>
#include <string>

#include "controller/source/kube_lane_source.h"

namespace lk {
namespace kube_lane_source_test {

kube::Json LaneObject(const std::string& redis) {
  return kube::Json::parse(R"({"apiVersion": "lanekeeper.dev/v1alpha1", "kind": "Lane",
    "metadata": {"name": "kb", "namespace": "jobs", "generation": 3},
    "spec": {"queue": "kb", "redis": )" + redis + "}}");
}

SourcedLane Read(const kube::Json& object, const std::map<std::string, kube::Json>& secrets = {}) {
  return KubeLaneSource::ReadLane(object, [&](const std::string& key) -> const kube::Json* {
    auto it = secrets.find(key);
    return it == secrets.end() ? nullptr : &it->second;
  });
}

std::string Errors(const SourcedLane& l) {
  std::string out;
  for (const auto& e : l.errors) out += e.ToString() + "\n";
  return out;
}

TEST(KubeLaneSource, TheRedisUrlComesFromTheNamedSecret) {
  // "redis://:pw@redis.jobs:6379/0", base64.
  std::map<std::string, kube::Json> secrets = {
      {"jobs/redis", kube::Json::parse(R"({"data": {"url": "cmVkaXM6Ly86cHdAcmVkaXMuam9iczo2Mzc5LzA="}})")}};
  SourcedLane l = Read(LaneObject(R"({"urlFrom": {"secretKeyRef": {"name": "redis", "key": "url"}}})"), secrets);
  ASSERT_TRUE(l.valid) << Errors(l);
  EXPECT_EQ(l.key.ToString(), "jobs/kb");
  EXPECT_EQ(l.generation, 3);
  EXPECT_EQ(l.spec.redis_url, "redis://:pw@redis.jobs:6379/0");
}

TEST(KubeLaneSource, AnInlinePasswordIsRefusedAndNeverEchoed) {
  SourcedLane l = Read(LaneObject(R"({"url": "redis://:s3cret@redis:6379/0"})"));
  EXPECT_FALSE(l.valid);
  const std::string errors = Errors(l);
  EXPECT_NE(errors.find("spec.redis.url"), std::string::npos) << errors;
  EXPECT_NE(errors.find("spec.redis.urlFrom.secretKeyRef"), std::string::npos) << errors;
  EXPECT_EQ(errors.find("s3cret"), std::string::npos) << errors;
}

// A Lane object must not make the controller read a file of its choosing.
TEST(KubeLaneSource, APasswordFileIsRefusedInACluster) {
  SourcedLane l = Read(LaneObject(R"({"url": "redis://redis:6379/0", "passwordFile": "/etc/shadow"})"));
  EXPECT_FALSE(l.valid);
  const std::string errors = Errors(l);
  EXPECT_NE(errors.find("spec.redis.passwordFile: is for lanes from files only"), std::string::npos)
      << errors;
}

}  // namespace kube_lane_source_test
}  // namespace lk
