#include "worker/duration.h"

#include <algorithm>
#include <charconv>
#include <cstdint>

namespace lk {

StatusOr<Millis> ParseDuration(std::string_view text) {
  auto bad = [&] {
    return Status::InvalidArgument("bad duration '" + std::string(text) +
                                   "': expected a number with a unit, like 500ms, 30s, 5m or 1h");
  };
  size_t digits = 0;
  while (digits < text.size() && text[digits] >= '0' && text[digits] <= '9') ++digits;
  if (digits == 0 || digits > 12) return bad();
  int64_t n = 0;
  std::from_chars(text.data(), text.data() + digits, n);
  std::string_view unit = text.substr(digits);
  int64_t scale;
  if (unit == "ms") scale = 1;
  else if (unit == "s") scale = 1000;
  else if (unit == "m") scale = 60'000;
  else if (unit == "h") scale = 3'600'000;
  else if (unit == "d") scale = 86'400'000;
  else return bad();
  if (n > INT64_MAX / scale) {
    return Status::InvalidArgument("bad duration '" + std::string(text) + "': too large");
  }
  return Millis(n * scale);
}

std::string FormatDuration(Millis d) {
  int64_t ms = d.count();
  if (ms != 0 && ms % 3'600'000 == 0) return std::to_string(ms / 3'600'000) + "h";
  if (ms != 0 && ms % 60'000 == 0) return std::to_string(ms / 60'000) + "m";
  if (ms != 0 && ms % 1000 == 0) return std::to_string(ms / 1000) + "s";
  return std::to_string(ms) + "ms";
}

std::string FormatAge(int64_t ms) {
  constexpr int64_t kDay = 86'400'000;
  ms = std::max<int64_t>(ms, 0);
  if (ms < 60'000) return std::to_string(ms / 1000) + "s";
  if (ms < 3'600'000) return std::to_string(ms / 60'000) + "m";
  if (ms < 2 * kDay) return std::to_string(ms / 3'600'000) + "h";
  return std::to_string(ms / kDay) + "d";
}

int64_t NowUnixMillis() {
  return std::chrono::duration_cast<Millis>(std::chrono::system_clock::now().time_since_epoch())
      .count();
}

}  // namespace lk
