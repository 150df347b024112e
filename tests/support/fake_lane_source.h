// FakeLaneSource: a LaneSource whose lanes the test sets, marks invalid and removes by
// hand; Get from any thread once set (the reconciler tests, serial and concurrent).
#pragma once

#include <map>
#include <string>
#include <vector>

#include "controller/source/lane_source.h"

namespace lk::testing {

class FakeLaneSource final : public LaneSource {
 public:
  void Set(const LaneSpec& spec) {
    SourcedLane l;
    l.key = spec.Key();
    l.valid = true;
    l.spec = spec;
    lanes_[l.key] = l;
  }
  void SetInvalid(const LaneKey& key, const std::string& message) {
    SourcedLane l;
    l.key = key;
    l.errors = {{key.name + ".yaml", 4, 3, "spec.supervisor.concurrency", message}};
    lanes_[key] = l;
  }
  void Remove(const LaneKey& key) { lanes_.erase(key); }

  Status Start() override { return Status::OK(); }
  std::vector<LaneKey> Keys() const override {
    std::vector<LaneKey> out;
    for (const auto& [k, l] : lanes_) out.push_back(k);
    return out;
  }
  const SourcedLane* Get(const LaneKey& key) const override {
    auto it = lanes_.find(key);
    return it == lanes_.end() ? nullptr : &it->second;
  }
  std::vector<SpecError> Errors() const override { return {}; }
  std::string Describe() const override { return "fake"; }
  int wake_fd() const override { return -1; }
  Clock::TimePoint NextPoll() const override { return Clock::TimePoint::max(); }
  std::vector<LaneKey> Poll() override { return {}; }

 private:
  std::map<LaneKey, SourcedLane> lanes_;
};

}  // namespace lk::testing
