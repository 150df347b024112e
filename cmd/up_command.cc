// `lanekeeper up -f FILE [--state-dir D] [--status-addr 127.0.0.1:8081]`: the quick start
// in one command. Validates FILE, writes its lanes into STATE/specs, starts a private
// redis-server (controller/install/private_redis.h) when a lane is on it, runs the controller in
// the foreground (RunController, as `controller` does) and, on Ctrl-C or SIGTERM, stops
// the lanes, then Redis, and exits 0 with nothing left running.
//
// Lanes without spec.redis.url use --redis or $LANEKEEPER_REDIS_URL when one is given, as
// every command does, and otherwise the private Redis, unix://STATE/redis/redis.sock.
// STATE/up.pid keeps a second `up` off the same state dir. Every path in STATE is `up`'s
// own: STATE/specs holds exactly FILE's lanes when it starts.
#include <netdb.h>
#include <poll.h>
#include <signal.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <memory>
#include <spdlog/spdlog.h>
#include <string>
#include <thread>
#include <vector>

#include "controller/spec/lane_parser.h"
#include "controller/spec/lane_set.h"
#include "cmd/commands.h"
#include "controller/lane_controller.h"
#include "controller/spec/lane_types.h"
#include "controller/owner/pid_file.h"
#include "controller/install/private_redis.h"
#include "controller/spec/spec_dir.h"
#include "worker/exit_codes.h"
#include "worker/redis_connection.h"

