// "Never two workers", proven from a queue's lifecycle events (lk:{Q}:events, read whole by
// QueueRecords::Events) instead of sampled from /proc.
//
// Why the record is proof: a supervisor or autopilot emits lease_acquired after taking the
// lease and before starting a worker, worker_started right after spawning it, and
// worker_exited right after reaping it; a new owner takes the lease only after the old one
// released it (after its worker_exited) or let it expire. So in the stream
//   - a worker_started while a worker of the same epoch is still open (started, not exited)
//     means two workers that could both claim;
//   - a worker_started of an epoch below the newest lease_acquired is a stale owner starting
//     a worker;
//   - with OneAtATime::kStrict, a worker_started or another holder's lease_acquired while any
//     worker is open means two workers alive at once, fenced or not. kFencedOverlap allows
//     an open worker of an older epoch (a killed owner's orphan, a worker draining after its
//     lease was taken): its claims are refused, so it cannot run a second job stream;
//   - a worker_exited of a worker never started means the record is incomplete (an event
//     that did not reach Redis), which proves nothing.
// Pure functions of the events; thread-safe.
#pragma once

#include <string>
#include <vector>

#include "controller/owner/lifecycle_events.h"

namespace lk::testing {

enum class OneAtATime { kStrict, kFencedOverlap };

// The first violation with the events around it, or "" when there is none. Says so too
// when no worker ever started, unless allow_none: a check of nothing proves nothing.
std::string FirstSecondWorker(const std::vector<LifecycleEvent>& events, OneAtATime rule,
                              bool allow_none = false);

// The events as lines "#INDEX +MS type role=R holder=H k=v...", MS from the first event.
std::string DescribeEvents(const std::vector<LifecycleEvent>& events, size_t from = 0,
                           size_t to = SIZE_MAX);

// Milliseconds from each worker_exited to the next worker_started (the restart backoff as
// it happened), and from each worker_started to the next (the backoff plus the run).
std::vector<int64_t> ExitToStartGaps(const std::vector<LifecycleEvent>& events);
std::vector<int64_t> StartToStartGaps(const std::vector<LifecycleEvent>& events);

}  // namespace lk::testing
