#include "controller/lane_controller.h"

#include <poll.h>
#include <pwd.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <spdlog/spdlog.h>

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <set>

#include "controller/backend/process_backend.h"
#include "controller/backend/serial_role_backend.h"
#include "controller/owner/stop_signals.h"
#include "controller/reconcile/reconcile_loop.h"
#include "controller/source/spec_dir_source.h"
#include "worker/redis_connection.h"

namespace lk {

namespace {

std::string HomeDir() {
  const char* home = std::getenv("HOME");
  if (home && *home) return home;
  const passwd* pw = getpwuid(geteuid());
  return pw ? pw->pw_dir : "/tmp";
}

// Milliseconds from now until at, for poll(): 0 when due, at most a minute.
int PollTimeout(Clock::TimePoint now, Clock::TimePoint at) {
  if (at <= now) return 0;
  if (at == Clock::TimePoint::max()) return 60'000;
  auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(at - now).count() + 1;
  return static_cast<int>(std::min<int64_t>(ms, 60'000));
}

}  // namespace

std::string DefaultStateDir() {
  if (const char* d = std::getenv("LANEKEEPER_STATE_DIR"); d && *d) return d;
  if (geteuid() == 0) return "/var/lib/lanekeeper";
  if (const char* d = std::getenv("XDG_STATE_HOME"); d && *d) return std::string(d) + "/lanekeeper";
  return HomeDir() + "/.local/state/lanekeeper";
}

std::string DefaultSpecsDir() {
  if (const char* d = std::getenv("LANEKEEPER_SPECS_DIR"); d && *d) return d;
  if (geteuid() == 0) return "/etc/lanekeeper/lanes";
  if (const char* d = std::getenv("XDG_CONFIG_HOME"); d && *d) {
    return std::string(d) + "/lanekeeper/lanes";
  }
  return HomeDir() + "/.config/lanekeeper/lanes";
}

class LaneController::Impl {
 public:
  Impl(LaneControllerOptions o, ControllerStateStore& store)
      : o_(std::move(o)), store_(store), clock_(o_.clock ? *o_.clock : SystemClock()) {
    if (!o_.source) {
      own_source_ = std::make_unique<SpecDirSource>(
          SpecDirSourceOptions{o_.specs_dir, o_.rescan_every, o_.debounce, &clock_});
      o_.source = own_source_.get();
    }
    if (!o_.backend) {
      ProcessBackendOptions b;
      b.state_dir = o_.state_dir;
      b.binary = o_.binary;
      b.log_format = o_.log_format;
      b.log_level = o_.log_level;
      b.supervisor_args = o_.supervisor_args;
      b.autopilot_args = o_.autopilot_args;
      b.restart.max = o_.restart_backoff_max;
      b.clock = &clock_;
      own_backend_ = std::make_unique<ProcessBackend>(std::move(b));
      o_.backend = own_backend_.get();
    }
    o_.workers = std::max(o_.workers, 1);
    if (o_.workers > 1 && !o_.backend->ThreadSafe()) {
      serial_backend_ = std::make_unique<SerialRoleBackend>(*o_.backend);
      o_.backend = serial_backend_.get();
    }
    ReconcilerOptions r;
    r.default_redis_url = o_.default_redis_url;
    r.clock = &clock_;
    r.wake = [this](const LaneKey& key) { loop_->queue().Add(key); };
    reconciler_ = std::make_unique<Reconciler>(std::move(r), *o_.source, *o_.backend);
    loop_ = std::make_unique<ReconcileLoop>(clock_, *reconciler_, WorkQueue::RateLimit{}, o_.workers);
    started_ms_ = clock_.WallMs();
  }

  ~Impl() {
    if (stop_fd_ >= 0) close(stop_fd_);
  }

  Status Init();
  int Run();
  void RequestStop() {
    uint64_t one = 1;
    if (stop_fd_ >= 0) (void)!write(stop_fd_, &one, sizeof(one));
  }

 private:
  // Waits for the next event or due key, up to the earliest deadline; false once told to
  // stop (a second time while stopping: kills every role).
  bool Wait(bool stopping);
  // Turns what the source and the backend saw into keys.
  void Collect();
  // Reconciles every due key; publishes when any ran.
  void ProcessDue();
  void EnqueueAll();
  void Publish();
  bool Acting() const { return !o_.may_act || o_.may_act(); }

  LaneControllerOptions o_;
  ControllerStateStore& store_;
  const Clock& clock_;
  std::unique_ptr<LaneSource> own_source_;
  std::unique_ptr<RoleBackend> own_backend_;
  std::unique_ptr<RoleBackend> serial_backend_;  // over o_.backend when it is not ThreadSafe()
  std::unique_ptr<Reconciler> reconciler_;
  std::unique_ptr<ReconcileLoop> loop_;
  StopSignals signals_;  // SIGTERM, SIGINT
  int stop_fd_ = -1;     // RequestStop()
  int64_t started_ms_ = 0;
  bool ready_ = false;
  Clock::TimePoint next_resync_{};
  std::vector<std::string> source_errors_;  // as last logged
};

Status LaneController::Impl::Init() {
  if (auto ep = ParseRedisUrl(o_.default_redis_url); !ep.ok()) {
    return Status::InvalidArgument("--redis: " + ep.status().message());
  }
  stop_fd_ = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  if (!signals_.Install() || stop_fd_ < 0) {
    return Status::Internal(std::string("controller: cannot set up event sources: ") +
                            std::strerror(errno));
  }
  LK_RETURN_IF_ERROR(o_.backend->Start());
  LK_RETURN_IF_ERROR(o_.source->Start());
  // Lanes with roles running first: a lane that runs is admitted before a newcomer that
  // would take its queue.
  for (const LaneKey& k : o_.backend->Lanes()) loop_->queue().Add(k);
  for (const LaneKey& k : o_.source->Keys()) loop_->queue().Add(k);
  next_resync_ = clock_.Now() + o_.resync_every;
  return Status::OK();
}

void LaneController::Impl::EnqueueAll() {
  for (const LaneKey& k : o_.backend->Lanes()) loop_->queue().Add(k);
  for (const LaneKey& k : o_.source->Keys()) loop_->queue().Add(k);
}

bool LaneController::Impl::Wait(bool stopping) {
  auto now = clock_.Now();
  auto wake = std::min({loop_->queue().NextDue(), o_.source->NextPoll(), o_.backend->NextPoll(),
                        stopping ? Clock::TimePoint::max() : next_resync_});
  std::vector<pollfd> fds{{signals_.fd(), POLLIN, 0}, {stop_fd_, POLLIN, 0}};
  if (o_.leadership_fd >= 0) fds.push_back({o_.leadership_fd, POLLIN, 0});
  if (!stopping && o_.source->wake_fd() >= 0) fds.push_back({o_.source->wake_fd(), POLLIN, 0});
  for (int fd : o_.backend->wake_fds()) fds.push_back({fd, POLLIN, 0});
  if (!Acting()) wake = std::min(next_resync_, o_.source->NextPoll());  // nothing due while we wait
  int n = poll(fds.data(), fds.size(), PollTimeout(now, wake));
  if (o_.leadership_fd >= 0) {
    uint64_t v;
    [[maybe_unused]] ssize_t r = read(o_.leadership_fd, &v, sizeof(v));
  }
  if (n < 0 && errno != EINTR) {
    spdlog::error("controller: poll: {}", std::strerror(errno));
    return false;
  }
  bool stop = signals_.Drain();
  uint64_t v;
  if (read(stop_fd_, &v, sizeof(v)) == sizeof(v)) stop = true;
  if (stop && stopping) {
    // A second Ctrl-C: do not wait for drains.
    spdlog::warn("controller: asked again: killing every role now");
    o_.backend->KillAll();
  }
  return !stop;
}

void LaneController::Impl::Collect() {
  for (const LaneKey& k : o_.source->Poll()) loop_->queue().Add(k);
  for (const LaneKey& k : o_.backend->Poll()) loop_->queue().Add(k);
  std::vector<std::string> errors;
  for (const auto& e : o_.source->Errors()) errors.push_back(e.ToString());
  if (errors != source_errors_) {
    for (const auto& e : errors) spdlog::warn("controller: spec error: {}", e);
    source_errors_ = std::move(errors);
  }
}

void LaneController::Impl::ProcessDue() {
  // Not the leader: another replica acts; what changed stays queued for when we lead.
  if (!Acting()) return;
  std::vector<LaneKey> done = loop_->ProcessDue();
  if (done.empty()) return;
  for (const LaneKey& k : done) {
    if (const LaneState* state = reconciler_->State(k)) o_.source->PublishStatus(k, *state);
  }
  Publish();
}

void LaneController::Impl::Publish() {
  ControllerSnapshot s;
  s.started_ms = started_ms_;
  s.ready = ready_;
  s.specs_dir = o_.source->Describe();
  s.state_dir = o_.state_dir;
  s.default_redis_url = o_.default_redis_url;
  s.lanes = reconciler_->States();
  s.errors = o_.source->Errors();
  for (auto& e : reconciler_->RefusedErrors()) s.errors.push_back(std::move(e));
  const ReconcileCounters& c = loop_->counters();
  s.reconcile_total = c.total;
  s.reconcile_errors_total = c.errors;
  s.reconcile_buckets = c.buckets;
  s.reconcile_bucket_counts = c.bucket_counts;
  s.reconcile_seconds_sum = c.seconds_sum;
  for (const auto& [lane, n] : reconciler_->spec_change_restarts()) {
    s.role_restarts[{lane, "spec_change"}] = n;
  }
  for (const auto& lane : s.lanes) {
    uint64_t drift = 0;
    for (const auto& r : lane.roles) drift += static_cast<uint64_t>(r.restarts);
    if (drift > 0) s.role_restarts[{lane.name, "drift"}] = drift;
  }
  store_.Set(std::move(s));
}

int LaneController::Impl::Run() {
  ProcessDue();
  ready_ = true;
  Publish();
  spdlog::info("controller: watching {} ({} lane(s)), state in {}", o_.source->Describe(),
               o_.source->Keys().size(), o_.state_dir);
  while (Wait(/*stopping=*/false)) {
    Collect();
    if (clock_.Now() >= next_resync_) {
      EnqueueAll();
      next_resync_ = clock_.Now() + o_.resync_every;
    }
    ProcessDue();
  }
  if (o_.leave_running) {
    spdlog::info("controller: stopping; {} lane(s) left running for the next controller to adopt",
                 o_.backend->Lanes().size());
    return 0;
  }
  spdlog::info("controller: stopping {} lane(s)", o_.backend->Lanes().size());
  reconciler_->StopAll();
  EnqueueAll();
  ProcessDue();
  while (!o_.backend->Lanes().empty()) {
    Wait(/*stopping=*/true);
    for (const LaneKey& k : o_.backend->Poll()) loop_->queue().Add(k);
    ProcessDue();
  }
  spdlog::info("controller: stopped");
  return 0;
}

LaneController::LaneController(LaneControllerOptions options, ControllerStateStore& store)
    : impl_(std::make_unique<Impl>(std::move(options), store)) {}
LaneController::~LaneController() = default;
Status LaneController::Init() { return impl_->Init(); }
int LaneController::Run() { return impl_->Run(); }
void LaneController::RequestStop() { impl_->RequestStop(); }

}  // namespace lk
