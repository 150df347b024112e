// KubeClient (controller/kube/kube_client.h) against the fake API server of tests/kube:
// reads and writes, errors as Statuses with the server's messages, server-side apply and
// merge patches, the status subresource, retries on conflict, timeouts.
#include "controller/kube/kube_client.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include "tests/support/fake_apiserver.h"

namespace lk::kube_client_test {

using kube::ConfigMapsRef;
using kube::Json;
using kube::KubeClient;
using kube::LanesRef;
using testing::FakeApiServer;

std::unique_ptr<KubeClient> ClientFor(const FakeApiServer& fake, kube::KubeClientOptions options = {}) {
  auto config = kube::LoadKubeconfig(fake.WriteKubeconfig());
  EXPECT_TRUE(config.ok()) << config.status().message();
  auto client = kube::NewKubeClient(*config, options);
  EXPECT_TRUE(client.ok()) << client.status().message();
  return std::move(*client);
}

Json ConfigMap(const std::string& name, Json data, Json labels = Json::object()) {
  return {{"apiVersion", "v1"},
          {"kind", "ConfigMap"},
          {"metadata", {{"name", name}, {"namespace", "default"}, {"labels", labels}}},
          {"data", data}};
}

Json LaneObject(const std::string& name, Json spec) {
  return {{"apiVersion", "lanekeeper.dev/v1alpha1"},
          {"kind", "Lane"},
          {"metadata", {{"name", name}, {"namespace", "default"}}},
          {"spec", spec}};
}

// Creates crds/lane.yaml's CRD, so that the fake serves Lanes validated by it.
void ApplyLaneCrd(KubeClient& client) {
  auto docs = testing::ReadYamlManifests(testing::SourceDir() + "/crds/lane.yaml");
  ASSERT_TRUE(docs.ok()) << docs.status().message();
  kube::ResourceRef crds{"apiextensions.k8s.io", "v1", "customresourcedefinitions", "", "", ""};
  for (const auto& doc : *docs) {
    auto created = client.Create(crds, doc);
    ASSERT_TRUE(created.ok()) << created.status().message();
  }
}

std::unique_ptr<FakeApiServer> StartFake(testing::FakeApiServerOptions options = {}) {
  auto fake = FakeApiServer::Start(options);
  EXPECT_TRUE(fake.ok()) << fake.status().message();
  return fake.ok() ? std::move(*fake) : nullptr;
}

TEST(KubeClient, CreatesGetsListsUpdatesAndDeletesAConfigMap) {
  auto fake = StartFake();
  ASSERT_TRUE(fake);
  auto client = ClientFor(*fake);
  auto cms = ConfigMapsRef("default");

  auto created = client->Create(cms, ConfigMap("a", {{"k", "1"}}, {{"lane", "x"}}));
  ASSERT_TRUE(created.ok()) << created.status().message();
  ASSERT_TRUE(client->Create(cms, ConfigMap("b", {{"k", "2"}}, {{"lane", "y"}})).ok());
  EXPECT_FALSE((*created)["metadata"].value("resourceVersion", "").empty());

  auto got = client->Get(cms.Named("a"));
  ASSERT_TRUE(got.ok()) << got.status().message();
  EXPECT_EQ((*got)["data"]["k"], "1");

  auto all = client->List(cms);
  ASSERT_TRUE(all.ok()) << all.status().message();
  EXPECT_EQ(all->items.size(), 2u);
  EXPECT_FALSE(all->resource_version.empty());
  EXPECT_EQ(all->items[0].value("kind", ""), "ConfigMap");
  auto selected = client->List(cms, {.label_selector = "lane=y"});
  ASSERT_TRUE(selected.ok());
  ASSERT_EQ(selected->items.size(), 1u);
  EXPECT_EQ(kube::ObjectKey(selected->items[0]), "default/b");
  auto paged = client->List(cms, {.page_size = 1});  // follows `continue`
  ASSERT_TRUE(paged.ok());
  EXPECT_EQ(paged->items.size(), 2u);

  Json changed = *got;
  changed["data"]["k"] = "3";
  auto updated = client->Update(cms.Named("a"), changed);
  ASSERT_TRUE(updated.ok()) << updated.status().message();
  EXPECT_EQ((*updated)["data"]["k"], "3");
  EXPECT_NE((*updated)["metadata"]["resourceVersion"], (*got)["metadata"]["resourceVersion"]);

  ASSERT_TRUE(client->Delete(cms.Named("a")).ok());
  EXPECT_TRUE(client->Get(cms.Named("a")).status().IsNotFound());
  EXPECT_TRUE(client->Delete(cms.Named("a")).IsNotFound());
}

TEST(KubeClient, ExpectedFailuresAreStatusesCarryingTheServersMessage) {
  auto fake = StartFake({.history = 3, .expired_watch_status = true});
  ASSERT_TRUE(fake);
  auto client = ClientFor(*fake);
  auto cms = ConfigMapsRef("default");

  auto missing = client->Get(cms.Named("nope"));
  EXPECT_TRUE(missing.status().IsNotFound());
  EXPECT_EQ(missing.status().message(), "GET configmaps default/nope: configmaps \"nope\" not found");

  auto first = client->Create(cms, ConfigMap("a", {{"k", "1"}}));
  ASSERT_TRUE(first.ok());
  auto again = client->Create(cms, ConfigMap("a", {{"k", "1"}}));
  EXPECT_EQ(again.status().code(), Status::Code::kConflict);
  EXPECT_NE(again.status().message().find("already exists"), std::string::npos) << again.status().message();

  Json stale = *first;
  ASSERT_TRUE(client->Update(cms.Named("a"), *first).ok());  // moves the resourceVersion on
  auto conflict = client->Update(cms.Named("a"), stale);
  EXPECT_EQ(conflict.status().code(), Status::Code::kConflict);
  EXPECT_NE(conflict.status().message().find("the object has been modified"), std::string::npos);

  // 410: a watch from a resourceVersion older than the history the fake keeps (3 events).
  for (int i = 0; i < 5; ++i) {
    ASSERT_TRUE(client->Create(cms, ConfigMap("filler-" + std::to_string(i), {{"k", "v"}})).ok());
  }
  kube::Cancellation never;
  Status gone = client->Watch(cms, {.resource_version = "1"}, [](kube::WatchEvent&&) { return true; }, never);
  EXPECT_EQ(gone.code(), Status::Code::kGone) << gone.message();
  EXPECT_NE(gone.message().find("too old resource version"), std::string::npos) << gone.message();

  // 422 with the CRD's CEL rule's message.
  ApplyLaneCrd(*client);
  auto invalid = client->Create(LanesRef("default"),
                                LaneObject("two", {{"autopilot", {{"mode", "managed-worker"}, {"repo", "/r"}}}}));
  EXPECT_EQ(invalid.status().code(), Status::Code::kInvalidArgument);
  EXPECT_NE(invalid.status().message().find("two worker owners"), std::string::npos) << invalid.status().message();
  EXPECT_EQ(invalid.status().message().rfind("POST lanes.lanekeeper.dev default/two: ", 0), 0u)
      << invalid.status().message();
}

TEST(KubeClient, UnauthorizedForbiddenAndUnreachableAreNamedWithTheVerbAndResource) {
  auto fake = StartFake({.token = "right"});
  ASSERT_TRUE(fake);
  auto config = kube::LoadKubeconfig(fake->WriteKubeconfig({.token = "wrong"}));
  ASSERT_TRUE(config.ok());
  auto client = kube::NewKubeClient(*config);
  ASSERT_TRUE(client.ok());
  auto denied = (*client)->List(ConfigMapsRef("default"));
  EXPECT_EQ(denied.status().code(), Status::Code::kFailedPrecondition);
  EXPECT_NE(denied.status().message().find("LIST configmaps in namespace default: Unauthorized"), std::string::npos)
      << denied.status().message();
  EXPECT_NE(denied.status().message().find("ServiceAccount"), std::string::npos);

  // 403: the fake authorizes everything, but refuses content in a terminating namespace.
  auto admin_config = kube::LoadKubeconfig(fake->WriteKubeconfig({.token = "right"}, "admin"));
  ASSERT_TRUE(admin_config.ok());
  auto admin = kube::NewKubeClient(*admin_config);
  ASSERT_TRUE(admin.ok());
  kube::ResourceRef namespaces{"", "v1", "namespaces", "", "", ""};
  ASSERT_TRUE((*admin)->Create(namespaces, {{"metadata", {{"name", "doomed"}}}}).ok());
  Json held = ConfigMap("held", {{"k", "v"}});  // its finalizer keeps the namespace terminating
  held["metadata"]["namespace"] = "doomed";
  held["metadata"]["finalizers"] = {"test/hold"};
  ASSERT_TRUE((*admin)->Create(ConfigMapsRef("doomed"), held).ok());
  ASSERT_TRUE((*admin)->Delete(namespaces.Named("doomed")).ok());
  auto forbidden = (*admin)->Create(ConfigMapsRef("doomed"), ConfigMap("late", {{"k", "v"}}));
  EXPECT_EQ(forbidden.status().code(), Status::Code::kFailedPrecondition);
  EXPECT_NE(forbidden.status().message().find("POST configmaps doomed/late: configmaps \"late\" is forbidden"),
            std::string::npos) << forbidden.status().message();
  EXPECT_NE(forbidden.status().message().find("check the ServiceAccount's RBAC"), std::string::npos);

  kube::KubeConfig nowhere;
  nowhere.server = fake->url();
  fake->Kill();
  auto dead = kube::NewKubeClient(nowhere);
  ASSERT_TRUE(dead.ok());
  auto unreachable = (*dead)->Get(ConfigMapsRef("default").Named("a"));
  EXPECT_TRUE(unreachable.status().IsUnavailable());
  EXPECT_NE(unreachable.status().message().find("cannot reach the API server " + fake->url()), std::string::npos)
      << unreachable.status().message();
}

TEST(KubeClient, ARequestToAServerThatNeverAnswersTimesOut) {
  // A socket that listens but never accepts: connections complete in the backlog and the
  // request is never answered.
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ASSERT_EQ(::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)), 0);
  ASSERT_EQ(::listen(fd, 16), 0);
  socklen_t len = sizeof(addr);
  ::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len);
  kube::KubeConfig config;
  config.server = "http://127.0.0.1:" + std::to_string(ntohs(addr.sin_port));
  auto client = kube::NewKubeClient(config, {.timeout = Millis(300)});
  ASSERT_TRUE(client.ok());
  auto started = std::chrono::steady_clock::now();
  auto r = (*client)->Get(ConfigMapsRef("default").Named("a"));
  auto took = std::chrono::steady_clock::now() - started;
  ::close(fd);
  EXPECT_TRUE(r.status().IsUnavailable());
  EXPECT_NE(r.status().message().find("did not answer within 0.3s"), std::string::npos) << r.status().message();
  EXPECT_LT(took, std::chrono::seconds(5));
}

