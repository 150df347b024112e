// The handlers file: which program runs each job name, with its timeout, lease and
// attempts. Read once when `jobs work` starts.
//
//   handlers:
//     embed:
//       command: [python3, embed.py, --model, small]   # argv, no shell
//       timeout: 10m        # optional; a job's own timeout wins when it sets one
//       lease: 300s         # optional, 5s..1h; renewals extend leases by this much
//       maxAttempts: 3      # optional, >= 1; replaces the job's max attempts
//
// Owns: the file's format both ways — writing it (RenderHandlersFile, for the controller)
// and reading it with strict validation (worker/yaml_checker.h, shared with Lane specs) — unknown fields are errors, and every error names
// file:line:column and the field path ("handlers.yaml:4:14: handlers.embed.timeout: bad
// duration '10x': ..."). yaml-cpp throws; this adapter returns Status. Does not own: running
// the commands (handler.h). Pure functions, thread-safe.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "worker/duration.h"
#include "worker/handler.h"
#include "worker/status.h"
#include "worker/yaml_checker.h"

namespace lk {

struct HandlerSpec {
  std::string name;
  std::vector<std::string> command;
  Millis timeout{0};    // 0: not set
  Millis lease{0};      // 0: not set
  int max_attempts = 0;  // 0: not set
};

// Reads the handlers map of a handlers file or of a Lane spec (spec.handlers) at f: the one
// reading of handlers, whatever the file. Records every error in c.
void CheckHandlers(YamlChecker& c, const YamlField& f, std::vector<HandlerSpec>& out);

// Parses text; source_name (usually the path) prefixes every error; every error, one per
// line.
StatusOr<std::vector<HandlerSpec>> ParseHandlerConfig(std::string_view text,
                                                      const std::string& source_name);
StatusOr<std::vector<HandlerSpec>> LoadHandlerConfig(const std::string& path);

// The handlers file that ParseHandlerConfig reads back as specs (durations in ms).
std::string RenderHandlersFile(const std::vector<HandlerSpec>& specs);

// Adds a CommandHandler per spec to set; a spec named like a built-in replaces it.
void AddCommandHandlers(const std::vector<HandlerSpec>& specs, HandlerSet& set);

}  // namespace lk
