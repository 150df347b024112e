// The rules across lanes: a lane name is defined once (per namespace), and a queue of one
// Redis belongs to one lane. And the one definition of "the same queue" they rest on.
// Pure functions; LaneSetChecker is a value, not thread-safe.
#pragma once

#include <map>
#include <string>
#include <vector>

#include "controller/spec/lane_types.h"

namespace lk {

// Where two lanes meet: one queue of one Redis. server is the Redis without credentials,
// localhost spelled 127.0.0.1 ("redis://127.0.0.1:6379/0", "unix:///run/redis.sock?db=0"),
// so that two spellings of one server meet. The one definition, for the rules across lanes
// and for the controller's "is this queue still served?" guard alike.
struct QueueIdentity {
  std::string server;
  std::string queue;
  std::string Key() const { return server + " " + queue; }
};
QueueIdentity IdentifyQueue(const std::string& redis_url, const std::string& queue);

// "file:line:column" of mark in lane's file, or the file alone when mark is unknown.
std::string WhereWritten(const LaneSpec& lane, SpecMark mark);
// The error of a lane whose queue an earlier lane already uses, at its spec.queue:
// "lane 'kb' (kb.yaml:5:10) already uses queue 'q' on redis://...: a queue has exactly
// one lane".
SpecError QueueTakenError(const LaneSpec& later, const std::string& earlier_name,
                          const std::string& earlier_where, const QueueIdentity& id);

// The rules across lanes: names unique (per namespace); no two lanes on one queue of one
// Redis (same host, port and db, or socket and db; or the same key of the same Secret,
// for a URL from a Secret). A lane without a URL is on default_redis_url. Each error points at the later lane's metadata.name or spec.queue
// and names where the earlier one is.
std::vector<SpecError> ValidateLaneSet(const std::vector<LaneSpec>& lanes,
                                       const std::string& default_redis_url);

// The same rules, one lane at a time, for a caller that decides lane by lane which to keep
// (the controller): Check a lane against those added so far, Add the ones kept. Linear in
// the lanes, where validating the growing set again for each would be quadratic.
class LaneSetChecker {
 public:
  explicit LaneSetChecker(std::string default_redis_url)
      : default_redis_url_(std::move(default_redis_url)) {}

  // What lane would break; empty when it fits beside the lanes added so far.
  std::vector<SpecError> Check(const LaneSpec& lane) const;
  // Adds lane. Where it conflicts, the lane added first stays the one errors point at.
  void Add(const LaneSpec& lane);

 private:
  struct Earlier {
    std::string name;
    std::string where;  // file:line:column of its metadata.name or spec.queue
  };
  QueueIdentity Identify(const LaneSpec& lane) const;

  std::string default_redis_url_;
  std::map<std::string, Earlier> by_name_, by_queue_;
};

}  // namespace lk
