#include "controller/kube/leader_elector.h"

#include <unistd.h>

#include <condition_variable>
#include <cstdio>
#include <ctime>
#include <mutex>
#include <random>
#include <thread>

namespace lk::kube {

namespace {

// A MicroTime as the API writes it: 2026-01-01T00:00:00.000000Z.
std::string MicroTime(int64_t wall_ms) {
  std::time_t secs = static_cast<std::time_t>(wall_ms / 1000);
  std::tm tm{};
  gmtime_r(&secs, &tm);
  char buf[64];
  std::snprintf(buf, sizeof(buf), "%04d-%02d-%02dT%02d:%02d:%02d.%06dZ", tm.tm_year + 1900,
                tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
                static_cast<int>(wall_ms % 1000) * 1000);
  return buf;
}

// Fields of a Lease spec as written by anyone: a missing or mistyped one reads as the default.
std::string StringField(const Json& spec, const char* key) {
  auto it = spec.find(key);
  return it != spec.end() && it->is_string() ? it->get<std::string>() : std::string();
}

int64_t IntField(const Json& spec, const char* key, int64_t fallback) {
  auto it = spec.find(key);
  return it != spec.end() && it->is_number_integer() ? it->get<int64_t>() : fallback;
}

}  // namespace

std::string DefaultLeaderIdentity() {
  if (const char* pod = std::getenv("POD_NAME"); pod != nullptr && *pod != '\0') return pod;
  char host[256] = {0};
  ::gethostname(host, sizeof(host) - 1);
  return std::string(host) + ":" + std::to_string(::getpid());
}

class LeaderElector::Impl {
 public:
  Impl(KubeClient& client, LeaderElectionOptions options)
      : client_(client),
        options_(std::move(options)),
        clock_(options_.clock ? *options_.clock : SystemClock()),
        identity_(options_.identity.empty() ? DefaultLeaderIdentity() : options_.identity),
        ref_(LeasesRef(options_.lease_namespace).Named(options_.lease_name)),
        rng_(std::random_device{}()) {}

  ~Impl() { Stop(); }

  void Start() { thread_ = std::thread([this] { Run(); }); }

  void Stop() {
    {
      std::lock_guard<std::mutex> lock(mu_);
      if (stopped_) return;
      stopped_ = true;
    }
    cv_.notify_all();
    if (thread_.joinable()) thread_.join();
    Release();
  }

  bool is_leader() const {
    std::lock_guard<std::mutex> lock(mu_);
    return LeadingLocked(clock_.Now());
  }

  const std::string& identity() const { return identity_; }

  std::string observed_holder() const {
    std::lock_guard<std::mutex> lock(mu_);
    return observed_holder_;
  }

  bool TryAcquireOrRenew() {
    const Clock::TimePoint now = clock_.Now();
    const std::string stamp = MicroTime(clock_.WallMs());
    const int64_t duration_s = std::max<int64_t>(1, options_.lease_duration.count() / 1000);

    auto current = client_.Get(ref_);
    if (current.status().IsNotFound()) {
      Json lease = {{"apiVersion", "coordination.k8s.io/v1"},
                    {"kind", "Lease"},
                    {"metadata", {{"name", ref_.name}, {"namespace", ref_.ns}}},
                    {"spec",
                     {{"holderIdentity", identity_},
                      {"leaseDurationSeconds", duration_s},
                      {"acquireTime", stamp},
                      {"renewTime", stamp},
                      {"leaseTransitions", 0}}}};
      auto created = client_.Create(ref_, lease);
      if (created.ok()) return Won(now, (*created)["spec"]);
      return Missed(now);
    }
    if (!current.ok()) return Missed(now);

    Json& lease = *current;
    Json spec = lease.contains("spec") && lease["spec"].is_object() ? lease["spec"] : Json::object();
    const std::string holder = StringField(spec, "holderIdentity");
    // Someone else holds a lease that is still running: not ours, whatever we thought.
    bool held_by_another = false;
    std::function<void()> stopped;
    {
      std::lock_guard<std::mutex> lock(mu_);
      observed_holder_ = holder;
      if (spec != observed_record_) {
        observed_record_ = spec;
        observed_at_ = now;
      }
      const auto lease_for = std::chrono::seconds(IntField(spec, "leaseDurationSeconds", duration_s));
      held_by_another = !holder.empty() && holder != identity_ && now < observed_at_ + lease_for;
      if (held_by_another) stopped = LoseLocked();
    }
    if (held_by_another) {
      if (stopped) stopped();
      return false;
    }
    const bool ours = holder == identity_;
    Json next = spec;
    next["holderIdentity"] = identity_;
    next["leaseDurationSeconds"] = duration_s;
    next["renewTime"] = stamp;
    if (!ours) {
      next["acquireTime"] = stamp;
      next["leaseTransitions"] = IntField(spec, "leaseTransitions", 0) + 1;
    }
    lease["spec"] = next;
    auto updated = client_.Update(ref_, lease);  // conditional on metadata.resourceVersion
    if (updated.ok()) return Won(now, (*updated)["spec"]);
    return Missed(now);
  }

