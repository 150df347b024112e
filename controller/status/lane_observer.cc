#include "controller/status/lane_observer.h"

#include <algorithm>
#include <chrono>
#include <map>
#include <mutex>
#include <utility>

#include "controller/reconcile/role_plan.h"
#include "worker/redis_connection.h"

namespace lk {

namespace {

using SteadyClock = std::chrono::steady_clock;

LaneCondition Condition(std::string type, std::string status, std::string reason,
                        std::string message) {
  return LaneCondition{std::move(type), std::move(status), std::move(reason), std::move(message)};
}

LaneCondition SpecValid(const LaneState& lane) {
  if (lane.spec_errors.empty()) {
    return Condition("SpecValid", "True", "Valid", "the spec in " + lane.source + " is valid");
  }
  std::string message = lane.spec_errors.front().ToString();
  if (lane.spec_errors.size() > 1) {
    message += " (+" + std::to_string(lane.spec_errors.size() - 1) + " more)";
  }
  message += "; the last good spec (generation " + std::to_string(lane.observed_generation) +
             ") keeps running";
  return Condition("SpecValid", "False", "InvalidSpec", message);
}

LaneCondition OwnerElected(const LaneState& lane, const QueueView& q) {
  if (!q.redis.ok()) {
    return Condition("OwnerElected", "Unknown", "RedisUnreachable", q.redis.message());
  }
  if (q.owner) {
    return Condition("OwnerElected", "True", "Elected",
                     q.owner->role + " " + q.owner->holder + " holds epoch " +
                         std::to_string(q.owner->epoch));
  }
  std::string message = "nobody holds the owner lease of queue " + lane.spec.queue;
  if (q.counts.waiting > 0) {
    message += ": " + std::to_string(q.counts.waiting) + " jobs waiting will not run";
  }
  return Condition("OwnerElected", "False", "NoOwner", message);
}

// Every cause, in the documented order; the condition takes the first one's reason.
LaneCondition Degraded(const LaneState& lane, const QueueView& q, int64_t now_ms) {
  std::vector<std::pair<std::string, std::string>> causes;  // reason, message
  for (const auto& s : q.supervisors) {
    if (!s.degraded) continue;
    std::string m = "supervisor " + s.holder + " reports degraded: its worker crashed " +
                    std::to_string(s.crashes_in_window) + " times within 10m";
    if (!s.last_exit.empty()) m += ", last " + s.last_exit;
    causes.emplace_back("SupervisorDegraded", m);
  }
  for (const auto& r : lane.roles) {
    if (r.state != "failed") continue;
    causes.emplace_back("RoleFailed", "role " + r.role + " failed" +
                                          (r.last_exit.empty() ? "" : ": " + r.last_exit));
  }
  for (const auto& r : lane.roles) {
    if (r.state == "failed" || r.restarts < kRoleRestartLoopCount) continue;
    if (r.started_ms > 0 && now_ms - r.started_ms >= kRoleRestartLoopWindow.count()) continue;
    std::string m = "role " + r.role + " was restarted " + std::to_string(r.restarts) +
                    " times by the controller";
    if (r.started_ms > 0) m += ", the last " + FormatAge(now_ms - r.started_ms) + " ago";
    if (!r.last_exit.empty()) m += " (last exit: " + r.last_exit + ")";
    causes.emplace_back("RoleRestarting", m);
  }
  if (!lane.last_reconcile_error.empty()) {
    causes.emplace_back("ReconcileFailed",
                        "the last reconcile of this lane failed: " + lane.last_reconcile_error);
  }
  if (causes.empty()) {
    if (!q.redis.ok()) {
      return Condition("Degraded", "Unknown", "RedisUnreachable",
                       "cannot read the supervisors' status: " + q.redis.message());
    }
    return Condition("Degraded", "False", "NotDegraded",
                     "no supervisor reports degraded, no role failed or keeps restarting, and "
                     "the last reconcile worked");
  }
  std::string message;
  for (const auto& [reason, m] : causes) message += (message.empty() ? "" : "; ") + m;
  return Condition("Degraded", "True", causes.front().first, message);
}

// The roles the lane's plan has, by name: the one answer to "which roles does it need".
std::vector<std::string> DesiredRoles(const LaneSpec& spec) {
  std::vector<std::string> roles;
  for (const auto& r : PlanRoles(spec).roles) roles.push_back(r.name);
  return roles;
}

LaneCondition Ready(const LaneState& lane, const QueueView& q, const LaneCondition& owner,
                    const LaneCondition& degraded) {
  auto not_ready = [](std::string reason, std::string message) {
    return Condition("Ready", "False", std::move(reason), std::move(message));
  };
  std::vector<std::string> desired = DesiredRoles(lane.spec);
  for (const auto& name : desired) {
    const RoleState* role = nullptr;
    for (const auto& r : lane.roles) {
      if (r.role == name) role = &r;
    }
    if (role == nullptr) return not_ready("RoleNotRunning", "role " + name + " is not started");
    if (role->state != "running") {
      return not_ready("RoleNotRunning",
                       "role " + name + " is " + (role->state.empty() ? "unknown" : role->state) +
                           (role->last_exit.empty() ? "" : " (last exit: " + role->last_exit + ")"));
    }
  }
  if (lane.observed_generation != lane.generation) {
    return not_ready("GenerationPending",
                     "the roles run generation " + std::to_string(lane.observed_generation) +
                         ", the spec is generation " + std::to_string(lane.generation) +
                         ": converging");
  }
  if (!q.redis.ok()) return not_ready("RedisUnreachable", q.redis.message());
  if (owner.status != "True") return not_ready(owner.reason, owner.message);
  if (degraded.status == "True") return not_ready(degraded.reason, degraded.message);
  std::string roles;
  for (const auto& name : desired) roles += (roles.empty() ? "" : " and ") + name;
  return Condition("Ready", "True", "RolesRunning",
                   (roles.empty() ? std::string("no role") : roles) + " running generation " +
                       std::to_string(lane.generation) + "; " + owner.message);
}

// One queue's connection and its last reading. mu serializes everything below it.
struct Slot {
  std::mutex mu;
  std::unique_ptr<JobQueue> queue;  // null until connected, and after a connection broke
  std::optional<QueueView> cached;
  SteadyClock::time_point cached_at;
  SteadyClock::time_point last_used;  // guarded by Impl::mu, not by Slot::mu
};

}  // namespace

std::vector<LaneCondition> ComputeLaneConditions(const LaneState& lane, const QueueView& queue,
                                                 int64_t now_ms) {
  LaneCondition spec = SpecValid(lane);
  LaneCondition owner = OwnerElected(lane, queue);
  LaneCondition degraded = Degraded(lane, queue, now_ms);
  LaneCondition ready = Ready(lane, queue, owner, degraded);
  return {std::move(spec), std::move(owner), std::move(degraded), std::move(ready)};
}

const LaneCondition* LaneObservation::Condition(std::string_view type) const {
  for (const auto& c : conditions) {
    if (c.type == type) return &c;
  }
  return nullptr;
}

bool LaneObservation::ready() const {
  const LaneCondition* c = Condition("Ready");
  return c != nullptr && c->status == "True";
}

struct LaneObserver::Impl {
  LaneObserverOptions o;
  std::mutex mu;  // guards slots and down
  std::map<std::pair<std::string, std::string>, std::shared_ptr<Slot>> slots;  // (url, queue)
  // Endpoints (by URL) that failed recently, until when, and why. Many lanes share one Redis:
  // without this, a black-holed Redis would cost each of its queues a full timeout in
  // every request.
  std::map<std::string, std::pair<SteadyClock::time_point, Status>> down;

