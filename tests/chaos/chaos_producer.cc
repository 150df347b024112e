#include "tests/chaos/chaos_producer.h"

#include <chrono>

#include "worker/job_queue.h"

namespace lk::chaos {

namespace producer_detail {

constexpr int kMaxBatch = 200;
constexpr auto kTick = std::chrono::milliseconds(20);
constexpr auto kRetryAfter = std::chrono::milliseconds(100);

std::vector<JobSpec> Batch(int64_t first, int count) {
  std::vector<JobSpec> specs;
  for (int64_t seq = first; seq < first + count; ++seq) {
    JobSpec s;
    s.name = "chaos";
    s.payload = "{\"n\": " + std::to_string(seq) + "}";
    s.idempotency_key = "chaos-" + std::to_string(seq);
    s.lease = kMinLease;
    s.max_attempts = 100;
    specs.push_back(std::move(s));
  }
  return specs;
}

// Submits specs; with wait_replica, also waits until a replica has them.
Status Submit(JobQueue& queue, const std::vector<JobSpec>& specs, bool wait_replica) {
  auto ids = queue.EnqueueBatch(specs);
  if (!ids.ok()) return ids.status();
  if (!wait_replica) return Status::OK();
  auto waited = queue.connection().Command({"WAIT", "1", "2000"});
  if (!waited.ok()) return waited.status();
  if (waited->is_error() || waited->AsInt() < 1) {
    return Status::Unavailable("WAIT 1: no replica acknowledged the batch");
  }
  return Status::OK();
}

}  // namespace producer_detail

ChaosProducer::ChaosProducer(std::string url, std::string queue, int per_second,
                             bool wait_replica)
    : url_(std::move(url)), queue_(std::move(queue)), per_second_(per_second),
      wait_replica_(wait_replica) {
  thread_ = std::thread([this] { Loop(); });
}

ChaosProducer::~ChaosProducer() { Stop(); }

void ChaosProducer::Stop() {
  stop_ = true;
  if (thread_.joinable()) thread_.join();
}

std::vector<int64_t> ChaosProducer::Acked() const {
  std::lock_guard lock(mu_);
  return acked_;
}

void ChaosProducer::Loop() {
  using namespace producer_detail;
  const auto start = std::chrono::steady_clock::now();
  std::unique_ptr<JobQueue> queue;
  int64_t next = 1;
  while (!stop_) {
    auto elapsed = std::chrono::duration_cast<std::chrono::milliseconds>(
        std::chrono::steady_clock::now() - start);
    int64_t due = elapsed.count() * per_second_ / 1000 + 1 - next;
    if (due <= 0) {
      std::this_thread::sleep_for(kTick);
      continue;
    }
    int count = static_cast<int>(std::min<int64_t>(due, kMaxBatch));
    Status status = Status::OK();
    if (!queue) {
      auto opened = OpenJobQueue(url_, queue_);
      if (opened.ok()) queue = std::move(opened).value();
      else status = opened.status();
    }
    if (queue) status = Submit(*queue, Batch(next, count), wait_replica_);
    if (!status.ok()) {
      ++errors_;
      queue.reset();
      std::this_thread::sleep_for(kRetryAfter);
      continue;
    }
    std::lock_guard lock(mu_);
    for (int64_t seq = next; seq < next + count; ++seq) acked_.push_back(seq);
    next += count;
    acked_count_ = next - 1;
  }
}

}  // namespace lk::chaos
