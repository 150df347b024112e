#include "worker/atomic_file.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>

namespace lk {

Status WriteFileAtomically(const std::string& path, std::string_view content, mode_t mode) {
  std::filesystem::path p(path);
  std::string tmp = (p.parent_path() / ("." + p.filename().string() + ".tmp-" +
                                        std::to_string(getpid()))).string();
  int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode);
  if (fd < 0) return Status::Internal(path + ": cannot write: " + std::strerror(errno));
  size_t done = 0;
  while (done < content.size()) {
    ssize_t n = ::write(fd, content.data() + done, content.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    done += static_cast<size_t>(n);
  }
  // The umask may have narrowed mode on create; fchmod makes it exact either way.
  bool written = done == content.size() && ::fchmod(fd, mode) == 0 && ::fsync(fd) == 0;
  int saved = errno;
  ::close(fd);
  if (!written || ::rename(tmp.c_str(), path.c_str()) != 0) {
    if (written) saved = errno;
    ::unlink(tmp.c_str());
    return Status::Internal(path + ": cannot write: " + std::strerror(saved));
  }
  return Status::OK();
}

}  // namespace lk
