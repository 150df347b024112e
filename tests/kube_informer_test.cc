// Informer (controller/kube/informer.h) against the fake API server: the first list, the
// watch's adds, updates and deletes as net changes per key, bookmarks, relists after 410
// (both forms) that lose nothing made while the watch was down, reconnection with
// client-go's backoff after the server was killed, and a prompt stop.
#include "controller/kube/informer.h"

#include <poll.h>

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <mutex>
#include <thread>

#include "tests/support/child_process.h"
#include "tests/support/fake_apiserver.h"
#include "tests/support/interruptible_kube_client.h"

namespace lk::kube_informer_test {

using kube::ConfigMapsRef;
using kube::InformerChange;
using kube::Json;
using kube::KubeClient;
using testing::Eventually;
using testing::FakeApiServer;
using ChangeType = kube::InformerChange::Type;

Json NamedConfigMap(const std::string& ns, const std::string& name, const std::string& value) {
  return {{"apiVersion", "v1"},
          {"kind", "ConfigMap"},
          {"metadata", {{"name", name}, {"namespace", ns}}},
          {"data", {{"v", value}}}};
}

std::unique_ptr<KubeClient> ClientOf(const FakeApiServer& fake) {
  auto config = kube::LoadKubeconfig(fake.WriteKubeconfig());
  EXPECT_TRUE(config.ok());
  auto client = kube::NewKubeClient(*config, {.timeout = Millis(5'000)});
  EXPECT_TRUE(client.ok());
  return std::move(*client);
}

// Waits until the informer's wake_fd is readable, then takes its changes; accumulates
// until pred holds over everything taken so far (or 10 s pass).
std::vector<InformerChange> TakeUntil(kube::Informer& informer,
                                      const std::function<bool(const std::vector<InformerChange>&)>& pred) {
  std::vector<InformerChange> all;
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  while (!pred(all) && std::chrono::steady_clock::now() < deadline) {
    pollfd p{informer.wake_fd(), POLLIN, 0};
    ::poll(&p, 1, 100);
    for (auto& c : informer.TakeChanges()) all.push_back(c);
  }
  return all;
}

bool Has(const std::vector<InformerChange>& changes, ChangeType type, const std::string& key) {
  for (const auto& c : changes) {
    if (c.type == type && c.key == key) return true;
  }
  return false;
}

TEST(KubeClientInformer, ListsFirstThenDeliversAddsUpdatesAndDeletesAsNetChangesPerKey) {
  auto fake = FakeApiServer::Start();
  ASSERT_TRUE(fake.ok()) << fake.status().message();
  auto client = ClientOf(**fake);
  auto cms = ConfigMapsRef("default");
  ASSERT_TRUE(client->Create(cms, NamedConfigMap("default", "before", "1")).ok());

  kube::Informer informer(*client, {.resource = cms});
  informer.Start();
  ASSERT_TRUE(informer.WaitForSync(Millis(10'000)).ok());
  EXPECT_TRUE(informer.synced());
  auto first = informer.TakeChanges();
  ASSERT_EQ(first.size(), 1u);
  EXPECT_EQ(first[0].type, ChangeType::kAdded);
  EXPECT_EQ(first[0].key, "default/before");
  ASSERT_TRUE(informer.Get("default/before").has_value());
  EXPECT_EQ((*informer.Get("default/before"))["data"]["v"], "1");

  ASSERT_TRUE(client->Create(cms, NamedConfigMap("default", "new", "1")).ok());
  ASSERT_TRUE(client->Patch(cms.Named("before"), {{"data", {{"v", "2"}}}}).ok());
  ASSERT_TRUE(client->Create(cms, NamedConfigMap("default", "brief", "1")).ok());
  ASSERT_TRUE(client->Delete(cms.Named("brief")).ok());
  ASSERT_TRUE(client->Create(cms, NamedConfigMap("default", "last", "1")).ok());
  auto changes = TakeUntil(informer, [](const auto& c) { return Has(c, ChangeType::kAdded, "default/last"); });
  EXPECT_TRUE(Has(changes, ChangeType::kAdded, "default/new"));
  EXPECT_TRUE(Has(changes, ChangeType::kModified, "default/before"));
  // Created and deleted between two takes: nothing to tell (or, if taken in between, both).
  EXPECT_EQ(Has(changes, ChangeType::kAdded, "default/brief"), Has(changes, ChangeType::kDeleted, "default/brief"));
  EXPECT_EQ((*informer.Get("default/before"))["data"]["v"], "2");

  ASSERT_TRUE(client->Delete(cms.Named("new")).ok());
  changes = TakeUntil(informer, [](const auto& c) { return Has(c, ChangeType::kDeleted, "default/new"); });
  EXPECT_TRUE(Has(changes, ChangeType::kDeleted, "default/new"));
  EXPECT_FALSE(informer.Get("default/new").has_value());
  std::vector<std::string> keys = informer.Keys();
  EXPECT_EQ(keys, (std::vector<std::string>{"default/before", "default/last"}));
  EXPECT_EQ(informer.List().size(), 2u);
  EXPECT_EQ(informer.stats().lists, 1);
}

TEST(KubeClientInformer, BookmarksAdvanceTheResourceVersionWithoutAChange) {
  auto fake = FakeApiServer::Start({.bookmark_interval_ms = 200});
  ASSERT_TRUE(fake.ok()) << fake.status().message();
  auto client = ClientOf(**fake);
  kube::Informer informer(*client, {.resource = ConfigMapsRef("default"), .label_selector = "watched=yes"});
  informer.Start();
  ASSERT_TRUE(informer.WaitForSync(Millis(10'000)).ok());
  informer.TakeChanges();
  // A change the informer does not select moves the server's resourceVersion on.
  auto other = client->Create(ConfigMapsRef("default"), NamedConfigMap("default", "unwatched", "1"));
  ASSERT_TRUE(other.ok());
  const int64_t other_rv = std::stoll((*other)["metadata"]["resourceVersion"].get<std::string>());
  EXPECT_TRUE(Eventually([&] { return std::stoll(informer.resource_version()) >= other_rv; }, std::chrono::seconds(5)))
      << informer.resource_version() << " < " << other_rv;
  EXPECT_TRUE(informer.TakeChanges().empty());
  EXPECT_TRUE(informer.Keys().empty());
}

// The watch goes down; while it is, more changes than the fake's history holds happen
// (one object deleted, one added, one changed); the next watch from the old
// resourceVersion is answered 410 — an ERROR event, or an HTTP 410 — and the informer
// relists and delivers exactly those changes.
void RelistAfterGoneLosesNothing(bool expired_as_http_status) {
  auto fake = FakeApiServer::Start({.history = 3, .expired_watch_status = expired_as_http_status});
  ASSERT_TRUE(fake.ok()) << fake.status().message();
  auto real = ClientOf(**fake);
  testing::InterruptibleKubeClient cutter(*real);
  auto cms = ConfigMapsRef("default");
  ASSERT_TRUE(real->Create(cms, NamedConfigMap("default", "stays", "1")).ok());
  ASSERT_TRUE(real->Create(cms, NamedConfigMap("default", "goes", "1")).ok());
  ASSERT_TRUE(real->Create(cms, NamedConfigMap("default", "changes", "1")).ok());

  std::atomic<int> failures{0};
  kube::Informer informer(cutter, {.resource = cms,
                                   .on_failure = [&](const Status&, Millis) { ++failures; }});
  informer.Start();
  ASSERT_TRUE(informer.WaitForSync(Millis(10'000)).ok());
  informer.TakeChanges();
  cutter.Interrupt(testing::InterruptibleKubeClient::Cut::kWatches);
  ASSERT_TRUE(Eventually([&] { return failures > 0; }, std::chrono::seconds(5)));
  ASSERT_TRUE(real->Delete(cms.Named("goes")).ok());
  ASSERT_TRUE(real->Create(cms, NamedConfigMap("default", "arrives", "1")).ok());
  ASSERT_TRUE(real->Patch(cms.Named("changes"), {{"data", {{"v", "2"}}}}).ok());
  for (int i = 0; i < 4; ++i) {  // push the informer's version out of the history
    ASSERT_TRUE(real->Create(ConfigMapsRef("kube-system"), NamedConfigMap("kube-system", "f" + std::to_string(i), "x")).ok());
  }
  cutter.Restore();

  auto changes = TakeUntil(informer, [](const auto& c) {
    return Has(c, ChangeType::kDeleted, "default/goes") && Has(c, ChangeType::kAdded, "default/arrives") &&
           Has(c, ChangeType::kModified, "default/changes");
  });
  EXPECT_TRUE(Has(changes, ChangeType::kDeleted, "default/goes"));
  EXPECT_TRUE(Has(changes, ChangeType::kAdded, "default/arrives"));
  EXPECT_TRUE(Has(changes, ChangeType::kModified, "default/changes"));
  EXPECT_FALSE(Has(changes, ChangeType::kModified, "default/stays"));
  EXPECT_EQ(informer.Keys(), (std::vector<std::string>{"default/arrives", "default/changes", "default/stays"}));
  EXPECT_EQ((*informer.Get("default/changes"))["data"]["v"], "2");
  EXPECT_GE(informer.stats().relists_after_gone, 1);
  EXPECT_GE(informer.stats().lists, 2);

  // And the new watch carries on from the relist.
  ASSERT_TRUE(real->Create(cms, NamedConfigMap("default", "after", "1")).ok());
  changes = TakeUntil(informer, [](const auto& c) { return Has(c, ChangeType::kAdded, "default/after"); });
  EXPECT_TRUE(Has(changes, ChangeType::kAdded, "default/after"));
}

TEST(KubeClientInformer, AnExpiredWatchAsAnErrorEventRelistsAndLosesNoChange) {
  RelistAfterGoneLosesNothing(false);
}

TEST(KubeClientInformer, AnExpiredWatchAsAnHttp410RelistsAndLosesNoChange) {
  RelistAfterGoneLosesNothing(true);
}

TEST(KubeClientInformer, ADroppedWatchResumesFromTheLastResourceVersion) {
  auto fake = FakeApiServer::Start();
  ASSERT_TRUE(fake.ok()) << fake.status().message();
  auto real = ClientOf(**fake);
  testing::InterruptibleKubeClient cutter(*real);
  auto cms = ConfigMapsRef("default");
  std::atomic<int> failures{0};
  kube::Informer informer(cutter, {.resource = cms, .on_failure = [&](const Status&, Millis) { ++failures; }});
  informer.Start();
  ASSERT_TRUE(informer.WaitForSync(Millis(10'000)).ok());
  cutter.Interrupt(testing::InterruptibleKubeClient::Cut::kWatches);
  ASSERT_TRUE(Eventually([&] { return failures > 0; }, std::chrono::seconds(5)));
  ASSERT_TRUE(real->Create(cms, NamedConfigMap("default", "while-down", "1")).ok());
  cutter.Restore();
  auto changes = TakeUntil(informer, [](const auto& c) { return Has(c, ChangeType::kAdded, "default/while-down"); });
  EXPECT_TRUE(Has(changes, ChangeType::kAdded, "default/while-down"));
  EXPECT_EQ(informer.stats().lists, 1);  // from the history: no relist needed
}

TEST(KubeClientInformer, AKilledAndRestartedServerIsReconnectedToWithBackoff) {
  auto fake = FakeApiServer::Start({.bookmark_interval_ms = 200});
  ASSERT_TRUE(fake.ok()) << fake.status().message();
  auto client = ClientOf(**fake);
  struct Failure {
    std::chrono::steady_clock::time_point at;
    Millis retry_in;
    std::string message;
  };
  std::mutex mu;
  std::vector<Failure> failures;
  kube::Informer informer(*client, {.resource = ConfigMapsRef("default"),
                                    .on_failure = [&](const Status& s, Millis retry_in) {
                                      std::lock_guard<std::mutex> lock(mu);
                                      failures.push_back({std::chrono::steady_clock::now(), retry_in, s.message()});
                                    }});
  informer.Start();
  ASSERT_TRUE(informer.WaitForSync(Millis(10'000)).ok());

  (*fake)->Kill();
  auto count = [&] {
    std::lock_guard<std::mutex> lock(mu);
    return failures.size();
  };
  ASSERT_TRUE(Eventually([&] { return count() >= 3; }, std::chrono::seconds(30)));
  ASSERT_TRUE((*fake)->Restart().ok());
  {
    std::lock_guard<std::mutex> lock(mu);
    // 800 ms doubling, each with up to 100 % jitter: [800, 1600), [1600, 3200), [3200, 6400)...
    for (size_t i = 0; i < 3; ++i) {
      const int64_t base = 800LL << i;
      EXPECT_GE(failures[i].retry_in.count(), base) << i;
      EXPECT_LT(failures[i].retry_in.count(), 2 * base) << i;
      EXPECT_NE(failures[i].message.find("cannot reach the API server"), std::string::npos) << failures[i].message;
    }
    // And it really waited that long between tries (a little slack for the scheduler).
    for (size_t i = 1; i < 3; ++i) {
      EXPECT_GE(failures[i].at - failures[i - 1].at, failures[i - 1].retry_in - Millis(50)) << i;
    }
  }
  // Reconnected (a bookmark from the new server clears the failure); changes flow again.
  ASSERT_TRUE(Eventually([&] { return informer.last_failure().ok(); }, std::chrono::seconds(30)));
  informer.TakeChanges();
  auto created = client->Create(ConfigMapsRef("default"), NamedConfigMap("default", "after-restart", "1"));
  ASSERT_TRUE(created.ok()) << created.status().message();
  auto changes = TakeUntil(informer, [](const auto& c) { return Has(c, ChangeType::kAdded, "default/after-restart"); });
  EXPECT_TRUE(Has(changes, ChangeType::kAdded, "default/after-restart"));
}

TEST(KubeClientInformer, StopsPromptlyWhileAWatchIsOpenAndWhileBackingOff) {
  auto fake = FakeApiServer::Start();
  ASSERT_TRUE(fake.ok()) << fake.status().message();
  auto client = ClientOf(**fake);
  {
    auto informer = std::make_unique<kube::Informer>(*client, kube::InformerOptions{.resource = ConfigMapsRef("")});
    informer->Start();
    ASSERT_TRUE(informer->WaitForSync(Millis(10'000)).ok());
    std::this_thread::sleep_for(std::chrono::milliseconds(300));  // the watch is open
    auto started = std::chrono::steady_clock::now();
    informer.reset();
    EXPECT_LT(std::chrono::steady_clock::now() - started, std::chrono::seconds(2));
  }
  (*fake)->Kill();
  auto informer = std::make_unique<kube::Informer>(*client, kube::InformerOptions{.resource = ConfigMapsRef("")});
  informer->Start();
  Status never = informer->WaitForSync(Millis(1'000));
  EXPECT_TRUE(never.IsUnavailable());
  EXPECT_NE(never.message().find("cannot reach the API server"), std::string::npos) << never.message();
  auto started = std::chrono::steady_clock::now();
  informer.reset();
  EXPECT_LT(std::chrono::steady_clock::now() - started, std::chrono::seconds(2));
}

}  // namespace lk::kube_informer_test