TEST(KubeClient, ServerSideApplyCreatesUpdatesAndRemovesFieldsItsManagerStopsApplying) {
  auto fake = StartFake();
  ASSERT_TRUE(fake);
  auto client = ClientFor(*fake);
  auto ref = ConfigMapsRef("default").Named("applied");
  kube::PatchOptions apply{.type = kube::PatchOptions::Type::kApply, .field_manager = "lanekeeper", .force = true};

  auto created = client->Patch(ref, ConfigMap("applied", {{"a", "1"}, {"b", "2"}}), apply);
  ASSERT_TRUE(created.ok()) << created.status().message();
  EXPECT_EQ((*created)["data"], Json({{"a", "1"}, {"b", "2"}}));

  // Someone else's field survives our applies; ours that we stop sending goes.
  ASSERT_TRUE(client->Patch(ref, {{"data", {{"theirs", "x"}}}}, {.field_manager = "kubectl-edit"}).ok());
  auto updated = client->Patch(ref, ConfigMap("applied", {{"a", "10"}}), apply);
  ASSERT_TRUE(updated.ok()) << updated.status().message();
  EXPECT_EQ((*updated)["data"], Json({{"a", "10"}, {"theirs", "x"}}));

  // Without force, taking a field another manager owns is a conflict.
  auto taken = client->Patch(ref, ConfigMap("applied", {{"a", "10"}, {"theirs", "mine"}}),
                             {.type = kube::PatchOptions::Type::kApply, .field_manager = "lanekeeper"});
  EXPECT_EQ(taken.status().code(), Status::Code::kConflict) << taken.status().message();
}

