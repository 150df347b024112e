// Process exit codes shared by every lanekeeper command, so a supervisor (or systemd) can
// tell why a worker stopped without parsing logs.
#pragma once

namespace lk {

inline constexpr int kExitOk = 0;           // finished, or drained after SIGTERM/SIGINT
inline constexpr int kExitFailure = 1;      // an error; stderr says which
inline constexpr int kExitUsage = 2;        // bad flags or input, or a pid file held by another
inline constexpr int kExitMaxRss = 12;      // drained because RSS passed --max-rss
inline constexpr int kExitFenced = 13;      // drained because its owner epoch is no longer current
inline constexpr int kExitRedisLost = 14;   // gave up on Redis (only with a retry limit)

}  // namespace lk
