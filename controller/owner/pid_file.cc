#include "controller/owner/pid_file.h"

#include <fcntl.h>
#include <signal.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <fstream>

namespace lk {

std::optional<pid_t> PidFile::LiveHolder(const std::string& path) {
  std::ifstream in(path);
  long pid = 0;
  if (!(in >> pid) || pid <= 0) return std::nullopt;
  if (kill(static_cast<pid_t>(pid), 0) == 0 || errno == EPERM) return static_cast<pid_t>(pid);
  return std::nullopt;
}

StatusOr<std::unique_ptr<PidFile>> PidFile::Acquire(const std::string& path) {
  // Two tries: the second after removing a stale file. Between our unlink and open another
  // starter may win the O_EXCL race; then it holds the file and we report it.
  for (int attempt = 0; attempt < 2; ++attempt) {
    int fd = open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    if (fd >= 0) {
      std::string pid = std::to_string(getpid()) + "\n";
      bool ok = write(fd, pid.data(), pid.size()) == static_cast<ssize_t>(pid.size());
      close(fd);
      if (!ok) {
        unlink(path.c_str());
        return Status::Internal("cannot write pid file " + path + ": " + std::strerror(errno));
      }
      return std::unique_ptr<PidFile>(new PidFile(path));
    }
    if (errno != EEXIST) {
      return Status::InvalidArgument("cannot create pid file " + path + ": " +
                                     std::strerror(errno));
    }
    if (auto holder = LiveHolder(path)) {
      return Status::Conflict("pid file " + path + " is held by running process " +
                              std::to_string(*holder));
    }
    unlink(path.c_str());  // stale: its process is gone
  }
  return Status::Conflict("pid file " + path + " was taken by another process while starting");
}

void PidFile::Release() {
  if (!held_) return;
  held_ = false;
  // Only remove it if it is still ours.
  std::ifstream in(path_);
  long pid = 0;
  if (in >> pid && pid == getpid()) unlink(path_.c_str());
}

PidFile::~PidFile() { Release(); }

}  // namespace lk
