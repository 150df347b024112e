// The reconciler as a unit: a fake source, a fake backend and a fake clock; no processes,
// no Redis, no sleeping. What it must do, as docs/controller.md promises it: start what a
// new lane needs, stop an old role before its successor starts, keep the last good lane
// when an edit is invalid, never start a lane on a taken queue, hand a queue from one lane
// to another without overlap, and never stop what a restarted controller adopted only
// because the spec is now invalid.
#include <gtest/gtest.h>

#include <algorithm>
#include <map>
#include <string>
#include <vector>

#include "controller/spec/lane_set.h"
#include "controller/backend/role_backend.h"
#include "controller/reconcile/reconcile_loop.h"
#include "controller/reconcile/reconciler.h"
#include "controller/reconcile/role_plan.h"
#include "controller/source/lane_source.h"
#include "tests/support/fake_clock.h"
#include "tests/support/fake_lane_source.h"
#include "tests/support/lane_text.h"

namespace lk {
// Named, not anonymous: the unity build compiles several test files as one.
namespace reconciler_test {


using testing::FakeClock;
using testing::FakeLaneSource;
using testing::Keys;

constexpr const char* kDefaultRedis = "redis://127.0.0.1:6379/0";

LaneSpec Spec(const std::string& name, const std::string& spec_body) {
  return testing::ParseLane(name, spec_body);
}

// Roles as records. A stop takes effect when the test says the role is gone (Gone), so a
// test sees what the reconciler does while a role still stops. Every call is logged.
class FakeBackend final : public RoleBackend {
 public:
  struct Role {
    std::string plan_hash;
    bool stopping = false;
    bool owns_worker = false;
    std::string identity;
    int64_t generation = 0;
    bool adopted = false;
  };

  std::map<LaneKey, std::map<std::string, Role>> roles;
  std::map<LaneKey, LaneMeta> records;
  std::vector<std::string> log;  // "start kb/supervisor", "stop kb/supervisor", "forget kb"
  int fail_ensures = 0;          // the next this many Ensure calls fail
  int max_alive_owners = 0;      // the most worker owners alive at once, on any one queue

  void Gone(const LaneKey& key, const std::string& role) {
    roles[key].erase(role);
    log.push_back("gone " + key.name + "/" + role);
  }
  // Every role that was asked to stop is gone.
  void StopsComplete() {
    for (auto& [key, rs] : roles) {
      for (auto it = rs.begin(); it != rs.end();) {
        if (it->second.stopping) {
          log.push_back("gone " + key.name + "/" + it->first);
          it = rs.erase(it);
        } else {
          ++it;
        }
      }
    }
  }
  bool Runs(const LaneKey& key, const std::string& role) const {
    auto l = roles.find(key);
    return l != roles.end() && l->second.count(role) && !l->second.at(role).stopping;
  }
  size_t Starts(const std::string& what) const {
    return std::count(log.begin(), log.end(), "start " + what);
  }

