// Reconciler: makes one lane's roles what its spec asks — controller-runtime's
// Reconcile(request) -> result, for lanes. Every call has the same shape:
//
//   1. read the world: the lane as its source states it, what the backend runs for it
//   2. gone (no such lane, being deleted, or the controller is stopping)? stop every role;
//      once they are all gone, forget the lane and release its object; done
//   3. compute the desired roles: admit the spec (and hold its object), PlanRoles
//   4. already so? every planned role runs at its hash and nothing else runs: done
//   5. act: stop what is not planned or runs an old hash; start what is planned and does
//      not run — a worker-owning role only once no other worker owner of its queue, of
//      this lane or another, is alive
//   6. requeue when waiting on time (a restart backoff)
//
// Level-triggered: it never asks what woke it (a file changed, a process died, a periodic
// resync), and may be called again for the same key at any time. Rules it keeps, as
// docs/controller.md states them:
//   - never two worker owners on a queue: a successor starts after its predecessor is gone
//   - an invalid edit keeps the last good spec running (SpecValid=False says why); a lane
//     whose text is invalid and that this controller never admitted (it restarted since)
//     keeps whatever runs for it: stopping it could only make things worse
//   - a lane that would share a queue of one Redis with an admitted lane is not started;
//     it is reconciled again when that queue is freed
//   - the generation counts spec changes (the source's own when it has one)
//
// Concurrency: Reconcile may run for different keys on several threads at once (the
// ReconcileLoop's workers), never for one key twice at once. It decides under one lock
// and acts outside it: the cross-lane records (which lane is admitted on which queue,
// which lanes wait for one, every lane's status) are read and changed under mu_, while
// the slow calls — the backend's Ensure and Stop, the source's Hold and Release, each an
// API round trip in Kubernetes — run unlocked, so that those of different lanes overlap.
// The rules hold because (a) a queue has one admitted lane at a time (Admit, under mu_),
// and only that lane's reconcile starts a worker owner on it; (b) the check "does another
// lane still serve the queue" and "then wait for it" are one step under mu_, as is
// WakeWaiters, so a wake is never lost between them; (c) a lane's own record changes
// only in its own reconcile. The source and the backend must answer Get, Observe and
// QueueServed from several threads (the backend takes its own lock; mu_ is taken before
// it, never after); the caller does not Poll them while a round of reconciles runs.
// Owns: per lane, the admitted spec, its hash and generation, and the lane's status. Does
// not own: processes or pods (RoleBackend), spec text (LaneSource), time (Clock), the
// work queue (the caller requeues as the result says; `wake` asks for other keys, and may
// be called from any worker). States(), State(), RefusedErrors() and
// spec_change_restarts() are for the caller between rounds.
#pragma once

#include <atomic>
#include <functional>
#include <map>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "controller/backend/role_backend.h"
#include "controller/source/lane_source.h"
#include "controller/status/controller_state.h"
#include "worker/clock.h"
#include "worker/duration.h"
#include "worker/status.h"

namespace lk {

struct ReconcileResult {
  std::optional<Millis> requeue_after;  // nullopt: nothing to wait for
};

struct ReconcilerOptions {
  std::string default_redis_url;  // for lanes without spec.redis.url
  const Clock* clock = nullptr;   // nullptr: SystemClock()
  // Asks for another lane to be reconciled: one that waited for a queue this reconcile
  // freed. Required.
  std::function<void(const LaneKey&)> wake;
};

class Reconciler {
 public:
  Reconciler(ReconcilerOptions options, LaneSource& source, RoleBackend& backend);

  // An error is a failed action (the backend could not start or stop a role): the caller
  // requeues the key with its failure backoff.
  StatusOr<ReconcileResult> Reconcile(const LaneKey& key);

  // From now on every lane counts as gone: each reconcile stops its roles (the controller
  // is shutting down).
  void StopAll() { stopping_all_ = true; }

  // The status of every lane that runs or is admitted, after its last reconcile, by key.
  std::vector<LaneState> States() const;
  // One lane's status after its last reconcile; nullptr when it has none (never
  // reconciled, or forgotten).
  const LaneState* State(const LaneKey& key) const;
  // The errors of lanes that neither run nor were admitted (a lane refused on its first
  // appearance: its queue is taken, or its text is invalid).
  std::vector<SpecError> RefusedErrors() const;
  // Roles restarted because their spec changed, by lane: lanekeeper_role_restarts_total.
  const std::map<std::string, uint64_t>& spec_change_restarts() const {
    return spec_change_restarts_;
  }

 private:
  struct LaneRecord {
    bool admitted = false;
    LaneSpec spec;  // the admitted spec, with the effective Redis URL filled in
    std::string spec_hash;
    std::string identity;  // IdentifyQueue(...).Key() of the admitted spec
    int64_t generation = 0;
  };

  // Decides the spec the lane runs: the source's, or the last admitted one when the
  // source's is invalid or takes another lane's queue. Sets *errors to why not. mu_ held
  // (as for Unindex and SetStatus).
  void Admit(const LaneKey& key, const SourcedLane& sourced, const ObservedLane& observed,
             LaneRecord& record, std::vector<SpecError>& errors);
  void Unindex(const LaneKey& key, LaneRecord& record);
  // Stops every role; true once all are gone.
  StatusOr<bool> StopEverything(const LaneKey& key, const ObservedLane& observed,
                                const std::string& why);
  StatusOr<ReconcileResult> Converge(const LaneKey& key, const LaneRecord& record,
                                     const ObservedLane& observed);
  void SetStatus(const LaneKey& key, const SourcedLane* sourced, const LaneRecord* record,
                 const ObservedLane& observed, std::vector<SpecError> errors,
                 const std::string& failure);
  // Wakes lanes that waited for a queue that is free now. mu_ held.
  void WakeWaiters();

  ReconcilerOptions o_;
  const Clock& clock_;
  LaneSource& source_;
  RoleBackend& backend_;
  std::atomic<bool> stopping_all_{false};
  mutable std::mutex mu_;  // guards everything below
  std::map<LaneKey, LaneRecord> records_;
  std::map<std::string, LaneKey> queue_owners_;  // identity -> the lane admitted on it
  std::map<std::string, std::set<LaneKey>> waiting_;  // identity -> lanes waiting for it
  std::map<LaneKey, LaneState> states_;
  std::set<LaneKey> refused_;  // in states_, but neither running nor admitted
  std::map<std::string, uint64_t> spec_change_restarts_;
};

}  // namespace lk
