// The autopilot's cycle file: which steps an `autopilot-cycle` job runs in the repo.
//
//   steps:
//     - name: sync
//       command: [git, pull, --ff-only]   # argv, no shell; run in the repo directory
//       timeout: 120s                     # optional, default 10m
//     - name: index
//       command: [make, index]
//
// Owns: the file's format both ways — writing it (RenderCycleFile, for the controller) and
// reading it with strict validation (worker/yaml_checker.h, shared with Lane specs) — unknown fields are errors, and every error names
// file:line:column and the field path ("cycle.yaml:3:7: steps[0].comand: unknown field
// ..."). yaml-cpp throws; this adapter returns Status. Does not own: running the steps
// (worker/autopilot_cycle_handler.h, which receives them in the job's payload).
// Pure functions, thread-safe.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "worker/autopilot_cycle_handler.h"
#include "worker/duration.h"
#include "worker/status.h"
#include "worker/yaml_checker.h"

namespace lk {

// A step without a timeout gets this one, so that a hung `git fetch` cannot hold the one
// pending cycle (and with it every later cycle) forever.
inline constexpr Millis kDefaultCycleStepTimeout{10 * 60'000};

// Reads the steps of a cycle file or of a Lane spec (spec.autopilot.cycle) at f: the one
// reading of cycle steps, whatever the file. Records every error in c.
void CheckCycleSteps(YamlChecker& c, const YamlField& f, std::vector<CycleStep>& out);

// Parses text; source_name (usually the path) prefixes every error; every error, one per
// line. Step names must be
// non-empty and unique; "steps: []" (or a null list) is a cycle that only checks the repo.
StatusOr<std::vector<CycleStep>> ParseCycleSpec(std::string_view text,
                                                const std::string& source_name);
StatusOr<std::vector<CycleStep>> LoadCycleSpec(const std::string& path);

// The cycle file that ParseCycleSpec reads back as steps (timeouts in ms).
std::string RenderCycleFile(const std::vector<CycleStep>& steps);

}  // namespace lk
