#include "controller/source/spec_dir_source.h"
#include "controller/spec/lane_parser.h"
#include "controller/spec/lane_set.h"

#include <sys/inotify.h>
#include <unistd.h>

#include <spdlog/spdlog.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <set>

namespace lk {

namespace fs = std::filesystem;

namespace {

constexpr uint32_t kDirEvents = IN_CLOSE_WRITE | IN_MOVED_TO | IN_MOVED_FROM | IN_DELETE |
                                IN_CREATE | IN_ATTRIB | IN_DELETE_SELF | IN_MOVE_SELF;
// In the parent: the directory's name created, removed or renamed onto or away.
constexpr uint32_t kParentEvents = IN_CREATE | IN_DELETE | IN_MOVED_TO | IN_MOVED_FROM;

std::string WhereNamed(const LaneSpec& l) { return WhereWritten(l, l.name_mark); }
bool SameLane(const SourcedLane& a, const SourcedLane& b) {
  if (a.valid != b.valid || a.errors.size() != b.errors.size()) return false;
  for (size_t i = 0; i < a.errors.size(); ++i) {
    if (a.errors[i].ToString() != b.errors[i].ToString()) return false;
  }
  return !a.valid || (a.spec.SpecJson() == b.spec.SpecJson() && a.spec.source == b.spec.source);
}

}  // namespace

SpecDirSource::SpecDirSource(SpecDirSourceOptions options)
    : o_(std::move(options)), clock_(o_.clock ? *o_.clock : SystemClock()) {}

SpecDirSource::~SpecDirSource() {
  if (inotify_fd_ >= 0) close(inotify_fd_);
}

Status SpecDirSource::Start() {
  std::error_code ec;
  if (!fs::is_directory(o_.dir, ec)) {
    return Status::InvalidArgument("--specs " + o_.dir +
                                   ": not a directory (create it, or apply a spec with "
                                   "`lanekeeper apply -f FILE --specs " + o_.dir + "`)");
  }
  inotify_fd_ = inotify_init1(IN_CLOEXEC | IN_NONBLOCK);
  if (inotify_fd_ < 0) {
    // The rescan still converges, only slower: say so and go on.
    spdlog::warn("controller: cannot watch {}: inotify: {}; relying on the rescan every {} ms",
                 o_.dir, std::strerror(errno), o_.rescan_every.count());
  }
  Watch();
  Rescan();
  next_rescan_ = clock_.Now() + o_.rescan_every;
  return Status::OK();
}

void SpecDirSource::Watch() {
  if (inotify_fd_ < 0) return;
  // Renew both: after a rename, the old watch follows an inode that no longer has the name.
  if (dir_watch_ >= 0) inotify_rm_watch(inotify_fd_, dir_watch_);
  if (parent_watch_ >= 0) inotify_rm_watch(inotify_fd_, parent_watch_);
  std::string parent = fs::path(o_.dir).lexically_normal().parent_path().string();
  if (parent.empty()) parent = ".";
  parent_watch_ = inotify_add_watch(inotify_fd_, parent.c_str(), kParentEvents | IN_ONLYDIR);
  dir_watch_ = inotify_add_watch(inotify_fd_, o_.dir.c_str(), kDirEvents | IN_ONLYDIR);
  if (dir_watch_ < 0 && errno != ENOENT) {
    spdlog::warn("controller: cannot watch {}: {}; relying on the rescan every {} ms", o_.dir,
                 std::strerror(errno), o_.rescan_every.count());
  }
}

bool SpecDirSource::DrainEvents() {
  if (inotify_fd_ < 0) return false;
  std::string name = fs::path(o_.dir).lexically_normal().filename().string();
  bool any = false, rewatch = false;
  alignas(inotify_event) char buf[16384];
  for (;;) {
    ssize_t len = read(inotify_fd_, buf, sizeof(buf));
    if (len <= 0) break;  // EAGAIN: drained. A read error ends this drain; the rescan stays.
    for (char* p = buf; p < buf + len;) {
      auto* ev = reinterpret_cast<inotify_event*>(p);
      p += sizeof(inotify_event) + ev->len;
      if (ev->wd == parent_watch_) {
        if (ev->len == 0 || name != ev->name) continue;
        rewatch = true;
      } else if (ev->mask & (IN_DELETE_SELF | IN_MOVE_SELF | IN_IGNORED)) {
        rewatch = true;
      }
      any = true;
    }
  }
  if (rewatch) Watch();
  return any;
}

Clock::TimePoint SpecDirSource::NextPoll() const {
  auto debounced = dirty_since_ == Clock::TimePoint::max() ? dirty_since_
                                                           : dirty_since_ + o_.debounce;
  return std::min(debounced, next_rescan_);
}

std::vector<LaneKey> SpecDirSource::Poll() {
  auto now = clock_.Now();
  if (DrainEvents() && dirty_since_ == Clock::TimePoint::max()) dirty_since_ = now;
  bool rescan = now >= next_rescan_;
  if (dirty_since_ != Clock::TimePoint::max() && now >= dirty_since_ + o_.debounce) {
    rescan = true;
  }
  if (!rescan) return {};
  dirty_since_ = Clock::TimePoint::max();
  next_rescan_ = now + o_.rescan_every;
  if (dir_watch_ < 0) Watch();
  return Rescan();
}

std::vector<LaneKey> SpecDirSource::Keys() const {
  std::vector<LaneKey> out;
  for (const auto& [k, l] : lanes_) out.push_back(k);
  return out;
}

const SourcedLane* SpecDirSource::Get(const LaneKey& key) const {
  auto it = lanes_.find(key);
  return it == lanes_.end() ? nullptr : &it->second;
}

std::vector<LaneKey> SpecDirSource::Rescan() {
  std::vector<SpecError> dir_errors;
  std::vector<std::string> files = ListLaneSpecFiles(o_.dir, &dir_errors);
  std::error_code ec;
  if (!fs::is_directory(o_.dir, ec)) {
    if (!dir_was_gone_) {
      spdlog::warn("controller: {} was removed or moved; lanes keep running until it is back",
                   o_.dir);
    }
    dir_was_gone_ = true;
    errors_ = {{o_.dir, 0, 0, "",
                "cannot read: the directory is gone; lanes keep running until it is back"}};
    return {};
  }
  if (!dir_errors.empty()) {
    // Unreadable: change nothing rather than stop every lane.
    errors_ = dir_errors;
    return {};
  }
  if (dir_was_gone_) spdlog::info("controller: {} is back", o_.dir);
  dir_was_gone_ = false;

  std::map<LaneKey, SourcedLane> next;
  std::map<std::string, std::vector<LaneKey>> next_file_lanes;
  std::vector<SpecError> errors;
  std::vector<LaneSpec> read;
  for (const auto& f : files) {
    ParsedLanes p = LoadLaneSpecs(f);
    if (p.errors.empty()) {
      for (auto& l : p.lanes) read.push_back(std::move(l));
      continue;
    }
    // A broken file: the lanes it defined at its last good read keep their last good
    // spec (the reconciler's), and hear why their text is not taken.
    auto before = file_lanes_.find(f);
    if (before == file_lanes_.end() || before->second.empty()) {
      errors.insert(errors.end(), p.errors.begin(), p.errors.end());
      continue;
    }
    for (const LaneKey& key : before->second) {
      SourcedLane l;
      l.key = key;
      l.errors = p.errors;
      if (next.emplace(key, std::move(l)).second) next_file_lanes[f].push_back(key);
    }
  }
  // A name defined twice: the file that defined it before keeps it, else the first file.
  std::stable_sort(read.begin(), read.end(), [&](const LaneSpec& a, const LaneSpec& b) {
    auto had = [&](const LaneSpec& l) {
      auto it = file_lanes_.find(l.source);
      return it != file_lanes_.end() &&
             std::find(it->second.begin(), it->second.end(), l.Key()) != it->second.end();
    };
    return had(a) && !had(b);
  });
  std::map<LaneKey, std::string> defined_at;
  for (auto& spec : read) {
    LaneKey key = spec.Key();
    if (auto it = defined_at.find(key); it != defined_at.end() || next.count(key)) {
      std::string where = it != defined_at.end() ? it->second : "a file that does not parse";
      errors.push_back({spec.source, spec.name_mark.line, spec.name_mark.column, "metadata.name",
                        "lane '" + spec.name + "' is already defined at " + where});
      continue;
    }
    defined_at[key] = WhereNamed(spec);
    next_file_lanes[spec.source].push_back(key);
    SourcedLane l;
    l.key = key;
    l.valid = true;
    l.spec = std::move(spec);
    next.emplace(key, std::move(l));
  }

  std::vector<LaneKey> changed;
  for (const auto& [key, l] : next) {
    auto old = lanes_.find(key);
    if (old == lanes_.end() || !SameLane(old->second, l)) changed.push_back(key);
  }
  for (const auto& [key, l] : lanes_) {
    if (!next.count(key)) changed.push_back(key);
  }
  lanes_ = std::move(next);
  file_lanes_ = std::move(next_file_lanes);
  errors_ = std::move(errors);
  return changed;
}

}  // namespace lk
