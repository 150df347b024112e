#include "controller/spec/lane_set.h"

#include "worker/redis_connection.h"

namespace lk {

std::string WhereWritten(const LaneSpec& l, SpecMark m) {
  return m.line > 0 ? l.source + ":" + std::to_string(m.line) + ":" + std::to_string(m.column)
                    : l.source;
}

SpecError QueueTakenError(const LaneSpec& later, const std::string& earlier_name,
                          const std::string& earlier_where, const QueueIdentity& id) {
  return {later.source, later.queue_mark.line, later.queue_mark.column, "spec.queue",
          "lane " + Quote(earlier_name) + " (" + earlier_where + ") already uses queue " +
              Quote(later.queue) + " on " + id.server + ": a queue has exactly one lane"};
}

QueueIdentity IdentifyQueue(const std::string& url, const std::string& queue) {
  QueueIdentity id{Escape(RedactUrlText(url), 200), queue};
  if (auto ep = ParseRedisUrl(url); ep.ok()) {
    ep->username.clear();
    ep->password.clear();
    if (ep->host == "localhost") ep->host = "127.0.0.1";
    id.server = Escape(ep->Redacted(), 200);
  }
  return id;
}

QueueIdentity LaneSetChecker::Identify(const LaneSpec& l) const {
  // A URL in a Secret is known only to whoever reads the Secret: here two lanes meet when
  // they name the same key of the same Secret (of one namespace).
  if (!l.redis_url_from.empty()) {
    std::string secret = (l.namespace_name.empty() ? "" : l.namespace_name + "/") +
                         l.redis_url_from.name + " key " + l.redis_url_from.key;
    return {"the Redis of Secret " + Escape(secret, 1000), l.queue};
  }
  return IdentifyQueue(l.redis_url.empty() ? default_redis_url_ : l.redis_url, l.queue);
}

std::vector<SpecError> LaneSetChecker::Check(const LaneSpec& l) const {
  std::vector<SpecError> errors;
  if (auto it = by_name_.find(l.namespace_name + "/" + l.name); it != by_name_.end()) {
    errors.push_back({l.source, l.name_mark.line, l.name_mark.column, "metadata.name",
                      "lane " + Quote(l.name) + " is already defined at " + it->second.where});
  }
  QueueIdentity id = Identify(l);
  if (auto it = by_queue_.find(id.Key()); it != by_queue_.end()) {
    errors.push_back(QueueTakenError(l, it->second.name, it->second.where, id));
  }
  return errors;
}

void LaneSetChecker::Add(const LaneSpec& l) {
  by_name_.emplace(l.namespace_name + "/" + l.name, Earlier{l.name, WhereWritten(l, l.name_mark)});
  by_queue_.emplace(Identify(l).Key(), Earlier{l.name, WhereWritten(l, l.queue_mark)});
}

std::vector<SpecError> ValidateLaneSet(const std::vector<LaneSpec>& lanes,
                                       const std::string& default_redis_url) {
  LaneSetChecker checker(default_redis_url);
  std::vector<SpecError> errors;
  for (const auto& l : lanes) {
    for (auto& e : checker.Check(l)) errors.push_back(std::move(e));
    checker.Add(l);
  }
  return errors;
}

}  // namespace lk
