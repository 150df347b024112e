// WriteFileAtomically: a file replaced whole or not at all, as every writer of lanekeeper's
// files needs — spec files a controller watches, state files it adopts from, unit files
// systemd reads.
//
// The content goes to a dot-named temp file in the same directory (readers that skip
// dot-files, as the controller does, never see it), is fsynced, and is renamed over path;
// on any failure the temp file is removed and the old file stays as it was. mode applies
// to a new file and to the replacement: 0600 for anything that may hold a secret.
// Thread-safe for different paths.
#pragma once

#include <sys/types.h>

#include <string>
#include <string_view>

#include "worker/status.h"

namespace lk {

Status WriteFileAtomically(const std::string& path, std::string_view content, mode_t mode);

}  // namespace lk
