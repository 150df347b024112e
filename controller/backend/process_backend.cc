#include "controller/backend/process_backend.h"

#include <signal.h>

#include <spdlog/spdlog.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <optional>
#include <nlohmann/json.hpp>

#include "worker/atomic_file.h"

namespace lk {

namespace fs = std::filesystem;

struct ProcessBackend::Role {
  std::unique_ptr<ProcessHandle> proc;  // null: not running
  RoleKind kind = RoleKind::kSupervisor;
  std::string plan_hash;
  std::string extras_hash;
  bool owns_worker = false;
  std::string queue_identity;
  int64_t generation = 0;
  int64_t started_ms = 0;
  Clock::TimePoint started_at{};
  Millis stop_timeout{0};
  bool stopping = false;
  Clock::TimePoint stop_sent{};
  bool killed = false;
  // Restarts after unasked deaths: counted when the role is started again.
  std::optional<RestartBackoff> backoff;  // made on the first unasked death
  bool died_unasked = false;
  Clock::TimePoint next_start{};
  int restarts = 0;
  std::string last_exit;
  bool failed = false;
};

struct ProcessBackend::Lane {
  std::map<std::string, Role> roles;
  std::string spec_hash;
  int64_t generation = 0;
  std::string queue;
  std::string redis_url;
};

namespace {

constexpr const char* kStateFile = "state.json";

bool Alive(const std::unique_ptr<ProcessHandle>& p) { return p != nullptr; }

}  // namespace

ProcessBackend::ProcessBackend(ProcessBackendOptions options)
    : o_(std::move(options)),
      clock_(o_.clock ? *o_.clock : SystemClock()),
      spawner_(o_.spawner ? *o_.spawner : PosixProcessSpawner()) {
  if (o_.binary.empty()) o_.binary = SelfExecutable();
}

ProcessBackend::~ProcessBackend() = default;

std::string ProcessBackend::LaneDir(const LaneKey& key) const {
  return o_.state_dir + "/lanes/" + (key.ns.empty() ? key.name : key.ns + "." + key.name);
}

std::string ProcessBackend::ExtrasHash(RoleKind kind) const {
  std::string all = o_.binary + '\0' + o_.log_format + '\0' + o_.log_level + '\0';
  for (const auto& a : kind == RoleKind::kSupervisor ? o_.supervisor_args : o_.autopilot_args) {
    all += a + '\0';
  }
  return ContentHash(all);
}

Status ProcessBackend::Start() {
  std::string root = o_.state_dir + "/lanes";
  std::error_code ec;
  fs::create_directories(root, ec);
  if (ec) {
    return Status::InvalidArgument("--state-dir " + o_.state_dir + ": cannot create: " +
                                   ec.message());
  }
  // Role files and state hold Redis URLs (passwords): for the controller's user alone.
  fs::permissions(o_.state_dir, fs::perms::owner_all, ec);
  fs::permissions(root, fs::perms::owner_all, ec);
  for (fs::directory_iterator it(root, ec), end; !ec && it != end; it.increment(ec)) {
    if (!it->is_directory()) continue;
    fs::path file = it->path() / kStateFile;
    std::ifstream in(file);
    if (!in) continue;
    nlohmann::json j;
    try {
      in >> j;
      if (!j.is_object()) throw std::runtime_error("not a JSON object");
    } catch (const std::exception& e) {
      spdlog::warn("controller: ignoring {}: {}", file.string(), e.what());
      continue;
    }
    LaneKey key{j.value("namespace", std::string()),
                j.value("name", it->path().filename().string())};
    auto lane = std::make_unique<Lane>();
    lane->spec_hash = j.value("spec_hash", std::string());
    lane->generation = j.value("generation", int64_t{0});
    lane->queue = j.value("queue", std::string());
    lane->redis_url = j.value("redis_url", std::string());
    const nlohmann::json roles = j.value("roles", nlohmann::json::object());
    for (const auto& [name, r] : roles.items()) {
      if (!r.is_object()) continue;
      pid_t pid = r.value("pid", 0);
      auto proc = spawner_.Adopt(pid, r.value("start_ticks", uint64_t{0}));
      if (!proc.ok()) {
        spdlog::info("controller: lane {}: {} from an earlier controller is gone ({})",
                     key.ToString(), name, proc.status().message());
        continue;
      }
      Role& role = lane->roles[name];
      role.proc = std::move(proc).value();
      role.kind = name == "supervisor" ? RoleKind::kSupervisor : RoleKind::kAutopilot;
      role.plan_hash = r.value("plan_hash", std::string());
      role.extras_hash = r.value("extras_hash", std::string());
      role.owns_worker = r.value("owns_worker", false);
      role.queue_identity = r.value("queue_identity", std::string());
      role.generation = r.value("generation", int64_t{0});
      role.started_ms = r.value("started_ms", int64_t{0});
      role.started_at = clock_.Now();
      role.stop_timeout = Millis(r.value("stop_timeout_ms", o_.stop_grace.count()));
      role.restarts = r.value("restarts", 0);
      spdlog::info("controller: lane {}: adopted {} (pid {})", key.ToString(), name, pid);
    }
    lanes_[key] = std::move(lane);
  }
  return Status::OK();
}

std::vector<LaneKey> ProcessBackend::Lanes() const {
  std::vector<LaneKey> out;
  for (const auto& [k, l] : lanes_) out.push_back(k);
  return out;
}

bool ProcessBackend::Reap(const LaneKey& key, Lane& lane) {
  bool any = false;
  for (auto& [name, r] : lane.roles) {
    if (!r.proc) continue;
    auto exit = r.proc->Poll();
    if (!exit) continue;
    any = true;
    r.last_exit = exit->Describe();
    bool asked = r.stopping;
    spdlog::log(asked ? spdlog::level::info : spdlog::level::warn,
                "controller: lane {}: {} (pid {}) {}{}", key.ToString(), name, r.proc->pid(),
                r.last_exit, asked ? "" : " (not asked to stop)");
    if (!asked) {
      // Drift: it died or was killed by hand. Back off while it keeps dying young.
      auto ran = std::chrono::duration_cast<Millis>(clock_.Now() - r.started_at);
      if (!r.backoff) r.backoff.emplace(o_.restart);
      r.next_start = clock_.Now() + r.backoff->OnDeath(ran);
      r.died_unasked = true;
    }
    r.proc.reset();
    r.stopping = false;
    r.killed = false;
  }
  if (any) Save(key, lane);
  return any;
}

ObservedLane ProcessBackend::Observe(const LaneKey& key) {
  ObservedLane out;
  auto it = lanes_.find(key);
  if (it == lanes_.end()) return out;
  Lane& lane = *it->second;
  Reap(key, lane);
  out.spec_hash = lane.spec_hash;
  out.generation = lane.generation;
  out.queue = lane.queue;
  out.redis_url = lane.redis_url;
  for (const auto& [name, r] : lane.roles) {
    ObservedRole o;
    o.name = name;
    // Started with other extras (binary, logging, extra flags): outdated whatever its plan.
    o.plan_hash = r.extras_hash == ExtrasHash(r.kind) ? r.plan_hash : "";
    o.running = Alive(r.proc) && !r.stopping;
    o.stopping = Alive(r.proc) && r.stopping;
    o.adopted = Alive(r.proc) && r.proc->adopted();
    o.generation = r.generation;
    o.pid = Alive(r.proc) ? r.proc->pid() : 0;
    o.instance = Alive(r.proc) ? "pid " + std::to_string(r.proc->pid()) : "";
    o.started_ms = r.started_ms;
    o.restarts = r.restarts;
    o.last_exit = r.last_exit;
    o.failed = r.failed;
    o.owns_worker = r.owns_worker;
    out.roles.push_back(std::move(o));
  }
  return out;
}

StatusOr<EnsureResult> ProcessBackend::Ensure(const LaneMeta& meta, const RolePlan& plan,
                                              const PlannedRole& planned) {
  auto& slot = lanes_[meta.key];
  if (!slot) slot = std::make_unique<Lane>();
  Lane& lane = *slot;
  Reap(meta.key, lane);
  Role& r = lane.roles[planned.name];
  if (r.proc) {
    if (r.plan_hash == planned.hash && !r.stopping) return EnsureResult{};
    return Status::FailedPrecondition(planned.name + " (pid " + std::to_string(r.proc->pid()) +
                                      ") still runs an older plan: stop it first");
  }
  auto now = clock_.Now();
  if (now < r.next_start) return EnsureResult{false, r.next_start};

  std::string dir = LaneDir(meta.key);
  std::error_code ec;
  fs::create_directories(dir, ec);
  fs::permissions(dir, fs::perms::owner_all, ec);
  std::vector<std::string> argv = {o_.binary, "--log-format", o_.log_format, "--log-level",
                                   o_.log_level};
  argv.insert(argv.end(), planned.args.begin(), planned.args.end());
  Status failed = Status::OK();
  for (const auto& f : planned.files) {
    // handlers.yaml -> handlers-<hash of content>.yaml: a new content is a new path.
    std::string stem = fs::path(f.name).stem().string();
    std::string path = dir + "/" + stem + "-" + ContentHash(f.content) + ".yaml";
    if (!fs::exists(path, ec)) failed = WriteFileAtomically(path, f.content, 0600);
    if (!failed.ok()) break;
    argv.insert(argv.end(), {f.flag, path});
  }
  if (planned.kind == RoleKind::kSupervisor) {
    argv.insert(argv.end(), {"--pid-file", dir + "/supervisor.pid"});
  }
  const auto& extra =
      planned.kind == RoleKind::kSupervisor ? o_.supervisor_args : o_.autopilot_args;
  argv.insert(argv.end(), extra.begin(), extra.end());
  if (failed.ok()) {
    // In the environment, not on the command line: ps shows argv to every user.
    auto proc = spawner_.Spawn(argv, {{"LANEKEEPER_REDIS_URL", plan.redis_url}});
    if (proc.ok()) {
      r.proc = std::move(proc).value();
    } else {
      failed = proc.status();
    }
  }
  if (!failed.ok()) {
    r.failed = true;
    r.last_exit = failed.message();
    return failed.WithContext("cannot start " + planned.name);
  }
  if (r.died_unasked) {
    ++r.restarts;
    r.died_unasked = false;
  }
  r.kind = planned.kind;
  r.plan_hash = planned.hash;
  r.extras_hash = ExtrasHash(planned.kind);
  r.owns_worker = planned.owns_worker;
  r.queue_identity = meta.queue_identity;
  r.generation = meta.generation;
  r.started_ms = clock_.WallMs();
  r.started_at = now;
  r.stop_timeout = planned.drain_timeout + o_.stop_grace;
  r.stopping = false;
  r.killed = false;
  r.failed = false;
  lane.spec_hash = meta.spec_hash;
  lane.generation = meta.generation;
  lane.queue = meta.queue;
  lane.redis_url = meta.redis_url;
  Save(meta.key, lane);
  spdlog::info("controller: lane {}: started {} (pid {}, generation {})", meta.key.ToString(),
               planned.name, r.proc->pid(), meta.generation);
  return EnsureResult{true, std::nullopt};
}

StatusOr<bool> ProcessBackend::Stop(const LaneKey& key, const std::string& name,
                                    const std::string& why) {
  auto it = lanes_.find(key);
  if (it == lanes_.end()) return true;
  Lane& lane = *it->second;
  Reap(key, lane);
  auto r = lane.roles.find(name);
  if (r == lane.roles.end() || !r->second.proc) return true;
  Role& role = r->second;
  if (!role.stopping) {
    spdlog::info("controller: lane {}: stopping {} (pid {}): {}", key.ToString(), name,
                 role.proc->pid(), why);
    role.stopping = true;
    role.stop_sent = clock_.Now();
    role.proc->Signal(SIGTERM);
  }
  return false;
}

bool ProcessBackend::QueueServed(const std::string& identity, const LaneKey& except) const {
  for (const auto& [key, lane] : lanes_) {
    if (key == except) continue;
    for (const auto& [name, r] : lane->roles) {
      if (r.proc && r.owns_worker && r.queue_identity == identity) return true;
    }
  }
  return false;
}

Status ProcessBackend::Record(const LaneMeta& meta) {
  auto& slot = lanes_[meta.key];
  if (!slot) slot = std::make_unique<Lane>();
  slot->spec_hash = meta.spec_hash;
  slot->generation = meta.generation;
  slot->queue = meta.queue;
  slot->redis_url = meta.redis_url;
  Save(meta.key, *slot);
  return Status::OK();
}

Status ProcessBackend::Forget(const LaneKey& key) {
  auto it = lanes_.find(key);
  if (it != lanes_.end()) {
    for (const auto& [name, r] : it->second->roles) {
      if (r.proc) {
        return Status::FailedPrecondition(name + " (pid " + std::to_string(r.proc->pid()) +
                                          ") still runs");
      }
    }
    lanes_.erase(it);
  }
  std::error_code ec;
  fs::remove_all(LaneDir(key), ec);
  if (ec) return Status::Internal("cannot remove " + LaneDir(key) + ": " + ec.message());
  return Status::OK();
}

void ProcessBackend::KillAll() {
  for (auto& [key, lane] : lanes_) {
    for (auto& [name, r] : lane->roles) {
      if (r.proc) r.proc->KillGroup();
    }
  }
}

std::vector<int> ProcessBackend::wake_fds() const {
  std::vector<int> out;
  for (const auto& [key, lane] : lanes_) {
    for (const auto& [name, r] : lane->roles) {
      if (r.proc && r.proc->wait_fd() >= 0) out.push_back(r.proc->wait_fd());
    }
  }
  return out;
}

Clock::TimePoint ProcessBackend::NextPoll() const {
  auto next = Clock::TimePoint::max();
  for (const auto& [key, lane] : lanes_) {
    for (const auto& [name, r] : lane->roles) {
      if (r.proc && r.stopping && !r.killed) next = std::min(next, r.stop_sent + r.stop_timeout);
      // A process without a pidfd is noticed by looking.
      if (r.proc && r.proc->wait_fd() < 0) next = std::min(next, clock_.Now() + Millis(250));
    }
  }
  return next;
}

std::vector<LaneKey> ProcessBackend::Poll() {
  std::vector<LaneKey> changed;
  auto now = clock_.Now();
  for (auto& [key, lane] : lanes_) {
    for (auto& [name, r] : lane->roles) {
      if (r.proc && r.stopping && !r.killed && now >= r.stop_sent + r.stop_timeout) {
        spdlog::warn("controller: lane {}: {} (pid {}) did not stop within {} ms; killing it",
                     key.ToString(), name, r.proc->pid(), r.stop_timeout.count());
        r.proc->KillGroup();
        r.killed = true;
      }
    }
    if (Reap(key, *lane)) changed.push_back(key);
  }
  return changed;
}

void ProcessBackend::Save(const LaneKey& key, const Lane& lane) {
  nlohmann::json roles = nlohmann::json::object();
  for (const auto& [name, r] : lane.roles) {
    if (!r.proc) continue;
    roles[name] = {{"pid", r.proc->pid()},
                   {"start_ticks", r.proc->start_ticks()},
                   {"plan_hash", r.plan_hash},
                   {"extras_hash", r.extras_hash},
                   {"owns_worker", r.owns_worker},
                   {"queue_identity", r.queue_identity},
                   {"generation", r.generation},
                   {"started_ms", r.started_ms},
                   {"stop_timeout_ms", r.stop_timeout.count()},
                   {"restarts", r.restarts}};
  }
  std::string dir = LaneDir(key);
  std::error_code ec;
  fs::create_directories(dir, ec);
  fs::permissions(dir, fs::perms::owner_all, ec);
  nlohmann::json j{{"name", key.name},         {"namespace", key.ns},
                   {"generation", lane.generation}, {"spec_hash", lane.spec_hash},
                   {"queue", lane.queue},       {"redis_url", lane.redis_url},
                   {"roles", roles}};
  if (Status s = WriteFileAtomically(dir + "/" + kStateFile, j.dump(2) + "\n", 0600); !s.ok()) {
    // Adoption after a crash needs this file: loud, but the lane keeps running.
    spdlog::error("controller: lane {}: {}", key.ToString(), s.message());
  }
}

}  // namespace lk
