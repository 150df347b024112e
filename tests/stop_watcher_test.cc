// The worker's stop-request thread: every write is a stop request; a broken descriptor is
// one last stop request and the end of the loop, never a spinning core.
#include <gtest/gtest.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <memory>
#include <thread>

#include "worker/stop_watcher.h"

namespace lk {
namespace stop_watcher_test {

using namespace std::chrono_literals;

TEST(JobRunnerStopWatcher, ABrokenDescriptorEndsTheLoopWithOneStopRequestInsteadOfSpinning) {
  int fd = ::eventfd(0, EFD_CLOEXEC);
  ASSERT_GE(fd, 0);
  ASSERT_EQ(::close(fd), 0);  // read(fd) now fails with EBADF at once
  // Shared with the thread, which a failing test leaves behind: it outlives this scope.
  auto stops = std::make_shared<std::atomic<int>>(0);
  auto done = std::make_shared<std::atomic<bool>>(false);
  std::thread([fd, stops, done] {
    WatchStopRequests(fd, [] { return false; }, [stops] { ++*stops; });
    *done = true;
  }).detach();
  auto deadline = std::chrono::steady_clock::now() + 10s;
  while (!*done && std::chrono::steady_clock::now() < deadline) std::this_thread::sleep_for(1ms);
  ASSERT_TRUE(*done) << "the loop still runs after " << stops->load() << " stop requests";
  EXPECT_EQ(stops->load(), 1);
}

TEST(JobRunnerStopWatcher, EveryWriteIsAStopRequestUntilTheRunHasFinished) {
  int fd = ::eventfd(0, EFD_CLOEXEC);
  ASSERT_GE(fd, 0);
  std::atomic<int> stops{0};
  std::atomic<bool> finished{false};
  std::thread watcher([&] { WatchStopRequests(fd, [&] { return finished.load(); }, [&] { ++stops; }); });
  uint64_t one = 1;
  ASSERT_EQ(::write(fd, &one, sizeof one), 8);
  auto deadline = std::chrono::steady_clock::now() + 10s;
  while (stops.load() < 1 && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(1ms);
  }
  EXPECT_EQ(stops.load(), 1);
  finished = true;
  ASSERT_EQ(::write(fd, &one, sizeof one), 8);  // wakes it to see that the run is over
  watcher.join();
  EXPECT_EQ(stops.load(), 1);
  ::close(fd);
}

}  // namespace stop_watcher_test
}  // namespace lk
