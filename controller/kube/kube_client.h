// KubeClient: the Kubernetes API as lanekeeper uses it — generic REST on JSON objects
// (get, list, create, update, patch, the status subresource, delete, watch), addressed by
// a ResourceRef, with every expected failure a Status:
//
//   404 NotFound -> NotFound        409 Conflict / AlreadyExists -> Conflict
//   410 Gone / Expired -> Gone      422 Invalid -> InvalidArgument (message and causes)
//   401 / 403 -> FailedPrecondition naming the verb and the resource (fix the credentials
//              or the RBAC; retrying alone will not help)
//   400 -> InvalidArgument          429, 5xx, timeouts, unreachable server -> Unavailable
//
// Every message starts with the verb and the resource ("PUT lanes.lanekeeper.dev
// default/a: ...") and carries the API server's own Status message.
//
// Owns: the HTTP connections (cpprestsdk, whose exceptions are caught inside and never
// leave), the credentials (a bearer token file is re-read when it changes: bound
// service-account tokens rotate). Does not own: caches, retries (RetryOnConflict is the
// one helper), or what the objects mean. Thread-safe: requests may run concurrently from
// any thread; a Watch blocks its caller until the stream ends or is cancelled.
//
// NewKubeClient() is the one real implementation; tests of the code above it can
// implement this interface with a fake.
#pragma once

#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "controller/kube/kube_config.h"
#include "worker/duration.h"
#include "worker/status.h"

namespace lk::kube {

using Json = nlohmann::json;

// Where an object or a collection lives. group "" is the core API (/api/v1); ns "" is a
// cluster-scoped resource, or every namespace for List and Watch; name "" is the
// collection (List, Watch, Create).
struct ResourceRef {
  std::string group{};
  std::string version{};
  std::string resource{};  // plural, lower case: "lanes", "deployments"
  std::string ns{};
  std::string name{};
  std::string subresource{};  // "status", or ""

  // /apis/lanekeeper.dev/v1alpha1/namespaces/default/lanes/a/status
  std::string Path() const;
  // "lanes.lanekeeper.dev default/a" (for messages)
  std::string Describe() const;
  ResourceRef Named(std::string n) const;
  ResourceRef InNamespace(std::string n) const;
  ResourceRef Subresource(std::string s) const;
};

// The resources lanekeeper uses.
ResourceRef LanesRef(std::string ns = "");
ResourceRef DeploymentsRef(std::string ns = "");
ResourceRef ConfigMapsRef(std::string ns = "");
ResourceRef LeasesRef(std::string ns = "");

// "ns/name", or "name" for a cluster-scoped object: the key of caches and work queues.
std::string ObjectKey(const Json& object);

struct ListOptions {
  std::string label_selector{};  // "app=lanekeeper,role in (supervisor)"
  std::string field_selector{};  // "metadata.name=a"
  // Items per page; the list follows `continue` until the end. 0: the server's choice.
  int page_size = 500;
};

struct ObjectList {
  std::vector<Json> items{};
  std::string resource_version{};  // of the list: where a watch starts from
};

struct PatchOptions {
  enum class Type {
    kMerge,  // application/merge-patch+json (RFC 7386): null deletes a field
    kApply,  // application/apply-patch+yaml: server-side apply; the body is the whole
             // intent of field_manager, and fields it stops sending are removed
  };
  Type type = Type::kMerge;
  std::string field_manager{};  // "": the client's (KubeClientOptions::field_manager)
  bool force = false;         // apply only: take fields owned by other managers
};

struct DeleteOptions {
  std::string propagation_policy = "Background";  // Foreground | Background | Orphan
  // Delete only if the object still has this uid / resourceVersion (else Conflict).
  std::string precondition_uid{};
  std::string precondition_resource_version{};
};

struct WatchOptions {
  std::string resource_version{};  // changes after this one; "" or "0": current objects first
  std::string label_selector{};
  std::string field_selector{};
  bool allow_bookmarks = true;
  // The server ends the stream after this long; the client's own read timeout is a
  // little longer (timeout_seconds + 15 s) so that a silent, dead connection is noticed.
  int timeout_seconds = 300;
};

struct WatchEvent {
  enum class Type { kAdded, kModified, kDeleted, kBookmark };
  Type type;
  Json object;
};

// Cancels blocking calls (a Watch) from another thread. Thread-safe; one-shot.
class Cancellation {
 public:
  void Cancel();
  bool cancelled() const;
  // Runs fn at Cancel() (at once when already cancelled). Returns an id for Remove; once
  // Remove(id) returns, fn is not running and will not run. fn runs under this object's
  // lock: keep it short, and never call back into this Cancellation from it.
  int OnCancel(std::function<void()> fn);
  void Remove(int id);

