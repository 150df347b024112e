// KubeStatusWriter: writes Lanes' status subresources, off the controller's thread.
//
// The controller reconciles lanes on a few worker threads; reading a lane's Redis and
// patching its status there would stall them (1000 lanes, a slow Redis). So PublishStatus only hands
// the lane's state to this writer: a queue with at most one entry per lane (a newer state of
// a lane waiting replaces the older one: controller-runtime's deduplicating work queue,
// bounded by the number of lanes), drained by a few threads, never two on one lane at once.
// Each entry: read the lane's Redis (LaneObserver: owner lease, workers, counts), compute the
// conditions and the status (controller/source/kube_lane_status.h), and when it differs from
// what the Lane holds, merge-patch lanes/NAME/status (no resourceVersion: the status is
// ours alone). A condition whose status flipped becomes a core/v1 Event on the Lane (Normal;
// Warning when it turned bad: Ready or OwnerElected False, Degraded True, SpecValid False).
//
// While may_act() is false (another replica leads) nothing is written, and what was known
// of the Lanes' statuses is forgotten (the leader writes them meanwhile).
// Owns: its threads, the queue, a LaneObserver (Redis connections). Does not own: the
// client (must outlive it). Thread-safe.
#pragma once

#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "controller/kube/kube_client.h"
#include "controller/source/kube_lane_status.h"
#include "controller/status/controller_state.h"
#include "controller/status/lane_observer.h"

namespace lk {

struct KubeStatusWriterOptions {
  kube::KubeClient* client = nullptr;  // required
  // Writers: each waits on a Redis read and an API request, so a few keep up with a burst
  // of lanes (the controller's start, a resync) without a thread per lane.
  int threads = 3;
  std::function<bool()> may_act;  // empty: always
  // Redis reads are reused this long: enough to spare a Redis a burst of one lane's events,
  // short enough that a lease taken just before a pod turns ready is seen when it does.
  LaneObserverOptions observer{Millis(500), Millis(2'000), Millis(250), Millis(5 * 60'000)};
  bool events = true;
  std::string reporting_instance;  // the controller replica, for Events
};

struct KubeStatusWriterStats {
  int64_t published = 0;  // states handed over
  int64_t written = 0;    // status patches that succeeded
  int64_t unchanged = 0;  // states whose status was already so
  int64_t failed = 0;     // patches the API server refused or could not take
  int64_t events = 0;     // Events created
};

class KubeStatusWriter {
 public:
  // What is known of one lane when its state is handed over.
  struct Lane {
    LaneKey key;
    std::string uid;
    int64_t generation = 0;       // the Lane's metadata.generation the state is of
    LaneState state;
    kube::Json current_status;    // the Lane's status as its informer last saw it
  };

  explicit KubeStatusWriter(KubeStatusWriterOptions options);
  ~KubeStatusWriter();  // Stop()
  KubeStatusWriter(const KubeStatusWriter&) = delete;
  KubeStatusWriter& operator=(const KubeStatusWriter&) = delete;

  void Start();
  // Drops what waits and joins the threads (a write in flight finishes).
  void Stop();

  void Publish(Lane lane);
  // The Lane is gone: forget what was written.
  void Forget(const LaneKey& key);

  KubeStatusWriterStats stats() const;
  // Lanes waiting or being written.
  size_t backlog() const;

 private:
  void Run();
  void Write(const Lane& lane);
  void Emit(const Lane& lane, const std::vector<ConditionTransition>& transitions);

  KubeStatusWriterOptions o_;
  kube::KubeClient& client_;
  LaneObserver observer_;
  mutable std::mutex mu_;
  std::condition_variable cv_;
  bool stopping_ = false;
  std::map<LaneKey, Lane> pending_;
  std::deque<LaneKey> order_;        // pending keys, oldest first
  std::set<LaneKey> in_flight_;
  std::map<LaneKey, kube::Json> written_;  // the status each Lane holds, as we last wrote it
  KubeStatusWriterStats stats_;
  std::vector<std::thread> threads_;
};

}  // namespace lk
