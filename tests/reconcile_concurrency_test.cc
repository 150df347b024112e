// The reconciler and its loop with several workers: a backend whose Ensure blocks until
// the test opens a gate shows what runs beside what. Promised in
// controller/reconcile/reconcile_loop.h and reconciler.h: different lanes' reconciles
// overlap; one lane's never do, and a lane re-added while it reconciles runs again after;
// two lanes on one queue never both start a worker owner.
#include <gtest/gtest.h>

#include <chrono>
#include <condition_variable>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "controller/backend/role_backend.h"
#include "controller/reconcile/reconcile_loop.h"
#include "controller/reconcile/reconciler.h"
#include "controller/source/lane_source.h"
#include "tests/support/fake_clock.h"
#include "tests/support/fake_lane_source.h"
#include "tests/support/lane_text.h"

namespace lk {
namespace reconcile_concurrency_test {

using testing::FakeClock;

constexpr const char* kRedis = "redis://127.0.0.1:6379/0";

// Thread-safe; Ensure waits at a gate (open from the start unless Close()d), counting who
// is inside it.
class GatedBackend final : public RoleBackend {
 public:
  struct Role {
    std::string plan_hash;
    bool owns_worker = false;
    std::string identity;
  };

  void Close() {
    std::lock_guard<std::mutex> lock(mu_);
    open_ = false;
  }
  void Open() {
    {
      std::lock_guard<std::mutex> lock(mu_);
      open_ = true;
    }
    cv_.notify_all();
  }
  // Waits (up to 20 s) until pred holds, under the backend's lock.
  bool WaitFor(const std::function<bool()>& pred) {
    std::unique_lock<std::mutex> lock(mu_);
    return cv_.wait_for(lock, std::chrono::seconds(20), pred);
  }
  int inside() const { return inside_total_; }  // call under WaitFor or once idle
  int max_inside() const { return max_inside_; }
  int max_inside_one_lane() const { return max_inside_one_lane_; }
  int max_alive_owners() const { return max_alive_owners_; }
  int starts() const { return starts_; }

  bool ThreadSafe() const override { return true; }
  Status Start() override { return Status::OK(); }
  std::vector<LaneKey> Lanes() const override {
    std::lock_guard<std::mutex> lock(mu_);
    std::vector<LaneKey> out;
    for (const auto& [k, r] : roles_) out.push_back(k);
    return out;
  }
  ObservedLane Observe(const LaneKey& key) override {
    std::lock_guard<std::mutex> lock(mu_);
    ObservedLane o;
    auto it = roles_.find(key);
    if (it == roles_.end()) return o;
    for (const auto& [name, r] : it->second) {
      ObservedRole role;
      role.name = name;
      role.plan_hash = r.plan_hash;
      role.running = true;
      role.owns_worker = r.owns_worker;
      o.roles.push_back(role);
    }
    return o;
  }
  StatusOr<EnsureResult> Ensure(const LaneMeta& lane, const RolePlan&,
                                const PlannedRole& role) override {
    std::unique_lock<std::mutex> lock(mu_);
    ++inside_total_;
    max_inside_ = std::max(max_inside_, inside_total_);
    max_inside_one_lane_ = std::max(max_inside_one_lane_, ++inside_[lane.key]);
    // A worker owner counts from the moment it is asked for: a second one on its queue
    // must not be asked for while this one starts.
    if (role.owns_worker) {
      int owners = 1;
      for (const auto& [key, rs] : roles_) {
        for (const auto& [name, r] : rs) {
          if (r.owns_worker && r.identity == lane.queue_identity) ++owners;
        }
      }
      for (const auto& [key, id] : owners_starting_) {
        if (id == lane.queue_identity) ++owners;
      }
      max_alive_owners_ = std::max(max_alive_owners_, owners);
      owners_starting_[lane.key] = lane.queue_identity;
    }
    cv_.notify_all();
    cv_.wait(lock, [&] { return open_; });
    roles_[lane.key][role.name] = Role{role.hash, role.owns_worker, lane.queue_identity};
    owners_starting_.erase(lane.key);
    ++starts_;
    --inside_[lane.key];
    --inside_total_;
    cv_.notify_all();
    return EnsureResult{true, std::nullopt};
  }
  StatusOr<bool> Stop(const LaneKey& key, const std::string& role, const std::string&) override {
    std::lock_guard<std::mutex> lock(mu_);
    roles_[key].erase(role);
    return true;
  }
  bool QueueServed(const std::string& identity, const LaneKey& except) const override {
    std::lock_guard<std::mutex> lock(mu_);
    for (const auto& [key, rs] : roles_) {
      if (key == except) continue;
      for (const auto& [name, r] : rs) {
        if (r.owns_worker && r.identity == identity) return true;
      }
    }
    for (const auto& [key, id] : owners_starting_) {
      if (key != except && id == identity) return true;
    }
    return false;
  }
  Status Record(const LaneMeta&) override { return Status::OK(); }
  Status Forget(const LaneKey& key) override {
    std::lock_guard<std::mutex> lock(mu_);
    roles_.erase(key);
    return Status::OK();
  }
  void KillAll() override {}
  std::vector<int> wake_fds() const override { return {}; }
  Clock::TimePoint NextPoll() const override { return Clock::TimePoint::max(); }
  std::vector<LaneKey> Poll() override { return {}; }

