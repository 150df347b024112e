// Fuzz target for the Lane spec parser: any bytes go through ParseLaneSpecs and
// ValidateLaneSet, which must return — errors are values — and never crash, hang, leak or
// trip a sanitizer. It also holds the parser to what its callers rely on:
//   - every error is located (file:line:column, or the file alone) and fits on one line;
//   - every lane it returns keeps docs/lanes.md's rules: a valid name and queue, a Redis
//     URL that parses, exactly one worker owner, every number and duration in its range,
//     step and handler names non-empty and unique, commands without empty arguments;
//   - the lane as `lanekeeper get -o yaml` shows it (LaneToJson, JsonToYaml) parses back
//     to the same lane: the same SpecJson once the Redis URL is compared as shown, with
//     its password masked, since the output never shows one.
// scripts/fuzz runs it with libFuzzer; ctest replays tests/fuzz/corpus/lane_spec (Fuzz.lane_spec).
#include <algorithm>
#include <cctype>
#include <cstdint>
#include <set>
#include <string>
#include <string_view>

#include "controller/spec/lane_parser.h"
#include "controller/spec/lane_set.h"
#include "controller/spec/lane_types.h"
#include "controller/spec/redis_password.h"
#include "controller/spec/spec_dir.h"
#include "tests/fuzz/fuzz_check.h"
#include "worker/redis_connection.h"

