// LaneSource: where a controller's lanes come from, and where their status goes — a
// directory of spec files (SpecDirSource), or Lane objects of the Kubernetes API.
//
// A source keeps the lanes as it last read them and says which keys changed; it never
// decides what runs (the reconciler does) nor validates lanes against each other (that
// needs what already runs). It reports a lane whose text is invalid with its errors and
// no spec, so that the reconciler can keep the last good one running.
//
// Event plumbing, so that one thread can wait on everything with poll(): wake_fd() is
// readable when something may have changed, NextPoll() is when the source wants Poll()
// called anyway (a debounce, a rescan); Poll() handles both and returns the keys whose
// lane appeared, changed or disappeared. Threads: Get, Hold and Release are called by
// several reconcile workers at once (for different keys), never beside Poll (the
// controller polls between rounds of reconciles); everything else from one thread.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "controller/spec/lane_types.h"
#include "controller/status/controller_state.h"
#include "worker/clock.h"
#include "worker/status.h"

namespace lk {

// One lane as its source states it.
struct SourcedLane {
  LaneKey key;
  bool valid = false;  // spec holds the lane; false: errors say why it does not
  LaneSpec spec;
  std::vector<SpecError> errors;
  // The source's own generation (Kubernetes metadata.generation); 0 when it has none and
  // the reconciler counts changes itself.
  int64_t generation = 0;
  // Being deleted, but held until its roles are gone (a Kubernetes finalizer): the
  // reconciler treats it as gone, stops its roles, then calls Release.
  bool deleting = false;
};

class LaneSource {
 public:
  virtual ~LaneSource() = default;

  // The first full read. An error means the source cannot be used at all (a specs
  // directory that does not exist); anything less is a lane's or the source's errors.
  virtual Status Start() = 0;

  // Every lane as last read, by key.
  virtual std::vector<LaneKey> Keys() const = 0;
  // nullptr when the source has no such lane.
  virtual const SourcedLane* Get(const LaneKey& key) const = 0;
  // Problems not tied to one lane: an unreadable directory, a file that defines no lane
  // it could read.
  virtual std::vector<SpecError> Errors() const = 0;
  // Where the lanes come from, for logs and status ("/etc/lanekeeper/lanes").
  virtual std::string Describe() const = 0;

  virtual int wake_fd() const = 0;
  virtual Clock::TimePoint NextPoll() const = 0;
  virtual std::vector<LaneKey> Poll() = 0;

  // Records a lane's status where the lane's users read it (a Lane's status subresource).
  // The file source has nowhere to write it: status is served by the controller.
  virtual void PublishStatus(const LaneKey& key, const LaneState& state) {}

  // Keeps the lane's object from vanishing before its roles are gone: a Kubernetes
  // finalizer, added when the reconciler admits the lane (idempotent: called on every
  // reconcile of an admitted lane), removed once everything it ran is gone. Files need
  // neither: a deleted file's roles are stopped all the same.
  virtual Status Hold(const LaneKey& key) { return Status::OK(); }
  virtual Status Release(const LaneKey& key) { return Status::OK(); }
};

}  // namespace lk
