// ControllerClient: what `doctor --controller` and `get --controller` read from a running
// `lanekeeper controller`'s status server (docs/status.md): a GET, with the bearer token of
// --auth-token-file when one is given (a status server off loopback requires it for
// everything but /healthz and /readyz). Owns nothing between calls. Thread-safe.
#pragma once

#include <chrono>
#include <string>

#include "worker/status.h"

namespace lk::cmd {

struct ControllerAnswer {
  int code = 0;
  std::string body;
};

// The token of a client's --auth-token-file, read and checked as the status server reads
// its own (ReadAuthTokenFile: refused when group or others may read the file, so that a
// token is never left readable on either side). "" for no file.
StatusOr<std::string> ReadControllerToken(const std::string& token_file);

// GET base + path, with "Authorization: Bearer token" unless token is empty. Unavailable
// when no answer comes within timeout (cpprestsdk throws: caught here).
StatusOr<ControllerAnswer> ControllerGet(const std::string& base, const std::string& path,
                                         const std::string& token,
                                         std::chrono::milliseconds timeout);

// What to tell the user when the controller at url answers 401: without a token file, to
// pass --auth-token-file; with one, that the controller refused its token.
std::string ControllerUnauthorized(const std::string& url, const std::string& token_file);

}  // namespace lk::cmd
