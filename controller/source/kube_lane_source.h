// KubeLaneSource: the Lane objects of a Kubernetes cluster (one namespace, or all) — what
// `lanekeeper controller --kube` reconciles, with their status written back.
//
//   reading    an Informer on lanes.lanekeeper.dev (list, then watch; a 410 relists and
//              delivers the differences, a dropped watch resumes from its resourceVersion);
//              each object is read by the same parser as a spec file (JSON is YAML:
//              ParseLaneSpecs(json, "ns/name")); generation is metadata.generation; a Lane
//              with a deletionTimestamp is `deleting`
//   Secrets    spec.redis.urlFrom.secretKeyRef is read from an Informer on Secrets into
//              spec.redis_url, which the controller uses for its own Redis reads (status,
//              doctor); redis_url_from stays, and pods get the Secret, not the URL. A Secret
//              that changes wakes the lanes that name it. A missing Secret or key is the
//              lane's error (SpecValid False, naming the Secret), as is an inline
//              spec.redis.url that carries a password: in a cluster a Lane is readable by
//              everyone who may list Lanes, so the password belongs in a Secret
//   Hold       the finalizer lanekeeper.dev/drain, added by a merge patch conditional on the
//   Release    resourceVersion (409: read again and retry); removed once the lane's roles are
//              gone, after which the API server deletes the Lane
//   status     PublishStatus hands the lane's state to a KubeStatusWriter (its own threads:
//              controller/source/kube_status_writer.h), which reads Redis and writes the
//              status subresource when it changed, with Events on condition transitions
//
// Keys that changed are those whose parsed lane changed (spec, validity, errors, generation,
// deleting), not every event: our own status writes wake nothing.
// Owns: the informers, an epoll descriptor over their eventfds (wake_fd), the status writer.
// Does not own: the client (must outlive it). Not thread-safe: one controller thread.
#pragma once

#include <functional>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include "controller/kube/informer.h"
#include "controller/kube/kube_client.h"
#include "controller/source/kube_status_writer.h"
#include "controller/source/lane_source.h"
#include "controller/spec/lane_parser.h"
#include "worker/duration.h"

namespace lk {

struct KubeLaneSourceOptions {
  kube::KubeClient* client = nullptr;  // required; must outlive the source
  std::string ns;                      // "" every namespace
  Millis sync_timeout{30'000};         // Start() waits this long for the first lists
  KubeStatusWriterOptions status{};    // its client is this one's
  // Its resource and selector are the source's; the rest (backoffs) is the caller's.
  kube::InformerOptions informer{};
};

class KubeLaneSource final : public LaneSource {
 public:
  explicit KubeLaneSource(KubeLaneSourceOptions options);
  ~KubeLaneSource() override;
  KubeLaneSource(const KubeLaneSource&) = delete;
  KubeLaneSource& operator=(const KubeLaneSource&) = delete;

  // Starts the informers and the status writer and waits for the first lists. Unavailable
  // when they do not finish within sync_timeout (the message says when the Lane CRD is not
  // installed).
  Status Start() override;
  std::vector<LaneKey> Keys() const override;
  const SourcedLane* Get(const LaneKey& key) const override;
  std::vector<SpecError> Errors() const override;
  std::string Describe() const override;
  int wake_fd() const override { return epoll_fd_; }
  Clock::TimePoint NextPoll() const override { return Clock::TimePoint::max(); }
  std::vector<LaneKey> Poll() override;

  void PublishStatus(const LaneKey& key, const LaneState& state) override;
  Status Hold(const LaneKey& key) override;
  Status Release(const LaneKey& key) override;

  // The Lane object's uid ("" when there is none): what its Deployments name as their owner.
  std::string Uid(const LaneKey& key) const;
  const KubeStatusWriter& status_writer() const { return *writer_; }

  // The last text a Lane object was parsed from, and what it parsed to. Most events of a
  // Lane change only what the parser never reads (status, resourceVersion, finalizers), and
  // parsing is the controller's largest cost in a burst of new Lanes.
  struct ParseMemo {
    std::string text;
    ParsedLanes parsed;
  };

  // One Lane object as the controller sees it: parsed, its Secret resolved through lookup
  // ("ns/name" -> the Secret, or nullptr). memo (optional): reused when the text to parse is
  // the one it holds, and updated otherwise. Exposed for tests.
  static SourcedLane ReadLane(const kube::Json& lane,
                              const std::function<const kube::Json*(const std::string&)>& lookup,
                              ParseMemo* memo = nullptr);

 private:
  struct Known;
  // Reads key's object afresh; true when what the controller sees of it changed.
  bool Refresh(const std::string& key);
  void Drop(const LaneKey& key);
  // Sets or clears the finalizer, conditional on the resourceVersion, retried on conflict.
  // *changed (if given): whether this call patched it (false when it was already so, or the
  // Lane is gone).
  Status PatchFinalizer(const LaneKey& key, bool present, bool* changed = nullptr);

  KubeLaneSourceOptions o_;
  kube::KubeClient& client_;
  std::unique_ptr<kube::Informer> lanes_;
  std::unique_ptr<kube::Informer> secrets_;
  std::unique_ptr<KubeStatusWriter> writer_;
  int epoll_fd_ = -1;
  std::map<LaneKey, Known> known_;
  std::map<std::string, std::set<LaneKey>> secret_users_;  // "ns/secret" -> lanes naming it
};

}  // namespace lk