  std::shared_ptr<Slot> GetSlot(const std::string& url, const std::string& queue) {
    std::lock_guard<std::mutex> lock(mu);
    auto now = SteadyClock::now();
    for (auto it = slots.begin(); it != slots.end();) {
      bool idle = now - it->second->last_used > o.idle_close_after && it->second.use_count() == 1;
      it = idle ? slots.erase(it) : std::next(it);
    }
    auto& slot = slots[{url, queue}];
    if (!slot) slot = std::make_shared<Slot>();
    slot->last_used = now;
    return slot;
  }

  void MarkDown(const std::string& url, const Status& why) {
    std::lock_guard<std::mutex> lock(mu);
    down[url] = {SteadyClock::now() + o.cache_for, why};
  }

  // Called with slot.mu held.
  Status Connect(Slot& slot, const std::string& url, const std::string& queue) {
    if (slot.queue) return Status::OK();
    {
      std::lock_guard<std::mutex> lock(mu);
      auto it = down.find(url);
      if (it != down.end()) {
        if (SteadyClock::now() < it->second.first) return it->second.second;
        down.erase(it);
      }
    }
    auto endpoint = ParseRedisUrl(url);
    if (!endpoint.ok()) {
      // The parser's message quotes the URL, password and all.
      return Status::InvalidArgument("the lane's Redis URL does not parse");
    }
    auto conn = RedisConnection::Connect(*endpoint, o.redis_timeout);
    if (!conn.ok()) {
      MarkDown(url, conn.status());
      return conn.status();
    }
    slot.queue = std::make_unique<JobQueue>(std::move(conn).value(), queue);
    return Status::OK();
  }

