#include "controller/owner/lease_news.h"

#include <spdlog/spdlog.h>

namespace lk {

namespace lease_news {

void Emit(LifecycleEvents& events, const std::string& type,
          const std::map<std::string, std::string>& fields) {
  Status s = events.Emit(type, fields);
  if (!s.ok()) spdlog::debug("event {} not recorded: {}", type, s.message());
}

}  // namespace lease_news

std::optional<OwnerLease::Regression> ReportLeaseNews(OwnerLease& lease, LifecycleEvents& events,
                                                      const std::string& queue) {
  if (auto change = lease.TakeHistoryChange()) {
    const std::string& from = change->before.replid;
    const std::string& to = change->after.replid;
    if (change->promoted_replica) {
      spdlog::warn("Redis of queue {} failed over: replication id {} -> {}; the promoted "
                   "replica had {} of what this owner saw", queue, from, to,
                   change->behind ? "not all" : "all");
      lease_news::Emit(events, "redis_failover",
                       {{"from", from}, {"to", to}, {"behind", change->behind ? "true" : "false"}});
    } else {
      spdlog::info("Redis of queue {} restarted or was replaced: replication id {} -> {}", queue,
                   from, to);
      lease_news::Emit(events, "redis_restarted", {{"from", from}, {"to", to}});
    }
  }
  auto regression = lease.TakeRegression();
  if (!regression) return std::nullopt;
  spdlog::error("Redis lost acknowledged writes of queue {} (failover to a stale replica, or a "
                "restart without persistence): the owner epoch {} already used is gone{}; "
                "taking the lease under a new epoch",
                queue, regression->seen_epoch,
                regression->found_epoch > 0
                    ? " (Redis holds " + std::to_string(regression->found_epoch) + ")" : "");
  std::map<std::string, std::string> fields = {
      {"seen_epoch", std::to_string(regression->seen_epoch)}};
  if (regression->found_epoch > 0) fields["found_epoch"] = std::to_string(regression->found_epoch);
  lease_news::Emit(events, "redis_regressed", fields);
  return regression;
}

}  // namespace lk
