#include "controller/source/kube_status_writer.h"

#include <spdlog/spdlog.h>

#include <atomic>
#include <chrono>

#include "controller/source/kube_lane_status.h"
#include "worker/duration.h"

namespace lk {

using kube::Json;

namespace {

bool TransitionTurnedBad(const ConditionTransition& t) {
  if (t.type == "Degraded") return t.to == "True";
  return t.to == "False";
}

// Event names must be unique in the namespace: the lane's name and a per-process counter
// over the time.
std::string LaneEventName(const std::string& lane) {
  static std::atomic<uint64_t> counter{0};
  auto ns = std::chrono::duration_cast<std::chrono::nanoseconds>(
                std::chrono::system_clock::now().time_since_epoch())
                .count();
  char buf[40];
  snprintf(buf, sizeof(buf), ".%llx%04llx", static_cast<unsigned long long>(ns),
           static_cast<unsigned long long>(counter++ & 0xFFFF));
  return lane.substr(0, 200) + buf;
}

}  // namespace

KubeStatusWriter::KubeStatusWriter(KubeStatusWriterOptions options)
    : o_(std::move(options)), client_(*o_.client), observer_(o_.observer) {}

KubeStatusWriter::~KubeStatusWriter() { Stop(); }

void KubeStatusWriter::Start() {
  for (int i = 0; i < std::max(1, o_.threads); ++i) threads_.emplace_back([this] { Run(); });
}

void KubeStatusWriter::Stop() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stopping_ = true;
    pending_.clear();
    order_.clear();
  }
  cv_.notify_all();
  for (auto& t : threads_) t.join();
  threads_.clear();
}

void KubeStatusWriter::Publish(Lane lane) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (stopping_) return;
    ++stats_.published;
    LaneKey key = lane.key;
    auto [it, added] = pending_.insert_or_assign(key, std::move(lane));
    if (added) order_.push_back(key);
  }
  cv_.notify_one();
}

void KubeStatusWriter::Forget(const LaneKey& key) {
  std::lock_guard<std::mutex> lock(mu_);
  written_.erase(key);
}

KubeStatusWriterStats KubeStatusWriter::stats() const {
  std::lock_guard<std::mutex> lock(mu_);
  return stats_;
}

size_t KubeStatusWriter::backlog() const {
  std::lock_guard<std::mutex> lock(mu_);
  return pending_.size() + in_flight_.size();
}

void KubeStatusWriter::Run() {
  std::unique_lock<std::mutex> lock(mu_);
  while (true) {
    // The oldest waiting lane that no other thread writes now.
    auto next = order_.end();
    cv_.wait(lock, [&] {
      if (stopping_) return true;
      for (next = order_.begin(); next != order_.end(); ++next) {
        if (!in_flight_.count(*next)) return true;
      }
      return false;
    });
    if (stopping_) return;
    LaneKey key = *next;
    order_.erase(next);
    auto node = pending_.extract(key);
    Lane lane = std::move(node.mapped());
    in_flight_.insert(key);
    lock.unlock();
    Write(lane);
    lock.lock();
    in_flight_.erase(key);
    // A newer state of this lane may have arrived meanwhile and wait for us.
    if (pending_.count(key)) cv_.notify_one();
  }
}

void KubeStatusWriter::Write(const Lane& lane) {
  if (o_.may_act && !o_.may_act()) {
    // Another replica leads and writes; what we knew of the statuses is stale from now on.
    std::lock_guard<std::mutex> lock(mu_);
    written_.clear();
    return;
  }
  QueueView queue;
  std::vector<LaneCondition> conditions;
  if (lane.state.redis_url.empty()) {
    queue.redis = Status::FailedPrecondition("not read: the lane has no admitted spec, so no Redis URL");
    conditions = ComputeLaneConditions(lane.state, queue, NowUnixMillis());
  } else {
    LaneObservation obs = observer_.Observe(lane.state);
    queue = std::move(obs.queue);
    conditions = std::move(obs.conditions);
  }
  Json previous;
  {
    std::lock_guard<std::mutex> lock(mu_);
    auto it = written_.find(lane.key);
    previous = it != written_.end() ? it->second : lane.current_status;
  }
  Json next = RenderLaneStatus(lane.state, queue, conditions, lane.generation, previous, NowUnixMillis());
  if (SameLaneStatus(next, previous)) {
    std::lock_guard<std::mutex> lock(mu_);
    ++stats_.unchanged;
    return;
  }
  auto patched = client_.Patch(kube::LanesRef(lane.key.ns).Named(lane.key.name).Subresource("status"),
                               Json{{"status", next}}, {});
  if (!patched.ok()) {
    std::lock_guard<std::mutex> lock(mu_);
    if (patched.status().IsNotFound()) {
      written_.erase(lane.key);
      return;
    }
    ++stats_.failed;
    spdlog::warn("controller: lane {}: cannot write its status: {}", lane.key.ToString(),
                 patched.status().message());
    return;
  }
  auto transitions = ConditionTransitions(previous, next);
  {
    std::lock_guard<std::mutex> lock(mu_);
    ++stats_.written;
    written_[lane.key] = next;
  }
  if (o_.events && !transitions.empty()) Emit(lane, transitions);
}

void KubeStatusWriter::Emit(const Lane& lane, const std::vector<ConditionTransition>& transitions) {
  const std::string now = Rfc3339(NowUnixMillis());
  for (const auto& t : transitions) {
    // The first status of a lane is no transition, except a spec that is refused at once.
    if (t.from.empty() && !(t.type == "SpecValid" && t.to == "False")) continue;
    Json event = {
        {"apiVersion", "v1"},
        {"kind", "Event"},
        {"metadata", {{"name", LaneEventName(lane.key.name)}, {"namespace", lane.key.ns}}},
        {"involvedObject",
         {{"apiVersion", "lanekeeper.dev/v1alpha1"},
          {"kind", "Lane"},
          {"name", lane.key.name},
          {"namespace", lane.key.ns},
          {"uid", lane.uid}}},
        {"reason", t.reason.empty() ? t.type : t.reason},
        {"message", t.type + " " + t.to + ": " + t.message.substr(0, 1000)},
        {"type", TransitionTurnedBad(t) ? "Warning" : "Normal"},
        {"source", {{"component", "lanekeeper-controller"}}},
        {"reportingComponent", "lanekeeper.dev/controller"},
        {"reportingInstance", o_.reporting_instance},
        {"firstTimestamp", now},
        {"lastTimestamp", now},
        {"count", 1}};
    auto created = client_.Create(kube::ResourceRef{"", "v1", "events", lane.key.ns}, event);
    std::lock_guard<std::mutex> lock(mu_);
    if (created.ok()) {
      ++stats_.events;
    } else {
      spdlog::warn("controller: lane {}: cannot record an event: {}", lane.key.ToString(),
                   created.status().message());
    }
  }
}

}  // namespace lk