  Status Release() {
    // Stop acting first: once the lease says it is free, another replica may take it at once.
    std::function<void()> stopped;
    {
      std::lock_guard<std::mutex> lock(mu_);
      if (!leading_) return Status::OK();
      stopped = LoseLocked();
    }
    if (stopped) stopped();
    return RetryOnConflict([&]() -> Status {
      auto current = client_.Get(ref_);
      if (!current.ok()) return current.status();
      Json& lease = *current;
      if (!lease.contains("spec") || !lease["spec"].is_object() ||
          StringField(lease["spec"], "holderIdentity") != identity_) {
        return Status::OK();
      }
      const std::string stamp = MicroTime(clock_.WallMs());
      lease["spec"]["holderIdentity"] = "";
      lease["spec"]["leaseDurationSeconds"] = 1;
      lease["spec"]["renewTime"] = stamp;
      lease["spec"]["acquireTime"] = stamp;
      auto updated = client_.Update(ref_, lease);
      return updated.ok() ? Status::OK() : updated.status();
    });
  }

 private:
  bool LeadingLocked(Clock::TimePoint now) const {
    return leading_ && now < last_renewed_ + options_.renew_deadline;
  }

  // Marks leadership lost; returns the callback to run (outside the lock), if any.
  std::function<void()> LoseLocked() {
    if (!leading_) return nullptr;
    leading_ = false;
    return options_.on_stopped_leading ? options_.on_stopped_leading : [] {};
  }

  bool Won(Clock::TimePoint attempt_started, const Json& spec) {
    bool started = false;
    {
      std::lock_guard<std::mutex> lock(mu_);
      // The renewal counts from when it was sent: the server stored it later than that.
      last_renewed_ = attempt_started;
      observed_record_ = spec;
      observed_at_ = attempt_started;
      observed_holder_ = identity_;
      started = !leading_;
      leading_ = true;
    }
    if (started && options_.on_started_leading) options_.on_started_leading();
    return true;
  }

  // An attempt that failed (a 409, the server unreachable): we stay leader only until the
  // renew deadline of the last success.
  bool Missed(Clock::TimePoint now) {
    std::function<void()> stopped;
    {
      std::lock_guard<std::mutex> lock(mu_);
      if (leading_ && !LeadingLocked(now)) stopped = LoseLocked();
    }
    if (stopped) stopped();
    return false;
  }

  void Run() {
    while (true) {
      bool held = TryAcquireOrRenew();
      // A leader renews every retry period; candidates spread their attempts (client-go's
      // JitterUntil with factor 1.2) so that replicas do not race in step.
      Millis wait = options_.retry_period;
      if (!held) {
        std::uniform_real_distribution<double> u(0.0, 1.2);
        wait += Millis(static_cast<int64_t>(options_.retry_period.count() * u(rng_)));
      }
      std::unique_lock<std::mutex> lock(mu_);
      // A leader whose renewals keep failing notices the deadline between attempts too.
      const auto deadline = std::chrono::steady_clock::now() + wait;
      while (!stopped_) {
        if (leading_ && !LeadingLocked(clock_.Now())) {
          auto stopped = LoseLocked();
          lock.unlock();
          if (stopped) stopped();
          lock.lock();
          continue;
        }
        if (cv_.wait_until(lock, std::min(deadline, std::chrono::steady_clock::now() + Millis(100)),
                           [&] { return stopped_; })) {
          break;
        }
        if (std::chrono::steady_clock::now() >= deadline) break;
      }
      if (stopped_) return;
    }
  }

  KubeClient& client_;
  const LeaderElectionOptions options_;
  const Clock& clock_;
  const std::string identity_;
  const ResourceRef ref_;
  std::thread thread_;
  std::mt19937 rng_;

  mutable std::mutex mu_;
  std::condition_variable cv_;
  bool stopped_ = false;
  bool leading_ = false;
  Clock::TimePoint last_renewed_{};
  Json observed_record_;
  Clock::TimePoint observed_at_{};
  std::string observed_holder_;
};

LeaderElector::LeaderElector(KubeClient& client, LeaderElectionOptions options)
    : impl_(std::make_unique<Impl>(client, std::move(options))) {}
LeaderElector::~LeaderElector() = default;
void LeaderElector::Start() { impl_->Start(); }
void LeaderElector::Stop() { impl_->Stop(); }
bool LeaderElector::is_leader() const { return impl_->is_leader(); }
const std::string& LeaderElector::identity() const { return impl_->identity(); }
std::string LeaderElector::observed_holder() const { return impl_->observed_holder(); }
bool LeaderElector::TryAcquireOrRenew() { return impl_->TryAcquireOrRenew(); }
Status LeaderElector::Release() { return impl_->Release(); }

}  // namespace lk::kube
