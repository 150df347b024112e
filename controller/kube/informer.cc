#include "controller/kube/informer.h"

#include <sys/eventfd.h>
#include <unistd.h>

#include <algorithm>
#include <condition_variable>
#include <map>
#include <mutex>
#include <random>
#include <thread>

namespace lk::kube {

namespace {

std::string ResourceVersionOf(const Json& object) {
  if (!object.is_object() || !object.contains("metadata") || !object["metadata"].is_object()) return "";
  return object["metadata"].value("resourceVersion", "");
}

// A watch that ends this soon having delivered nothing counts as a failure (client-go:
// "very short watch"), so a server that closes every watch at once is not hammered.
constexpr auto kShortestWatch = std::chrono::seconds(1);

}  // namespace

class Informer::Impl {
 public:
  Impl(KubeClient& client, InformerOptions options, int wake_fd)
      : client_(client), options_(std::move(options)), wake_fd_(wake_fd), rng_(std::random_device{}()) {}

  ~Impl() { Stop(); }

  void Start() { thread_ = std::thread([this] { Run(); }); }

  void Stop() {
    {
      std::lock_guard<std::mutex> lock(mu_);
      stopping_ = true;
    }
    cv_.notify_all();
    cancel_.Cancel();
    if (thread_.joinable()) thread_.join();
  }

  Status WaitForSync(Millis timeout) const {
    std::unique_lock<std::mutex> lock(mu_);
    if (cv_.wait_for(lock, timeout, [&] { return synced_; })) return Status::OK();
    std::string why = last_failure_.ok() ? "no answer yet" : last_failure_.message();
    return Status::Unavailable("the first list of " + DescribeLocked() + " did not finish within " +
                               std::to_string(timeout.count()) + " ms: " + why);
  }

  bool synced() const {
    std::lock_guard<std::mutex> lock(mu_);
    return synced_;
  }

  std::vector<InformerChange> TakeChanges() {
    uint64_t drained;
    while (::read(wake_fd_, &drained, sizeof(drained)) > 0) {
    }
    std::lock_guard<std::mutex> lock(mu_);
    std::vector<InformerChange> out;
    for (const auto& [key, existed_before] : pending_) {
      const bool exists = cache_.count(key) > 0;
      if (existed_before && exists) out.push_back({InformerChange::Type::kModified, key});
      else if (exists) out.push_back({InformerChange::Type::kAdded, key});
      else if (existed_before) out.push_back({InformerChange::Type::kDeleted, key});
    }
    pending_.clear();
    return out;
  }

  std::optional<Json> Get(const std::string& key) const {
    std::lock_guard<std::mutex> lock(mu_);
    auto it = cache_.find(key);
    if (it == cache_.end()) return std::nullopt;
    return it->second;
  }

  std::vector<Json> List() const {
    std::lock_guard<std::mutex> lock(mu_);
    std::vector<Json> out;
    out.reserve(cache_.size());
    for (const auto& [key, obj] : cache_) out.push_back(obj);
    return out;
  }

  std::vector<std::string> Keys() const {
    std::lock_guard<std::mutex> lock(mu_);
    std::vector<std::string> out;
    for (const auto& [key, obj] : cache_) out.push_back(key);
    return out;
  }

  std::string resource_version() const {
    std::lock_guard<std::mutex> lock(mu_);
    return resource_version_;
  }

  Status last_failure() const {
    std::lock_guard<std::mutex> lock(mu_);
    return last_failure_;
  }

  InformerStats stats() const {
    std::lock_guard<std::mutex> lock(mu_);
    return stats_;
  }

  std::string Describe() const {
    std::lock_guard<std::mutex> lock(mu_);
    return DescribeLocked();
  }

 private:
  std::string DescribeLocked() const {
    std::string d = options_.resource.Describe();
    if (options_.resource.ns.empty()) d += " (all namespaces)";
    if (!options_.label_selector.empty()) d += " with labels " + options_.label_selector;
    return d + " on " + client_.server();
  }

  // The reflector loop (header). Only this thread writes the cache.
  void Run() {
    bool need_list = true;
    while (!Stopping()) {
      Status s;
      if (need_list) {
        s = ListOnce();
        if (s.ok()) need_list = false;
      } else {
        s = WatchOnce();
        if (s.code() == Status::Code::kGone) {
          // The version we hold is gone from the server's history: relist and deliver the
          // differences. Not a failure: no backoff.
          std::lock_guard<std::mutex> lock(mu_);
          ++stats_.relists_after_gone;
          need_list = true;
          continue;
        }
      }
      if (Stopping()) break;
      if (s.ok()) continue;
      Millis wait = NextBackoff();
      {
        std::lock_guard<std::mutex> lock(mu_);
        ++stats_.failures;
        last_failure_ = s;
      }
      if (options_.on_failure) options_.on_failure(s, wait);
      std::unique_lock<std::mutex> lock(mu_);
      cv_.wait_for(lock, wait, [&] { return stopping_; });
    }
  }

  bool Stopping() const {
    std::lock_guard<std::mutex> lock(mu_);
    return stopping_;
  }

  // What the cache keeps of an object: see InformerOptions::transform.
  void Trim(Json& object) const {
    auto meta = object.find("metadata");
    if (meta != object.end() && meta->is_object()) {
      meta->erase("managedFields");
      auto annotations = meta->find("annotations");
      if (annotations != meta->end() && annotations->is_object()) {
        annotations->erase("kubectl.kubernetes.io/last-applied-configuration");
      }
    }
    if (options_.transform) options_.transform(object);
  }

