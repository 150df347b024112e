// LeaderElector: one of several controller replicas acts at a time, by holding a
// coordination.k8s.io/v1 Lease (client-go's leaderelection, with its defaults: lease
// duration 15 s, renew deadline 10 s, retry period 2 s).
//
// Every retry period each replica reads the Lease and
//   - creates it holding it when there is none;
//   - takes it when it is free (holderIdentity "", after a clean release) or expired: its
//     record (holder, renewTime, ...) has not changed for leaseDurationSeconds *as measured
//     by our own clock since we first saw that record* — never by comparing renewTime with
//     our wall clock, so clock skew between hosts does not matter;
//   - renews it (renewTime) when it holds it.
// Writes are updates conditional on the resourceVersion read: a 409 means another replica
// wrote first, and it wins. Taking it from another holder increments leaseTransitions.
//
// Safety: is_leader() is true only until renew deadline after the start of the last
// successful acquire or renew, computed from the clock at each call — so it turns false on
// time even when the elector's thread is stuck in a request. Another replica can only take
// the lease a full lease duration after it saw our last renewal, which is later than that:
// the deadline is shorter than the lease (10 s < 15 s), so no two replicas ever both see
// is_leader() true. on_stopped_leading fires on the elector's thread when it notices.
//
// Owns: its thread, the lease's record. Does not own: the client or the clock (both must
// outlive it). Thread-safe. Stop() (and the destructor) releases a held lease, so that a
// clean shutdown hands over within a retry period instead of a lease duration.
#pragma once

#include <functional>
#include <memory>
#include <string>

#include "controller/kube/kube_client.h"
#include "worker/clock.h"
#include "worker/duration.h"
#include "worker/status.h"

namespace lk::kube {

struct LeaderElectionOptions {
  std::string lease_namespace{};
  std::string lease_name{};  // e.g. "lanekeeper-controller"
  std::string identity{};    // "": DefaultLeaderIdentity()
  Millis lease_duration{15'000};  // how long others wait before taking an unrenewed lease
  Millis renew_deadline{10'000};  // how long the leader keeps acting without a renewal
  Millis retry_period{2'000};     // between attempts (acquiring: jittered up to +120 %)
  // Called on the elector's thread; keep them short (set a flag, write an eventfd).
  std::function<void()> on_started_leading{};
  std::function<void()> on_stopped_leading{};
  // Decisions use this clock (waits between attempts are real time). nullptr: the system's.
  const Clock* clock = nullptr;
};

// $POD_NAME when set (the Downward API), else "hostname:pid".
std::string DefaultLeaderIdentity();

class LeaderElector {
 public:
  LeaderElector(KubeClient& client, LeaderElectionOptions options);
  ~LeaderElector();
  LeaderElector(const LeaderElector&) = delete;
  LeaderElector& operator=(const LeaderElector&) = delete;

  // Starts the thread that tries every retry period. Call once.
  void Start();
  // Stops trying and releases the lease if held (on_stopped_leading fires). Idempotent.
  void Stop();

  bool is_leader() const;
  const std::string& identity() const;
  // The holder as last read ("" when free or not read yet).
  std::string observed_holder() const;

  // One attempt to acquire or renew, as the thread makes every retry period; returns
  // whether this replica holds the lease now. For tests that step a fake clock without
  // Start(); do not mix with a started elector.
  bool TryAcquireOrRenew();
  // Gives the lease up if held: is_leader() turns false (on_stopped_leading fires) before
  // the lease is written with holderIdentity "", so that another may take it at once.
  Status Release();

 private:
  class Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace lk::kube
