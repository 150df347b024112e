#include "tests/chaos/chaos_record.h"

#include <algorithm>
#include <cstdlib>
#include <fstream>
#include <map>
#include <sstream>

namespace lk::chaos {

namespace record_detail {

constexpr int kMaxExamplesOfAKind = 5;
// A disruption this long before the earlier run's claim still explains it: the claim time
// comes from Redis's clock and the driver's from its own, on one machine but read apart.
constexpr int64_t kSlackMs = 1000;
// How long before its start a run whose token is unknown may have been claimed: longer than
// a stall (the soak's last 9 s) plus a job's lease.
constexpr int64_t kUnknownClaimMs = 30'000;

// "<attempt>:<claimed_ms>:<claimseq>.<id>" -> claimed_ms and claimseq.
void ParseToken(ChaosRun& run) {
  if (run.token == "-") return;
  auto first = run.token.find(':');
  auto second = run.token.find(':', first + 1);
  auto dot = run.token.find('.', second + 1);
  if (first == std::string::npos || second == std::string::npos || dot == std::string::npos) {
    run.token = "-";
    return;
  }
  run.claimed_ms = std::strtoll(run.token.c_str() + first + 1, nullptr, 10);
  run.claimseq = std::strtoll(run.token.c_str() + second + 1, nullptr, 10);
}

// The first few of each kind: a thousand lost jobs must not hide one violation.
void Note(Verdict& v, int64_t count_of_kind, const std::string& line) {
  if (count_of_kind <= kMaxExamplesOfAKind) v.examples.push_back(line);
}

std::string Describe(const ChaosRun& r) {
  return "job " + r.id + " attempt " + std::to_string(r.attempt) + " epoch " +
         std::to_string(r.epoch) + " worker " + std::to_string(r.worker) + " owner " +
         std::to_string(r.owner) + " claimed " + std::to_string(r.ClaimTime());
}

// The earliest the run's claim can have been: its token's time, or, when the token was
// unreadable (typically a worker that was stopped with jobs claimed but not started, and
// started them after its claims had been taken back), some time before the handler started.
int64_t EarliestClaim(const ChaosRun& r) {
  return r.claimed_ms >= 0 ? r.claimed_ms : r.start_ms - kUnknownClaimMs;
}

// Whether pid is the run's worker or that worker's owner. A run whose worker was killed
// before the handler started (its parent is init) may be any signalled process's.
bool Ran(const ChaosRun& r, pid_t pid) {
  return r.worker <= 1 || pid == r.worker || pid == r.owner;
}

// Two runs of one job are explained by a disruption of the process that ran either of them
// (its worker, or the worker's owner), or of Redis, between the first claim and the start
// of the later run.
bool Explains(const Disruption& d, const ChaosRun& a, const ChaosRun& b) {
  int64_t from = std::min(EarliestClaim(a), EarliestClaim(b)) - kSlackMs;
  int64_t to = std::max(a.start_ms, b.start_ms);
  if (d.at_ms < from || d.at_ms > to) return false;
  return d.pid == 0 || Ran(a, d.pid) || Ran(b, d.pid);
}

void CountDuplicates(const std::vector<ChaosRun>& runs, const std::vector<Disruption>& disruptions,
                     Verdict& v) {
  std::map<int64_t, std::vector<const ChaosRun*>> by_seq;
  for (const auto& r : runs) by_seq[r.seq].push_back(&r);
  for (auto& [seq, list] : by_seq) {
    std::sort(list.begin(), list.end(), [](const ChaosRun* a, const ChaosRun* b) {
      return a->ClaimTime() < b->ClaimTime();
    });
    for (size_t i = 1; i < list.size(); ++i) {
      ++v.duplicates;
      const ChaosRun& earlier = *list[i - 1];
      const ChaosRun& later = *list[i];
      bool explained = std::any_of(disruptions.begin(), disruptions.end(),
                                   [&](const Disruption& d) { return Explains(d, earlier, later); });
      if (!explained) {
        ++v.unexplained;
        Note(v, v.unexplained, "unexplained duplicate of seq " + std::to_string(seq) + ": " + Describe(earlier) +
                    ", then " + Describe(later));
      }
    }
  }
}

void CheckFencing(const std::vector<ChaosRun>& runs, Verdict& v) {
  std::vector<const ChaosRun*> claims;
  for (const auto& r : runs) {
    if (r.epoch == 0) {
      ++v.unfenced_claims;
    } else if (r.claimed_ms < 0) {
      ++v.unknown_tokens;
    } else {
      claims.push_back(&r);
    }
  }
  v.fenced_claims = static_cast<int64_t>(claims.size());
  std::sort(claims.begin(), claims.end(), [](const ChaosRun* a, const ChaosRun* b) {
    return a->claimed_ms != b->claimed_ms ? a->claimed_ms < b->claimed_ms
                                          : a->claimseq < b->claimseq;
  });
  const ChaosRun* highest = nullptr;
  for (const ChaosRun* c : claims) {
    if (highest != nullptr && c->epoch < highest->epoch) {
      ++v.violations;
      Note(v, v.violations, "fencing went backwards: " + Describe(*c) + " after " + Describe(*highest));
    }
    if (highest == nullptr || c->epoch > highest->epoch) highest = c;
  }
}

}  // namespace record_detail

std::vector<ChaosRun> ReadChaosRecord(const std::string& path, int* malformed) {
  std::vector<ChaosRun> runs;
  std::ifstream in(path);
  *malformed = 0;
  for (std::string line; std::getline(in, line);) {
    std::istringstream words(line);
    std::string what;
    ChaosRun r;
    if (!(words >> what >> r.seq >> r.id >> r.attempt >> r.token >> r.epoch >> r.pid >>
          r.worker >> r.owner >> r.start_ms >> r.end_ms) ||
        what != "done" || r.seq < 0) {
      ++*malformed;
      continue;
    }
    record_detail::ParseToken(r);
    runs.push_back(std::move(r));
  }
  return runs;
}

Verdict Judge(const std::vector<ChaosRun>& runs, const std::vector<int64_t>& acked,
              const std::vector<Disruption>& disruptions,
              const std::unordered_set<int64_t>& queued) {
  Verdict v;
  v.acked = static_cast<int64_t>(acked.size());
  v.runs = static_cast<int64_t>(runs.size());
  std::unordered_set<int64_t> ran;
  for (const auto& r : runs) ran.insert(r.seq);
  for (int64_t seq : acked) {
    if (ran.count(seq)) {
      ++v.completed;
    } else if (queued.count(seq)) {
      ++v.unfinished;
    } else {
      ++v.lost;
      record_detail::Note(v, v.lost,
                          "lost: acknowledged seq " + std::to_string(seq) +
                              " never ran and is not in the queue");
    }
  }
  record_detail::CountDuplicates(runs, disruptions, v);
  record_detail::CheckFencing(runs, v);
  return v;
}

}  // namespace lk::chaos