namespace {

using lk::Millis;
using lk::fuzz::Check;

constexpr Millis kMaxDuration{30LL * 86'400'000};  // 30d, every duration's upper bound

void CheckError(const lk::SpecError& e) {
  Check(!e.message.empty(), "an error says what is wrong");
  Check(e.line >= 0 && e.column >= 0 && (e.line > 0) == (e.column > 0),
        "an error is at file:line:column, or at the file");
  Check(lk::fuzz::OneLine(e.ToString()), "an error is one line: " + e.ToString());
}

bool DnsLabel(std::string_view s) {
  auto ok = [](char c) { return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-'; };
  return !s.empty() && s.size() <= 63 && std::all_of(s.begin(), s.end(), ok) &&
         s.front() != '-' && s.back() != '-';
}

bool QueueName(std::string_view s) {
  auto ok = [](char c) {
    return std::isalnum(static_cast<unsigned char>(c)) || c == '.' || c == '_' || c == '-';
  };
  return !s.empty() && s.size() <= 100 && std::all_of(s.begin(), s.end(), ok);
}

bool Within(Millis d, Millis low, Millis high) { return d >= low && d <= high; }

void CheckCommand(const std::vector<std::string>& argv, const std::string& what) {
  Check(!argv.empty(), what + ": a command has at least one argument");
  for (const auto& a : argv) Check(!a.empty(), what + ": no argument is empty");
}

void CheckWorker(const lk::WorkerSettings& w, const std::string& who) {
  Check(w.concurrency >= 1 && w.concurrency <= 4096, who + ".concurrency is 1 to 4096");
  Check(w.max_rss_mb == 0 || (w.max_rss_mb >= 256 && w.max_rss_mb <= (1 << 20)),
        who + ".maxRSS is 0, or 256Mi to 1Ti");
  Check(Within(w.drain_timeout, Millis(1000), kMaxDuration), who + ".drainTimeout is 1s to 30d");
}

// docs/lanes.md's field table, for a lane the parser accepted.
void CheckRanges(const lk::LaneSpec& l) {
  Check(DnsLabel(l.name), "metadata.name is a DNS label: '" + l.name + "'");
  Check(l.namespace_name.empty() || DnsLabel(l.namespace_name), "metadata.namespace is a name");
  Check(QueueName(l.queue), "spec.queue is 1 to 100 letters, digits, '.', '_' or '-'");
  Check(l.redis_url.empty() || lk::ParseRedisUrl(l.redis_url).ok(), "spec.redis.url parses");
  const bool managed = l.autopilot.mode == lk::AutopilotMode::kManagedWorker;
  Check(l.supervisor.enabled != managed, "exactly one worker owner");
  CheckWorker(l.supervisor.worker, "spec.supervisor");
  CheckWorker(l.autopilot.worker, "spec.autopilot");
  Check(l.supervisor.max_crashes >= 1 && l.supervisor.max_crashes <= 1000,
        "spec.supervisor.maxCrashes is 1 to 1000");
  Check(Within(l.autopilot.interval, Millis(1000), kMaxDuration),
        "spec.autopilot.interval is 1s to 30d");
  Check(l.autopilot.repo.empty() ? l.autopilot.mode == lk::AutopilotMode::kOff
                                 : l.autopilot.repo.front() == '/',
        "spec.autopilot.repo is an absolute path, required unless mode is off");
  std::set<std::string> steps;
  for (const auto& s : l.autopilot.cycle) {
    Check(!s.name.empty() && steps.insert(s.name).second, "step names are non-empty and unique");
    CheckCommand(s.command, "spec.autopilot.cycle[].command");
    Check(Within(s.timeout, Millis(1), kMaxDuration), "a step's timeout is 1ms to 30d");
  }
  Check(l.handlers.size() <= 100, "at most 100 handlers");
  std::set<std::string> names;
  for (const auto& h : l.handlers) {
    Check(!h.name.empty() && names.insert(h.name).second,
          "handler names are non-empty and unique");
    CheckCommand(h.command, "spec.handlers.NAME.command");
    Check(h.timeout.count() == 0 || Within(h.timeout, Millis(1), kMaxDuration),
          "a handler's timeout is 1ms to 30d");
    Check(h.lease.count() == 0 || Within(h.lease, Millis(5'000), Millis(3'600'000)),
          "a handler's lease is 5s to 1h");
    Check(h.max_attempts >= 0 && h.max_attempts <= 1000, "a handler's maxAttempts is 1 to 1000");
  }
  Check(!l.SpecJson().empty(), "a lane has its canonical JSON");
}

// The URL as `get -o yaml` shows it: without its password, which it names by reference
// instead (spec.redis.passwordFile: the password is kept out of what get prints).
std::string AsShown(const std::string& url) {
  if (url.empty()) return url;
  return lk::UrlWithoutPassword(url);
}

// KNOWN GAPS, reported to the lead (tests/README.md, "Known gaps"); each is left out here so
// that timed fuzzing keeps finding what is not known yet, and goes once it is fixed:
//   1. an autopilot with mode off and no repo is left out of the shown form, with the
//      interval and cycle it may keep (docs/lanes.md: they "may stay while mode: off");
//   2. a Redis user name is shown decoded: one with '@', '/' or '%' is shown in a form that
//      does not validate, or that names another user.
bool KnownGap(const lk::LaneSpec& l) {
  if (l.autopilot.mode == lk::AutopilotMode::kOff && l.autopilot.repo.empty() &&
      (l.autopilot.interval != Millis(300'000) || !l.autopilot.cycle.empty())) {
    return true;
  }
  auto ep = lk::ParseRedisUrl(l.redis_url);
  return ep.ok() && !ep->password.empty() &&
         ep->username.find_first_of("@/%") != std::string::npos;
}

void CheckRoundTrip(const lk::LaneSpec& l) {
  if (KnownGap(l)) return;
  const std::string yaml = lk::JsonToYaml(lk::LaneToJson(l));
  lk::ParsedLanes back = lk::ParseLaneSpecs(yaml, "get-o-yaml.yaml");
  Check(back.errors.empty(), "the get -o yaml form validates: " +
                                 (back.errors.empty() ? "" : back.errors[0].ToString()) + "\n" +
                                 yaml);
  Check(back.lanes.size() == 1, "the get -o yaml form is one lane");
  lk::LaneSpec a = l, b = back.lanes[0];
  a.redis_url = AsShown(a.redis_url);
  b.redis_url = AsShown(b.redis_url);
  Check(a.name == b.name && a.namespace_name == b.namespace_name,
        "the get -o yaml form keeps the lane's name and namespace");
  Check(a.SpecJson() == b.SpecJson(),
        "the get -o yaml form parses back to the same spec:\n  " + a.SpecJson() + "\n  " +
            b.SpecJson() + "\n" + yaml);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view text(reinterpret_cast<const char*>(data), size);
  lk::ParsedLanes parsed = lk::ParseLaneSpecs(text, "fuzz.yaml");
  for (const auto& e : parsed.errors) CheckError(e);
  for (const auto& lane : parsed.lanes) {
    Check(lane.name_mark.line > 0, "a lane knows where its name is");
    CheckRanges(lane);
    CheckRoundTrip(lane);
  }
  for (const auto& e : lk::ValidateLaneSet(parsed.lanes, "redis://127.0.0.1:6379/0")) {
    CheckError(e);
  }
  return 0;
}
