// InterruptibleKubeClient: a KubeClient that passes every call to a real one, until the test
// cuts it off — a network partition between one client and an API server that stays up
// (other clients still reach it). Interrupt() ends the open watches as a dropped
// connection would and refuses every request until Restore(). Thread-safe.
#pragma once

#include <mutex>
#include <vector>

#include "controller/kube/kube_client.h"

namespace lk::testing {

class InterruptibleKubeClient final : public kube::KubeClient {
 public:
  // What an interrupted request (or a cut watch) answers.
  enum class Cut { kNone, kRequests, kWatches };

  explicit InterruptibleKubeClient(kube::KubeClient& real) : real_(real) {}

  // Watches only (kWatches), or every request (kRequests).
  void Interrupt(Cut what = Cut::kRequests) {
    std::lock_guard<std::mutex> lock(mu_);
    cut_ = what;
    for (auto* c : open_watches_) c->Cancel();
  }
  void Restore() {
    std::lock_guard<std::mutex> lock(mu_);
    cut_ = Cut::kNone;
  }

  StatusOr<kube::Json> Get(const kube::ResourceRef& r) override {
    LK_RETURN_IF_ERROR(Check());
    return real_.Get(r);
  }
  StatusOr<kube::ObjectList> List(const kube::ResourceRef& r, const kube::ListOptions& o) override {
    LK_RETURN_IF_ERROR(Check());
    return real_.List(r, o);
  }
  StatusOr<kube::Json> Create(const kube::ResourceRef& r, const kube::Json& o) override {
    LK_RETURN_IF_ERROR(Check());
    return real_.Create(r, o);
  }
  StatusOr<kube::Json> Update(const kube::ResourceRef& r, const kube::Json& o) override {
    LK_RETURN_IF_ERROR(Check());
    return real_.Update(r, o);
  }
  StatusOr<kube::Json> Patch(const kube::ResourceRef& r, const kube::Json& p,
                             const kube::PatchOptions& o) override {
    LK_RETURN_IF_ERROR(Check());
    return real_.Patch(r, p, o);
  }
  StatusOr<kube::Json> UpdateStatus(const kube::ResourceRef& r, const kube::Json& o) override {
    LK_RETURN_IF_ERROR(Check());
    return real_.UpdateStatus(r, o);
  }
  Status Delete(const kube::ResourceRef& r, const kube::DeleteOptions& o) override {
    LK_RETURN_IF_ERROR(Check());
    return real_.Delete(r, o);
  }
  std::string server() const override { return real_.server(); }

  Status Watch(const kube::ResourceRef& r, const kube::WatchOptions& o,
               const std::function<bool(kube::WatchEvent&&)>& on_event,
               kube::Cancellation& cancel) override {
    kube::Cancellation mine;
    {
      std::lock_guard<std::mutex> lock(mu_);
      if (cut_ != Cut::kNone) return Refused("WATCH");
      open_watches_.push_back(&mine);
    }
    const int id = cancel.OnCancel([&mine] { mine.Cancel(); });
    Status s = real_.Watch(r, o, on_event, mine);
    cancel.Remove(id);
    std::lock_guard<std::mutex> lock(mu_);
    std::erase(open_watches_, &mine);
    if (mine.cancelled() && !cancel.cancelled()) {
      return Status::Unavailable("WATCH " + r.Describe() + ": connection dropped (interrupted by the test)");
    }
    return s;
  }

 private:
  Status Check() {
    std::lock_guard<std::mutex> lock(mu_);
    return cut_ == Cut::kRequests ? Refused("request") : Status::OK();
  }
  Status Refused(const std::string& what) const {
    return Status::Unavailable(what + ": cannot reach the API server " + real_.server() +
                               ": connection refused (interrupted by the test)");
  }

  kube::KubeClient& real_;
  std::mutex mu_;
  Cut cut_ = Cut::kNone;
  std::vector<kube::Cancellation*> open_watches_;
};

}  // namespace lk::testing
