// WatchStopRequests: the loop of a thread that turns writes to an eventfd (from a signal
// handler: write(2) is async-signal-safe) into stop requests for a worker's dispatcher.
//
// Blocks in read(fd); calls on_stop() for every wake-up until finished() is true. A read
// error other than EINTR (the fd closed or broken) is one last stop request, logged, and
// the loop ends: a broken fd must not spin a core forever. Returns when the loop ends.
// Thread-safe as its callbacks are.
#pragma once

#include <functional>

namespace lk {

void WatchStopRequests(int fd, const std::function<bool()>& finished,
                       const std::function<void()>& on_stop);

}  // namespace lk
