// Where a file-backed lane's Redis password lives when it is not written in its spec, so
// that `get -o yaml` can print a reference instead of the password and its output applies
// back unchanged:
//   spec.redis.passwordFile: PATH   the password is PATH's first line (the url carries none)
//   an inline password              `apply` keeps a copy in SPECS/.secrets/NAME.redis-password
//                                   (directory 0700, file 0600), which `get` names as the
//                                   lane's passwordFile
// Either way the lane's effective URL (LaneSpec::redis_url) is the same, so applying what
// `get` printed changes nothing the controller compares. Kubernetes lanes use
// urlFrom.secretKeyRef instead: a Lane object must never make the controller read a file.
//
// Owns: splicing a password into a URL and out of it, reading and keeping password files.
// Does not own: parsing specs (spec/lane_parser.h resolves passwordFile through here).
// Pure functions over the file system; thread-safe.
#pragma once

#include <string>
#include <string_view>

#include "controller/spec/lane_types.h"
#include "worker/status.h"

namespace lk {

// url (as a spec writes it) without its password: the user name stays, written "user:@".
std::string UrlWithoutPassword(std::string_view url);

// url, which carries no password, with password in it (percent-encoded where needed).
std::string UrlWithPassword(std::string_view url, std::string_view password);

// The first line of path, its trailing "\r" dropped. InvalidArgument naming path when it
// cannot be read or the password is empty.
StatusOr<std::string> ReadPasswordFile(const std::string& path);

// specs_dir/.secrets/NAME.redis-password, absolute.
std::string KeptPasswordPath(const std::string& specs_dir, const std::string& lane_name);

// For a lane whose password is written inline in its spec: writes it to
// KeptPasswordPath(specs_dir, lane.name) (0600, in a 0700 directory). Nothing to do for a
// lane without a password or with a passwordFile.
Status KeepInlinePassword(const std::string& specs_dir, const LaneSpec& lane);

// The passwordFile `get` prints for lane (read from specs_dir): its own passwordFile, the
// kept copy of an inline password, or "" when it has no password.
std::string PasswordReference(const std::string& specs_dir, const LaneSpec& lane);

}  // namespace lk
