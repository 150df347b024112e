// Informer: a local, always-catching-up copy of one kind of Kubernetes object (client-go's
// reflector + store), for a controller that wants to know *which* objects changed and to
// read them without asking the API server.
//
// The loop, on its own thread:
//   list (paged) -> replace the cache -> watch from the list's resourceVersion
//   (allowWatchBookmarks) -> apply each event -> ...
//   - the stream ends (the server's timeoutSeconds): watch again from the last seen
//     resourceVersion; BOOKMARK events advance it without any object changing;
//   - 410 Gone (an HTTP 410, or an ERROR event with code 410: the version is older than the
//     server keeps): list again at once, and deliver the differences between the old cache
//     and the new list — deletions included — as if they had been watched;
//   - any other failure (connection refused or dropped, a timeout, a 5xx, a 403): wait, then
//     try again from where it was (watch from the last resourceVersion; list if it never
//     listed). The waits are client-go's reflector backoff: 800 ms doubling to 30 s, each
//     with up to 100 % jitter, back to 800 ms after 2 minutes without a failure.
//
// The consumer (one controller thread, with poll()) sees changes as keys: wake_fd() is an
// eventfd that becomes readable when something changed; TakeChanges() drains it and returns
// the net change of each key since the last call (added, modified or deleted; an object
// added and deleted in between is not reported). Get()/List() read the cache. Keys are
// "namespace/name" ("name" when cluster-scoped): ObjectKey() in kube_client.h.
//
// Owns: its thread, the cache, the eventfd. Does not own: the client (must outlive it).
// Thread-safe: every public method may be called from any thread. The destructor cancels
// the in-flight watch and joins the thread promptly (no waiting out a watch or a backoff;
// a list in flight is waited for, bounded by the client's request timeout).
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "controller/kube/kube_client.h"
#include "worker/duration.h"
#include "worker/status.h"

namespace lk::kube {

struct InformerOptions {
  ResourceRef resource{};        // a collection: ns "" watches every namespace
  std::string label_selector{};  // "" : every object
  std::string field_selector{};
  // Each watch asks the server to end it after this long (then a new watch starts).
  int watch_timeout_seconds = 300;
  // Reconnect backoff (client-go's reflector): initial, doubled per failure up to max;
  // each wait is base * (1 + jitter * U[0,1)); reset after `backoff_reset` without failures.
  Millis backoff_initial{800};
  Millis backoff_max{30'000};
  double backoff_jitter = 1.0;
  Millis backoff_reset{120'000};
  // Called on the informer's thread after each failed list or watch, with the failure and
  // the wait before the next try (for logs and tests). Must not call back into the
  // informer's destructor.
  std::function<void(const Status& failure, Millis retry_in)> on_failure{};
  // Trims each object before it is cached (client-go's SetTransform): drops what the
  // consumer never reads, so that a cache of thousands of objects stays small. Runs on the
  // informer's thread; must keep metadata.namespace, name and resourceVersion. Every
  // object loses metadata.managedFields and the kubectl.kubernetes.io/last-applied-
  // configuration annotation first, whatever this says.
  std::function<void(Json& object)> transform{};
};

struct InformerChange {
  enum class Type { kAdded, kModified, kDeleted };
  Type type;
  std::string key{};
};

struct InformerStats {
  int64_t lists = 0;       // successful lists (the first, and every relist)
  int64_t relists_after_gone = 0;
  int64_t watches = 0;     // watch requests made (answered or not)
  int64_t failures = 0;    // failed lists and watches (each followed by a backoff)
  int64_t events = 0;      // watch events applied, bookmarks included
};

class Informer {
 public:
  Informer(KubeClient& client, InformerOptions options);
  ~Informer();
  Informer(const Informer&) = delete;
  Informer& operator=(const Informer&) = delete;

  // Starts the thread (the first list happens there). Call once.
  void Start();
  // Blocks until the first list has filled the cache (OK), or timeout passes
  // (Unavailable, with the last failure's message).
  Status WaitForSync(Millis timeout) const;
  bool synced() const;

  int wake_fd() const { return wake_fd_; }
  // The net change of every key since the last call; empties the set and drains wake_fd.
  std::vector<InformerChange> TakeChanges();

  // The cached object, as last listed or watched.
  std::optional<Json> Get(const std::string& key) const;
  std::vector<Json> List() const;
  std::vector<std::string> Keys() const;
  // Where the next watch would start: the last list's, event's or bookmark's version.
  std::string resource_version() const;
  // The last list or watch failure; OK once a later one succeeded.
  Status last_failure() const;
  InformerStats stats() const;
  std::string Describe() const;  // "lanes.lanekeeper.dev (all namespaces) on https://…"

 private:
  class Impl;
  std::unique_ptr<Impl> impl_;
  int wake_fd_ = -1;
};

}  // namespace lk::kube
