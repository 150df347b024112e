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

// A Lane's events mostly change what the parser never reads: its status, resourceVersion and
// finalizers. Those reuse the last parse; a change of the spec (or a secret's value) does not.
TEST(KubeLaneSource, TheLastParseIsReusedUntilTheSpecChanges) {
  std::map<std::string, kube::Json> secrets = {
      {"jobs/redis", kube::Json::parse(R"({"data": {"url": "cmVkaXM6Ly9yZWRpcy5qb2JzOjYzNzkvMA=="}})")}};
  auto lookup = [&](const std::string& key) -> const kube::Json* {
    auto it = secrets.find(key);
    return it == secrets.end() ? nullptr : &it->second;
  };
  kube::Json object = LaneObject(R"({"urlFrom": {"secretKeyRef": {"name": "redis", "key": "url"}}})");
  KubeLaneSource::ParseMemo memo;
  SourcedLane first = KubeLaneSource::ReadLane(object, lookup, &memo);
  ASSERT_TRUE(first.valid) << Errors(first);
  const std::string parsed_text = memo.text;
  ASSERT_FALSE(parsed_text.empty());

  object["metadata"]["resourceVersion"] = "42";
  object["metadata"]["finalizers"] = {"lanekeeper.dev/drain"};
  object["status"] = {{"observedGeneration", 3}};
  // A marker only the memo holds: reused, the parser is not run again.
  memo.parsed.lanes.front().queue = "from-the-memo";
  SourcedLane again = KubeLaneSource::ReadLane(object, lookup, &memo);
  ASSERT_TRUE(again.valid) << Errors(again);
  EXPECT_EQ(again.spec.queue, "from-the-memo");
  EXPECT_EQ(memo.text, parsed_text);

  // The Secret is read afresh every time, memo or not.
  secrets["jobs/redis"] = kube::Json::parse(R"({"data": {"url": "cmVkaXM6Ly9vdGhlcjo2Mzc5LzA="}})");
  EXPECT_EQ(KubeLaneSource::ReadLane(object, lookup, &memo).spec.redis_url, "redis://other:6379/0");

  object["spec"]["queue"] = "kb2";
  SourcedLane changed = KubeLaneSource::ReadLane(object, lookup, &memo);
  ASSERT_TRUE(changed.valid) << Errors(changed);
  EXPECT_EQ(changed.spec.queue, "kb2");
  EXPECT_NE(memo.text, parsed_text);
}

}  // namespace kube_lane_source_test
}  // namespace lk
