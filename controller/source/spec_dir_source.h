// SpecDirSource: the lanes of a directory of spec files (*.yaml, *.yml; one or more Lane
// documents each) — what `lanekeeper controller --specs DIR` reconciles.
//
// Watches with inotify and rescans every rescan_every as a safety net. Editors write a
// file in several steps, so a change is read debounce after the last event. The watch
// survives the directory being removed and created again, or replaced by a rename (the
// parent directory is watched for the name): inotify watches an inode, not a path, so the
// watch is renewed whenever the name may point elsewhere.
//
// What it reports:
//   - a lane of a file that parses: valid, with its spec;
//   - the lanes a file defined at its last good read, when it no longer parses: invalid,
//     with the file's errors (the reconciler keeps their last good spec running);
//   - a file that never parsed, or a second definition of a lane name: in Errors();
//   - a directory that is gone or unreadable: every lane as it was, the problem in
//     Errors(). A missing directory is not "every lane deleted".
// Owns: the inotify descriptor and its watches. Not thread-safe (one controller thread).
#pragma once

#include <map>
#include <memory>
#include <string>
#include <vector>

#include "controller/source/lane_source.h"
#include "worker/duration.h"

namespace lk {

struct SpecDirSourceOptions {
  std::string dir;
  Millis rescan_every{15'000};  // the safety net under inotify
  Millis debounce{50};          // editors write a file in several steps
  const Clock* clock = nullptr;  // nullptr: SystemClock()
};

class SpecDirSource final : public LaneSource {
 public:
  explicit SpecDirSource(SpecDirSourceOptions options);
  ~SpecDirSource() override;
  SpecDirSource(const SpecDirSource&) = delete;
  SpecDirSource& operator=(const SpecDirSource&) = delete;

  // InvalidArgument when the directory does not exist (there is nothing to watch yet).
  Status Start() override;
  std::vector<LaneKey> Keys() const override;
  const SourcedLane* Get(const LaneKey& key) const override;
  std::vector<SpecError> Errors() const override { return errors_; }
  std::string Describe() const override { return o_.dir; }
  int wake_fd() const override { return inotify_fd_; }
  Clock::TimePoint NextPoll() const override;
  std::vector<LaneKey> Poll() override;

 private:
  // Renews the watches on the directory and its parent; logs once when the directory
  // cannot be watched.
  void Watch();
  // Drains inotify; true when anything happened.
  bool DrainEvents();
  // Reads every file again; returns the keys whose lane changed.
  std::vector<LaneKey> Rescan();

  SpecDirSourceOptions o_;
  const Clock& clock_;
  int inotify_fd_ = -1;
  int dir_watch_ = -1;
  int parent_watch_ = -1;
  bool dir_was_gone_ = false;
  Clock::TimePoint dirty_since_ = Clock::TimePoint::max();
  Clock::TimePoint next_rescan_ = Clock::TimePoint::max();
  std::map<LaneKey, SourcedLane> lanes_;
  std::map<std::string, std::vector<LaneKey>> file_lanes_;  // at each file's last good read
  std::vector<SpecError> errors_;
};

}  // namespace lk
