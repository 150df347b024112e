// PidFile: "one supervisor per pid file", created atomically with O_EXCL, mode 0600.
//
// Owns: the file at path while held; removes it on Release() or destruction. A file left by
// a dead process is stale and taken over; one held by a live process is a Conflict naming
// that process. Not thread-safe.
#pragma once

#include <sys/types.h>

#include <memory>
#include <optional>
#include <string>

#include "worker/status.h"

namespace lk {

class PidFile {
 public:
  static StatusOr<std::unique_ptr<PidFile>> Acquire(const std::string& path);
  ~PidFile();
  PidFile(const PidFile&) = delete;
  PidFile& operator=(const PidFile&) = delete;

  void Release();
  const std::string& path() const { return path_; }

  // The pid recorded in path if that process is alive; nullopt otherwise.
  static std::optional<pid_t> LiveHolder(const std::string& path);

 private:
  explicit PidFile(std::string path) : path_(std::move(path)) {}
  std::string path_;
  bool held_ = true;
};

}  // namespace lk
