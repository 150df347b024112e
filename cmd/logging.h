// Logging for every lanekeeper command: spdlog's default logger, writing to stderr.
//
// Owns: the default logger's sink, format and level. Does not own: what is logged, nor the
// one-line "lanekeeper: ..." errors a command prints when it fails (those are plain text in
// either format, for the person at the terminal). Call ConfigureLogging once from main
// before any command runs; spdlog's default logger is thread-safe after that.
#pragma once

#include <string>
#include <vector>

namespace lk::cmd {

// Accepted values of --log-format and --log-level.
const std::vector<std::string>& LogFormats();
const std::vector<std::string>& LogLevels();

// format "text": "2026-11-27T20:07:00.123Z info message", coloured when stderr is a tty.
// format "json": one object per line, {"ts":"2026-11-27T20:07:00.123Z","level":"info",
// "msg":"message"}, for log collectors. Timestamps are UTC. Both arguments must be one of
// the values above (main validates them while parsing flags).
void ConfigureLogging(const std::string& format, const std::string& level);

}  // namespace lk::cmd
