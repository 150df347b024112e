// SerialRoleBackend: a RoleBackend that is not thread-safe (ProcessBackend), made safe for
// a controller with several reconcile workers by letting one call in at a time. Its calls
// are local and quick (a fork, a signal, a state file), so holding them in line costs
// little; the reconciler's own work still overlaps. A backend whose calls are slow (API
// round trips) takes its own finer lock instead and says so with ThreadSafe().
// Owns: the lock. Does not own: the backend (must outlive it).
#pragma once

#include <mutex>
#include <string>
#include <vector>

#include "controller/backend/role_backend.h"

namespace lk {

class SerialRoleBackend final : public RoleBackend {
 public:
  explicit SerialRoleBackend(RoleBackend& backend) : b_(backend) {}

  bool ThreadSafe() const override { return true; }
  Status Start() override { return Locked([&] { return b_.Start(); }); }
  std::vector<LaneKey> Lanes() const override { return Locked([&] { return b_.Lanes(); }); }
  ObservedLane Observe(const LaneKey& lane) override {
    return Locked([&] { return b_.Observe(lane); });
  }
  StatusOr<EnsureResult> Ensure(const LaneMeta& lane, const RolePlan& plan,
                                const PlannedRole& role) override {
    return Locked([&] { return b_.Ensure(lane, plan, role); });
  }
  StatusOr<bool> Stop(const LaneKey& lane, const std::string& role,
                      const std::string& why) override {
    return Locked([&] { return b_.Stop(lane, role, why); });
  }
  bool QueueServed(const std::string& queue_identity, const LaneKey& except) const override {
    return Locked([&] { return b_.QueueServed(queue_identity, except); });
  }
  Status Record(const LaneMeta& lane) override { return Locked([&] { return b_.Record(lane); }); }
  Status Forget(const LaneKey& lane) override { return Locked([&] { return b_.Forget(lane); }); }
  void KillAll() override { Locked([&] { b_.KillAll(); }); }
  std::vector<int> wake_fds() const override { return Locked([&] { return b_.wake_fds(); }); }
  Clock::TimePoint NextPoll() const override { return Locked([&] { return b_.NextPoll(); }); }
  std::vector<LaneKey> Poll() override { return Locked([&] { return b_.Poll(); }); }

 private:
  template <typename F>
  auto Locked(F f) const -> decltype(f()) {
    std::lock_guard<std::mutex> lock(mu_);
    return f();
  }

  RoleBackend& b_;
  mutable std::mutex mu_;
};

}  // namespace lk