  Status Start() override { return Status::OK(); }
  std::vector<LaneKey> Lanes() const override {
    std::vector<LaneKey> out;
    for (const auto& [k, r] : roles) out.push_back(k);
    return out;
  }
  ObservedLane Observe(const LaneKey& key) override {
    ObservedLane o;
    if (auto r = records.find(key); r != records.end()) {
      o.spec_hash = r->second.spec_hash;
      o.generation = r->second.generation;
      o.queue = r->second.queue;
      o.redis_url = r->second.redis_url;
    }
    for (const auto& [name, r] : roles[key]) {
      ObservedRole role;
      role.name = name;
      role.plan_hash = r.plan_hash;
      role.running = !r.stopping;
      role.stopping = r.stopping;
      role.generation = r.generation;
      role.owns_worker = r.owns_worker;
      role.adopted = r.adopted;
      o.roles.push_back(role);
    }
    return o;
  }
  StatusOr<EnsureResult> Ensure(const LaneMeta& lane, const RolePlan& plan,
                                const PlannedRole& role) override {
    if (fail_ensures > 0) {
      --fail_ensures;
      log.push_back("failed start " + lane.key.name + "/" + role.name);
      return Status::Internal("cannot start " + role.name + ": no such file");
    }
    EXPECT_EQ(roles[lane.key].count(role.name), 0u) << "started over a live " << role.name;
    roles[lane.key][role.name] =
        Role{role.hash, false, role.owns_worker, lane.queue_identity, lane.generation};
    records[lane.key] = lane;
    log.push_back("start " + lane.key.name + "/" + role.name);
    CountOwners();
    return EnsureResult{true, std::nullopt};
  }
  StatusOr<bool> Stop(const LaneKey& key, const std::string& role, const std::string&) override {
    auto it = roles[key].find(role);
    if (it == roles[key].end()) return true;
    if (!it->second.stopping) log.push_back("stop " + key.name + "/" + role);
    it->second.stopping = true;
    return false;
  }
  bool QueueServed(const std::string& identity, const LaneKey& except) const override {
    for (const auto& [key, rs] : roles) {
      if (key == except) continue;
      for (const auto& [name, r] : rs) {
        if (r.owns_worker && r.identity == identity) return true;
      }
    }
    return false;
  }
  Status Record(const LaneMeta& lane) override {
    records[lane.key] = lane;
    return Status::OK();
  }
  Status Forget(const LaneKey& key) override {
    EXPECT_TRUE(roles[key].empty()) << "forgot a lane with live roles";
    roles.erase(key);
    records.erase(key);
    log.push_back("forget " + key.name);
    return Status::OK();
  }
  void KillAll() override {}
  std::vector<int> wake_fds() const override { return {}; }
  Clock::TimePoint NextPoll() const override { return Clock::TimePoint::max(); }
  std::vector<LaneKey> Poll() override { return {}; }

 private:
  void CountOwners() {
    std::map<std::string, int> by_queue;
    for (const auto& [key, rs] : roles) {
      for (const auto& [name, r] : rs) {
        if (r.owns_worker) max_alive_owners = std::max(max_alive_owners, ++by_queue[r.identity]);
      }
    }
  }
};

class ReconcilerTest : public ::testing::Test {
 protected:
  ReconcilerTest()
      : reconciler_(ReconcilerOptions{kDefaultRedis, &clock_,
                                      [this](const LaneKey& k) { woken_.push_back(k); }},
                    source_, backend_) {}

  ReconcileResult Reconcile(const std::string& name) {
    auto r = reconciler_.Reconcile({"", name});
    EXPECT_TRUE(r.ok()) << r.status().message();
    return r.ok() ? *r : ReconcileResult{};
  }
  const LaneState* State(const std::string& name) {
    static std::vector<LaneState> states;
    states = reconciler_.States();
    for (const auto& s : states) {
      if (s.name == name) return &s;
    }
    return nullptr;
  }
  std::string PlanHash(const LaneSpec& spec, const std::string& role) {
    LaneSpec s = spec;
    if (s.redis_url.empty()) s.redis_url = kDefaultRedis;
    return PlanRoles(s).Find(role)->hash;
  }