 private:
  mutable std::mutex mu_;
  bool cancelled_ = false;
  int next_id_ = 0;
  std::vector<std::pair<int, std::function<void()>>> callbacks_{};
};

struct KubeClientOptions {
  // Every request but a watch: connect, send and each read must finish within this.
  Millis timeout{30'000};
  // fieldManager of creates, updates and merge patches, and the default for applies.
  std::string field_manager = "lanekeeper";
  std::string user_agent = "lanekeeper";
};

class KubeClient {
 public:
  virtual ~KubeClient() = default;

  virtual StatusOr<Json> Get(const ResourceRef& ref) = 0;
  virtual StatusOr<ObjectList> List(const ResourceRef& collection,
                                    const ListOptions& options = {}) = 0;
  // POST to the collection of ref (ref.name is ignored: the object's metadata.name counts).
  virtual StatusOr<Json> Create(const ResourceRef& ref, const Json& object) = 0;
  // PUT: the object's metadata.resourceVersion makes it conditional (409 when stale).
  virtual StatusOr<Json> Update(const ResourceRef& ref, const Json& object) = 0;
  virtual StatusOr<Json> Patch(const ResourceRef& ref, const Json& patch,
                               const PatchOptions& options = {}) = 0;
  // PUT to ref's /status subresource: changes status only (and never metadata.generation).
  virtual StatusOr<Json> UpdateStatus(const ResourceRef& ref, const Json& object) = 0;
  // NotFound when already gone (callers usually treat that as done).
  virtual Status Delete(const ResourceRef& ref, const DeleteOptions& options = {}) = 0;

  // Streams the changes of a collection into on_event (false from it ends the watch) until
  // the server ends the stream (OK), the watch fails (a Status; Gone when the
  // resourceVersion is too old, whether the server said so with an HTTP 410 or an ERROR
  // event), or cancel is cancelled (OK). Blocks the calling thread.
  virtual Status Watch(const ResourceRef& collection, const WatchOptions& options,
                       const std::function<bool(WatchEvent&&)>& on_event,
                       Cancellation& cancel) = 0;

  // "https://10.0.0.1:443" (for messages).
  virtual std::string server() const = 0;
};

// The real client over cpprestsdk. InvalidArgument when the configuration cannot be used
// (a certificate or key that does not parse, a server that is not an http(s) URL).
StatusOr<std::unique_ptr<KubeClient>> NewKubeClient(const KubeConfig& config,
                                                    const KubeClientOptions& options = {});

// Runs attempt; while it returns Conflict (someone else changed the object between its
// read and its write), runs it again, up to max_attempts times with a short jittered pause
// (client-go's retry.RetryOnConflict: 5 attempts, 10 ms). attempt must read afresh.
Status RetryOnConflict(const std::function<Status()>& attempt, int max_attempts = 5);

// Get, modify, Update, retried on Conflict: the usual read-modify-write. modify may
// return an error to give up (it is returned). Returns the object as stored.
StatusOr<Json> GetModifyUpdate(KubeClient& client, const ResourceRef& ref,
                               const std::function<Status(Json& object)>& modify);

}  // namespace lk::kube
