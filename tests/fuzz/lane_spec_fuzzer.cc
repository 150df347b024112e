// libFuzzer target for the Lane spec parser: any bytes go through ParseLaneSpecs and
// ValidateLaneSet, which must return — errors are values — and never crash, hang, leak or
// trip a sanitizer. It also holds the parser to the promises its callers rely on: every
// error is located and fits on one line, and every lane it returns is one the rest of the
// system can use. scripts/fuzz builds and runs it.
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>

#include "controller/spec/lane_parser.h"
#include "controller/spec/lane_set.h"
#include "controller/spec/lane_types.h"
#include "worker/redis_connection.h"

namespace {

void CheckError(const lk::SpecError& e) {
  if (e.message.empty() || e.line < 0 || e.column < 0 || (e.line > 0) != (e.column > 0)) {
    std::abort();
  }
  if (e.ToString().find_first_of("\n\r") != std::string::npos) std::abort();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view text(reinterpret_cast<const char*>(data), size);
  lk::ParsedLanes parsed = lk::ParseLaneSpecs(text, "fuzz.yaml");
  for (const auto& e : parsed.errors) CheckError(e);
  for (const auto& lane : parsed.lanes) {
    if (lane.name.empty() || lane.queue.empty() || lane.name_mark.line <= 0) std::abort();
    if (!lane.redis_url.empty() && !lk::ParseRedisUrl(lane.redis_url).ok()) std::abort();
    bool supervised = lane.supervisor.enabled;
    bool managed = lane.autopilot.mode == lk::AutopilotMode::kManagedWorker;
    if (supervised == managed) std::abort();  // exactly one worker owner
    if (lane.SpecJson().empty()) std::abort();
  }
  for (const auto& e : lk::ValidateLaneSet(parsed.lanes, "redis://127.0.0.1:6379/0")) {
    CheckError(e);
  }
  return 0;
}
