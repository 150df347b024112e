// The Lua scripts of worker/lua/, embedded at build time (cmake/embed_lua.cmake).
// One constant per file: worker/lua/claim_batch.lua -> lk::lua::kClaimBatch; prelude.lua is
// no script of its own, it is prepended to the scripts that use it.
#pragma once

#include <string_view>

namespace lk::lua {
extern const std::string_view kEnqueue;
extern const std::string_view kClaimBatch;
extern const std::string_view kFinishBatch;
extern const std::string_view kRenewBatch;
extern const std::string_view kReleaseBatch;
extern const std::string_view kReap;
extern const std::string_view kCancel;
extern const std::string_view kRetry;
extern const std::string_view kStats;
extern const std::string_view kMigrate;
}  // namespace lk::lua
