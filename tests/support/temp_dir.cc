#include "tests/support/temp_dir.h"

#include <gtest/gtest.h>
#include <stdlib.h>

#include <cerrno>
#include <cstring>
#include <filesystem>

namespace lk::testing {

StatusOr<std::string> TempDir::Create(const std::string& prefix) {
  std::error_code ec;
  std::filesystem::path base = std::filesystem::temp_directory_path(ec);
  if (ec) return Status::Internal("no temporary directory: " + ec.message());
  std::string tmpl = (base / ("lk-" + prefix + "-XXXXXX")).string();
  if (mkdtemp(tmpl.data()) == nullptr) {
    return Status::Internal("mkdtemp " + tmpl + ": " + std::strerror(errno));
  }
  return tmpl;
}

TempDir::TempDir(const std::string& prefix) {
  auto made = Create(prefix);
  if (made.ok()) {
    path_ = *made;
  } else {
    ADD_FAILURE() << made.status().message();
  }
}

TempDir::~TempDir() {
  if (path_.empty()) return;
  std::error_code ec;
  std::filesystem::remove_all(path_, ec);
}

}  // namespace lk::testing