 private:
  mutable std::mutex mu_;
  std::condition_variable cv_;
  bool open_ = true;
  int inside_total_ = 0;
  int max_inside_ = 0;
  int max_inside_one_lane_ = 0;
  int max_alive_owners_ = 0;
  int starts_ = 0;
  std::map<LaneKey, int> inside_;
  std::map<LaneKey, std::string> owners_starting_;  // lane -> queue identity
  std::map<LaneKey, std::map<std::string, Role>> roles_;
};

class ReconcileConcurrencyTest : public ::testing::Test {
 protected:
  void Build(int workers) {
    ReconcilerOptions r;
    r.default_redis_url = kRedis;
    r.clock = &clock_;
    r.wake = [this](const LaneKey& k) { loop_->queue().Add(k); };
    reconciler_ = std::make_unique<Reconciler>(std::move(r), source_, backend_);
    loop_ = std::make_unique<ReconcileLoop>(clock_, *reconciler_, WorkQueue::RateLimit{}, workers);
  }

  FakeClock clock_;
  testing::FakeLaneSource source_;
  GatedBackend backend_;
  std::unique_ptr<Reconciler> reconciler_;
  std::unique_ptr<ReconcileLoop> loop_;
};

TEST_F(ReconcileConcurrencyTest, DifferentLanesReconcileAtOnceAndOneLaneNeverTwiceAtOnce) {
  for (const char* name : {"a", "b", "c", "d"}) {
    source_.Set(testing::ParseLane(name, std::string("  queue: ") + name + "\n"));
  }
  Build(4);
  backend_.Close();
  for (const LaneKey& k : source_.Keys()) loop_->queue().Add(k);
  std::vector<LaneKey> done;
  std::thread round([&] { done = loop_->ProcessDue(); });
  // (a) all four lanes are inside Ensure together: their slow calls overlap.
  EXPECT_TRUE(backend_.WaitFor([&] { return backend_.inside() == 4; }))
      << "only " << backend_.inside() << " reconciles ran at once";
  // (b) a is queued again while it reconciles (a wake, a requeue): it is passed over, not
  // run beside itself, and runs once more after.
  loop_->queue().Add({"", "a"});
  backend_.Open();
  round.join();
  EXPECT_EQ(backend_.max_inside(), 4);
  EXPECT_EQ(backend_.max_inside_one_lane(), 1);
  EXPECT_EQ(loop_->counters().total, 5u) << "a ran again after its first reconcile";
  EXPECT_EQ(done.size(), 4u);
  EXPECT_EQ(backend_.starts(), 4) << "a's second reconcile found its supervisor running";
  EXPECT_EQ(loop_->queue().size(), 0u);
}

TEST_F(ReconcileConcurrencyTest, TwoLanesOnOneQueueNeverBothStartAWorkerOwner) {
  // Eight lanes, two queues, one Redis: per queue one lane is admitted and starts; the
  // other three are refused while the first still starts (the gate is shut).
  for (int i = 0; i < 8; ++i) {
    source_.Set(testing::ParseLane("lane" + std::to_string(i),
                                   std::string("  queue: q") + std::to_string(i % 2) + "\n"));
  }
  Build(8);
  backend_.Close();
  for (const LaneKey& k : source_.Keys()) loop_->queue().Add(k);
  std::thread round([&] { loop_->ProcessDue(); });
  EXPECT_TRUE(backend_.WaitFor([&] { return backend_.inside() == 2; }));
  // The six others finish while the two starts are held: each is refused, none waits for
  // the gate.
  bool refused = false;
  for (int i = 0; i < 2000 && !refused; ++i) {
    refused = reconciler_->RefusedErrors().size() == 6;
    if (!refused) std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  EXPECT_TRUE(refused) << reconciler_->RefusedErrors().size() << " lanes refused";
  backend_.Open();
  round.join();
  EXPECT_EQ(backend_.starts(), 2);
  EXPECT_EQ(backend_.max_alive_owners(), 1);
}

}  // namespace reconcile_concurrency_test
}  // namespace lk
