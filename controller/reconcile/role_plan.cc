#include "controller/reconcile/role_plan.h"

#include <cstdio>

#include "controller/spec/cycle_file.h"
#include "worker/handler_config.h"

namespace lk {

namespace {

std::string Ms(Millis d) { return std::to_string(d.count()) + "ms"; }

void AddWorkerFlags(const WorkerSettings& w, std::vector<std::string>& args) {
  args.insert(args.end(), {"--concurrency", std::to_string(w.concurrency), "--max-rss",
                           std::to_string(w.max_rss_mb), "--drain-timeout",
                           Ms(w.drain_timeout)});
}

void Seal(const RolePlan& plan, PlannedRole& role) {
  std::string all = plan.queue + '\0' + plan.redis_url + '\0' + role.name + '\0';
  for (const auto& a : role.args) all += a + '\0';
  for (const auto& f : role.files) all += f.flag + '\0' + f.name + '\0' + f.content + '\0';
  all += role.owns_worker ? "owner" : "dispatch";
  role.hash = ContentHash(all);
}

}  // namespace

const PlannedRole* RolePlan::Find(std::string_view name) const {
  for (const auto& r : roles) {
    if (r.name == name) return &r;
  }
  return nullptr;
}

// spec.redis.replicas as the global flag, before the subcommand; nothing when 0, so a lane
// without it keeps the command lines (and the hashes) it had.
void AddRedisReplicasFlag(const LaneSpec& s, std::vector<std::string>& args) {
  if (s.redis_replicas > 0) args.insert(args.end(), {"--redis-replicas", std::to_string(s.redis_replicas)});
}

RolePlan PlanRoles(const LaneSpec& s) {
  RolePlan plan;
  plan.queue = s.queue;
  plan.redis_url = s.redis_url;
  std::vector<RoleFile> handlers;
  if (!s.handlers.empty()) {
    handlers.push_back({"--handlers", "handlers.yaml", RenderHandlersFile(s.handlers)});
  }
  if (s.supervisor.enabled) {
    PlannedRole r;
    r.kind = RoleKind::kSupervisor;
    r.name = "supervisor";
    r.args = {"--queue", s.queue};
    AddRedisReplicasFlag(s, r.args);
    r.args.insert(r.args.end(), {"jobs", "supervisor"});
    AddWorkerFlags(s.supervisor.worker, r.args);
    r.args.insert(r.args.end(), {"--max-crashes", std::to_string(s.supervisor.max_crashes)});
    r.files = handlers;
    r.owns_worker = true;
    r.max_rss_mb = s.supervisor.worker.max_rss_mb;
    r.drain_timeout = s.supervisor.worker.drain_timeout;
    Seal(plan, r);
    plan.roles.push_back(std::move(r));
  }
  if (s.autopilot.mode != AutopilotMode::kOff) {
    PlannedRole r;
    r.kind = RoleKind::kAutopilot;
    r.name = "autopilot";
    r.args = {"--queue", s.queue};
    AddRedisReplicasFlag(s, r.args);
    r.args.insert(r.args.end(), {"autopilot", "--repo", s.autopilot.repo, "--interval",
                                 Ms(s.autopilot.interval)});
    if (!s.autopilot.cycle.empty()) {
      r.files.push_back({"--cycle", "cycle.yaml", RenderCycleFile(s.autopilot.cycle)});
    }
    if (s.autopilot.mode == AutopilotMode::kDispatchOnly) {
      r.args.push_back("--no-worker");
    } else {
      AddWorkerFlags(s.autopilot.worker, r.args);
      r.files.insert(r.files.end(), handlers.begin(), handlers.end());
      r.owns_worker = true;
      r.max_rss_mb = s.autopilot.worker.max_rss_mb;
      r.drain_timeout = s.autopilot.worker.drain_timeout;
    }
    Seal(plan, r);
    plan.roles.push_back(std::move(r));
  }
  return plan;
}

std::string ContentHash(std::string_view data) {
  uint64_t h = 1469598103934665603ULL;
  for (unsigned char c : data) {
    h ^= c;
    h *= 1099511628211ULL;
  }
  char buf[17];
  snprintf(buf, sizeof(buf), "%016llx", static_cast<unsigned long long>(h));
  return buf;
}

}  // namespace lk