  // Called with slot.mu held.
  QueueView Read(Slot& slot, const std::string& url, const std::string& queue) {
    QueueView v;
    v.read_ms = NowUnixMillis();
    auto failed = [&](const Status& s) {
      if (s.IsUnavailable()) {
        slot.queue.reset();
        MarkDown(url, s);
      }
      QueueView f;
      f.read_ms = v.read_ms;
      f.redis = s;
      return f;
    };
    if (Status s = Connect(slot, url, queue); !s.ok()) return failed(s);
    auto snapshot = ReadQueueSnapshot(*slot.queue, kWorkerLiveWithin, v.read_ms);
    if (!snapshot.ok()) return failed(snapshot.status());
    static_cast<QueueSnapshot&>(v) = std::move(snapshot).value();
    return v;
  }
};

LaneObserver::LaneObserver(LaneObserverOptions options) : impl_(std::make_unique<Impl>()) {
  impl_->o = options;
}

LaneObserver::~LaneObserver() = default;

LaneObservation LaneObserver::Observe(const LaneState& lane) {
  std::shared_ptr<Slot> slot = impl_->GetSlot(lane.redis_url, lane.spec.queue);
  LaneObservation out;
  {
    std::lock_guard<std::mutex> lock(slot->mu);
    // Checked under the slot's lock: callers that waited for a read in flight reuse it.
    auto now = SteadyClock::now();
    if (!slot->cached || now - slot->cached_at >= impl_->o.cache_for) {
      slot->cached = impl_->Read(*slot, lane.redis_url, lane.spec.queue);
      slot->cached_at = SteadyClock::now();
    }
    out.queue = *slot->cached;
  }
  out.conditions = ComputeLaneConditions(lane, out.queue, NowUnixMillis());
  return out;
}

DoctorReport LaneObserver::Doctor(const LaneState& lane, const DoctorOptions& options) {
  std::shared_ptr<Slot> slot = impl_->GetSlot(lane.redis_url, lane.spec.queue);
  std::lock_guard<std::mutex> lock(slot->mu);
  if (Status s = impl_->Connect(*slot, lane.redis_url, lane.spec.queue); !s.ok()) {
    // The wording of RunDoctor(url, ...) when it cannot connect.
    return DoctorReport{lane.spec.queue,
                        {DoctorCheck{"redis", CheckLevel::kFail,
                                     s.message() + "; the other checks need Redis and were skipped",
                                     {}}}};
  }
  RedisConnection& conn = slot->queue->connection();
  conn.SetReadTimeout(impl_->o.doctor_timeout);
  DoctorReport report = RunDoctor(*slot->queue, options);
  conn.SetReadTimeout(impl_->o.redis_timeout);
  // A check that met a broken connection says so in its message; drop the connection so
  // the next caller connects afresh instead of inheriting the error.
  auto ping = conn.Command({"PING"});
  if (!ping.ok()) {
    slot->queue.reset();
    impl_->MarkDown(lane.redis_url, ping.status());
  }
  return report;
}

}  // namespace lk
