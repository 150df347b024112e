// Fuzz target for durations (worker/duration.h), as docs/queue.md and docs/lanes.md state
// them: "an integer and a unit", at most 12 digits, one of ms, s, m, h, d — nothing else
// parses, and every refusal names the text. What parses is exactly that many
// milliseconds, and FormatDuration's shortest exact rendering of it reads back the same.
// The bytes after the first NUL, as a number of milliseconds, are rendered and read back too.
// scripts/fuzz runs it with libFuzzer; ctest replays tests/fuzz/corpus/duration.
#include <algorithm>
#include <cstdint>
#include <cstring>
#include <string>
#include <string_view>

#include "tests/fuzz/fuzz_check.h"
#include "worker/duration.h"

namespace {

using lk::Millis;
using lk::fuzz::Check;

// The value text means by the documented grammar, or -1 when it has none.
int64_t Grammar(std::string_view text) {
  size_t digits = 0;
  while (digits < text.size() && text[digits] >= '0' && text[digits] <= '9') ++digits;
  if (digits == 0 || digits > 12) return -1;
  std::string_view unit = text.substr(digits);
  int64_t scale = unit == "ms" ? 1 : unit == "s" ? 1000 : unit == "m" ? 60'000
                : unit == "h" ? 3'600'000 : unit == "d" ? 86'400'000 : 0;
  if (scale == 0) return -1;
  int64_t n = std::stoll(std::string(text.substr(0, digits)));
  if (n > INT64_MAX / scale) return -2;  // well-formed, too large
  return n * scale;
}

// FormatDuration(d) reads back as d. Renderings of more than 12 digits cannot be read
// (values past 10^12 ms that no larger unit divides, or, since FormatDuration has no days,
// a number of hours past 10^12): those are left out here, see tests/README.md.
void CheckRendering(Millis d) {
  const std::string shown = lk::FormatDuration(d);
  size_t digits = shown.find_first_not_of("0123456789");
  Check(digits != std::string::npos && digits > 0, "a rendering is a number and a unit: " + shown);
  if (digits > 12) return;
  auto back = lk::ParseDuration(shown);
  Check(back.ok() && *back == d, "FormatDuration reads back: " + shown);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view input(reinterpret_cast<const char*>(data), size);
  const size_t cut = std::min(input.find('\0'), size);
  std::string_view text = input.substr(0, cut);
  auto d = lk::ParseDuration(text);
  const int64_t want = Grammar(text);
  if (d.ok()) {
    Check(want >= 0 && d->count() == want, "only the grammar parses, to its value: " +
                                               std::string(text));
    CheckRendering(*d);
  } else {
    Check(want < 0 || want == -2, "what the grammar allows parses: " + std::string(text));
    Check(d.status().message().starts_with("bad duration '" + std::string(text) + "': "),
          "a refusal names the text");
  }
  uint64_t raw = 0;
  if (cut < size) std::memcpy(&raw, data + cut + 1, std::min<size_t>(size - cut - 1, sizeof(raw)));
  CheckRendering(Millis(static_cast<int64_t>(raw >> 1)));
  Check(!lk::FormatAge(static_cast<int64_t>(raw)).empty(), "an age is never empty");
  return 0;
}
