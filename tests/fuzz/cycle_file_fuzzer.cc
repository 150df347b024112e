// Fuzz target for cycle files (controller/spec/cycle_file.h): any bytes through
// ParseCycleSpec, which must return an error value or steps that keep docs/autopilot.md's
// rules (names non-empty and unique, commands without empty arguments, timeouts 1ms to 30d
// with 10m for a step that sets none); every error line names the file; and what
// RenderCycleFile writes for the controller reads back as the same steps.
// scripts/fuzz runs it with libFuzzer; ctest replays tests/fuzz/corpus/cycle_file.
#include <cstdint>
#include <set>
#include <string>
#include <string_view>

#include "controller/spec/cycle_file.h"
#include "tests/fuzz/fuzz_check.h"

namespace {

using lk::Millis;
using lk::fuzz::Check;

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view text(reinterpret_cast<const char*>(data), size);
  auto steps = lk::ParseCycleSpec(text, "cycle.yaml");
  if (!steps.ok()) {
    lk::fuzz::CheckFileErrors(steps.status().message(), "cycle.yaml");
    return 0;
  }
  std::set<std::string> names;
  for (const auto& s : *steps) {
    Check(!s.name.empty() && names.insert(s.name).second, "names are non-empty and unique");
    Check(!s.command.empty(), "a command has at least one argument");
    for (const auto& a : s.command) Check(!a.empty(), "no argument is empty");
    Check(s.timeout >= Millis(1) && s.timeout <= Millis(30LL * 86'400'000),
          "a step's timeout is 1ms to 30d (10m when unset)");
  }
  const std::string rendered = lk::RenderCycleFile(*steps);
  auto back = lk::ParseCycleSpec(rendered, "rendered.yaml");
  Check(back.ok(), "a rendered cycle file reads back: " +
                       (back.ok() ? "" : back.status().message()) + "\n" + rendered);
  Check(back->size() == steps->size(), "a rendered cycle file has every step");
  for (size_t i = 0; i < steps->size(); ++i) {
    const auto &a = (*steps)[i], &b = (*back)[i];
    Check(a.name == b.name && a.command == b.command && a.timeout == b.timeout,
          "a rendered step reads back the same:\n" + rendered);
  }
  return 0;
}
