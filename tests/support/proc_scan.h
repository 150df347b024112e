// Finding real processes by their command line, for tests that count workers.
#pragma once

#include <sys/types.h>

#include <string>
#include <vector>

namespace lk::testing {

// Live (non-zombie) processes whose argv contains every entry of args as a whole argument,
// in any order. E.g. {"jobs", "work", "--queue", "q1"} finds q1's workers. A process whose
// parent also matches (a fork before exec, LeakSanitizer's tracer) is not listed: it is a
// clone of one that is.
std::vector<pid_t> FindProcesses(const std::vector<std::string>& args);

// argv of pid (empty if gone).
std::vector<std::string> ProcessArgs(pid_t pid);

}  // namespace lk::testing
