// LeaderElector (controller/kube/leader_elector.h) against the fake API server's Leases:
// one leader of two; takeover within the lease duration once the leader stops renewing; a
// leader that cannot renew stops acting within the renew deadline, before anyone else could
// take over; a clean stop hands over at once. Stepped with a fake clock (the elector's
// decisions), then once with real threads and the real clock.
#include "controller/kube/leader_elector.h"

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <thread>

#include "tests/support/child_process.h"
#include "tests/support/fake_apiserver.h"
#include "tests/support/fake_clock.h"
#include "tests/support/interruptible_kube_client.h"

namespace lk::kube_leader_election_test {

using kube::KubeClient;
using kube::LeaderElector;
using testing::FakeApiServer;
using testing::FakeClock;
using testing::InterruptibleKubeClient;

struct Cluster {
  std::unique_ptr<FakeApiServer> fake;
  std::unique_ptr<KubeClient> client;
};

Cluster StartCluster() {
  Cluster c;
  auto fake = FakeApiServer::Start();
  EXPECT_TRUE(fake.ok()) << fake.status().message();
  if (!fake.ok()) return c;
  c.fake = std::move(*fake);
  auto config = kube::LoadKubeconfig(c.fake->WriteKubeconfig());
  EXPECT_TRUE(config.ok());
  auto client = kube::NewKubeClient(*config, {.timeout = Millis(5'000)});
  EXPECT_TRUE(client.ok());
  c.client = std::move(*client);
  return c;
}

kube::LeaderElectionOptions Options(const std::string& identity, const Clock* clock) {
  return {.lease_namespace = "default", .lease_name = "lanekeeper-controller", .identity = identity, .clock = clock};
}

kube::Json LeaseSpec(KubeClient& client) {
  auto lease = client.Get(kube::LeasesRef("default").Named("lanekeeper-controller"));
  EXPECT_TRUE(lease.ok()) << lease.status().message();
  return lease.ok() ? (*lease)["spec"] : kube::Json();
}

TEST(KubeClientLeaderElection, OfTwoElectorsOneLeadsAndKeepsLeading) {
  Cluster c = StartCluster();
  ASSERT_TRUE(c.client);
  FakeClock clock;
  LeaderElector a(*c.client, Options("a", &clock));
  LeaderElector b(*c.client, Options("b", &clock));
  EXPECT_TRUE(a.TryAcquireOrRenew());
  EXPECT_FALSE(b.TryAcquireOrRenew());
  for (int i = 0; i < 20; ++i) {  // 40 s of renewals: far past the lease duration
    clock.Advance(Millis(2'000));
    EXPECT_TRUE(a.TryAcquireOrRenew());
    EXPECT_FALSE(b.TryAcquireOrRenew());
    EXPECT_TRUE(a.is_leader());
    EXPECT_FALSE(b.is_leader());
  }
  EXPECT_EQ(b.observed_holder(), "a");
  kube::Json spec = LeaseSpec(*c.client);
  EXPECT_EQ(spec["holderIdentity"], "a");
  EXPECT_EQ(spec["leaseDurationSeconds"], 15);
  EXPECT_EQ(spec["leaseTransitions"], 0);
}

TEST(KubeClientLeaderElection, WhenTheLeaderStopsRenewingTheOtherTakesOverWithinTheLeaseDuration) {
  Cluster c = StartCluster();
  ASSERT_TRUE(c.client);
  FakeClock clock;
  LeaderElector a(*c.client, Options("a", &clock));
  LeaderElector b(*c.client, Options("b", &clock));
  ASSERT_TRUE(a.TryAcquireOrRenew());
  const auto last_renewal = clock.Now();
  ASSERT_FALSE(b.TryAcquireOrRenew());
  // a is killed: it renews no more. b keeps trying every retry period.
  std::optional<Clock::TimePoint> b_leads;
  for (int i = 0; i < 20 && !b_leads; ++i) {
    clock.Advance(Millis(2'000));
    if (b.TryAcquireOrRenew()) {
      b_leads = clock.Now();
      EXPECT_FALSE(a.is_leader()) << "two leaders";
    }
  }
  ASSERT_TRUE(b_leads.has_value());
  EXPECT_GE(*b_leads - last_renewal, Millis(15'000));
  EXPECT_LE(*b_leads - last_renewal, Millis(15'000 + 2'000));
  kube::Json spec = LeaseSpec(*c.client);
  EXPECT_EQ(spec["holderIdentity"], "b");
  EXPECT_EQ(spec["leaseTransitions"], 1);
  // The old leader, back, finds the lease taken.
  EXPECT_FALSE(a.TryAcquireOrRenew());
  EXPECT_EQ(a.observed_holder(), "b");
}

TEST(KubeClientLeaderElection, ALeaderThatCannotRenewStopsActingWithinTheRenewDeadline) {
  Cluster c = StartCluster();
  ASSERT_TRUE(c.client);
  FakeClock clock;
  InterruptibleKubeClient partitioned(*c.client);
  int started = 0, stopped = 0;
  auto options = Options("a", &clock);
  options.on_started_leading = [&] { ++started; };
  options.on_stopped_leading = [&] { ++stopped; };
  LeaderElector a(partitioned, options);
  LeaderElector b(*c.client, Options("b", &clock));
  ASSERT_TRUE(a.TryAcquireOrRenew());
  EXPECT_EQ(started, 1);
  const auto last_renewal = clock.Now();
  ASSERT_FALSE(b.TryAcquireOrRenew());

  partitioned.Interrupt();
  for (int i = 0; i < 4; ++i) {  // 8 s of failed renewals: still inside the deadline
    clock.Advance(Millis(2'000));
    EXPECT_FALSE(a.TryAcquireOrRenew());
    EXPECT_TRUE(a.is_leader());
    EXPECT_FALSE(b.TryAcquireOrRenew());
  }
  clock.AdvanceTo(last_renewal + Millis(9'999));
  EXPECT_TRUE(a.is_leader());
  clock.AdvanceTo(last_renewal + Millis(10'000));
  EXPECT_FALSE(a.is_leader()) << "is_leader() must turn false by itself, with no attempt";
  EXPECT_EQ(stopped, 0);
  EXPECT_FALSE(a.TryAcquireOrRenew());
  EXPECT_EQ(stopped, 1);
  // Nobody else could have taken it yet: that takes a full lease duration.
  EXPECT_FALSE(b.TryAcquireOrRenew());
  clock.AdvanceTo(last_renewal + Millis(15'000));
  EXPECT_TRUE(b.TryAcquireOrRenew());
  EXPECT_FALSE(a.is_leader());
}

TEST(KubeClientLeaderElection, ACleanStopReleasesTheLeaseAndAnotherTakesOverAtOnce) {
  Cluster c = StartCluster();
  ASSERT_TRUE(c.client);
  FakeClock clock;
  int stopped = 0;
  auto options = Options("a", &clock);
  options.on_stopped_leading = [&] { ++stopped; };
  LeaderElector a(*c.client, options);
  LeaderElector b(*c.client, Options("b", &clock));
  ASSERT_TRUE(a.TryAcquireOrRenew());
  ASSERT_FALSE(b.TryAcquireOrRenew());
  a.Stop();
  EXPECT_FALSE(a.is_leader());
  EXPECT_EQ(stopped, 1);
  EXPECT_EQ(LeaseSpec(*c.client)["holderIdentity"], "");
  clock.Advance(Millis(2'000));
  EXPECT_TRUE(b.TryAcquireOrRenew());
  EXPECT_EQ(LeaseSpec(*c.client)["leaseTransitions"], 1);
}

// Two started electors on the real clock, with short durations; sampled every 10 ms, never
// two leaders. The leader is cut off the API server: it stops leading within its renew
// deadline, and the other leads within the lease duration (plus its retry jitter).
TEST(KubeClientLeaderElection, StartedElectorsOnTheRealClockNeverLeadTogether) {
  Cluster c = StartCluster();
  ASSERT_TRUE(c.client);
  InterruptibleKubeClient link_a(*c.client), link_b(*c.client);
  auto timing = [](const std::string& id) {
    kube::LeaderElectionOptions o = Options(id, nullptr);
    o.lease_duration = Millis(2'000);
    o.renew_deadline = Millis(1'200);
    o.retry_period = Millis(200);
    return o;
  };
  std::atomic<int> a_started{0}, b_started{0};
  auto oa = timing("a"), ob = timing("b");
  oa.on_started_leading = [&] { ++a_started; };
  ob.on_started_leading = [&] { ++b_started; };
  LeaderElector a(link_a, oa);
  LeaderElector b(link_b, ob);
  a.Start();
  b.Start();
  bool both = false;
  auto sample_until = [&](const std::function<bool()>& done, std::chrono::milliseconds limit) {
    auto deadline = std::chrono::steady_clock::now() + limit;
    while (std::chrono::steady_clock::now() < deadline) {
      if (a.is_leader() && b.is_leader()) both = true;
      if (done()) return true;
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    return false;
  };
  ASSERT_TRUE(sample_until([&] { return a.is_leader() || b.is_leader(); }, std::chrono::seconds(5)));
  sample_until([] { return false; }, std::chrono::milliseconds(1'500));  // steady for a while
  LeaderElector& leader = a.is_leader() ? a : b;
  LeaderElector& other = a.is_leader() ? b : a;
  InterruptibleKubeClient& leader_link = a.is_leader() ? link_a : link_b;
  EXPECT_FALSE(other.is_leader());

  const auto cut = std::chrono::steady_clock::now();
  leader_link.Interrupt();
  ASSERT_TRUE(sample_until([&] { return !leader.is_leader(); }, std::chrono::seconds(3)));
  EXPECT_LE(std::chrono::steady_clock::now() - cut, Millis(1'200 + 100));
  ASSERT_TRUE(sample_until([&] { return other.is_leader(); }, std::chrono::seconds(5)));
  // Lease duration after its last observation of the old renewal, plus up to 2.2 retry
  // periods of jittered waiting, plus the scheduler.
  EXPECT_LE(std::chrono::steady_clock::now() - cut, Millis(2'000 + 440 + 600));
  EXPECT_FALSE(both) << "two leaders at once";
  EXPECT_EQ(a_started + b_started, 2);
  a.Stop();
  b.Stop();
}

}  // namespace lk::kube_leader_election_test
