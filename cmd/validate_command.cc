// `lanekeeper validate -f FILE|DIR [-f ...]`: checks Lane specs (controller/spec/lane_types.h)
// without acting on them. Every error goes to stderr, one per line,
// "file:line:column: field: message", and the exit code is 2; a clean set prints
// "N lane(s) valid: name (queue Q on REDIS), ..." and exits 0. The rules across lanes see
// every file given at once; a lane without a Redis URL is on --redis.
#include <iostream>
#include <memory>
#include <string>
#include <vector>

#include "controller/spec/lane_parser.h"
#include "controller/spec/lane_set.h"
#include "cmd/commands.h"
#include "controller/spec/lane_types.h"
#include "worker/exit_codes.h"
#include "worker/redis_connection.h"

namespace lk::cmd {

namespace {

int RunValidateCommand(const GlobalOptions& global, const std::vector<std::string>& paths) {
  auto default_redis = ParseRedisUrl(global.redis_url);
  if (!default_redis.ok()) {
    std::cerr << "lanekeeper: --redis: " << default_redis.status().message() << "\n";
    return kExitUsage;
  }
  ParsedLanes all;
  for (const auto& path : paths) {
    ParsedLanes one = LoadLaneSpecs(path);
    if (one.lanes.empty() && one.errors.empty()) {
      one.errors.push_back({path, 0, 0, "", "no Lane specs here"});
    }
    for (auto& l : one.lanes) all.lanes.push_back(std::move(l));
    for (auto& e : one.errors) all.errors.push_back(std::move(e));
  }
  for (auto& e : ValidateLaneSet(all.lanes, global.redis_url)) all.errors.push_back(std::move(e));
  if (!all.errors.empty()) {
    for (const auto& e : all.errors) std::cerr << e.ToString() << "\n";
    return kExitUsage;
  }
  std::cout << all.lanes.size() << " lane(s) valid: ";
  for (size_t i = 0; i < all.lanes.size(); ++i) {
    const LaneSpec& l = all.lanes[i];
    // Valid lanes have URLs that parse; the default was checked above.
    std::string redis = l.redis_url.empty()
                            ? default_redis->Redacted() + " (default)"
                            : ParseRedisUrl(l.redis_url)->Redacted();
    std::cout << (i == 0 ? "" : ", ") << l.name << " (queue " << l.queue << " on " << redis
              << ")";
  }
  std::cout << "\n";
  return kExitOk;
}

}  // namespace

void AddValidateCommand(CLI::App& app, GlobalOptions& global, int& exit_code) {
  auto paths = std::make_shared<std::vector<std::string>>();
  CLI::App* cmd = app.add_subcommand(
      "validate", "Check Lane specs: every error with file:line:column and field "
                  "(exit 0 valid, 2 invalid)");
  cmd->add_option("-f,--filename", *paths,
                  "A Lane spec file, or a directory of *.yaml / *.yml files; repeatable")
      ->required();
  cmd->callback([&global, &exit_code, paths] { exit_code = RunValidateCommand(global, *paths); });
}

}  // namespace lk::cmd
