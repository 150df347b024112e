// Reading a value out of a core/v1 Secret as the API server returns it: `data` holds each
// value base64-encoded (`stringData` exists only in what people write, never in what is
// read back). Pure functions, thread-safe.
#pragma once

#include <optional>
#include <string>
#include <string_view>

#include "controller/kube/kube_client.h"

namespace lk::kube {

// RFC 4648 base64 (with or without padding; whitespace skipped); nullopt when text is not
// base64.
std::optional<std::string> Base64Decode(std::string_view text);

// secret.data[key], decoded; nullopt when the Secret has no such key (or its value is not
// base64, which a real API server never stores).
std::optional<std::string> SecretValue(const Json& secret, const std::string& key);

}  // namespace lk::kube
