// Durations and sizes as people type them on the command line and in specs.
//
// "500ms", "30s", "5m", "1h", "2d". A unit is required, so that "30" is never silently
// read as 30 ms or 30 minutes. Pure functions, thread-safe.
#pragma once

#include <chrono>
#include <cstdint>
#include <string>
#include <string_view>

#include "worker/status.h"

namespace lk {

using Millis = std::chrono::milliseconds;

// Parses "<integer><unit>" with unit one of ms, s, m, h, d. Errors name the text and the
// accepted forms.
StatusOr<Millis> ParseDuration(std::string_view text);

// The shortest exact rendering: 1500ms, 30s, 5m, 2h.
std::string FormatDuration(Millis d);

// An age as people say it, rounded down to its largest unit: "42s", "5m", "3h", "2d"
// (seconds below a minute, minutes below an hour, hours below two days). Negative is 0s.
std::string FormatAge(int64_t ms);

// Milliseconds since the Unix epoch, from the system clock.
int64_t NowUnixMillis();

}  // namespace lk
