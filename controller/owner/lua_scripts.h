// The Lua scripts of controller/owner/lua/, embedded at build time (cmake/embed_lua.cmake).
#pragma once

#include <string_view>

namespace lk::lua {
extern const std::string_view kAcquireOwner;
extern const std::string_view kRenewOwner;
extern const std::string_view kReleaseOwner;
}  // namespace lk::lua
