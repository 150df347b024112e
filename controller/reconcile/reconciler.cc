#include "controller/reconcile/reconciler.h"

#include <spdlog/spdlog.h>

#include <algorithm>

#include "controller/spec/lane_set.h"
#include "controller/reconcile/role_plan.h"
#include "worker/redis_connection.h"

namespace lk {

namespace {

std::vector<std::string> ErrorLines(const std::vector<SpecError>& errors) {
  std::vector<std::string> out;
  for (const auto& e : errors) out.push_back(e.ToString());
  return out;
}

bool Alive(const ObservedRole& r) { return r.running || r.stopping; }

}  // namespace

Reconciler::Reconciler(ReconcilerOptions options, LaneSource& source, RoleBackend& backend)
    : o_(std::move(options)),
      clock_(o_.clock ? *o_.clock : SystemClock()),
      source_(source),
      backend_(backend) {}

StatusOr<ReconcileResult> Reconciler::Reconcile(const LaneKey& key) {
  // 1. Read the world. The source and the backend answer for themselves; this lane's
  // records are read and written under mu_, the slow calls (the backend acting, the
  // source's Hold and Release) are made outside it.
  const bool stopping_all = stopping_all_.load();
  const SourcedLane* found = source_.Get(key);
  const SourcedLane* sourced = stopping_all || (found && found->deleting) ? nullptr : found;
  ObservedLane observed = backend_.Observe(key);

  // 2. Gone (or being deleted): stop every role; forget the lane once they are all gone,
  // and let its object go.
  if (!sourced) {
    {
      std::lock_guard<std::mutex> lock(mu_);
      if (auto it = records_.find(key); it != records_.end()) {
        Unindex(key, it->second);
        records_.erase(it);
      }
      for (auto& [id, keys] : waiting_) keys.erase(key);
    }
    auto gone = StopEverything(key, observed,
                               stopping_all ? "the controller is stopping" : "lane deleted");
    if (gone.ok() && *gone) {
      LK_RETURN_IF_ERROR(backend_.Forget(key));
      // Stopping the controller is not deleting the lane: its object stays held.
      if (found && found->deleting && !stopping_all) LK_RETURN_IF_ERROR(source_.Release(key));
      std::lock_guard<std::mutex> lock(mu_);
      refused_.erase(key);
      if (states_.erase(key) > 0 || !observed.roles.empty()) {
        spdlog::info("controller: lane {}: stopped and removed", key.ToString());
      }
      WakeWaiters();
      return ReconcileResult{};
    }
    ObservedLane now = backend_.Observe(key);
    std::lock_guard<std::mutex> lock(mu_);
    SetStatus(key, nullptr, nullptr, now, {}, gone.ok() ? "" : gone.status().message());
    if (!gone.ok()) return gone.status();
    return ReconcileResult{};  // a role's exit wakes this key again
  }

  // 3. The desired roles: admit the spec, then plan. The record is copied out: Converge
  // acts on it without the lock (only this key's reconcile changes it).
  std::vector<SpecError> errors;
  LaneRecord record;
  {
    std::lock_guard<std::mutex> lock(mu_);
    LaneRecord& kept = records_[key];
    Admit(key, *sourced, observed, kept, errors);
    if (!kept.admitted) {
      // Invalid and never admitted here, or its queue is taken: leave what runs alone.
      SetStatus(key, sourced, nullptr, observed, std::move(errors), "");
      return ReconcileResult{};
    }
    record = kept;
  }
  // 4.-6. Already so? Act, and say when to come back.
  if (Status held = source_.Hold(key); !held.ok()) return held;
  auto result = Converge(key, record, observed);
  ObservedLane now = backend_.Observe(key);
  std::lock_guard<std::mutex> lock(mu_);
  SetStatus(key, sourced, &record, now, std::move(errors),
            result.ok() ? "" : result.status().message());
  WakeWaiters();
  return result;
}

void Reconciler::Admit(const LaneKey& key, const SourcedLane& sourced,
                       const ObservedLane& observed, LaneRecord& record,
                       std::vector<SpecError>& errors) {
  errors = sourced.errors;
  if (!sourced.valid) return;  // the last admitted spec, if any, stays
  LaneSpec spec = sourced.spec;
  if (spec.redis_url.empty()) spec.redis_url = o_.default_redis_url;
  QueueIdentity id = IdentifyQueue(spec.redis_url, spec.queue);
  if (auto owner = queue_owners_.find(id.Key());
      owner != queue_owners_.end() && owner->second != key) {
    const LaneSpec& earlier = records_.at(owner->second).spec;
    errors.push_back(QueueTakenError(sourced.spec, earlier.name,
                                     WhereWritten(earlier, earlier.queue_mark), id));
    waiting_[id.Key()].insert(key);  // admitted once that lane lets go of the queue
    return;
  }
  // The URL is part of the spec's JSON: a new default Redis is a new spec.
  std::string hash = ContentHash(spec.SpecJson());
  int64_t generation;
  if (sourced.generation > 0) {
    generation = sourced.generation;
  } else if (!record.admitted) {
    // First seen by this controller: adopted roles started from this very spec keep
    // their generation.
    generation = observed.spec_hash == hash ? observed.generation : observed.generation + 1;
  } else {
    generation = hash == record.spec_hash ? record.generation : record.generation + 1;
  }
  Unindex(key, record);
  for (auto& [waited, keys] : waiting_) keys.erase(key);
  record.admitted = true;
  record.spec = std::move(spec);
  record.spec_hash = std::move(hash);
  record.identity = id.Key();
  record.generation = generation;
  queue_owners_[record.identity] = key;
}

void Reconciler::Unindex(const LaneKey& key, LaneRecord& record) {
  auto it = queue_owners_.find(record.identity);
  if (it != queue_owners_.end() && it->second == key) queue_owners_.erase(it);
}

StatusOr<bool> Reconciler::StopEverything(const LaneKey& key, const ObservedLane& observed,
                                          const std::string& why) {
  bool all_gone = true;
  for (const auto& r : observed.roles) {
    if (!Alive(r)) continue;
    auto gone = backend_.Stop(key, r.name, why);
    if (!gone.ok()) return gone.status();
    all_gone = all_gone && *gone;
  }
  return all_gone;
}

StatusOr<ReconcileResult> Reconciler::Converge(const LaneKey& key, const LaneRecord& record,
                                               const ObservedLane& first) {
  RolePlan plan = PlanRoles(record.spec);
  LaneMeta meta{key,         record.spec_hash,      record.generation,
                record.spec.queue, record.spec.redis_url, record.identity,
                record.spec.redis_url_from};
  if (first.spec_hash != meta.spec_hash || first.generation != meta.generation) {
    LK_RETURN_IF_ERROR(backend_.Record(meta));
  }

  // Stop what runs and should not: not planned, or planned at another hash.
  bool stopped_any = false;
  for (const auto& o : first.roles) {
    if (!Alive(o)) continue;
    const PlannedRole* p = plan.Find(o.name);
    if (p && p->hash == o.plan_hash && !o.stopping) continue;
    if (p && !o.stopping) {
      std::lock_guard<std::mutex> lock(mu_);
      ++spec_change_restarts_[key.name];
    }
    auto gone = backend_.Stop(key, o.name, p ? "its spec changed" : "no longer in the spec");
    if (!gone.ok()) return gone.status();
    stopped_any = true;
  }
  const ObservedLane observed = stopped_any ? backend_.Observe(key) : first;

  // Start what is planned and does not run. A role that still stops is waited for (its
  // exit wakes this key); so is any other worker owner of the queue.
  std::optional<Clock::TimePoint> retry_at;
  for (const PlannedRole& p : plan.roles) {
    const ObservedRole* o = observed.Find(p.name);
    if (o && Alive(*o)) continue;  // runs at this hash, or stops
    if (p.owns_worker) {
      bool other_owner = std::any_of(observed.roles.begin(), observed.roles.end(),
                                     [&](const ObservedRole& r) {
                                       return r.name != p.name && r.owns_worker && Alive(r);
                                     });
      if (other_owner) continue;
      // The check and the wait are one step under mu_, as WakeWaiters is: a lane that
      // frees the queue meanwhile finds this one waiting, or this one finds it free. Only
      // this lane is admitted on the queue (Admit, under mu_), and only this reconcile
      // acts for it, so no other lane starts a worker owner there once this one passed.
      std::lock_guard<std::mutex> lock(mu_);
      if (backend_.QueueServed(record.identity, key)) {
        waiting_[record.identity].insert(key);
        continue;
      }
    }
    auto ensured = backend_.Ensure(meta, plan, p);
    if (!ensured.ok()) return ensured.status();
    if (ensured->retry_at && (!retry_at || *ensured->retry_at < *retry_at)) {
      retry_at = ensured->retry_at;
    }
  }
  ReconcileResult result;
  if (retry_at) {
    auto wait = std::chrono::ceil<Millis>(*retry_at - clock_.Now());
    result.requeue_after = std::max(wait, Millis(1));
  }
  return result;
}

void Reconciler::SetStatus(const LaneKey& key, const SourcedLane* sourced,
                           const LaneRecord* record, const ObservedLane& observed,
                           std::vector<SpecError> errors, const std::string& failure) {
  LaneState s;
  s.name = key.name;
  if (record) {
    s.spec = record->spec;
    s.redis_url = record->spec.redis_url;
    s.generation = record->generation;
  } else {
    // Nothing admitted: show what runs, as the backend recorded it.
    s.spec.name = key.name;
    s.spec.namespace_name = key.ns;
    s.spec.queue = observed.queue;
    s.redis_url = observed.redis_url;
    s.generation = observed.generation;
    if (sourced && sourced->valid) s.spec.source = sourced->spec.source;
  }
  if (sourced && sourced->valid) s.source = sourced->spec.source;
  else if (record) s.source = record->spec.source;
  auto ep = ParseRedisUrl(s.redis_url);
  s.redis_url_redacted = s.redis_url.empty() ? "" : ep.ok() ? ep->Redacted() : "(invalid URL)";
  s.spec_errors = std::move(errors);
  s.last_reconcile_ms = clock_.WallMs();
  s.last_reconcile_error = failure;

  // Converged: every planned role runs at its hash, and nothing else is alive.
  bool converged = record != nullptr;
  RolePlan plan = record ? PlanRoles(record->spec) : RolePlan{};
  for (const auto& p : plan.roles) {
    const ObservedRole* o = observed.Find(p.name);
    if (!o || !o->running || o->stopping || o->plan_hash != p.hash) converged = false;
  }
  int64_t oldest_alive = 0;
  for (const auto& o : observed.roles) {
    if (Alive(o) && !plan.Find(o.name)) converged = false;
    if (Alive(o)) oldest_alive = oldest_alive == 0 ? o.generation : std::min(oldest_alive, o.generation);
    RoleState rs;
    rs.role = o.name;
    rs.pid = o.running || o.stopping ? o.pid : 0;
    rs.started_ms = Alive(o) ? o.started_ms : 0;
    rs.state = o.stopping ? "stopping" : o.running ? "running" : o.failed ? "failed" : "stopped";
    rs.adopted = o.adopted && Alive(o);
    rs.generation = o.generation;
    rs.restarts = o.restarts;
    rs.last_exit = o.last_exit;
    s.roles.push_back(std::move(rs));
  }
  // observed_generation: the newest generation the running roles fully reflect.
  if (converged) {
    s.observed_generation = s.generation;
  } else {
    s.observed_generation = oldest_alive == s.generation ? s.generation - 1 : oldest_alive;
  }

  auto previous = states_.find(key);
  std::vector<std::string> before =
      previous == states_.end() ? std::vector<std::string>{} : ErrorLines(previous->second.spec_errors);
  std::vector<std::string> after = ErrorLines(s.spec_errors);
  if (after != before) {
    // Logged when they change, not at every resync.
    for (const auto& e : after) spdlog::warn("controller: lane {}: spec error: {}", key.ToString(), e);
    if (after.empty()) spdlog::info("controller: lane {}: its spec is valid again", key.ToString());
  }
  if (!failure.empty() && (previous == states_.end() ||
                           previous->second.last_reconcile_error != failure)) {
    spdlog::error("controller: lane {}: {}", key.ToString(), failure);
  }
  bool alive = std::any_of(observed.roles.begin(), observed.roles.end(), Alive);
  if (record || alive) {
    refused_.erase(key);
  } else {
    refused_.insert(key);
  }
  states_[key] = std::move(s);
}

void Reconciler::WakeWaiters() {
  for (auto it = waiting_.begin(); it != waiting_.end();) {
    const std::string& id = it->first;
    auto owner = queue_owners_.find(id);
    for (auto k = it->second.begin(); k != it->second.end();) {
      bool free = (owner == queue_owners_.end() || owner->second == *k) &&
                  !backend_.QueueServed(id, *k);
      if (free) {
        o_.wake(*k);
        k = it->second.erase(k);
      } else {
        ++k;
      }
    }
    it = it->second.empty() ? waiting_.erase(it) : std::next(it);
  }
}

std::vector<LaneState> Reconciler::States() const {
  std::lock_guard<std::mutex> lock(mu_);
  std::vector<LaneState> out;
  out.reserve(states_.size());
  for (const auto& [k, s] : states_) {
    if (!refused_.count(k)) out.push_back(s);
  }
  return out;
}

const LaneState* Reconciler::State(const LaneKey& key) const {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = states_.find(key);
  return it == states_.end() ? nullptr : &it->second;
}

std::vector<SpecError> Reconciler::RefusedErrors() const {
  std::lock_guard<std::mutex> lock(mu_);
  std::vector<SpecError> out;
  for (const LaneKey& k : refused_) {
    const auto& errors = states_.at(k).spec_errors;
    out.insert(out.end(), errors.begin(), errors.end());
  }
  return out;
}

}  // namespace lk
