#include "tests/chaos/chaos_driver.h"

#include <signal.h>

#include <algorithm>
#include <iostream>

#include "controller/owner/owner_lease.h"
#include "tests/support/proc_scan.h"
#include "worker/redis_connection.h"

namespace lk::chaos {

namespace driver_detail {

using std::chrono::milliseconds;
using SteadyTime = std::chrono::steady_clock::time_point;

int64_t UnixMs() {
  return std::chrono::duration_cast<milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

const std::vector<std::string> kCompetitors = {"supervisor", "worker", "autopilot"};

}  // namespace driver_detail

ChaosDriver::ChaosDriver(LaneUnderTest lane, FaultPlan plan, uint64_t seed)
    : lane_(std::move(lane)), plan_(std::move(plan)), rng_(seed) {
  start_ = std::chrono::steady_clock::now();
  next_fault_ = start_ + plan_.every_min;
}

ChaosDriver::~ChaosDriver() { Finish(); }

void ChaosDriver::Log(const std::string& kind, pid_t pid) {
  disruptions_.push_back({driver_detail::UnixMs(), kind, pid});
}

bool ChaosDriver::Step() {
  using namespace driver_detail;
  Tend();
  auto now = std::chrono::steady_clock::now();
  if (now - start_ >= plan_.duration || faults_ >= plan_.max_faults) return false;
  RetryPendingKill(now);
  if (now < next_fault_) return true;
  // The pick and the next interval come from the seed alone, whatever the fault finds.
  int total = 0;
  for (const auto& [name, weight] : plan_.weights) total += weight;
  int draw = std::uniform_int_distribution<int>(0, std::max(total - 1, 0))(rng_);
  std::string fault;
  for (const auto& [name, weight] : plan_.weights) {
    if (draw < weight) {
      fault = name;
      break;
    }
    draw -= weight;
  }
  auto every = std::uniform_int_distribution<int64_t>(plan_.every_min.count(),
                                                      plan_.every_max.count())(rng_);
  next_fault_ = now + milliseconds(every);
  ++faults_;
  if (fault == "kill-worker") {
    if (KillWorker()) {
      ++counts_[fault];
    } else {
      // No worker is up: the previous fault took it down and its supervisor's restart
      // backoff has not brought it back. The kill waits for the next worker (up to 10 s)
      // instead of being skipped; at the long profile's pace, skipping lost half the kills.
      if (pending_kill_until_) ++counts_["skipped-kill-worker"];  // one was waiting already
      pending_kill_until_ = now + std::chrono::seconds(10);
    }
    return true;
  }
  if (!fault.empty()) ++counts_[Inject(fault) ? fault : "skipped-" + fault];
  return true;
}

void ChaosDriver::RetryPendingKill(std::chrono::steady_clock::time_point now) {
  if (!pending_kill_until_) return;
  if (KillWorker(/*pick_from_seed=*/false)) {
    ++counts_["kill-worker"];
  } else if (now >= *pending_kill_until_) {
    ++counts_["skipped-kill-worker"];
  } else {
    return;
  }
  pending_kill_until_.reset();
}

bool ChaosDriver::Inject(const std::string& fault) {
  if (fault == "kill-supervisor") return KillSupervisor();
  if (fault == "compete") {
    auto lifetime = std::uniform_int_distribution<int>(5'000, 15'000)(rng_);
    return Compete(driver_detail::kCompetitors[competitor_turn_++ % 3],
                   std::chrono::milliseconds(lifetime));
  }
  if (fault == "stall") return Stall();
  if (fault == "redis-restart") return RestartRedis();
  if (fault == "failover") return Failover();
  if (fault == "spec-edit") return EditSpec();
  errors_.push_back("unknown fault " + fault);
  return false;
}

bool ChaosDriver::KillWorker(bool pick_from_seed) {
  auto pids = testing::FindProcesses({"jobs", "work", "--queue", lane_.queue});
  if (pids.empty()) return false;
  pid_t pid = pick_from_seed ? pids[std::uniform_int_distribution<size_t>(0, pids.size() - 1)(rng_)]
                             : pids.front();
  Log("kill-worker", pid);
  return testing::SignalProcess(pid, SIGKILL);
}

bool ChaosDriver::KillSupervisor() {
  auto pids = testing::FindProcesses({"jobs", "supervisor", "--queue", lane_.queue});
  if (pids.empty()) return false;
  pid_t pid = pids[std::uniform_int_distribution<size_t>(0, pids.size() - 1)(rng_)];
  Log("kill-supervisor", pid);
  if (!testing::SignalProcess(pid, SIGKILL)) return false;
  for (auto& c : competitors_) {
    // A competitor of ours: started again a second later (the controller restarts its own).
    if (c.process && c.process->pid() == pid && !c.stopping) {
      c.process->Wait(std::chrono::milliseconds(1000));
      c.process = std::make_unique<testing::ChildProcess>(CompetitorArgv(c.kind));
    }
  }
  return true;
}

std::vector<std::string> ChaosDriver::CompetitorArgv(const std::string& kind) {
  std::vector<std::string> argv = {testing::LanekeeperBinary(), "--redis", lane_.redis->url(),
                                   "--queue", lane_.queue, "--log-level", "warn"};
  const std::string n = std::to_string(++competitor_seq_);
  if (kind == "supervisor") {
    argv.insert(argv.end(), {"jobs", "supervisor", "--concurrency", "4", "--max-rss", "0",
                             "--pid-file", lane_.root + "/competitor-" + n + ".pid",
                             "--handlers", lane_.handlers_file, "--lease-ttl", "3s",
                             "--lease-renew", "1s", "--drain-timeout", "10s"});
  } else if (kind == "worker") {
    argv.insert(argv.end(), {"jobs", "work", "--concurrency", "2", "--max-rss", "0",
                             "--handlers", lane_.handlers_file, "--drain-timeout", "10s"});
  } else {
    argv.insert(argv.end(), {"autopilot", "--repo", lane_.root, "--interval", "1h",
                             "--concurrency", "2", "--max-rss", "0", "--handlers",
                             lane_.handlers_file, "--drain-timeout", "10s"});
  }
  const auto& extra = lane_.competitor_args[kind];
  argv.insert(argv.end(), extra.begin(), extra.end());
  return argv;
}

bool ChaosDriver::Compete(std::string kind, std::chrono::milliseconds lifetime) {
  Competitor c;
  c.kind = std::move(kind);
  c.process = std::make_unique<testing::ChildProcess>(CompetitorArgv(c.kind));
  c.stop_at = std::chrono::steady_clock::now() + lifetime;
  if (!c.process->started()) return false;
  competitors_.push_back(std::move(c));
  return true;
}

pid_t ChaosDriver::OwnerPid() {
  auto endpoint = ParseRedisUrl(lane_.redis->url());
  if (!endpoint.ok()) return 0;
  auto conn = RedisConnection::Connect(*endpoint, std::chrono::milliseconds(1000));
  if (!conn.ok()) return 0;
  auto owner = ReadOwner(**conn, lane_.queue);
  if (!owner.ok() || !owner->has_value()) return 0;
  const std::string& holder = (*owner)->holder;
  auto colon = holder.rfind(':');
  return colon == std::string::npos ? 0 : std::atoi(holder.c_str() + colon + 1);
}

bool ChaosDriver::Stall() {
  if (!to_continue_.empty()) return false;  // one stall at a time
  pid_t owner = OwnerPid();
  if (owner <= 0 || !testing::ProcessAlive(owner)) return false;
  bool standby = std::any_of(competitors_.begin(), competitors_.end(), [](const Competitor& c) {
    return c.kind == "supervisor" && !c.stopping;
  });
  if (!standby) Compete("supervisor", plan_.stall + std::chrono::seconds(10));
  std::vector<pid_t> stopped = {owner};
  for (pid_t child : testing::ChildPids(owner)) {
    auto args = testing::ProcessArgs(child);
    if (std::find(args.begin(), args.end(), "work") != args.end()) stopped.push_back(child);
  }
  auto until = std::chrono::steady_clock::now() + plan_.stall;
  for (pid_t pid : stopped) {
    Log("stop", pid);
    testing::SignalProcess(pid, SIGSTOP);
    to_continue_.push_back({until, pid});
  }
  return true;
}

bool ChaosDriver::RestartRedis() {
  Log("redis-restart", 0);
  Status s = lane_.redis->RestartPrimary();
  if (!s.ok()) errors_.push_back("redis restart: " + s.message());
  return s.ok();
}

bool ChaosDriver::Failover() {
  if (!lane_.redis->has_replica()) return false;
  Log("failover", 0);
  Status s = lane_.redis->Failover(plan_.failover, std::chrono::milliseconds(1000));
  if (!s.ok()) errors_.push_back("failover: " + s.message());
  return s.ok();
}

bool ChaosDriver::EditSpec() {
  spec_high_ = !spec_high_;
  lane_.write_spec(spec_high_);
  return true;
}

// SIGCONTs what is due, ends competitors whose time is up (SIGTERM, then forgotten once
// they exited), and forgets those that are gone.
void ChaosDriver::Tend() {
  auto now = std::chrono::steady_clock::now();
  for (auto it = to_continue_.begin(); it != to_continue_.end();) {
    if (it->first <= now) {
      testing::SignalProcess(it->second, SIGCONT);
      it = to_continue_.erase(it);
    } else {
      ++it;
    }
  }
  for (auto& c : competitors_) {
    if (!c.stopping && c.stop_at <= now) {
      c.process->Signal(SIGTERM);
      c.stopping = true;
    }
  }
  competitors_.erase(std::remove_if(competitors_.begin(), competitors_.end(),
                                    [&](Competitor& c) {
                                      // Past 30 s of draining, its destructor SIGKILLs it.
                                      return c.stopping &&
                                             (c.process->Wait(std::chrono::milliseconds(0)) ||
                                              now - c.stop_at > std::chrono::seconds(30));
                                    }),
                     competitors_.end());
}

void ChaosDriver::Finish() {
  for (auto& [at, pid] : to_continue_) testing::SignalProcess(pid, SIGCONT);
  to_continue_.clear();
  for (auto& c : competitors_) {
    if (!c.stopping) c.process->Signal(SIGTERM);
    c.stopping = true;
  }
  for (auto& c : competitors_) c.process->Wait(std::chrono::seconds(30));
  competitors_.clear();
}

}  // namespace lk::chaos
