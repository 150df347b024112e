// SpecDir: the directory of Lane specs a file-backed controller watches, as `apply`,
// `get` and `delete` change and read it — one file per lane, DIR/NAME.yaml.
//
// Owns: writing specs into the directory atomically (a dot-named temp file renamed into
// place, so the controller never reads half a file: it skips dot-files), the rules that
// keep the directory valid (a spec is validated, alone and against every other lane of the
// directory, before anything is written), and rendering a lane as the user-facing object
// (`get -o yaml|json`). Does not own: acting on the specs (the controller does, when the
// directory changes). Pure functions over the file system; not safe against two `apply`s of
// one lane at the same instant (the last rename wins, whole).
#pragma once

#include <string>
#include <vector>

#include "controller/spec/lane_types.h"
#include "worker/status.h"

namespace lk {

struct ApplyResult {
  std::string name;
  std::string path;    // DIR/NAME.yaml
  std::string action;  // created | configured | unchanged
};

// Validates file (every error, with its file:line:column) and the lanes it defines against
// the other lanes of specs_dir, then writes each lane's document to specs_dir/NAME.yaml.
// A lane already defined in another file of the directory is an error (edit that file, or
// delete the lane first). On any error nothing is written and errors holds them all.
// Keeps a copy of every inline Redis password in specs_dir/.secrets (spec/redis_password.h),
// so that `get` can name it.
std::vector<ApplyResult> ApplyLaneFile(const std::string& file, const std::string& specs_dir,
                                       const std::string& default_redis_url,
                                       std::vector<SpecError>& errors);

// Removes the file that defines lane name, and the kept copy of its password. NotFound when no file of specs_dir defines it;
// FailedPrecondition when that file defines other lanes too (edit it instead). Returns the
// removed path.
StatusOr<std::string> DeleteLaneFile(const std::string& name, const std::string& specs_dir);

// The lane as the user-facing object: apiVersion, kind, metadata {name}, spec in the
// spec's own field names (durations like "5m", sizes in Mi). The Redis URL comes without
// its password, and spec.redis.passwordFile names where the password is (its own file, or
// the copy `apply` kept of an inline one): the output applies back unchanged.
std::string LaneToJson(const LaneSpec& lane);

// JSON text (an object or array) as block YAML.
std::string JsonToYaml(const std::string& json);

}  // namespace lk