  Status ListOnce() {
    ListOptions lo;
    lo.label_selector = options_.label_selector;
    lo.field_selector = options_.field_selector;
    auto list = client_.List(options_.resource, lo);
    if (!list.ok()) return list.status();
    std::map<std::string, Json> fresh;
    for (auto& item : list->items) {
      Trim(item);
      std::string key = ObjectKey(item);
      fresh.emplace(std::move(key), std::move(item));
    }
    bool changed = false;
    {
      std::lock_guard<std::mutex> lock(mu_);
      // What a watch would have told us had it not been interrupted: every object gone,
      // new, or at another version than cached.
      for (const auto& [key, obj] : cache_) {
        if (!fresh.count(key)) changed |= MarkLocked(key, true);
      }
      for (const auto& [key, obj] : fresh) {
        auto it = cache_.find(key);
        if (it == cache_.end()) changed |= MarkLocked(key, false);
        else if (ResourceVersionOf(it->second) != ResourceVersionOf(obj)) changed |= MarkLocked(key, true);
      }
      cache_ = std::move(fresh);
      resource_version_ = list->resource_version;
      ++stats_.lists;
      last_failure_ = Status::OK();
      // The first sync is a change too (even with no object): the consumer reads the cache.
      if (!synced_) changed = true;
      synced_ = true;
    }
    cv_.notify_all();
    if (changed) Wake();
    return Status::OK();
  }

  Status WatchOnce() {
    WatchOptions wo;
    wo.resource_version = resource_version();
    wo.label_selector = options_.label_selector;
    wo.field_selector = options_.field_selector;
    wo.allow_bookmarks = true;
    wo.timeout_seconds = options_.watch_timeout_seconds;
    const auto started = std::chrono::steady_clock::now();
    int64_t events = 0;
    bool opened = false;
    Status s = client_.Watch(options_.resource, wo, [&](WatchEvent&& ev) {
      if (!opened) {
        opened = true;
        std::lock_guard<std::mutex> lock(mu_);
        last_failure_ = Status::OK();
      }
      ++events;
      Apply(std::move(ev));
      return true;
    }, cancel_);
    {
      std::lock_guard<std::mutex> lock(mu_);
      ++stats_.watches;
    }
    if (s.ok() && events == 0 && !Stopping() &&
        std::chrono::steady_clock::now() - started < kShortestWatch) {
      return Status::Unavailable("WATCH " + options_.resource.Describe() +
                                 ": the API server ended the watch at once, with no event");
    }
    return s;
  }

  void Apply(WatchEvent&& ev) {
    bool changed = false;
    {
      std::lock_guard<std::mutex> lock(mu_);
      ++stats_.events;
      std::string rv = ResourceVersionOf(ev.object);
      if (!rv.empty()) resource_version_ = rv;
      if (ev.type != WatchEvent::Type::kBookmark) {
        Trim(ev.object);
        std::string key = ObjectKey(ev.object);
        const bool existed = cache_.count(key) > 0;
        changed = MarkLocked(key, existed);
        if (ev.type == WatchEvent::Type::kDeleted) cache_.erase(key);
        else cache_[key] = std::move(ev.object);
      }
    }
    if (changed) Wake();
  }

  // Records that key changed; existed: whether it was in the cache before this change.
  bool MarkLocked(const std::string& key, bool existed) {
    pending_.try_emplace(key, existed);
    return true;
  }

  void Wake() {
    uint64_t one = 1;
    [[maybe_unused]] ssize_t n = ::write(wake_fd_, &one, sizeof(one));
  }

  Millis NextBackoff() {
    const auto now = std::chrono::steady_clock::now();
    if (backoff_base_.count() == 0 || now - last_backoff_ > options_.backoff_reset) {
      backoff_base_ = options_.backoff_initial;
    } else {
      backoff_base_ = std::min(backoff_base_ * 2, options_.backoff_max);
    }
    last_backoff_ = now;
    std::uniform_real_distribution<double> u(0.0, 1.0);
    return Millis(static_cast<int64_t>(backoff_base_.count() * (1.0 + options_.backoff_jitter * u(rng_))));
  }

  KubeClient& client_;
  const InformerOptions options_;
  const int wake_fd_;
  Cancellation cancel_;
  std::thread thread_;

  mutable std::mutex mu_;
  mutable std::condition_variable cv_;
  bool stopping_ = false;
  bool synced_ = false;
  std::map<std::string, Json> cache_;
  std::map<std::string, bool> pending_;  // key -> was it cached at the last TakeChanges
  std::string resource_version_;
  Status last_failure_;
  InformerStats stats_;

  // Backoff: the informer's thread only.
  Millis backoff_base_{0};
  std::chrono::steady_clock::time_point last_backoff_;
  std::mt19937 rng_;
};

Informer::Informer(KubeClient& client, InformerOptions options)
    : wake_fd_(::eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC)) {
  impl_ = std::make_unique<Impl>(client, std::move(options), wake_fd_);
}

Informer::~Informer() {
  impl_.reset();
  if (wake_fd_ >= 0) ::close(wake_fd_);
}

void Informer::Start() { impl_->Start(); }
Status Informer::WaitForSync(Millis timeout) const { return impl_->WaitForSync(timeout); }
bool Informer::synced() const { return impl_->synced(); }
std::vector<InformerChange> Informer::TakeChanges() { return impl_->TakeChanges(); }
std::optional<Json> Informer::Get(const std::string& key) const { return impl_->Get(key); }
std::vector<Json> Informer::List() const { return impl_->List(); }
std::vector<std::string> Informer::Keys() const { return impl_->Keys(); }
std::string Informer::resource_version() const { return impl_->resource_version(); }
Status Informer::last_failure() const { return impl_->last_failure(); }
InformerStats Informer::stats() const { return impl_->stats(); }
std::string Informer::Describe() const { return impl_->Describe(); }

}  // namespace lk::kube
