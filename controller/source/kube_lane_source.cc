#include "controller/source/kube_lane_source.h"

#include <sys/epoll.h>
#include <unistd.h>

#include <spdlog/spdlog.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstring>

#include "controller/kube/kube_names.h"
#include "controller/kube/kube_secret.h"
#include "controller/spec/lane_parser.h"
#include "worker/redis_connection.h"

namespace lk {

using kube::Json;

namespace {

// A finalizer we added is in our own write before the informer shows it: patch it again
// only after this long without seeing it (the informer lags; someone removed it by hand).
constexpr auto kHoldMemory = std::chrono::seconds(10);

std::string LaneObjectKey(const LaneKey& key) { return key.ns.empty() ? key.name : key.ns + "/" + key.name; }

const Json& ObjectMeta(const Json& o) {
  static const Json kEmpty = Json::object();
  auto it = o.find("metadata");
  return it != o.end() && it->is_object() ? *it : kEmpty;
}

std::vector<std::string> FinalizersOf(const Json& o) {
  std::vector<std::string> out;
  const Json& meta = ObjectMeta(o);
  auto it = meta.find("finalizers");
  if (it == meta.end() || !it->is_array()) return out;
  for (const auto& f : *it) {
    if (f.is_string()) out.push_back(f.get<std::string>());
  }
  return out;
}

SpecError KubeLaneError(const LaneKey& key, std::string field, std::string message) {
  return SpecError{key.ToString(), 0, 0, std::move(field), std::move(message)};
}

std::vector<std::string> SpecErrorTexts(const std::vector<SpecError>& errors) {
  std::vector<std::string> out;
  for (const auto& e : errors) out.push_back(e.ToString());
  return out;
}

bool SameSourcedLane(const SourcedLane& a, const SourcedLane& b) {
  return a.valid == b.valid && a.deleting == b.deleting && a.generation == b.generation &&
         SpecErrorTexts(a.errors) == SpecErrorTexts(b.errors) &&
         (!a.valid || a.spec.SpecJson() == b.spec.SpecJson());
}

}  // namespace

struct KubeLaneSource::Known {
  SourcedLane lane;
  std::string uid;
  Json status;  // the object's status as last seen
  std::string secret;  // "ns/name" of the Secret it names, if any
  std::chrono::steady_clock::time_point held_at{};  // when we last added the finalizer
  ParseMemo memo;
};

KubeLaneSource::KubeLaneSource(KubeLaneSourceOptions options)
    : o_(std::move(options)), client_(*o_.client) {
  kube::InformerOptions lanes = o_.informer;
  lanes.resource = kube::LanesRef(o_.ns);
  lanes.label_selector.clear();
  lanes.field_selector.clear();
  lanes_ = std::make_unique<kube::Informer>(client_, std::move(lanes));
  kube::InformerOptions secrets = o_.informer;
  secrets.resource = kube::ResourceRef{"", "v1", "secrets", o_.ns};
  secrets.label_selector.clear();
  secrets.field_selector.clear();
  secrets_ = std::make_unique<kube::Informer>(client_, std::move(secrets));
  KubeStatusWriterOptions status = o_.status;
  status.client = o_.client;
  writer_ = std::make_unique<KubeStatusWriter>(std::move(status));
  epoll_fd_ = epoll_create1(EPOLL_CLOEXEC);
  for (int fd : {lanes_->wake_fd(), secrets_->wake_fd()}) {
    epoll_event ev{};
    ev.events = EPOLLIN;
    ev.data.fd = fd;
    if (epoll_fd_ >= 0) epoll_ctl(epoll_fd_, EPOLL_CTL_ADD, fd, &ev);
  }
}

KubeLaneSource::~KubeLaneSource() {
  writer_->Stop();
  if (epoll_fd_ >= 0) close(epoll_fd_);
}

Status KubeLaneSource::Start() {
  if (epoll_fd_ < 0) return Status::Internal(std::string("epoll_create1: ") + std::strerror(errno));
  lanes_->Start();
  secrets_->Start();
  if (Status s = lanes_->WaitForSync(o_.sync_timeout); !s.ok()) {
    Status last = lanes_->last_failure();
    if (last.IsNotFound()) {
      return Status::Unavailable("cannot list Lanes on " + client_.server() + ": " + last.message() +
                                 "; is the Lane CRD installed (kubectl apply -f crds/lane.yaml)?");
    }
    return s;
  }
  LK_RETURN_IF_ERROR(secrets_->WaitForSync(o_.sync_timeout));
  writer_->Start();
  Poll();
  return Status::OK();
}

SourcedLane KubeLaneSource::ReadLane(const Json& object,
                                     const std::function<const Json*(const std::string&)>& lookup,
                                     ParseMemo* memo) {
  SourcedLane out;
  const Json& meta = ObjectMeta(object);
  out.key = {meta.value("namespace", ""), meta.value("name", "")};
  if (auto g = meta.find("generation"); g != meta.end() && g->is_number_integer()) {
    out.generation = g->get<int64_t>();
  }
  out.deleting = meta.contains("deletionTimestamp") && !meta["deletionTimestamp"].is_null();
  // The server's bookkeeping is no part of the spec, and the largest part of the text: the
  // status, and the metadata fields the parser accepts unread.
  Json text = object;
  text.erase("status");
  if (text.contains("metadata") && text["metadata"].is_object()) {
    for (std::string_view server_field : kServerSetMetadataFields) {
      text["metadata"].erase(std::string(server_field));
    }
  }
  std::string dumped = text.dump();
  ParsedLanes parsed;
  if (memo != nullptr && memo->text == dumped) {
    parsed = memo->parsed;
  } else {
    parsed = ParseLaneSpecs(dumped, out.key.ToString());
    if (memo != nullptr) {
      memo->text = std::move(dumped);
      memo->parsed = parsed;
    }
  }
  if (!parsed.errors.empty() || parsed.lanes.size() != 1) {
    out.errors = parsed.errors;
    if (out.errors.empty()) out.errors.push_back(KubeLaneError(out.key, "", "not one Lane"));
    return out;
  }
  LaneSpec spec = std::move(parsed.lanes.front());
  spec.namespace_name = out.key.ns;
  if (!spec.redis_password_file.empty()) {
    // A Lane object must not make the controller (or its pods) read a file of its choosing.
    out.errors.push_back(KubeLaneError(
        out.key, "spec.redis.passwordFile",
        "is for lanes from files only: in a cluster put the Redis URL in a Secret and name "
        "it in spec.redis.urlFrom.secretKeyRef (docs/kubernetes.md)"));
    return out;
  }
  if (!spec.redis_url.empty()) {
    auto ep = ParseRedisUrl(spec.redis_url);
    if (ep.ok() && !ep->password.empty()) {
      out.errors.push_back(KubeLaneError(
          out.key, "spec.redis.url",
          "carries a password (" + ep->Redacted() +
              "): in a cluster a Lane is readable by everyone who may list Lanes, and its pods "
              "would show the URL; put the URL in a Secret and name it in "
              "spec.redis.urlFrom.secretKeyRef (docs/kubernetes.md)"));
      return out;
    }
  }
  if (!spec.redis_url_from.empty()) {
    const SecretKeyRef& ref = spec.redis_url_from;
    const std::string secret_key = out.key.ns + "/" + ref.name;
    const Json* secret = lookup(secret_key);
    std::optional<std::string> url = secret ? kube::SecretValue(*secret, ref.key) : std::nullopt;
    if (!secret) {
      out.errors.push_back(KubeLaneError(out.key, "spec.redis.urlFrom.secretKeyRef",
                                     "Secret " + secret_key + " not found; create it with the "
                                     "Redis URL under key " + ref.key));
      return out;
    }
    if (!url) {
      out.errors.push_back(KubeLaneError(out.key, "spec.redis.urlFrom.secretKeyRef",
                                     "Secret " + secret_key + " has no key " + ref.key));
      return out;
    }
    while (!url->empty() && (url->back() == '\n' || url->back() == '\r' || url->back() == ' ')) {
      url->pop_back();  // `echo URL | kubectl create secret --from-file` leaves a newline
    }
    if (!ParseRedisUrl(*url).ok()) {
      // Never the value itself: it holds a password.
      out.errors.push_back(KubeLaneError(
          out.key, "spec.redis.urlFrom.secretKeyRef",
          "key " + ref.key + " of Secret " + secret_key + " is not a Redis URL (expected "
          "redis://[[user]:password@]host[:port][/db] or unix://[[user]:password@]/path.sock[?db=N])"));
      return out;
    }
    spec.redis_url = *url;
  }
  out.valid = true;
  out.spec = std::move(spec);
  return out;
}

bool KubeLaneSource::Refresh(const std::string& object_key) {
  auto object = lanes_->Get(object_key);
  if (!object) return false;
  auto lookup_cache = std::make_shared<std::optional<Json>>();
  const Json& object_meta = ObjectMeta(*object);
  Known& k = known_[LaneKey{object_meta.value("namespace", ""), object_meta.value("name", "")}];
  SourcedLane lane = ReadLane(*object, [&](const std::string& key) -> const Json* {
    *lookup_cache = secrets_->Get(key);
    return *lookup_cache ? &**lookup_cache : nullptr;
  }, &k.memo);
  LaneKey key = lane.key;
  std::string uid = object_meta.value("uid", "");
  k.status = object->contains("status") ? (*object)["status"] : Json::object();
  bool changed = uid != k.uid || !SameSourcedLane(lane, k.lane) || k.lane.key.name.empty();
  k.uid = uid;
  std::string secret;
  if (lane.valid && !lane.spec.redis_url_from.empty()) {
    secret = key.ns + "/" + lane.spec.redis_url_from.name;
  } else if (!lane.valid) {
    // An invalid lane may still name a Secret that is missing: wake it when it appears.
    auto spec = object->find("spec");
    if (spec != object->end() && spec->is_object() && spec->contains("redis") &&
        (*spec)["redis"].is_object() && (*spec)["redis"].contains("urlFrom")) {
      const Json& ref = (*spec)["redis"]["urlFrom"].value("secretKeyRef", Json::object());
      if (ref.is_object() && ref.contains("name") && ref["name"].is_string()) {
        secret = key.ns + "/" + ref["name"].get<std::string>();
      }
    }
  }
  if (secret != k.secret) {
    if (!k.secret.empty()) secret_users_[k.secret].erase(key);
    if (!secret.empty()) secret_users_[secret].insert(key);
    k.secret = secret;
  }
  k.lane = std::move(lane);
  return changed;
}

void KubeLaneSource::Drop(const LaneKey& key) {
  auto it = known_.find(key);
  if (it == known_.end()) return;
  if (!it->second.secret.empty()) {
    secret_users_[it->second.secret].erase(key);
    if (secret_users_[it->second.secret].empty()) secret_users_.erase(it->second.secret);
  }
  known_.erase(it);
  writer_->Forget(key);
}

std::vector<LaneKey> KubeLaneSource::Poll() {
  std::set<LaneKey> changed;
  for (const auto& c : lanes_->TakeChanges()) {
    auto slash = c.key.find('/');
    LaneKey key = slash == std::string::npos ? LaneKey{"", c.key}
                                             : LaneKey{c.key.substr(0, slash), c.key.substr(slash + 1)};
    if (c.type == kube::InformerChange::Type::kDeleted) {
      if (known_.count(key)) changed.insert(key);
      Drop(key);
    } else if (Refresh(c.key)) {
      changed.insert(key);
    }
  }
  for (const auto& c : secrets_->TakeChanges()) {
    auto users = secret_users_.find(c.key);
    if (users == secret_users_.end()) continue;
    std::vector<LaneKey> lanes(users->second.begin(), users->second.end());
    for (const LaneKey& key : lanes) {
      if (Refresh(LaneObjectKey(key))) changed.insert(key);
    }
  }
  return {changed.begin(), changed.end()};
}

std::vector<LaneKey> KubeLaneSource::Keys() const {
  std::vector<LaneKey> out;
  out.reserve(known_.size());
  for (const auto& [k, v] : known_) out.push_back(k);
  return out;
}

const SourcedLane* KubeLaneSource::Get(const LaneKey& key) const {
  auto it = known_.find(key);
  return it == known_.end() ? nullptr : &it->second.lane;
}

std::vector<SpecError> KubeLaneSource::Errors() const {
  std::vector<SpecError> out;
  if (Status s = lanes_->last_failure(); !s.ok()) {
    out.push_back(SpecError{Describe(), 0, 0, "", "cannot watch Lanes (retrying): " + s.message()});
  }
  if (Status s = secrets_->last_failure(); !s.ok()) {
    out.push_back(SpecError{secrets_->Describe(), 0, 0, "", "cannot watch Secrets (retrying): " + s.message()});
  }
  return out;
}

std::string KubeLaneSource::Describe() const { return lanes_->Describe(); }

std::string KubeLaneSource::Uid(const LaneKey& key) const {
  auto it = known_.find(key);
  return it == known_.end() ? "" : it->second.uid;
}

void KubeLaneSource::PublishStatus(const LaneKey& key, const LaneState& state) {
  auto it = known_.find(key);
  if (it == known_.end()) return;  // gone: no object to write to
  writer_->Publish({key, it->second.uid, it->second.lane.generation, state, it->second.status});
}

Status KubeLaneSource::PatchFinalizer(const LaneKey& key, bool present, bool* changed) {
  if (changed) *changed = false;
  const kube::ResourceRef ref = kube::LanesRef(key.ns).Named(key.name);
  std::optional<Json> object = lanes_->Get(LaneObjectKey(key));
  bool fresh = false;
  return kube::RetryOnConflict([&]() -> Status {
    if (!object || fresh) {
      auto got = client_.Get(ref);
      if (!got.ok()) return got.status().IsNotFound() ? Status::OK() : got.status();
      object = std::move(*got);
    }
    fresh = true;  // a conflict means our copy was stale: read the next one from the server
    std::vector<std::string> finalizers = FinalizersOf(*object);
    bool has = std::find(finalizers.begin(), finalizers.end(), kube::kLaneFinalizer) != finalizers.end();
    if (has == present) return Status::OK();
    if (present) {
      finalizers.push_back(kube::kLaneFinalizer);
    } else {
      std::erase(finalizers, std::string(kube::kLaneFinalizer));
    }
    // The resourceVersion makes the merge patch conditional: a list is replaced whole, so
    // without it a finalizer someone else added meanwhile would be lost.
    Json patch = {{"metadata",
                   {{"finalizers", finalizers},
                    {"resourceVersion", ObjectMeta(*object).value("resourceVersion", "")}}}};
    auto patched = client_.Patch(ref, patch, {});
    if (!patched.ok()) return patched.status().IsNotFound() ? Status::OK() : patched.status();
    if (changed) *changed = true;
    return Status::OK();
  });
}

Status KubeLaneSource::Hold(const LaneKey& key) {
  auto it = known_.find(key);
  if (it == known_.end()) return Status::OK();
  std::optional<Json> object = lanes_->Get(LaneObjectKey(key));
  if (object) {
    auto f = FinalizersOf(*object);
    if (std::find(f.begin(), f.end(), kube::kLaneFinalizer) != f.end()) return Status::OK();
  }
  auto now = std::chrono::steady_clock::now();
  if (it->second.held_at != std::chrono::steady_clock::time_point{} && now - it->second.held_at < kHoldMemory) {
    return Status::OK();  // added; the informer has not shown it yet
  }
  LK_RETURN_IF_ERROR(PatchFinalizer(key, true).WithContext("lane " + key.ToString() + ": adding its finalizer"));
  it->second.held_at = now;
  return Status::OK();
}

Status KubeLaneSource::Release(const LaneKey& key) {
  bool removed = false;
  LK_RETURN_IF_ERROR(PatchFinalizer(key, false, &removed)
                         .WithContext("lane " + key.ToString() + ": removing its finalizer"));
  if (auto it = known_.find(key); it != known_.end()) it->second.held_at = {};
  // Release runs again until the informer shows the Lane gone: say it once, when it happened.
  if (removed) spdlog::info("controller: lane {}: drained; finalizer {} removed", key.ToString(), kube::kLaneFinalizer);
  return Status::OK();
}

}  // namespace lk