TEST(KubeClient, MergePatchChangesAndRemovesFields) {
  auto fake = StartFake();
  ASSERT_TRUE(fake);
  auto client = ClientFor(*fake);
  auto cms = ConfigMapsRef("default");
  ASSERT_TRUE(client->Create(cms, ConfigMap("m", {{"a", "1"}, {"b", "2"}})).ok());
  auto patched = client->Patch(cms.Named("m"), {{"data", {{"a", "3"}, {"b", nullptr}}},
                                                {"metadata", {{"labels", {{"l", "v"}}}}}});
  ASSERT_TRUE(patched.ok()) << patched.status().message();
  EXPECT_EQ((*patched)["data"], Json({{"a", "3"}}));
  EXPECT_EQ((*patched)["metadata"]["labels"]["l"], "v");
  EXPECT_TRUE(client->Patch(cms.Named("absent"), {{"data", {{"a", "1"}}}}).status().IsNotFound());
}

TEST(KubeClient, TheStatusSubresourceChangesStatusOnlyAndNeverTheGeneration) {
  auto fake = StartFake();
  ASSERT_TRUE(fake);
  auto client = ClientFor(*fake);
  ApplyLaneCrd(*client);
  auto lanes = LanesRef("default");
  auto created = client->Create(lanes, LaneObject("a", {{"queue", "q"}}));
  ASSERT_TRUE(created.ok()) << created.status().message();
  EXPECT_EQ((*created)["metadata"]["generation"], 1);

  Json with_status = *created;
  with_status["status"] = {{"observedGeneration", 1}, {"owner", "supervisor pod-1"}};
  with_status["spec"]["queue"] = "ignored-on-status";
  auto status = client->UpdateStatus(lanes.Named("a"), with_status);
  ASSERT_TRUE(status.ok()) << status.status().message();
  EXPECT_EQ((*status)["status"]["owner"], "supervisor pod-1");
  EXPECT_EQ((*status)["spec"]["queue"], "q");
  EXPECT_EQ((*status)["metadata"]["generation"], 1);

  Json spec_change = *status;
  spec_change["spec"]["queue"] = "q2";
  spec_change["status"]["owner"] = "ignored-on-the-main-resource";
  auto updated = client->Update(lanes.Named("a"), spec_change);
  ASSERT_TRUE(updated.ok()) << updated.status().message();
  EXPECT_EQ((*updated)["metadata"]["generation"], 2);
  EXPECT_EQ((*updated)["status"]["owner"], "supervisor pod-1");
}

