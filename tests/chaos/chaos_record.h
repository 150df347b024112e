// The chaos soak's verdict, from three records that no fault can erase: the runs the
// handler (tests/chaos/chaos_job.cc) appended to a file, the sequence numbers the producer
// had acknowledged (Enqueue returned an id, and with --replicas a replica had it), and the
// driver's log of what it did to which process and when.
//
//   lost        an acknowledged sequence number that no run completed and that the queue no
//               longer holds; "unfinished" when the queue still holds it (waiting, delayed
//               or active: the workers did not get to it in time, nothing was lost).
//   duplicate   every completed run of a sequence number after its first. Each must be
//               explained by a disruption between the first claim and the later run's
//               start: a SIGKILL or SIGSTOP of a process that ran either run (its worker)
//               or of that worker's owner, or a Redis restart or failover (pid 0: every
//               process). Those that are not are "unexplained". (A stopped worker may
//               wake and start a job whose claim was taken back meanwhile: then the later
//               run is the stopped one's.)
//   violation   a claim accepted under an epoch lower than one a claim already used, the
//               claims ordered by when Redis accepted them (the token's time, then its
//               claim sequence): fencing went backwards. Claims of workers without an epoch
//               (hand-started, unfenced) and runs whose token could not be read are counted
//               and left out.
// Pure functions over values; thread-safe.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <string>
#include <unordered_set>
#include <vector>

namespace lk::chaos {

struct ChaosRun {
  int64_t seq = -1;
  std::string id;
  int attempt = 0;
  std::string token;  // "-": unknown
  int64_t epoch = 0;  // 0: a worker without --epoch
  pid_t pid = 0, worker = 0, owner = 0;
  int64_t start_ms = 0, end_ms = 0;
  int64_t claimed_ms = -1;  // from the token; -1 when it is unknown
  int64_t claimseq = -1;
  // When the claim happened: claimed_ms, else start_ms.
  int64_t ClaimTime() const { return claimed_ms >= 0 ? claimed_ms : start_ms; }
};

// Every "done" line of the record at path, in file order; malformed lines are skipped and
// counted in *malformed.
std::vector<ChaosRun> ReadChaosRecord(const std::string& path, int* malformed);

struct Disruption {
  int64_t at_ms = 0;  // Unix ms
  std::string kind;   // kill-worker, kill-supervisor, stop, redis-restart, failover
  pid_t pid = 0;      // 0: Redis itself, so every process
};

struct Verdict {
  int64_t acked = 0;
  int64_t completed = 0;  // acknowledged and completed at least once
  int64_t lost = 0;
  int64_t unfinished = 0;
  int64_t runs = 0;
  int64_t duplicates = 0;
  int64_t unexplained = 0;
  int64_t fenced_claims = 0;    // checked by the invariant
  int64_t unfenced_claims = 0;  // epoch 0
  int64_t unknown_tokens = 0;
  int64_t violations = 0;
  std::vector<std::string> examples;  // the first few problems of each kind, one line each
};

// queued: the sequence numbers of the jobs the queue still holds unfinished.
Verdict Judge(const std::vector<ChaosRun>& runs, const std::vector<int64_t>& acked,
              const std::vector<Disruption>& disruptions,
              const std::unordered_set<int64_t>& queued = {});

}  // namespace lk::chaos
