#include "worker/handler.h"

#include <poll.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <nlohmann/json.hpp>

#include "worker/autopilot_cycle_handler.h"
#include "worker/process_tree.h"

namespace lk {

using SteadyClock = std::chrono::steady_clock;

StopToken::StopToken() : fd_(::eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC)) {
  if (fd_ < 0) std::abort();  // out of fds at startup: nothing sensible to do
}

StopToken::~StopToken() { ::close(fd_); }

void StopToken::Reset(SteadyClock::time_point deadline) {
  uint64_t drained;
  while (::read(fd_, &drained, sizeof drained) > 0) {
  }
  requested_.store(StopReason::kNone);
  deadline_ = deadline;
}

void StopToken::Request(StopReason reason) {
  StopReason none = StopReason::kNone;
  if (requested_.compare_exchange_strong(none, reason)) {
    uint64_t one = 1;
    while (::write(fd_, &one, sizeof one) < 0 && errno == EINTR) {
    }
  }
}

StopReason StopToken::reason() const {
  StopReason r = requested_.load();
  if (r != StopReason::kNone) return r;
  if (deadline_ != SteadyClock::time_point::max() && SteadyClock::now() >= deadline_) return StopReason::kTimeout;
  return StopReason::kNone;
}

bool StopToken::SleepFor(Millis d) const {
  SteadyClock::time_point until = SteadyClock::now() + d;
  SteadyClock::time_point wake = std::min(until, deadline_);
  while (!stop_requested()) {
    SteadyClock::time_point now = SteadyClock::now();
    if (now >= wake) break;
    auto ms = std::chrono::ceil<Millis>(wake - now).count();
    pollfd p{fd_, POLLIN, 0};
    ::poll(&p, 1, static_cast<int>(std::min<int64_t>(ms, 60'000)));
  }
  return !stop_requested() && SteadyClock::now() >= until;
}

namespace {

class NoopHandler : public Handler {
 public:
  HandlerOutcome Run(const JobContext&) override { return {}; }
};

class SleepHandler : public Handler {
 public:
  HandlerOutcome Run(const JobContext& ctx) override {
    auto payload = nlohmann::json::parse(ctx.payload, nullptr, /*allow_exceptions=*/false);
    if (!payload.is_object() || (payload.contains("ms") && !payload["ms"].is_number_integer())) {
      return {false, "", "sleep: payload must be {\"ms\": N}"};
    }
    int64_t ms = payload.value("ms", int64_t{0});
    if (!ctx.stop.SleepFor(Millis(ms))) return {false, "", "sleep: stopped"};
    return {};
  }
};

class FailHandler : public Handler {
 public:
  HandlerOutcome Run(const JobContext& ctx) override {
    auto payload = nlohmann::json::parse(ctx.payload, nullptr, /*allow_exceptions=*/false);
    std::string error = "failed on purpose";
    if (payload.is_object() && payload.contains("error") && payload["error"].is_string()) {
      error = payload["error"].get<std::string>();
    }
    return {false, "", error};
  }
};

}  // namespace

HandlerSet BuiltinHandlers() {
  HandlerSet set;
  set["noop"].handler = std::make_shared<NoopHandler>();
  set["sleep"].handler = std::make_shared<SleepHandler>();
  set["fail"].handler = std::make_shared<FailHandler>();
  set[kAutopilotCycleJob].handler = std::make_shared<AutopilotCycleHandler>();
  return set;
}

HandlerOutcome CommandHandler::Run(const JobContext& ctx) {
  GroupCommand command;
  command.argv = argv_;
  command.env = {"LANEKEEPER_JOB_ID=" + ctx.id, "LANEKEEPER_JOB_NAME=" + ctx.name,
                 "LANEKEEPER_JOB_ATTEMPT=" + std::to_string(ctx.attempt),
                 "LANEKEEPER_QUEUE=" + ctx.queue};
  command.stdin_data = ctx.payload;
  command.deadline = ctx.stop.deadline();
  command.stop_fd = ctx.stop.fd();
  auto run = RunInProcessGroup(command);
  if (!run.ok()) return {false, "", run.status().message()};
  if (run->timed_out) return {false, "", "timed out after " + FormatDuration(ctx.timeout)};
  if (run->stopped) return {false, "", "stopped"};
  if (run->exit_code == 0) return {true, std::move(run->stdout_tail), ""};
  std::string error = run->term_signal != 0 ? "killed by signal " + std::to_string(run->term_signal)
                                            : "exit code " + std::to_string(run->exit_code);
  std::string tail = TrimOutputTail(std::move(run->stderr_tail));
  if (!tail.empty()) error += ": " + tail;
  return {false, "", error};
}

}  // namespace lk
