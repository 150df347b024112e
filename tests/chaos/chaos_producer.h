// ChaosProducer: submits `chaos` jobs at a steady rate on a thread of its own, through the
// queue's ordinary submit path (JobQueue::EnqueueBatch), and remembers which it may call
// acknowledged. Job SEQ has payload {"n": SEQ} and idempotency key chaos-SEQ, so a batch
// whose reply was lost (Redis killed mid-call) is simply submitted again: the queue returns
// the jobs it already has instead of making new ones.
//
// Acknowledged means EnqueueBatch returned ids, and with wait_replica also that `WAIT 1`
// on the same connection then reported a replica holding them — what a client of a
// replicated Redis may count on after a failover. Errors (Redis down, a reset connection)
// reopen the queue and retry the same batch after 100 ms, until Stop().
// Thread-safe: Acked() and the counts may be read while it runs.
#pragma once

#include <atomic>
#include <cstdint>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

namespace lk::chaos {

class ChaosProducer {
 public:
  ChaosProducer(std::string url, std::string queue, int per_second, bool wait_replica);
  ~ChaosProducer();
  ChaosProducer(const ChaosProducer&) = delete;
  ChaosProducer& operator=(const ChaosProducer&) = delete;

  // Stops submitting; a batch in flight that was not acknowledged stays unacknowledged.
  void Stop();
  std::vector<int64_t> Acked() const;
  int64_t acked_count() const { return acked_count_.load(); }
  int64_t errors() const { return errors_.load(); }

 private:
  void Loop();

  const std::string url_, queue_;
  const int per_second_;
  const bool wait_replica_;
  std::atomic<bool> stop_{false};
  std::atomic<int64_t> acked_count_{0};
  std::atomic<int64_t> errors_{0};
  mutable std::mutex mu_;
  std::vector<int64_t> acked_;
  std::thread thread_;
};

}  // namespace lk::chaos
