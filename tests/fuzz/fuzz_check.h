// What the fuzz targets share: a broken promise is reported by name, then the process
// aborts — libFuzzer saves the input, and the corpus replay (replay_main.cc) fails its ctest
// entry naming the file. Header-only; each target is one translation unit.
#pragma once

#include <cstdio>
#include <cstdlib>
#include <sstream>
#include <string>

namespace lk::fuzz {

[[noreturn]] inline void Broken(const std::string& promise) {
  std::fprintf(stderr, "broken promise: %s\n", promise.c_str());
  std::fflush(stderr);
  std::abort();
}

inline void Check(bool holds, const std::string& promise) {
  if (!holds) Broken(promise);
}

// Whether s, a message meant for one line of a terminal or log, is one line.
inline bool OneLine(const std::string& s) { return s.find_first_of("\r\n") == std::string::npos; }

// An error of a config file read from `file`: not empty, one error per line, each line
// naming the file.
inline void CheckFileErrors(const std::string& message, const std::string& file) {
  Check(!message.empty(), "an error says what is wrong");
  std::istringstream lines(message);
  for (std::string line; std::getline(lines, line);) {
    Check(line.starts_with(file), "every error line names the file: " + line);
  }
}

}  // namespace lk::fuzz
