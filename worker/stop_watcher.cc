#include "worker/stop_watcher.h"

#include <unistd.h>

#include <spdlog/spdlog.h>

#include <cerrno>
#include <cstdint>
#include <cstring>

namespace lk {

void WatchStopRequests(int fd, const std::function<bool()>& finished,
                       const std::function<void()>& on_stop) {
  for (;;) {
    uint64_t v;
    ssize_t n = ::read(fd, &v, sizeof v);
    if (n < 0 && errno == EINTR) continue;
    if (finished()) return;
    on_stop();
    if (n < 0) {
      spdlog::error("stop requests: read: {}; stopping", std::strerror(errno));
      return;
    }
  }
}

}  // namespace lk
