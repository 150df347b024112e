// ChaosDriver: the faults of the chaos soak, one at a time at seeded random intervals,
// against a lane that a `lanekeeper controller` runs from a spec directory:
//
//   kill-worker      SIGKILL one `jobs work` of the queue (any owner's)
//   kill-supervisor  SIGKILL one `jobs supervisor` of the queue; the controller restarts
//                    its own, the driver restarts a competitor it started a second later
//   compete          start, for 5 to 15 s, a competing supervisor, a hand-started `jobs
//                    work` or an autopilot without --no-worker (in turn); then SIGTERM it
//   stall            SIGSTOP the lease holder and its worker for past both the owner lease
//                    and the jobs' lease (a standby supervisor is started first if none
//                    runs, so that someone takes over), then SIGCONT them
//   redis-restart    SIGKILL the queue's Redis and start it again (AOF, appendfsync always)
//   failover         promote the replica (ChaosRedis::Failover), clients moved by the proxy
//   spec-edit        rewrite the Lane spec (supervisor concurrency low <-> high) under the
//                    controller, which restarts the supervisor to match
// Every signal it sends, and every Redis-wide event, goes to its disruption log with the
// time and pid (the verdict explains duplicates with it, tests/chaos/chaos_record.h).
// The fault sequence depends only on the seed; what the processes do meanwhile does not.
// Not thread-safe: one thread calls Step() until it returns false, then Finish().
#pragma once

#include <chrono>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <random>
#include <string>
#include <vector>

#include "tests/chaos/chaos_record.h"
#include "tests/chaos/chaos_redis.h"
#include "tests/support/child_process.h"

namespace lk::chaos {

struct FaultPlan {
  std::chrono::milliseconds duration{100'000};  // stop injecting after this long...
  int max_faults = 1000;                        // ...or after this many faults
  std::chrono::milliseconds every_min{1'000}, every_max{4'000};
  FailoverKind failover = FailoverKind::kSynced;
  std::chrono::milliseconds stall{9'000};  // past the owner lease (3 s) and a job's (5 s)
  // Relative weights of the faults, by name (as above).
  std::map<std::string, int> weights;
};

// What the driver needs of the lane under test.
struct LaneUnderTest {
  ChaosRedis* redis = nullptr;
  std::string queue;
  std::string root;           // a directory for the competitors' pid files
  std::string handlers_file;  // the same handlers as the Lane's, for the competitors
  // Writes the Lane spec with its higher or its lower supervisor concurrency.
  std::function<void(bool high)> write_spec;
  // Extra flags for the competitors, by kind (supervisor, worker, autopilot): e.g.
  // --redis-replicas 1 where the build offers it.
  std::map<std::string, std::vector<std::string>> competitor_args;
};

class ChaosDriver {
 public:
  ChaosDriver(LaneUnderTest lane, FaultPlan plan, uint64_t seed);
  ~ChaosDriver();

  // Runs what is due (a fault, a SIGCONT, a competitor's end or restart); false once the
  // plan's time or count is spent. Call every few tens of milliseconds.
  bool Step();
  // Ends what the faults left (SIGCONT, competitors SIGTERMed and waited for).
  void Finish();

  const std::vector<Disruption>& disruptions() const { return disruptions_; }
  int faults() const { return faults_; }
  // How many of each fault ran, by name ("skipped-NAME": it found nothing to act on); and
  // the failures of faults that could not run.
  const std::map<std::string, int>& counts() const { return counts_; }
  const std::vector<std::string>& errors() const { return errors_; }

 private:
  struct Competitor {
    std::string kind;  // supervisor, worker, autopilot
    std::unique_ptr<testing::ChildProcess> process;
    std::chrono::steady_clock::time_point stop_at;
    bool stopping = false;
  };
  bool Inject(const std::string& fault);
  // pick_from_seed: which of several workers, drawn from the seed (a retried kill takes the
  // first found, so that retries do not shift the seed's sequence of faults).
  bool KillWorker(bool pick_from_seed = true);
  void RetryPendingKill(std::chrono::steady_clock::time_point now);
  bool KillSupervisor();
  bool Compete(std::string kind, std::chrono::milliseconds lifetime);
  bool Stall();
  bool RestartRedis();
  bool Failover();
  bool EditSpec();
  void Tend();
  void Log(const std::string& kind, pid_t pid);
  pid_t OwnerPid();
  std::vector<std::string> CompetitorArgv(const std::string& kind);

  LaneUnderTest lane_;
  FaultPlan plan_;
  std::mt19937_64 rng_;
  std::chrono::steady_clock::time_point start_, next_fault_;
  // A kill-worker that found no worker waits for one until then (no value: none waits).
  std::optional<std::chrono::steady_clock::time_point> pending_kill_until_;
  int faults_ = 0;
  int competitor_turn_ = 0;
  bool spec_high_ = false;
  int competitor_seq_ = 0;
  std::vector<Competitor> competitors_;
  std::vector<std::pair<std::chrono::steady_clock::time_point, pid_t>> to_continue_;
  std::vector<Disruption> disruptions_;
  std::map<std::string, int> counts_;
  std::vector<std::string> errors_;
};

}  // namespace lk::chaos