TEST(KubeClient, GetModifyUpdateRereadsAndRetriesAConflict) {
  auto fake = StartFake();
  ASSERT_TRUE(fake);
  auto client = ClientFor(*fake);
  auto ref = ConfigMapsRef("default").Named("counter");
  ASSERT_TRUE(client->Create(ConfigMapsRef("default"), ConfigMap("counter", {{"n", "0"}, {"other", "x"}})).ok());
  int attempts = 0;
  auto stored = kube::GetModifyUpdate(*client, ref, [&](Json& cm) {
    if (++attempts == 1) {
      // Another writer gets in between our read and our write.
      EXPECT_TRUE(client->Patch(ref, {{"data", {{"other", "y"}}}}).ok());
    }
    cm["data"]["n"] = "1";
    return Status::OK();
  });
  ASSERT_TRUE(stored.ok()) << stored.status().message();
  EXPECT_EQ(attempts, 2);
  EXPECT_EQ((*stored)["data"], Json({{"n", "1"}, {"other", "y"}}));

  int calls = 0;
  Status always = kube::RetryOnConflict([&] {
    ++calls;
    return Status::Conflict("still stale");
  }, 3);
  EXPECT_EQ(always.code(), Status::Code::kConflict);
  EXPECT_EQ(calls, 3);
}

TEST(KubeClient, DeleteHonoursPreconditions) {
  auto fake = StartFake();
  ASSERT_TRUE(fake);
  auto client = ClientFor(*fake);
  auto cms = ConfigMapsRef("default");
  auto created = client->Create(cms, ConfigMap("d", {{"k", "v"}}));
  ASSERT_TRUE(created.ok());
  Status wrong = client->Delete(cms.Named("d"), {.precondition_uid = "not-its-uid"});
  EXPECT_EQ(wrong.code(), Status::Code::kConflict) << wrong.message();
  Status right = client->Delete(cms.Named("d"), {.propagation_policy = "Foreground",
                                                 .precondition_uid = (*created)["metadata"]["uid"]});
  EXPECT_TRUE(right.ok()) << right.message();
}

}  // namespace lk::kube_client_test
