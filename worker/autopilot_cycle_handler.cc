#include "worker/autopilot_cycle_handler.h"

#include <dirent.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <nlohmann/json.hpp>

#include "worker/process_tree.h"

namespace lk {

namespace {

using SteadyClock = std::chrono::steady_clock;
using Json = nlohmann::json;

// How much of a step's output the result keeps: enough to read the last lines of a
// `git pull`, small enough that a thousand results fit comfortably in Redis.
constexpr size_t kOutputTail = 2048;

// Output is arbitrary bytes and a tail may start mid-character: invalid UTF-8 becomes
// U+FFFD instead of an exception.
std::string Dump(const Json& j) { return j.dump(-1, ' ', false, Json::error_handler_t::replace); }

std::string LastBytes(const std::string& s, size_t n) {
  return s.size() <= n ? s : s.substr(s.size() - n);
}

}  // namespace

std::string EncodeCyclePayload(const CyclePayload& payload) {
  Json steps = Json::array();
  for (const auto& s : payload.steps) {
    steps.push_back({{"name", s.name}, {"command", s.command}, {"timeout_ms", s.timeout.count()}});
  }
  return Dump({{"repo", payload.repo}, {"steps", steps}});
}

StatusOr<CyclePayload> DecodeCyclePayload(std::string_view text) {
  auto j = Json::parse(text, nullptr, /*allow_exceptions=*/false);
  auto bad = [](const std::string& what) {
    return Status::InvalidArgument("autopilot-cycle payload: " + what);
  };
  if (!j.is_object()) return bad("expected a JSON object");
  if (!j.contains("repo") || !j["repo"].is_string() || j["repo"].get<std::string>().empty()) {
    return bad("repo: expected a non-empty string");
  }
  CyclePayload p;
  p.repo = j["repo"].get<std::string>();
  if (!j.contains("steps")) return p;
  if (!j["steps"].is_array()) return bad("steps: expected a list");
  for (size_t i = 0; i < j["steps"].size(); ++i) {
    const Json& s = j["steps"][i];
    std::string at = "steps[" + std::to_string(i) + "]";
    if (!s.is_object()) return bad(at + ": expected an object");
    CycleStep step;
    if (!s.contains("name") || !s["name"].is_string()) return bad(at + ".name: expected a string");
    step.name = s["name"].get<std::string>();
    if (!s.contains("command") || !s["command"].is_array() || s["command"].empty()) {
      return bad(at + ".command: expected a non-empty list of strings");
    }
    for (const Json& arg : s["command"]) {
      if (!arg.is_string()) return bad(at + ".command: expected a non-empty list of strings");
      step.command.push_back(arg.get<std::string>());
    }
    if (s.contains("timeout_ms")) {
      if (!s["timeout_ms"].is_number_integer() || s["timeout_ms"].get<int64_t>() < 0) {
        return bad(at + ".timeout_ms: expected a whole number >= 0");
      }
      step.timeout = Millis(s["timeout_ms"].get<int64_t>());
    }
    p.steps.push_back(std::move(step));
  }
  return p;
}

HandlerOutcome AutopilotCycleHandler::Run(const JobContext& ctx) {
  auto payload = DecodeCyclePayload(ctx.payload);
  if (!payload.ok()) return {false, "", payload.status().message()};
  const CyclePayload& p = *payload;

  // Checked up front so that a missing checkout reads as what it is, rather than as the
  // first step's "cannot run 'git': No such file or directory" (a failed chdir in the
  // spawned child reports the same errno as a missing program).
  if (DIR* d = ::opendir(p.repo.c_str())) {
    ::closedir(d);
  } else {
    return {false, "", "repo '" + p.repo + "' is missing or unreadable: " + std::strerror(errno)};
  }

  Json steps = Json::array();
  auto result = [&] { return Dump({{"repo", p.repo}, {"steps", steps}}); };
  for (const CycleStep& step : p.steps) {
    GroupCommand command;
    command.argv = step.command;
    command.cwd = p.repo;
    command.env = {"LANEKEEPER_JOB_ID=" + ctx.id, "LANEKEEPER_JOB_NAME=" + ctx.name,
                   "LANEKEEPER_JOB_ATTEMPT=" + std::to_string(ctx.attempt),
                   "LANEKEEPER_QUEUE=" + ctx.queue, "LANEKEEPER_REPO=" + p.repo,
                   "LANEKEEPER_STEP=" + step.name};
    SteadyClock::time_point begin = SteadyClock::now();
    bool step_deadline_first = false;
    command.deadline = ctx.stop.deadline();
    if (step.timeout.count() > 0 && begin + step.timeout < command.deadline) {
      command.deadline = begin + step.timeout;
      step_deadline_first = true;
    }
    command.stop_fd = ctx.stop.fd();
    auto run = RunInProcessGroup(command);
    int64_t duration_ms =
        std::chrono::duration_cast<Millis>(SteadyClock::now() - begin).count();
    std::string failed = "step '" + step.name + "' failed: ";
    if (!run.ok()) {
      steps.push_back({{"name", step.name}, {"exit_code", -1}, {"ok", false},
                       {"duration_ms", duration_ms}, {"output_tail", run.status().message()}});
      return {false, result(), failed + run.status().message()};
    }
    bool ok = run->exit_code == 0 && !run->timed_out && !run->stopped;
    steps.push_back({{"name", step.name}, {"exit_code", run->exit_code}, {"ok", ok},
                     {"duration_ms", duration_ms},
                     {"output_tail", LastBytes(run->stdout_tail + run->stderr_tail, kOutputTail)}});
    if (ok) continue;
    // The job's own deadline or a lost lease: the runner words that outcome itself.
    if (run->stopped || (run->timed_out && !step_deadline_first)) {
      return {false, result(), failed + "stopped"};
    }
    std::string error = run->timed_out ? "timed out after " + FormatDuration(step.timeout)
                        : run->term_signal != 0
                            ? "killed by signal " + std::to_string(run->term_signal)
                            : "exit code " + std::to_string(run->exit_code);
    std::string tail = TrimOutputTail(std::move(run->stderr_tail));
    if (!tail.empty()) error += ": " + tail;
    return {false, result(), failed + error};
  }
  return {true, result(), ""};
}

}  // namespace lk
