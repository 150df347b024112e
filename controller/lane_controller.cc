#include "controller/lane_controller.h"

#include <poll.h>
#include <pwd.h>
#include <signal.h>
#include <sys/eventfd.h>
#include <sys/inotify.h>
#include <sys/signalfd.h>
#include <unistd.h>
#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <random>
#include <set>
#include <spdlog/spdlog.h>

#include "controller/backend/role_process.h"
#include "controller/owner/worker_process.h"
#include "worker/redis_connection.h"

namespace lk {

namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;

namespace {

constexpr const char* kSupervisor = "supervisor";
constexpr const char* kAutopilot = "autopilot";
// Beyond a role's drain timeout, how long it may take to stop before it is SIGKILLed.
constexpr Millis kStopGrace{15'000};
constexpr Millis kRestartBackoffMin{1'000};
constexpr Millis kRestartBackoffMax{60'000};
// A role that ran this long before dying restarts without backoff.
constexpr Millis kHealthyRun{60'000};

int64_t NowMs() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

std::string Fnv64Hex(std::string_view data) {
  uint64_t h = 1469598103934665603ULL;
  for (unsigned char c : data) {
    h ^= c;
    h *= 1099511628211ULL;
  }
  char buf[17];
  snprintf(buf, sizeof(buf), "%016llx", static_cast<unsigned long long>(h));
  return buf;
}

std::string Ms(Millis d) { return std::to_string(d.count()) + "ms"; }

void EmitCommand(YAML::Emitter& out, const std::vector<std::string>& argv) {
  out << YAML::Key << "command" << YAML::Value << YAML::Flow << YAML::BeginSeq;
  for (const auto& a : argv) out << YAML::DoubleQuoted << a;
  out << YAML::EndSeq;
}

// The handlers file `jobs work --handlers` reads (worker/handler_config.h).
std::string HandlersYaml(const std::vector<HandlerSpec>& handlers) {
  YAML::Emitter out;
  out << YAML::BeginMap << YAML::Key << "handlers" << YAML::Value << YAML::BeginMap;
  for (const auto& h : handlers) {
    out << YAML::Key << YAML::DoubleQuoted << h.name << YAML::Value << YAML::BeginMap;
    EmitCommand(out, h.command);
    if (h.timeout.count() > 0) out << YAML::Key << "timeout" << YAML::Value << Ms(h.timeout);
    if (h.lease.count() > 0) out << YAML::Key << "lease" << YAML::Value << Ms(h.lease);
    if (h.max_attempts > 0) out << YAML::Key << "maxAttempts" << YAML::Value << h.max_attempts;
    out << YAML::EndMap;
  }
  out << YAML::EndMap << YAML::EndMap;
  return std::string(out.c_str()) + "\n";
}

// The cycle file `autopilot --cycle` reads (controller/spec/cycle_file.h).
std::string CycleYaml(const std::vector<CycleStep>& steps) {
  YAML::Emitter out;
  out << YAML::BeginMap << YAML::Key << "steps" << YAML::Value << YAML::BeginSeq;
  for (const auto& s : steps) {
    out << YAML::BeginMap << YAML::Key << "name" << YAML::Value << YAML::DoubleQuoted << s.name;
    EmitCommand(out, s.command);
    out << YAML::Key << "timeout" << YAML::Value << Ms(s.timeout);
    out << YAML::EndMap;
  }
  out << YAML::EndSeq << YAML::EndMap;
  return std::string(out.c_str()) + "\n";
}

Status WriteFileAtomically(const std::string& path, const std::string& content) {
  std::string tmp = path + ".tmp";
  {
    std::ofstream out(tmp, std::ios::binary | std::ios::trunc);
    out << content;
    out.flush();
    if (!out) return Status::Internal("cannot write " + tmp + ": " + std::strerror(errno));
  }
  std::error_code ec;
  fs::rename(tmp, path, ec);
  if (ec) return Status::Internal("cannot write " + path + ": " + ec.message());
  return Status::OK();
}

// Where two lanes meet: the same queue of the same Redis. Used to keep a new worker owner
// from starting while another lane's process on that queue still stops.
std::string QueueKey(const std::string& redis_url, const std::string& queue) {
  auto ep = ParseRedisUrl(redis_url);
  if (!ep.ok()) return redis_url + "|" + queue;
  std::string where = ep->unix_path.empty() ? ep->host + ":" + std::to_string(ep->port)
                                            : ep->unix_path;
  return where + "/" + std::to_string(ep->db) + "|" + queue;
}

}  // namespace

std::string DefaultStateDir() {
  if (const char* d = std::getenv("LANEKEEPER_STATE_DIR"); d && *d) return d;
  if (geteuid() == 0) return "/var/lib/lanekeeper";
  if (const char* d = std::getenv("XDG_STATE_HOME"); d && *d) return std::string(d) + "/lanekeeper";
  const char* home = std::getenv("HOME");
  if (!home || !*home) {
    const passwd* pw = getpwuid(geteuid());
    home = pw ? pw->pw_dir : "/tmp";
  }
  return std::string(home) + "/.local/state/lanekeeper";
}

std::string DefaultSpecsDir() {
  if (const char* d = std::getenv("LANEKEEPER_SPECS_DIR"); d && *d) return d;
  if (geteuid() == 0) return "/etc/lanekeeper/lanes";
  if (const char* d = std::getenv("XDG_CONFIG_HOME"); d && *d) {
    return std::string(d) + "/lanekeeper/lanes";
  }
  const char* home = std::getenv("HOME");
  if (!home || !*home) {
    const passwd* pw = getpwuid(geteuid());
    home = pw ? pw->pw_dir : "/tmp";
  }
  return std::string(home) + "/.config/lanekeeper/lanes";
}

class LaneController::Impl {
 public:
  Impl(LaneControllerOptions o, ControllerStateStore& store) : o_(std::move(o)), store_(store) {
    if (o_.binary.empty()) o_.binary = SelfExecutable();
    started_ms_ = NowMs();
  }

  ~Impl() {
    for (int fd : {inotify_fd_, signal_fd_, stop_fd_}) {
      if (fd >= 0) close(fd);
    }
  }

  Status Init();
  int Run();
  void RequestStop() {
    uint64_t one = 1;
    if (stop_fd_ >= 0) (void)!write(stop_fd_, &one, sizeof(one));
  }

 private:
  // What one role should run.
  struct RoleConfig {
    std::vector<std::string> argv;
    std::map<std::string, std::string> env;
    std::map<std::string, std::string> files;  // path -> content, written before start
    std::string hash;
    std::string queue_key;  // + "/owner" for a worker owner, + "/dispatch" otherwise
    Millis stop_timeout{kStopGrace};
  };

  struct Role {
    std::unique_ptr<RoleProcess> proc;
    std::string config_hash;  // of proc
    std::string queue_key;    // of proc
    int64_t generation = 0;   // of proc
    int64_t started_ms = 0;
    Millis stop_timeout{kStopGrace};
    Clock::time_point started_at;
    int restarts = 0;
    int crash_streak = 0;
    Clock::time_point next_start{};
    std::string last_exit;
    std::string start_error;
  };

  struct Lane {
    std::string name;
    bool has_spec = false;  // false: adopted from the state dir, spec not read yet
    LaneSpec spec;          // last good
    std::string spec_hash;
    int64_t generation = 0;
    std::vector<SpecError> spec_errors;
    bool desired = false;  // false: delete (stop its roles, then forget it)
    std::map<std::string, Role> roles;
    std::string reconcile_error;
    int64_t last_reconcile_ms = 0;
  };

  std::string LaneDir(const std::string& name) const { return o_.state_dir + "/lanes/" + name; }
  std::string EffectiveUrl(const LaneSpec& s) const {
    return s.redis_url.empty() ? o_.default_redis_url : s.redis_url;
  }
  std::map<std::string, RoleConfig> DesiredRoles(const Lane& lane) const;
  void ReadSpecs();
  bool ReconcileLane(Lane& lane, bool& changed);
  void Reconcile();
  void SaveState(const Lane& lane);
  void Adopt();
  void Publish();
  void HandleExits();
  void StopAll();
  Clock::time_point NextDeadline() const;

  LaneControllerOptions o_;
  ControllerStateStore& store_;
  int inotify_fd_ = -1;
  int signal_fd_ = -1;
  int stop_fd_ = -1;
  int dir_watch_ = -1;
  int64_t started_ms_ = 0;
  bool ready_ = false;
  bool stopping_all_ = false;
  std::map<std::string, Lane> lanes_;
  std::vector<SpecError> errors_;
  // metrics
  uint64_t reconcile_total_ = 0;
  uint64_t reconcile_errors_total_ = 0;
  double reconcile_seconds_sum_ = 0;
  std::vector<double> buckets_{0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10};
  std::vector<uint64_t> bucket_counts_ = std::vector<uint64_t>(12, 0);
  std::map<std::pair<std::string, std::string>, uint64_t> role_restarts_;
  std::mt19937_64 rng_{std::random_device{}()};
};

Status LaneController::Impl::Init() {
  std::error_code ec;
  fs::create_directories(o_.state_dir + "/lanes", ec);
  if (ec) {
    return Status::InvalidArgument("--state-dir " + o_.state_dir + ": cannot create: " +
                                   ec.message());
  }
  if (!fs::is_directory(o_.specs_dir, ec)) {
    return Status::InvalidArgument("--specs " + o_.specs_dir +
                                   ": not a directory (create it, or apply a spec with "
                                   "`lanekeeper apply -f FILE --specs " + o_.specs_dir + "`)");
  }
  if (auto ep = ParseRedisUrl(o_.default_redis_url); !ep.ok()) {
    return Status::InvalidArgument("--redis: " + ep.status().message());
  }
  sigset_t mask;
  sigemptyset(&mask);
  sigaddset(&mask, SIGTERM);
  sigaddset(&mask, SIGINT);
  sigaddset(&mask, SIGCHLD);
  pthread_sigmask(SIG_BLOCK, &mask, nullptr);
  signal_fd_ = signalfd(-1, &mask, SFD_CLOEXEC | SFD_NONBLOCK);
  stop_fd_ = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  inotify_fd_ = inotify_init1(IN_CLOEXEC | IN_NONBLOCK);
  if (signal_fd_ < 0 || stop_fd_ < 0 || inotify_fd_ < 0) {
    return Status::Internal(std::string("controller: cannot set up event sources: ") +
                            std::strerror(errno));
  }
  dir_watch_ = inotify_add_watch(inotify_fd_, o_.specs_dir.c_str(),
                                 IN_CLOSE_WRITE | IN_MOVED_TO | IN_MOVED_FROM | IN_DELETE |
                                     IN_CREATE | IN_ATTRIB | IN_DELETE_SELF | IN_MOVE_SELF);
  if (dir_watch_ < 0) {
    // The rescan still converges, only slower: say so and go on.
    spdlog::warn("controller: cannot watch {}: {}; relying on the rescan every {} ms",
                 o_.specs_dir, std::strerror(errno), o_.rescan_every.count());
  }
  Adopt();
  return Status::OK();
}

void LaneController::Impl::Adopt() {
  std::error_code ec;
  for (fs::directory_iterator it(o_.state_dir + "/lanes", ec), end; !ec && it != end;
       it.increment(ec)) {
    if (!it->is_directory()) continue;
    std::string name = it->path().filename();
    std::ifstream in(it->path() / "state.json");
    if (!in) continue;
    nlohmann::json j;
    try {
      in >> j;
      if (!j.is_object()) throw std::runtime_error("not a JSON object");
    } catch (const std::exception& e) {
      spdlog::warn("controller: ignoring {}: {}", (it->path() / "state.json").string(), e.what());
      continue;
    }
    Lane lane;
    lane.name = name;
    lane.generation = j.value("generation", int64_t{0});
    lane.spec_hash = j.value("spec_hash", std::string());
    const nlohmann::json roles = j.value("roles", nlohmann::json::object());
    for (const auto& [role, r] : roles.items()) {
      if (!r.is_object()) continue;
      pid_t pid = r.value("pid", 0);
      uint64_t ticks = r.value("start_ticks", uint64_t{0});
      auto proc = RoleProcess::Adopt(pid, ticks);
      if (!proc.ok()) {
        spdlog::info("controller: lane {}: {} from an earlier controller is gone ({})", name,
                     role, proc.status().message());
        continue;
      }
      Role& slot = lane.roles[role];
      slot.proc = std::move(*proc);
      slot.config_hash = r.value("config_hash", std::string());
      slot.queue_key = r.value("queue_key", std::string());
      slot.generation = r.value("generation", int64_t{0});
      slot.started_ms = r.value("started_ms", int64_t{0});
      slot.stop_timeout = Millis(r.value("stop_timeout_ms", kStopGrace.count()));
      slot.started_at = Clock::now();
      spdlog::info("controller: lane {}: adopted {} (pid {})", name, role, pid);
    }
    lanes_[name] = std::move(lane);
  }
}

void LaneController::Impl::SaveState(const Lane& lane) {
  nlohmann::json roles = nlohmann::json::object();
  for (const auto& [name, r] : lane.roles) {
    if (!r.proc || r.proc->Exited()) continue;
    roles[name] = {{"pid", r.proc->pid()},
                   {"start_ticks", r.proc->start_ticks()},
                   {"config_hash", r.config_hash},
                   {"queue_key", r.queue_key},
                   {"generation", r.generation},
                   {"started_ms", r.started_ms},
                   {"stop_timeout_ms", r.stop_timeout.count()}};
  }
  std::string dir = LaneDir(lane.name);
  std::error_code ec;
  if (roles.empty() && !lane.desired) {
    fs::remove_all(dir, ec);
    return;
  }
  fs::create_directories(dir, ec);
  nlohmann::json j{{"name", lane.name},
                   {"generation", lane.generation},
                   {"spec_hash", lane.spec_hash},
                   {"roles", roles}};
  if (Status s = WriteFileAtomically(dir + "/state.json", j.dump(2) + "\n"); !s.ok()) {
    // Adoption after a crash needs this file: loud, but the lane keeps running.
    spdlog::error("controller: lane {}: {}", lane.name, s.message());
  }
}

std::map<std::string, LaneController::Impl::RoleConfig> LaneController::Impl::DesiredRoles(
    const Lane& lane) const {
  std::map<std::string, RoleConfig> out;
  if (!lane.desired || !lane.has_spec) return out;
  const LaneSpec& s = lane.spec;
  std::string url = EffectiveUrl(s);
  std::string dir = LaneDir(lane.name);
  std::string qkey = QueueKey(url, s.queue);
  auto common = [&](RoleConfig& c) {
    c.argv = {o_.binary, "--log-format", o_.log_format, "--log-level", o_.log_level,
              "--queue", s.queue};
    // In the environment, not on the command line: ps shows argv to every user.
    c.env["LANEKEEPER_REDIS_URL"] = url;
  };
  auto handlers = [&](RoleConfig& c) {
    if (s.handlers.empty()) return;
    std::string text = HandlersYaml(s.handlers);
    std::string path = dir + "/handlers-" + Fnv64Hex(text) + ".yaml";
    c.files[path] = text;
    c.argv.insert(c.argv.end(), {"--handlers", path});
  };
  if (s.supervisor.enabled) {
    RoleConfig c;
    common(c);
    const WorkerSettings& w = s.supervisor.worker;
    c.argv.insert(c.argv.end(),
                  {"jobs", "supervisor", "--concurrency", std::to_string(w.concurrency),
                   "--max-rss", std::to_string(w.max_rss_mb), "--max-crashes",
                   std::to_string(s.supervisor.max_crashes), "--drain-timeout",
                   Ms(w.drain_timeout), "--pid-file", dir + "/supervisor.pid"});
    handlers(c);
    c.argv.insert(c.argv.end(), o_.supervisor_args.begin(), o_.supervisor_args.end());
    c.queue_key = qkey + "/owner";
    c.stop_timeout = w.drain_timeout + kStopGrace;
    out[kSupervisor] = std::move(c);
  }
  if (s.autopilot.mode != AutopilotMode::kOff) {
    RoleConfig c;
    common(c);
    c.argv.insert(c.argv.end(),
                  {"autopilot", "--repo", s.autopilot.repo, "--interval", Ms(s.autopilot.interval)});
    if (!s.autopilot.cycle.empty()) {
      std::string text = CycleYaml(s.autopilot.cycle);
      std::string path = dir + "/cycle-" + Fnv64Hex(text) + ".yaml";
      c.files[path] = text;
      c.argv.insert(c.argv.end(), {"--cycle", path});
    }
    if (s.autopilot.mode == AutopilotMode::kDispatchOnly) {
      c.argv.push_back("--no-worker");
      c.queue_key = qkey + "/dispatch";
    } else {
      const WorkerSettings& w = s.autopilot.worker;
      c.argv.insert(c.argv.end(), {"--concurrency", std::to_string(w.concurrency), "--max-rss",
                                   std::to_string(w.max_rss_mb), "--drain-timeout",
                                   Ms(w.drain_timeout)});
      handlers(c);
      c.queue_key = qkey + "/owner";
      c.stop_timeout = w.drain_timeout + kStopGrace;
    }
    c.argv.insert(c.argv.end(), o_.autopilot_args.begin(), o_.autopilot_args.end());
    out[kAutopilot] = std::move(c);
  }
  for (auto& [role, c] : out) {
    std::string all;
    for (const auto& a : c.argv) all += a + '\0';
    for (const auto& [k, v] : c.env) all += k + '=' + v + '\0';
    c.hash = Fnv64Hex(all);
  }
  return out;
}

// Reads every spec file and decides what each lane should be. A file with errors keeps
// the lanes it defined before (their last good spec) and hands them its errors; a lane that
// breaks a rule across lanes is checked against the running lanes first, so a new lane
// never displaces one that runs.
void LaneController::Impl::ReadSpecs() {
  errors_.clear();
  std::vector<SpecError> dir_errors;
  std::vector<std::string> files = ListLaneSpecFiles(o_.specs_dir, &dir_errors);
  if (!dir_errors.empty()) {
    // The directory itself is unreadable: change nothing rather than stop every lane.
    errors_ = dir_errors;
    return;
  }
  struct Candidate {
    LaneSpec spec;
    bool running_spec = false;  // the lane's last good spec, kept
    std::vector<SpecError> errors;
  };
  std::vector<Candidate> candidates;
  std::set<std::string> files_set(files.begin(), files.end());
  std::map<std::string, std::vector<SpecError>> file_errors;
  for (const auto& f : files) {
    ParsedLanes p = LoadLaneSpecs(f);
    if (!p.errors.empty()) {
      file_errors[f] = p.errors;
      for (const auto& e : p.errors) errors_.push_back(e);
      continue;
    }
    for (auto& l : p.lanes) candidates.push_back({std::move(l), false, {}});
  }
  // Lanes of a broken file keep their last good spec.
  for (auto& [name, lane] : lanes_) {
    if (!lane.has_spec || !lane.desired) continue;
    auto fe = file_errors.find(lane.spec.source);
    if (fe != file_errors.end()) candidates.push_back({lane.spec, true, fe->second});
  }
  // Running lanes (with the spec they run or their new one) are checked first.
  auto running = [&](const Candidate& c) {
    auto it = lanes_.find(c.spec.name);
    return it != lanes_.end() && it->second.has_spec && it->second.desired;
  };
  std::stable_sort(candidates.begin(), candidates.end(),
                   [&](const Candidate& a, const Candidate& b) { return running(a) > running(b); });
  LaneSetChecker accepted(o_.default_redis_url);
  std::map<std::string, Candidate> decided;
  for (auto& c : candidates) {
    std::vector<SpecError> errs = accepted.Check(c.spec);
    if (errs.empty()) {
      accepted.Add(c.spec);
      decided[c.spec.name] = c;
      continue;
    }
    for (const auto& e : errs) errors_.push_back(e);
    auto it = lanes_.find(c.spec.name);
    if (it != lanes_.end() && it->second.has_spec && it->second.desired && !c.running_spec) {
      // An edit that conflicts: keep the last good spec if it still fits.
      if (accepted.Check(it->second.spec).empty()) {
        accepted.Add(it->second.spec);
        decided[c.spec.name] = Candidate{it->second.spec, true, errs};
      }
    }
  }
  // Apply the decisions.
  for (auto& [name, lane] : lanes_) {
    auto d = decided.find(name);
    if (d == decided.end()) {
      lane.desired = false;
      lane.spec_errors.clear();
      continue;
    }
    lane.desired = true;
    lane.spec_errors = d->second.errors;
    if (d->second.running_spec) continue;
    std::string hash = Fnv64Hex(d->second.spec.SpecJson() + '\0' + EffectiveUrl(d->second.spec));
    if (!lane.has_spec && hash == lane.spec_hash && lane.generation > 0) {
      // Adopted, and the spec is the one its roles were started from.
    } else if (hash != lane.spec_hash) {
      lane.generation++;
    }
    lane.spec = std::move(d->second.spec);
    lane.spec_hash = hash;
    lane.has_spec = true;
  }
  for (auto& [name, c] : decided) {
    if (lanes_.count(name)) continue;
    Lane lane;
    lane.name = name;
    lane.desired = true;
    lane.has_spec = true;
    lane.spec = std::move(c.spec);
    lane.spec_hash = Fnv64Hex(lane.spec.SpecJson() + '\0' + EffectiveUrl(lane.spec));
    lane.generation = 1;
    lane.spec_errors = c.errors;
    lanes_[name] = std::move(lane);
  }
}

// One lane, level-triggered: stop what should not run (or runs old flags), then start what
// should run and does not — unless a process on the same queue is still stopping.
// Returns false when something failed (a role could not start).
bool LaneController::Impl::ReconcileLane(Lane& lane, bool& changed) {
  auto desired = DesiredRoles(lane);
  auto now = Clock::now();
  bool ok = true;
  lane.reconcile_error.clear();
  // A lane adopted from the state dir whose spec has not been read waits for the specs.
  if (lane.desired && !lane.has_spec) return true;

  for (auto& [name, role] : lane.roles) {
    if (!role.proc) continue;
    if (role.proc->Exited()) {
      role.last_exit = role.proc->exit_description();
      bool asked = role.proc->terminating();
      spdlog::log(asked ? spdlog::level::info : spdlog::level::warn,
                  "controller: lane {}: {} (pid {}) {}{}", lane.name, name, role.proc->pid(),
                  role.last_exit, asked ? "" : " (not asked to stop)");
      if (!asked) {
        // Drift: it died or was killed by hand. Back off while it keeps dying young.
        bool young = now - role.started_at < kHealthyRun;
        role.crash_streak = young ? role.crash_streak + 1 : 0;
        Millis backoff{0};
        if (role.crash_streak > 0) {
          int64_t ms = kRestartBackoffMin.count() << std::min(role.crash_streak - 1, 6);
          ms = std::min<int64_t>(ms, kRestartBackoffMax.count());
          std::uniform_real_distribution<double> jitter(0.9, 1.1);
          backoff = Millis(static_cast<int64_t>(ms * jitter(rng_)));
        }
        role.next_start = now + backoff;
        role.restarts++;
        role_restarts_[{lane.name, "drift"}]++;
      }
      role.proc.reset();
      changed = true;
      continue;
    }
    auto want = desired.find(name);
    bool outdated = want == desired.end() || want->second.hash != role.config_hash;
    if (!outdated) continue;
    if (!role.proc->terminating()) {
      spdlog::info("controller: lane {}: stopping {} (pid {}): {}", lane.name, name,
                   role.proc->pid(),
                   want != desired.end() ? "its spec changed"
                   : stopping_all_       ? "the controller is stopping"
                   : lane.desired        ? "no longer in the spec"
                                         : "lane deleted");
      role.proc->Terminate();
      if (want != desired.end()) role_restarts_[{lane.name, "spec_change"}]++;
      changed = true;
    } else if (now - role.proc->terminate_sent() > role.stop_timeout) {
      spdlog::warn("controller: lane {}: {} (pid {}) did not stop within {} ms; killing it",
                   lane.name, name, role.proc->pid(), role.stop_timeout.count());
      role.proc->Kill();
    }
  }

  // Queues with a process still alive that is not the desired one, by any lane.
  std::set<std::string> busy;
  for (const auto& [ln, l] : lanes_) {
    auto ld = &l == &lane ? desired : std::map<std::string, RoleConfig>{};
    for (const auto& [rn, r] : l.roles) {
      if (!r.proc) continue;
      bool current = &l == &lane && ld.count(rn) && ld.at(rn).hash == r.config_hash;
      if (!current || r.proc->terminating()) busy.insert(r.queue_key);
    }
  }

  for (auto& [name, c] : desired) {
    Role& role = lane.roles[name];
    if (role.proc) continue;
    if (busy.count(c.queue_key)) continue;  // the old one still stops: never two owners
    if (now < role.next_start) continue;
    Status st = Status::OK();
    for (const auto& [path, content] : c.files) {
      std::error_code ec;
      fs::create_directories(fs::path(path).parent_path(), ec);
      if (!fs::exists(path, ec)) st = WriteFileAtomically(path, content);
      if (!st.ok()) break;
    }
    if (st.ok()) {
      auto proc = RoleProcess::Start(c.argv, c.env);
      if (proc.ok()) {
        role.proc = std::move(*proc);
      } else {
        st = proc.status();
      }
    }
    if (!st.ok()) {
      role.start_error = st.message();
      role.last_exit = st.message();
      role.next_start = now + kRestartBackoffMax / 6;
      lane.reconcile_error = name + ": " + st.message();
      spdlog::error("controller: lane {}: cannot start {}: {}", lane.name, name, st.message());
      ok = false;
      continue;
    }
    role.start_error.clear();
    role.config_hash = c.hash;
    role.queue_key = c.queue_key;
    role.generation = lane.generation;
    role.started_ms = NowMs();
    role.started_at = now;
    role.stop_timeout = c.stop_timeout;
    busy.insert(c.queue_key);
    changed = true;
    spdlog::info("controller: lane {}: started {} (pid {}, generation {})", lane.name, name,
                 role.proc->pid(), lane.generation);
  }
  // Forget roles that neither run nor are wanted.
  for (auto it = lane.roles.begin(); it != lane.roles.end();) {
    if (!it->second.proc && !desired.count(it->first)) {
      it = lane.roles.erase(it);
    } else {
      ++it;
    }
  }
  lane.last_reconcile_ms = NowMs();
  return ok;
}

void LaneController::Impl::Reconcile() {
  auto t0 = Clock::now();
  std::vector<std::string> before;
  for (const auto& e : errors_) before.push_back(e.ToString());
  ReadSpecs();
  std::vector<std::string> after;
  for (const auto& e : errors_) after.push_back(e.ToString());
  if (after != before) {
    // Logged when they change, not on every rescan.
    for (const auto& e : after) spdlog::warn("controller: spec error: {}", e);
    if (after.empty() && !before.empty()) spdlog::info("controller: every spec is valid again");
  }
  bool ok = true;
  for (auto it = lanes_.begin(); it != lanes_.end();) {
    Lane& lane = it->second;
    bool changed = false;
    if (!ReconcileLane(lane, changed)) ok = false;
    if (changed) SaveState(lane);
    bool alive = false;
    for (const auto& [n, r] : lane.roles) alive |= static_cast<bool>(r.proc);
    if (!lane.desired && !alive) {
      spdlog::info("controller: lane {}: stopped and removed", lane.name);
      lane.roles.clear();
      SaveState(lane);  // removes its state dir
      it = lanes_.erase(it);
    } else {
      ++it;
    }
  }
  double secs = std::chrono::duration<double>(Clock::now() - t0).count();
  reconcile_total_++;
  if (!ok) reconcile_errors_total_++;
  reconcile_seconds_sum_ += secs;
  for (size_t i = 0; i < buckets_.size(); ++i) {
    if (secs <= buckets_[i]) bucket_counts_[i]++;
  }
  ready_ = true;
  Publish();
}

void LaneController::Impl::Publish() {
  ControllerSnapshot s;
  s.started_ms = started_ms_;
  s.ready = ready_;
  s.specs_dir = o_.specs_dir;
  s.state_dir = o_.state_dir;
  s.default_redis_url = o_.default_redis_url;
  s.errors = errors_;
  s.reconcile_total = reconcile_total_;
  s.reconcile_errors_total = reconcile_errors_total_;
  s.reconcile_buckets = buckets_;
  s.reconcile_bucket_counts = bucket_counts_;
  s.reconcile_seconds_sum = reconcile_seconds_sum_;
  s.role_restarts = role_restarts_;
  for (auto& [name, lane] : lanes_) {
    if (!lane.has_spec) continue;
    LaneState ls;
    ls.name = name;
    ls.source = lane.spec.source;
    ls.spec = lane.spec;
    ls.redis_url = EffectiveUrl(lane.spec);
    auto ep = ParseRedisUrl(ls.redis_url);
    ls.redis_url_redacted = ep.ok() ? ep->Redacted() : "(invalid URL)";
    ls.generation = lane.generation;
    ls.spec_errors = lane.spec_errors;
    ls.last_reconcile_ms = lane.last_reconcile_ms;
    ls.last_reconcile_error = lane.reconcile_error;
    auto desired = DesiredRoles(lane);
    bool converged = lane.desired;
    for (const auto& [rn, c] : desired) {
      auto r = lane.roles.find(rn);
      if (r == lane.roles.end() || !r->second.proc || r->second.proc->terminating() ||
          r->second.config_hash != c.hash) {
        converged = false;
      }
    }
    for (const auto& [rn, r] : lane.roles) {
      if (!desired.count(rn) && r.proc) converged = false;  // still stopping
      RoleState rs;
      rs.role = rn;
      rs.pid = r.proc ? r.proc->pid() : 0;
      rs.started_ms = r.proc ? r.started_ms : 0;
      rs.state = r.proc ? (r.proc->terminating() ? "stopping" : "running")
                        : (!r.start_error.empty() ? "failed" : "stopped");
      rs.adopted = r.proc && r.proc->adopted();
      rs.generation = r.generation;
      rs.restarts = r.restarts;
      rs.last_exit = r.last_exit;
      ls.roles.push_back(rs);
    }
    // observed_generation: the newest generation the running roles fully reflect.
    int64_t observed = 0;
    if (converged) {
      observed = lane.generation;
    } else {
      for (const auto& [rn, r] : lane.roles) {
        if (r.proc) observed = observed == 0 ? r.generation : std::min(observed, r.generation);
      }
      if (observed == lane.generation) observed = lane.generation - 1;
    }
    ls.observed_generation = observed;
    s.lanes.push_back(std::move(ls));
  }
  store_.Set(std::move(s));
}

void LaneController::Impl::HandleExits() {
  for (auto [pid, status] : ReapChildren()) {
    for (auto& [ln, lane] : lanes_) {
      for (auto& [rn, role] : lane.roles) {
        if (role.proc && !role.proc->adopted() && role.proc->pid() == pid) {
          role.proc->OnReaped(status);
        }
      }
    }
  }
}

Clock::time_point LaneController::Impl::NextDeadline() const {
  auto next = Clock::time_point::max();
  for (const auto& [ln, lane] : lanes_) {
    for (const auto& [rn, role] : lane.roles) {
      if (role.proc && role.proc->terminating()) {
        next = std::min(next, role.proc->terminate_sent() + role.stop_timeout);
      }
      if (!role.proc && role.next_start > Clock::now()) next = std::min(next, role.next_start);
    }
  }
  return next;
}

void LaneController::Impl::StopAll() {
  stopping_all_ = true;
  for (auto& [ln, lane] : lanes_) lane.desired = false;
  for (;;) {
    HandleExits();
    bool any = false;
    for (auto& [ln, lane] : lanes_) {
      bool changed = false;
      ReconcileLane(lane, changed);
      for (const auto& [rn, r] : lane.roles) any |= static_cast<bool>(r.proc);
    }
    Publish();
    if (!any) break;
    std::vector<pollfd> fds{{signal_fd_, POLLIN, 0}};
    for (auto& [ln, lane] : lanes_) {
      for (auto& [rn, r] : lane.roles) {
        if (r.proc && r.proc->wait_fd() >= 0) fds.push_back({r.proc->wait_fd(), POLLIN, 0});
      }
    }
    poll(fds.data(), fds.size(), 200);
    signalfd_siginfo si;
    bool again = false;
    while (read(signal_fd_, &si, sizeof(si)) == sizeof(si)) {
      again |= si.ssi_signo == SIGTERM || si.ssi_signo == SIGINT;
    }
    if (again) {
      // A second Ctrl-C: do not wait for drains.
      spdlog::warn("controller: asked again: killing every role now");
      for (auto& [ln, lane] : lanes_) {
        for (auto& [rn, r] : lane.roles) {
          if (r.proc) r.proc->Kill();
        }
      }
    }
  }
  for (auto& [ln, lane] : lanes_) SaveState(lane);  // removes each lane's state dir
  lanes_.clear();
  Publish();
}

int LaneController::Impl::Run() {
  Reconcile();
  spdlog::info("controller: watching {} ({} lane(s)), state in {}", o_.specs_dir, lanes_.size(),
               o_.state_dir);
  auto next_rescan = Clock::now() + o_.rescan_every;
  auto dirty_since = Clock::time_point::max();  // a spec file changed: reconcile after debounce
  bool stop = false;
  while (!stop) {
    auto now = Clock::now();
    auto wake = std::min({next_rescan, NextDeadline(),
                          dirty_since == Clock::time_point::max() ? dirty_since
                                                                   : dirty_since + o_.debounce});
    int timeout_ms = static_cast<int>(std::clamp<int64_t>(
        std::chrono::duration_cast<std::chrono::milliseconds>(wake - now).count() + 1, 0,
        60'000));
    std::vector<pollfd> fds{{signal_fd_, POLLIN, 0}, {inotify_fd_, POLLIN, 0}, {stop_fd_, POLLIN, 0}};
    for (auto& [ln, lane] : lanes_) {
      for (auto& [rn, r] : lane.roles) {
        if (r.proc && r.proc->wait_fd() >= 0) fds.push_back({r.proc->wait_fd(), POLLIN, 0});
      }
    }
    int n = poll(fds.data(), fds.size(), timeout_ms);
    if (n < 0 && errno != EINTR) {
      spdlog::error("controller: poll: {}", std::strerror(errno));
      break;
    }
    bool act = false;
    signalfd_siginfo si;
    while (read(signal_fd_, &si, sizeof(si)) == sizeof(si)) {
      if (si.ssi_signo == SIGTERM || si.ssi_signo == SIGINT) stop = true;
      if (si.ssi_signo == SIGCHLD) act = true;
    }
    uint64_t v;
    if (read(stop_fd_, &v, sizeof(v)) == sizeof(v)) stop = true;
    alignas(inotify_event) char buf[16384];
    bool dir_gone = false;
    for (;;) {
      ssize_t len = read(inotify_fd_, buf, sizeof(buf));
      if (len <= 0) break;
      for (char* p = buf; p < buf + len;) {
        auto* ev = reinterpret_cast<inotify_event*>(p);
        if (ev->mask & (IN_DELETE_SELF | IN_MOVE_SELF | IN_IGNORED)) dir_gone = true;
        p += sizeof(inotify_event) + ev->len;
      }
      if (dirty_since == Clock::time_point::max()) dirty_since = Clock::now();
    }
    if (dir_gone) {
      spdlog::warn("controller: {} was removed or moved; lanes keep running until it is back",
                   o_.specs_dir);
    }
    for (size_t i = 3; i < fds.size(); ++i) act |= (fds[i].revents & POLLIN) != 0;
    if (stop) break;
    HandleExits();
    now = Clock::now();
    if (now >= next_rescan) {
      act = true;
      next_rescan = now + o_.rescan_every;
      if (dir_watch_ < 0 || dir_gone) {
        // Watch again once the directory is back.
        dir_watch_ = inotify_add_watch(inotify_fd_, o_.specs_dir.c_str(),
                                       IN_CLOSE_WRITE | IN_MOVED_TO | IN_MOVED_FROM | IN_DELETE |
                                           IN_CREATE | IN_ATTRIB | IN_DELETE_SELF | IN_MOVE_SELF);
      }
    }
    if (dirty_since != Clock::time_point::max() && now >= dirty_since + o_.debounce) {
      act = true;
      dirty_since = Clock::time_point::max();
    }
    if (now >= NextDeadline()) act = true;
    if (act) {
      if (!fs::is_directory(o_.specs_dir)) {
        // A missing directory is not "every lane deleted": keep them, say so in status.
        errors_ = {{o_.specs_dir, 0, 0, "", "cannot read: the directory is gone; lanes keep "
                                            "running until it is back"}};
        for (auto& [ln, lane] : lanes_) {
          bool changed = false;
          ReconcileLane(lane, changed);
          if (changed) SaveState(lane);
        }
        Publish();
      } else {
        Reconcile();
      }
    }
  }
  if (o_.leave_running) {
    spdlog::info("controller: stopping; {} lane(s) left running for the next controller to adopt",
                 lanes_.size());
    return 0;
  }
  spdlog::info("controller: stopping {} lane(s)", lanes_.size());
  StopAll();
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
