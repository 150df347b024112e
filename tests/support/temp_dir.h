// TempDir: a fresh directory of its own for one test (or one process the test starts), under
// $TMPDIR (or /tmp), removed with everything in it on destruction. Never a fixed path: two
// tests running at once under `ctest -j2` never share one.
// Not thread-safe.
#pragma once

#include <string>

#include "worker/status.h"

namespace lk::testing {

class TempDir {
 public:
  // Creates TMPDIR/lk-<prefix>-XXXXXX. When that fails the test fails (the error names the
  // directory and errno) and path() is empty.
  explicit TempDir(const std::string& prefix);
  ~TempDir();
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;

  // The same, as a value for callers that report errors themselves.
  static StatusOr<std::string> Create(const std::string& prefix);

  bool ok() const { return !path_.empty(); }
  const std::string& path() const { return path_; }
  // path() + "/" + name.
  std::string operator/(const std::string& name) const { return path_ + "/" + name; }

 private:
  std::string path_;
};

}  // namespace lk::testing
