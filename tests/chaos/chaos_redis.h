// ChaosRedis: the queue's Redis as the chaos soak breaks it — a primary (AOF, appendfsync
// always), optionally a real replica (a second redis-server following it with REPLICAOF),
// and the SwitchingProxy every client connects through (url()).
//
//   RestartPrimary()  SIGKILL the primary and start it again on its port and dir: a crash
//                     that AOF with appendfsync always must survive without losing a write.
//   Failover(kSynced) the primary's writers are paused (CLIENT PAUSE WRITE), the replica is
//                     waited for until its offset equals the primary's, the primary is
//                     SIGKILLed, the replica promoted (REPLICAOF NO ONE), the proxy switched
//                     (closing every client connection), and a new replica started behind
//                     the new primary. Nothing acknowledged is lost: a planned failover, as
//                     Redis's own FAILOVER command and managed services do it.
//   Failover(kStale)  the replica is cut off from the primary for lag first (REPLICAOF NO
//                     ONE: it keeps what it had; the primary keeps taking writes it never
//                     sees), then the primary is SIGKILLed and the proxy switched to the
//                     replica as it is: an unplanned failover to a replica that lagged. What
//                     was written meanwhile is lost unless the writers waited for it (WAIT
//                     then fails for them instead).
// Not thread-safe: one driver thread calls it.
#pragma once

#include <chrono>
#include <memory>
#include <string>

#include "tests/chaos/switching_proxy.h"
#include "tests/support/redis_server.h"
#include "worker/status.h"

namespace lk::chaos {

enum class FailoverKind { kSynced, kStale };

class ChaosRedis {
 public:
  static StatusOr<std::unique_ptr<ChaosRedis>> Start(bool with_replica);

  // redis://127.0.0.1:<proxy port>/0: what every role, the producer and the handler use.
  std::string url() const;
  bool has_replica() const { return replica_ != nullptr; }
  // The primary itself (not the proxy), for the driver's own checks.
  std::string primary_url() const { return primary_->url(); }

  Status RestartPrimary();
  Status Failover(FailoverKind kind, std::chrono::milliseconds lag);

 private:
  ChaosRedis() = default;
  Status StartReplica();

  std::unique_ptr<testing::RedisServer> primary_;
  std::unique_ptr<testing::RedisServer> replica_;
  std::unique_ptr<SwitchingProxy> proxy_;
};

}  // namespace lk::chaos
