#include "cmd/logging.h"

#include <spdlog/pattern_formatter.h>
#include <spdlog/sinks/stdout_color_sinks.h>
#include <spdlog/sinks/stdout_sinks.h>
#include <spdlog/spdlog.h>

#include <memory>
#include <nlohmann/json.hpp>

namespace lk::cmd {

namespace {

// ISO 8601 in UTC with milliseconds, the same in both formats.
constexpr const char* kTimestamp = "%Y-%m-%dT%H:%M:%S.%eZ";

// Formats each record as one JSON object. nlohmann does the escaping, so a message with
// quotes, newlines or invalid UTF-8 (replaced by U+FFFD) still yields exactly one valid line.
class JsonLineFormatter : public spdlog::formatter {
 public:
  void format(const spdlog::details::log_msg& msg, spdlog::memory_buf_t& dest) override {
    spdlog::memory_buf_t ts;
    timestamp_.format(msg, ts);
    spdlog::string_view_t level = spdlog::level::to_string_view(msg.level);
    // ordered_json keeps ts, level, msg in that order, as people scan them.
    nlohmann::ordered_json line = {
        {"ts", std::string(ts.data(), ts.size())},
        {"level", std::string(level.data(), level.size())},
        {"msg", std::string(msg.payload.data(), msg.payload.size())},
    };
    std::string text = line.dump(-1, ' ', false, nlohmann::ordered_json::error_handler_t::replace);
    text.push_back('\n');
    dest.append(text.data(), text.data() + text.size());
  }
  std::unique_ptr<spdlog::formatter> clone() const override {
    return std::make_unique<JsonLineFormatter>();
  }

 private:
  spdlog::pattern_formatter timestamp_{kTimestamp, spdlog::pattern_time_type::utc, ""};
};

}  // namespace

const std::vector<std::string>& LogFormats() {
  static const std::vector<std::string> formats = {"text", "json"};
  return formats;
}

const std::vector<std::string>& LogLevels() {
  static const std::vector<std::string> levels = {"trace", "debug", "info", "warn",
                                                  "error", "critical", "off"};
  return levels;
}

void ConfigureLogging(const std::string& format, const std::string& level) {
  std::shared_ptr<spdlog::sinks::sink> sink;
  if (format == "json") {
    sink = std::make_shared<spdlog::sinks::stderr_sink_mt>();
    sink->set_formatter(std::make_unique<JsonLineFormatter>());
  } else {
    sink = std::make_shared<spdlog::sinks::stderr_color_sink_mt>();
    sink->set_formatter(std::make_unique<spdlog::pattern_formatter>(
        std::string(kTimestamp) + " %^%l%$ %v", spdlog::pattern_time_type::utc));
  }
  auto logger = std::make_shared<spdlog::logger>("lanekeeper", std::move(sink));
  logger->set_level(spdlog::level::from_str(level));
  spdlog::set_default_logger(std::move(logger));
}

}  // namespace lk::cmd