  FakeClock clock_;
  FakeLaneSource source_;
  FakeBackend backend_;
  std::vector<LaneKey> woken_;
  Reconciler reconciler_;
};

const LaneKey kKb{"", "kb"};

TEST_F(ReconcilerTest, ANewLaneGetsItsSupervisorAtThePlansHash) {
  LaneSpec kb = Spec("kb", "  queue: q\n  supervisor: {concurrency: 2}\n");
  source_.Set(kb);
  EXPECT_FALSE(Reconcile("kb").requeue_after);
  ASSERT_TRUE(backend_.Runs(kKb, "supervisor"));
  EXPECT_EQ(backend_.roles[kKb]["supervisor"].plan_hash, PlanHash(kb, "supervisor"));
  EXPECT_EQ(backend_.records[kKb].generation, 1);
  // Already so: a second reconcile changes nothing.
  Reconcile("kb");
  EXPECT_EQ(backend_.log, std::vector<std::string>{"start kb/supervisor"});
  ASSERT_NE(State("kb"), nullptr);
  EXPECT_EQ(State("kb")->observed_generation, 1);
}

TEST_F(ReconcilerTest, TheBackendIsToldWhichSecretALanesRedisUrlComesFrom) {
  // A source that reads Secrets fills in the URL for the controller's own reads and keeps
  // the reference, so that a backend running roles in pods can hand them the Secret rather
  // than the URL.
  LaneSpec kb = Spec("kb", "  queue: q\n  redis: {urlFrom: {secretKeyRef: {name: redis, key: url}}}\n");
  kb.redis_url = "redis://:pw@10.0.0.5:6379/0";
  source_.Set(kb);
  Reconcile("kb");
  ASSERT_TRUE(backend_.Runs(kKb, "supervisor"));
  EXPECT_EQ(backend_.records[kKb].redis_url_from, (SecretKeyRef{"redis", "url"}));
  EXPECT_EQ(backend_.records[kKb].redis_url, "redis://:pw@10.0.0.5:6379/0");

  LaneSpec inline_url = Spec("other", "  queue: q2\n  redis: {url: 'redis://10.0.0.5:6379/1'}\n");
  source_.Set(inline_url);
  Reconcile("other");
  const LaneKey other{"", "other"};
  EXPECT_TRUE(backend_.records[other].redis_url_from.empty());
}

TEST_F(ReconcilerTest, AnEditStopsTheOldRoleAndStartsTheNewOneOnlyOnceItIsGone) {
  source_.Set(Spec("kb", "  queue: q\n  supervisor: {concurrency: 1}\n"));
  Reconcile("kb");
  source_.Set(Spec("kb", "  queue: q\n  supervisor: {concurrency: 3}\n"));
  Reconcile("kb");
  Reconcile("kb");  // however often it runs meanwhile
  EXPECT_EQ(backend_.log, (std::vector<std::string>{"start kb/supervisor", "stop kb/supervisor"}));
  EXPECT_EQ(State("kb")->generation, 2);
  EXPECT_EQ(State("kb")->observed_generation, 1);
  backend_.Gone(kKb, "supervisor");
  Reconcile("kb");
  EXPECT_EQ(backend_.log.back(), "start kb/supervisor");
  EXPECT_EQ(backend_.max_alive_owners, 1);
  EXPECT_EQ(backend_.roles[kKb]["supervisor"].generation, 2);
  EXPECT_EQ(State("kb")->observed_generation, 2);
  EXPECT_EQ(reconciler_.spec_change_restarts().at("kb"), 1u);
}

// Which roles an edit restarts: exactly those whose plan changed.
struct EditCase {
  const char* name;
  const char* before;
  const char* after;
  std::vector<std::string> stopped;
  std::vector<std::string> started;  // after the stopped ones are gone
};

class ReconcilerEditTest : public ReconcilerTest,
                           public ::testing::WithParamInterface<EditCase> {};

TEST_P(ReconcilerEditTest, RestartsExactlyTheRolesWhosePlanChanged) {
  const EditCase& c = GetParam();
  source_.Set(Spec("kb", c.before));
  Reconcile("kb");
  backend_.log.clear();
  source_.Set(Spec("kb", c.after));
  Reconcile("kb");
  std::vector<std::string> stopped;
  for (const auto& l : backend_.log) {
    if (l.starts_with("stop kb/")) stopped.push_back(l.substr(8));
  }
  EXPECT_EQ(stopped, c.stopped);
  backend_.StopsComplete();
  Reconcile("kb");
  std::vector<std::string> started;
  for (const auto& l : backend_.log) {
    if (l.starts_with("start kb/")) started.push_back(l.substr(9));
  }
  EXPECT_EQ(started, c.started);
  EXPECT_LE(backend_.max_alive_owners, 1);
}

INSTANTIATE_TEST_SUITE_P(
    Edits, ReconcilerEditTest,
    ::testing::Values(
        EditCase{"concurrency", "  queue: q\n  supervisor: {concurrency: 1}\n",
                 "  queue: q\n  supervisor: {concurrency: 2}\n", {"supervisor"}, {"supervisor"}},
        EditCase{"interval",
                 "  queue: q\n  autopilot: {repo: /r, interval: 5m}\n",
                 "  queue: q\n  autopilot: {repo: /r, interval: 10m}\n", {"autopilot"}, {"autopilot"}},
        EditCase{"handlers",
                 "  queue: q\n  autopilot: {repo: /r}\n  handlers: {a: {command: [x]}}\n",
                 "  queue: q\n  autopilot: {repo: /r}\n  handlers: {a: {command: [y]}}\n",
                 {"supervisor"}, {"supervisor"}},
        EditCase{"autopilot_off",
                 "  queue: q\n  autopilot: {repo: /r}\n",
                 "  queue: q\n  autopilot: {mode: \"off\"}\n", {"autopilot"}, {}},
        EditCase{"managed_worker_to_supervisor",
                 "  queue: q\n  supervisor: {enabled: false}\n"
                 "  autopilot: {mode: managed-worker, repo: /r}\n",
                 "  queue: q\n  autopilot: {repo: /r}\n", {"autopilot"},
                 {"supervisor", "autopilot"}},
        EditCase{"unchanged", "  queue: q\n", "  queue: q\n", {}, {}}),
    [](const ::testing::TestParamInfo<EditCase>& i) { return std::string(i.param.name); });

TEST_F(ReconcilerTest, AManagedWorkerAutopilotHandsTheWorkerToASupervisorWithoutOverlap) {
  source_.Set(Spec("kb", "  queue: q\n  supervisor: {enabled: false}\n"
                         "  autopilot: {mode: managed-worker, repo: /r}\n"));
  Reconcile("kb");
  source_.Set(Spec("kb", "  queue: q\n  autopilot: {repo: /r}\n"));
  Reconcile("kb");
  // The old autopilot owns the worker until it is gone: neither the supervisor nor the
  // new (dispatch-only) autopilot starts yet.
  EXPECT_FALSE(backend_.Runs(kKb, "supervisor"));
  backend_.Gone(kKb, "autopilot");
  Reconcile("kb");
  EXPECT_TRUE(backend_.Runs(kKb, "supervisor"));
  EXPECT_TRUE(backend_.Runs(kKb, "autopilot"));
  EXPECT_EQ(backend_.max_alive_owners, 1);
}

TEST_F(ReconcilerTest, ADeletedLaneIsStoppedAndForgottenOnceItsRolesAreGone) {
  source_.Set(Spec("kb", "  queue: q\n  autopilot: {repo: /r}\n"));
  Reconcile("kb");
  source_.Remove(kKb);
  Reconcile("kb");
  EXPECT_EQ(std::count(backend_.log.begin(), backend_.log.end(), "forget kb"), 0);
  ASSERT_NE(State("kb"), nullptr) << "a lane still stopping is shown";
  backend_.StopsComplete();
  Reconcile("kb");
  EXPECT_EQ(backend_.log.back(), "forget kb");
  EXPECT_EQ(State("kb"), nullptr);
  Reconcile("kb");  // not found is an ordinary answer: nothing more happens
  EXPECT_EQ(backend_.log.back(), "forget kb");
}

TEST_F(ReconcilerTest, AnInvalidEditKeepsTheLastGoodLaneRunning) {
  LaneSpec good = Spec("kb", "  queue: q\n  supervisor: {concurrency: 2}\n");
  source_.Set(good);
  Reconcile("kb");
  source_.SetInvalid(kKb, "must be 1 to 1024, got 0");
  Reconcile("kb");
  EXPECT_EQ(backend_.log, std::vector<std::string>{"start kb/supervisor"});
  const LaneState* s = State("kb");
  ASSERT_NE(s, nullptr);
  EXPECT_EQ(s->spec.supervisor.worker.concurrency, 2) << "the last good spec is shown";
  ASSERT_EQ(s->spec_errors.size(), 1u);
  EXPECT_EQ(s->spec_errors[0].message, "must be 1 to 1024, got 0");
  EXPECT_EQ(s->generation, 1);
  // Fixed: converges to the new spec.
  source_.Set(Spec("kb", "  queue: q\n  supervisor: {concurrency: 4}\n"));
  Reconcile("kb");
  backend_.StopsComplete();
  Reconcile("kb");
  EXPECT_EQ(backend_.Starts("kb/supervisor"), 2u);
  EXPECT_TRUE(State("kb")->spec_errors.empty());
}

TEST_F(ReconcilerTest, ALaneOnATakenQueueIsNotStartedUntilTheQueueIsFree) {
  source_.Set(Spec("kb", "  queue: q\n"));
  Reconcile("kb");
  // Another spelling of the same Redis is the same Redis.
  source_.Set(Spec("other", "  queue: q\n  redis: {url: 'redis://localhost:6379/0'}\n"));
  Reconcile("other");
  EXPECT_EQ(backend_.Starts("other/supervisor"), 0u);
  EXPECT_EQ(State("other"), nullptr) << "a refused lane is not a running lane";
  auto refused = reconciler_.RefusedErrors();
  ASSERT_EQ(refused.size(), 1u);
  EXPECT_EQ(refused[0].field, "spec.queue");
  EXPECT_NE(refused[0].message.find("lane 'kb' (kb.yaml:5:10) already uses queue 'q' on "
                                    "redis://127.0.0.1:6379/0"),
            std::string::npos) << refused[0].message;
  // kb goes: once its supervisor is gone, other is woken and starts.
  source_.Remove(kKb);
  Reconcile("kb");
  EXPECT_TRUE(woken_.empty()) << "kb's supervisor still stops";
  backend_.StopsComplete();
  Reconcile("kb");
  ASSERT_EQ(woken_, Keys({"other"}));
  Reconcile("other");
  EXPECT_EQ(backend_.Starts("other/supervisor"), 1u);
  EXPECT_EQ(backend_.max_alive_owners, 1);
}

TEST_F(ReconcilerTest, AQueueHandedToANewLaneWaitsUntilTheOldOwnerIsGone) {
  source_.Set(Spec("a", "  queue: q\n"));
  Reconcile("a");
  // In one edit of the directory: a's file removed, b's added, on the same queue.
  source_.Remove({"", "a"});
  source_.Set(Spec("b", "  queue: q\n"));
  Reconcile("a");  // a lets go of the queue; its supervisor stops
  Reconcile("b");  // b is admitted, but a's supervisor still serves the queue
  EXPECT_EQ(backend_.Starts("b/supervisor"), 0u);
  EXPECT_TRUE(State("b") != nullptr);
  backend_.StopsComplete();
  Reconcile("a");  // gone: forgotten, and b is woken
  ASSERT_EQ(woken_, Keys({"b"}));
  Reconcile("b");
  EXPECT_EQ(backend_.Starts("b/supervisor"), 1u);
  EXPECT_EQ(backend_.max_alive_owners, 1);
}

TEST_F(ReconcilerTest, ARestartedControllerKeepsAdoptedRolesWhenTheSpecIsNowInvalid) {
  // What an earlier controller started, as the backend adopted it.
  LaneSpec old = Spec("kb", "  queue: q\n");
  backend_.roles[kKb]["supervisor"] = {PlanHash(old, "supervisor"), false, true,
                                       IdentifyQueue(kDefaultRedis, "q").Key(), 3, true};
  backend_.records[kKb] = {kKb, "h", 3, "q", kDefaultRedis, ""};
  source_.SetInvalid(kKb, "must be 1 to 1024, got 0");
  Reconcile("kb");
  Reconcile("kb");
  EXPECT_TRUE(backend_.log.empty()) << backend_.log.front();
  EXPECT_TRUE(backend_.Runs(kKb, "supervisor"));
  const LaneState* s = State("kb");
  ASSERT_NE(s, nullptr) << "a lane that runs is shown";
  EXPECT_EQ(s->spec.queue, "q");
  EXPECT_EQ(s->generation, 3);
  ASSERT_EQ(s->spec_errors.size(), 1u);
  ASSERT_EQ(s->roles.size(), 1u);
  EXPECT_EQ(s->roles[0].state, "running");
}

TEST_F(ReconcilerTest, ARestartedControllerAdoptsRolesOfTheSameSpecWithoutRestartingThem) {
  LaneSpec kb = Spec("kb", "  queue: q\n");
  LaneSpec effective = kb;
  effective.redis_url = kDefaultRedis;
  backend_.roles[kKb]["supervisor"] = {PlanHash(kb, "supervisor"), false, true,
                                       IdentifyQueue(kDefaultRedis, "q").Key(), 4, true};
  backend_.records[kKb] = {kKb, ContentHash(effective.SpecJson()), 4, "q", kDefaultRedis, ""};
  source_.Set(kb);
  Reconcile("kb");
  EXPECT_TRUE(backend_.log.empty()) << backend_.log.front();
  EXPECT_EQ(State("kb")->generation, 4);
  EXPECT_EQ(State("kb")->observed_generation, 4);
}

TEST_F(ReconcilerTest, StopAllStopsEveryLaneAndForgetsEachOnceGone) {
  source_.Set(Spec("a", "  queue: qa\n"));
  source_.Set(Spec("b", "  queue: qb\n  autopilot: {repo: /r}\n"));
  Reconcile("a");
  Reconcile("b");
  reconciler_.StopAll();
  Reconcile("a");
  Reconcile("b");
  EXPECT_FALSE(backend_.Runs({"", "a"}, "supervisor"));
  EXPECT_FALSE(backend_.Runs({"", "b"}, "autopilot"));
  backend_.StopsComplete();
  Reconcile("a");
  Reconcile("b");
  EXPECT_TRUE(backend_.roles.empty());
  EXPECT_TRUE(reconciler_.States().empty());
}

TEST_F(ReconcilerTest, AFailingBackendCallIsRetriedWithAGrowingBackoffThenForgotten) {
  ReconcileLoop loop(clock_, reconciler_);
  source_.Set(Spec("kb", "  queue: q\n"));
  backend_.fail_ensures = 4;
  loop.queue().Add(kKb);
  std::vector<int64_t> delays;
  auto start = clock_.Now();
  for (int i = 0; i < 5; ++i) {
    EXPECT_EQ(loop.ProcessDue().size(), 1u);
    auto due = loop.queue().NextDue();
    if (due == Clock::TimePoint::max()) break;
    delays.push_back(std::chrono::duration_cast<Millis>(due - clock_.Now()).count());
    clock_.AdvanceTo(due);
  }
  // controller-runtime's per-item limiter: 5 ms doubling.
  EXPECT_EQ(delays, (std::vector<int64_t>{5, 10, 20, 40}));
  EXPECT_TRUE(backend_.Runs(kKb, "supervisor"));
  EXPECT_EQ(loop.queue().Failures(kKb), 0) << "a success resets the backoff";
  EXPECT_EQ(loop.counters().errors, 4u);
  EXPECT_EQ(loop.counters().total, 5u);
  EXPECT_EQ(std::chrono::duration_cast<Millis>(clock_.Now() - start).count(), 75);
  const LaneState* s = State("kb");
  ASSERT_NE(s, nullptr);
  EXPECT_TRUE(s->last_reconcile_error.empty());
}

TEST_F(ReconcilerTest, AFailureIsShownInTheLanesStatus) {
  source_.Set(Spec("kb", "  queue: q\n"));
  backend_.fail_ensures = 1;
  EXPECT_FALSE(reconciler_.Reconcile(kKb).ok());
  ASSERT_NE(State("kb"), nullptr);
  EXPECT_EQ(State("kb")->last_reconcile_error, "cannot start supervisor: no such file");
}

}  // namespace reconciler_test
}  // namespace lk
