// Helpers every command shares (declared in cmd/commands.h).
#include "cmd/commands.h"

#include <iostream>

#include "worker/exit_codes.h"

namespace lk::cmd {

int Fail(const Status& status) {
  std::string message = status.message();
  for (char& c : message) {
    if (c == '\n' || c == '\r') c = ' ';
  }
  std::cerr << "lanekeeper: " << message << "\n";
  return status.code() == Status::Code::kInvalidArgument ? kExitUsage : kExitFailure;
}

bool ParseDurationFlag(const std::string& flag, const std::string& text, Millis& out) {
  auto d = ParseDuration(text);
  if (!d.ok()) {
    std::cerr << "lanekeeper: " << flag << ": " << d.status().message() << "\n";
    return false;
  }
  out = *d;
  return true;
}

}  // namespace lk::cmd