namespace lk::cmd {

namespace {

namespace fs = std::filesystem;

constexpr const char* kDefaultStatusAddr = "127.0.0.1:8081";

struct UpFlags {
  std::string file;
  std::string state_dir = DefaultStateDir() + "/up";
  StatusFlags status;
};

// The lanekeeper binary as the user typed it ("build/lanekeeper", "lanekeeper"), so that
// the commands we print run as they are in the user's shell.
std::string InvokedAs() {
  std::ifstream in("/proc/self/cmdline", std::ios::binary);
  std::string argv0;
  std::getline(in, argv0, '\0');
  return argv0.empty() ? "lanekeeper" : argv0;
}

bool StopRequested() {
  sigset_t pending;
  sigpending(&pending);
  return sigismember(&pending, SIGINT) || sigismember(&pending, SIGTERM);
}

// The lanes of FILE checked alone and together, on default_url, before anything exists.
std::vector<SpecError> CheckFile(const std::string& file, const std::string& default_url,
                                 std::vector<LaneSpec>& lanes) {
  std::error_code ec;
  if (fs::is_directory(file, ec)) {
    return {{file, 0, 0, "", "is a directory: up runs the lanes of one file (separate them "
                             "with ---)"}};
  }
  ParsedLanes parsed = LoadLaneSpecs(file);
  if (parsed.lanes.empty() && parsed.errors.empty()) {
    parsed.errors.push_back({file, 0, 0, "", "no Lane specs here"});
  }
  for (auto& e : ValidateLaneSet(parsed.lanes, default_url)) parsed.errors.push_back(e);
  lanes = std::move(parsed.lanes);
  return parsed.errors;
}

// Whether HOST:PORT can be listened on, checked before anything starts: a dashboard port
// in use would otherwise stop `up` only after its redis-server and lanes had started. An
// address that does not parse passes; the status server names what is wrong with it.
Status CheckCanListen(const std::string& addr) {
  size_t colon = addr.rfind(':');
  if (addr == "off" || colon == std::string::npos) return Status::OK();
  std::string host = addr.substr(0, colon);
  if (host.size() >= 2 && host.front() == '[') host = host.substr(1, host.size() - 2);
  addrinfo hints{};
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
  addrinfo* found = nullptr;
  if (getaddrinfo(host.c_str(), addr.c_str() + colon + 1, &hints, &found) != 0) {
    return Status::OK();
  }
  Status s = Status::OK();
  int fd = socket(found->ai_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
  int one = 1;
  if (fd >= 0 && (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) != 0 ||
                  bind(fd, found->ai_addr, found->ai_addrlen) != 0)) {
    s = Status::Unavailable("--status-addr: cannot listen on " + addr + ": " +
                            std::strerror(errno) +
                            " (another `up` or controller? choose another with --status-addr)");
  }
  if (fd >= 0) close(fd);
  freeaddrinfo(found);
  return s;
}

// STATE/specs with exactly FILE's lanes: whatever an earlier `up` (or an `apply` during
// it) left there goes first.
std::vector<SpecError> WriteSpecs(const std::string& file, const std::string& specs_dir,
                                  const std::string& default_url) {
  std::error_code ec;
  fs::create_directories(specs_dir, ec);
  std::vector<SpecError> errors;
  for (const auto& old : ListLaneSpecFiles(specs_dir, &errors)) fs::remove(old, ec);
  if (!errors.empty()) return errors;
  ApplyLaneFile(file, specs_dir, default_url, errors);
  return errors;
}

// What to run next, for the lines after "dashboard: URL". controller_default is the Redis
// of lanes without a URL that are applied while `up` runs.
std::string NextSteps(const LaneSpec& first, const std::string& first_redis,
                      const std::string& controller_default, const std::string& specs_dir,
                      const std::string& status_addr) {
  std::string job = first.handlers.empty() ? "noop" : first.handlers.front().name;
  std::string me = InvokedAs();
  std::string on_default = me + " --redis " + ParseRedisUrl(controller_default)->Redacted();
  std::string controller = status_addr == kDefaultStatusAddr || status_addr == "off"
                               ? ""
                               : " --controller http://" + status_addr;
  return "submit a job: " + me + " --redis " + ParseRedisUrl(first_redis)->Redacted() +
         " --queue " + first.queue + " jobs submit " + job + "\n" +
         "list the lanes: " + on_default + " get --specs " + specs_dir + controller + "\n" +
         "change them: " + on_default + " apply -f FILE --specs " + specs_dir + "\n" +
         "Ctrl-C stops everything.\n";
}

int RunUp(const UpFlags& f, const GlobalOptions& global, bool redis_given) {
  // From here on SIGINT and SIGTERM wait to be read — by the check below, then by the
  // controller's signalfd — instead of killing us between starting redis-server (in its own
  // process group, out of the terminal's reach) and stopping it. Threads started later
  // inherit the mask, which the controller sets up the same way.
  sigset_t stop_signals;
  sigemptyset(&stop_signals);
  sigaddset(&stop_signals, SIGINT);
  sigaddset(&stop_signals, SIGTERM);
  sigaddset(&stop_signals, SIGCHLD);
  pthread_sigmask(SIG_BLOCK, &stop_signals, nullptr);

  // Absolute: the socket's URL must be, and the roles run in other directories.
  std::string state = fs::absolute(f.state_dir).lexically_normal().string();
  if (state.size() > 1 && state.back() == '/') state.pop_back();
  const std::string private_url = PrivateRedis::UrlFor(state + "/redis");
  const std::string default_url = redis_given ? global.redis_url : private_url;
  // Said in the private Redis's words (naming the state dir), before the URL parser would
  // refuse the same path in its own.
  if (Status s = PrivateRedis::CheckSocketPath(state + "/redis"); !redis_given && !s.ok()) {
    std::cerr << "lanekeeper: up: private Redis: " << s.message() << "\n";
    return kExitFailure;
  }
  if (auto ep = ParseRedisUrl(default_url); !ep.ok()) {
    std::cerr << "lanekeeper: up: "
              << (redis_given ? "--redis: " + ep.status().message()
                              : "--state-dir " + state +
                                    ": cannot be named in a unix:// Redis URL: choose one "
                                    "without '@' or '?'")
              << "\n";
    return kExitUsage;
  }

  std::vector<LaneSpec> lanes;
  std::vector<SpecError> errors = CheckFile(f.file, default_url, lanes);
  auto refuse = [](const std::vector<SpecError>& errors) {
    for (const auto& e : errors) std::cerr << e.ToString() << "\n";
    std::cerr << "lanekeeper: up: nothing started\n";
    return kExitUsage;
  };
  if (!errors.empty()) return refuse(errors);

  std::error_code ec;
  fs::create_directories(state, ec);
  // Specs (passwords), the private Redis's socket and AOF, pids: for up's user alone.
  if (!ec) fs::permissions(state, fs::perms::owner_all, ec);
  if (ec) {
    std::cerr << "lanekeeper: up: cannot create --state-dir " << state << ": " << ec.message()
              << "\n";
    return kExitUsage;
  }
  auto pid_file = PidFile::Acquire(state + "/up.pid");
  if (!pid_file.ok()) {
    if (auto holder = PidFile::LiveHolder(state + "/up.pid")) {
      std::cerr << "lanekeeper: up: another `lanekeeper up` (pid " << *holder
                << ") runs on state dir " << state
                << ": stop it first, or give this one another --state-dir\n";
    } else {
      std::cerr << "lanekeeper: up: " << pid_file.status().message() << "\n";
    }
    return kExitUsage;
  }

  if (Status s = CheckCanListen(f.status.addr); !s.ok()) {
    std::cerr << "lanekeeper: up: " << s.message() << "\nlanekeeper: up: nothing started\n";
    return kExitUsage;
  }

  const std::string specs_dir = state + "/specs";
  if (errors = WriteSpecs(f.file, specs_dir, default_url); !errors.empty()) {
    return refuse(errors);
  }
  std::cout << "lanekeeper up: " << lanes.size() << " lane(s) from " << f.file << ", state in "
            << state << "\n";
  for (const auto& l : lanes) {
    std::string url = l.redis_url.empty() ? default_url : l.redis_url;
    std::cout << "lane/" << l.name << ": queue " << l.queue << " on "
              << ParseRedisUrl(url)->Redacted() << "\n";
  }
  std::cout << std::flush;

  std::unique_ptr<PrivateRedis> redis;
  bool uses_private = std::any_of(lanes.begin(), lanes.end(), [&](const LaneSpec& l) {
    return (l.redis_url.empty() ? default_url : l.redis_url) == private_url;
  });
  if (uses_private) {
    PrivateRedisOptions ro;
    ro.dir = state + "/redis";
    auto started = PrivateRedis::Start(ro);
    if (!started.ok()) {
      std::cerr << "lanekeeper: up: private Redis: " << started.status().message()
                << "\nlanekeeper: up: or run the lanes on a Redis of yours: lanekeeper "
                   "--redis URL up -f FILE\n";
      return kExitFailure;
    }
    redis = std::move(*started);
    std::cout << "redis: "
              << (redis->adopted() ? "adopted the private redis-server left running, pid "
                                   : "private redis-server pid ")
              << redis->pid() << ", append-only file in " << ro.dir << "/appendonlydir"
              << std::endl;
  }
  if (StopRequested()) {
    std::cout << "stopped before the lanes started" << std::endl;
    return kExitOk;  // ~PrivateRedis stops redis-server, ~PidFile removes up.pid
  }

  // The private Redis dying under the lanes ends `up` as Ctrl-C would, and says why.
  // SIGTERM to ourselves is the way in: every thread blocks it, so the controller's
  // signalfd reads it.
  std::atomic<bool> redis_lost{false};
  int quit_fd = eventfd(0, EFD_CLOEXEC);
  std::thread watcher;
  if (redis && quit_fd >= 0) {
    watcher = std::thread([&] {
      pollfd fds[2] = {{redis->wait_fd(), POLLIN, 0}, {quit_fd, POLLIN, 0}};
      while (poll(fds, 2, -1) < 0 && errno == EINTR) {
      }
      if (fds[0].revents & POLLIN) {
        redis_lost = true;
        spdlog::error("up: the private redis-server (pid {}) exited; stopping the lanes",
                      redis->pid());
        kill(getpid(), SIGTERM);
      }
    });
  }

  LaneControllerOptions o;
  o.specs_dir = specs_dir;
  o.state_dir = state;
  // Lanes applied while we run: on the private Redis while it runs, else where every
  // command looks by default.
  o.default_redis_url = redis_given || redis ? default_url : global.redis_url;
  o.log_format = global.log_format;
  o.log_level = global.log_level;
  const LaneSpec& first = lanes.front();
  std::string next_steps =
      NextSteps(first, first.redis_url.empty() ? default_url : first.redis_url,
                o.default_redis_url, specs_dir, f.status.addr);
  auto on_listening = [&](const std::string& url) {
    std::cout << "dashboard: " << url << "/\n" << next_steps << std::flush;
  };
  if (f.status.addr == "off") std::cout << "dashboard: off\n" << next_steps << std::flush;
  int rc = RunController(o, f.status, on_listening);

  if (watcher.joinable()) {
    uint64_t one = 1;
    [[maybe_unused]] ssize_t n = write(quit_fd, &one, sizeof(one));
    watcher.join();
  }
  if (quit_fd >= 0) close(quit_fd);
  if (redis) {
    if (Status s = redis->Stop(); !s.ok()) spdlog::warn("up: {}", s.message());
    if (!redis_lost) spdlog::info("up: stopped the private redis-server");
  }
  (*pid_file)->Release();
  return redis_lost ? kExitFailure : rc;
}

}  // namespace

void AddUpCommand(CLI::App& app, GlobalOptions& global, int& exit_code) {
  auto f = std::make_shared<UpFlags>();
  CLI::App* cmd = app.add_subcommand(
      "up", "The quick start: run the lanes of FILE in the foreground, with a private "
            "redis-server for lanes that name no Redis; Ctrl-C stops everything");
  cmd->add_option("-f,--filename", f->file, "A Lane spec file")->required();
  cmd->add_option("--state-dir", f->state_dir,
                  "up's own directory: specs/, the lanes' state, redis/ (socket, "
                  "append-only file, log), up.pid")
      ->capture_default_str();
  AddStatusFlags(cmd, f->status);
  CLI::App* root = &app;
  cmd->callback([f, root, &global, &exit_code] {
    // Only a Redis the user chose replaces the private one: --redis, or the environment.
    const char* env = std::getenv("LANEKEEPER_REDIS_URL");
    bool redis_given = root->get_option("--redis")->count() > 0 || (env && *env);
    exit_code = RunUp(*f, global, redis_given);
  });
}

}  // namespace lk::cmd
