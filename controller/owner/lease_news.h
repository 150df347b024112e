// LeaseNews: what an owner says when its lease finds that the Redis behind the queue
// changed — the same words and events from every owner (supervisor, autopilot, a
// hand-started worker).
//
//   regression      Redis lost writes this owner had seen (owner_lease.h): an error log
//                   and the event redis_regressed {seen_epoch[, found_epoch]}
//   failover        a replica was promoted (its replid2 is the id we knew): a warning and
//                   redis_failover {from, to, behind}; behind=true is also a regression
//   restart         a new replication id of another history (a restart, another server):
//                   an info line and redis_restarted {from, to}; whether data was lost is
//                   for the epoch and id floors to say
// Owns nothing; not thread-safe (the lease's and the events' thread).
#pragma once

#include <optional>
#include <string>

#include "controller/owner/lifecycle_events.h"
#include "controller/owner/owner_lease.h"

namespace lk {

// Takes the lease's news (TakeRegression, TakeHistoryChange), logs and emits it. Returns
// the regression, if there was one: the owner then takes the lease again under a new epoch.
std::optional<OwnerLease::Regression> ReportLeaseNews(OwnerLease& lease, LifecycleEvents& events,
                                                      const std::string& queue);

}  // namespace lk
