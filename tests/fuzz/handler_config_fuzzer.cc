// Fuzz target for handlers files (worker/handler_config.h): any bytes through
// ParseHandlerConfig, which must return an error value or handlers that keep the rules of
// `jobs work --help` and docs/lanes.md (at most 100, names non-empty and unique, commands
// without empty arguments, timeout 1ms to 30d, lease 5s to 1h, maxAttempts 1 to 1000);
// every error line names the file; and what RenderHandlersFile writes for the controller
// reads back as the same handlers.
// scripts/fuzz runs it with libFuzzer; ctest replays tests/fuzz/corpus/handler_config.
#include <cstdint>
#include <set>
#include <string>
#include <string_view>

#include "tests/fuzz/fuzz_check.h"
#include "worker/handler_config.h"

namespace {

using lk::Millis;
using lk::fuzz::Check;

bool Same(const lk::HandlerSpec& a, const lk::HandlerSpec& b) {
  return a.name == b.name && a.command == b.command && a.timeout == b.timeout &&
         a.lease == b.lease && a.max_attempts == b.max_attempts;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view text(reinterpret_cast<const char*>(data), size);
  auto specs = lk::ParseHandlerConfig(text, "handlers.yaml");
  if (!specs.ok()) {
    lk::fuzz::CheckFileErrors(specs.status().message(), "handlers.yaml");
    return 0;
  }
  Check(specs->size() <= 100, "at most 100 handlers");
  std::set<std::string> names;
  for (const auto& h : *specs) {
    Check(!h.name.empty() && names.insert(h.name).second, "names are non-empty and unique");
    Check(!h.command.empty(), "a command has at least one argument");
    for (const auto& a : h.command) Check(!a.empty(), "no argument is empty");
    Check(h.timeout.count() == 0 || (h.timeout >= Millis(1) && h.timeout <= Millis(30LL * 86'400'000)),
          "timeout is 1ms to 30d");
    Check(h.lease.count() == 0 || (h.lease >= Millis(5'000) && h.lease <= Millis(3'600'000)),
          "lease is 5s to 1h");
    Check(h.max_attempts >= 0 && h.max_attempts <= 1000, "maxAttempts is 1 to 1000");
  }
  const std::string rendered = lk::RenderHandlersFile(*specs);
  auto back = lk::ParseHandlerConfig(rendered, "rendered.yaml");
  Check(back.ok(), "a rendered handlers file reads back: " +
                       (back.ok() ? "" : back.status().message()) + "\n" + rendered);
  Check(back->size() == specs->size(), "a rendered handlers file has every handler");
  for (size_t i = 0; i < specs->size(); ++i) {
    Check(Same((*specs)[i], (*back)[i]), "a rendered handler reads back the same:\n" + rendered);
  }
  return 0;
}
