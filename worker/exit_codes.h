// Process exit codes shared by every lanekeeper command, so a supervisor (or systemd) can
// tell why a worker stopped without parsing logs.
#pragma once

namespace lk {

inline constexpr int kExitOk = 0;           // finished, or drained after SIGTERM/SIGINT
inline constexpr int kExitFailure = 1;      // an error; stderr says which
inline constexpr int kExitUsage = 2;        // bad flags or input, or a pid file held by another
inline constexpr int kExitMaxRss = 12;      // drained because RSS passed --max-rss
inline constexpr int kExitFenced = 13;      // drained because its owner epoch is no longer current
// No code for "gave up on Redis": a worker never does. It retries (at most 5 s apart), keeps
// running the jobs it holds and records them when Redis is back; an outage that outlasts
// its owner's lease is settled by fencing. An exit would only turn an outage into a crash
// loop for its supervisor.

}  // namespace lk
