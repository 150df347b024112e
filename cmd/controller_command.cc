// `lanekeeper controller --specs DIR [--status-addr 127.0.0.1:8081] [--state-dir D]`
// [--auth-token-file FILE] [--insecure]:
// the LaneController (controller/lane_controller.h) with the status server beside it
// (controller/status/status_server.h). Flags to options, nothing more.
#include <utility>  // before pplx: boost/asio/awaitable.hpp needs std::exchange

#include <pplx/threadpool.h>

#include <iostream>
#include <memory>

#include "cmd/commands.h"
#include "controller/lane_controller.h"
#include "controller/status/lane_observer.h"
#include "controller/status/status_server.h"
#include "worker/exit_codes.h"

namespace lk::cmd {

namespace {

struct ControllerFlags {
  LaneControllerOptions options;
  StatusFlags status;
  std::string rescan = "15s";
};

}  // namespace

int RunController(LaneControllerOptions options, const StatusFlags& status,
                  const std::function<void(const std::string& url)>& on_listening) {
  ControllerStateStore store;
  LaneController controller(options, store);
  // Init blocks the signals the controller reads, before the status server's threads
  // exist, so that they inherit the mask.
  if (Status s = controller.Init(); !s.ok()) {
    std::cerr << "lanekeeper: controller: " << s.message() << "\n";
    return kExitUsage;
  }
  LaneObserver observer;
  std::unique_ptr<StatusServer> server;
  if (status.addr != "off") {
    // cpprestsdk's default pool is 40 threads; a status server for people and Prometheus
    // needs a few. Must run before anything uses the pool.
    try {
      crossplat::threadpool::initialize_with_threads(4);
    } catch (const std::exception&) {
      // Already initialized (a second controller in one process): keep that pool.
    }
    StatusServerOptions so;
    so.addr = status.addr;
    so.insecure = status.insecure;
    if (!status.auth_token_file.empty()) {
      auto token = ReadAuthTokenFile(status.auth_token_file);
      if (!token.ok()) {
        std::cerr << "lanekeeper: " << token.status().message() << "\n";
        return kExitUsage;
      }
      so.auth_token = *token;
    }
    auto started = StatusServer::Start(so, store, observer);
    if (!started.ok()) {
      std::cerr << "lanekeeper: " << started.status().message() << "\n";
      return kExitUsage;
    }
    server = std::move(*started);
    if (on_listening) on_listening(server->url());
  }
  int rc = controller.Run();
  server.reset();
  return rc;
}

void AddControllerCommand(CLI::App& app, GlobalOptions& global, int& exit_code) {
  auto f = std::make_shared<ControllerFlags>();
  auto& o = f->options;
  o.specs_dir = DefaultSpecsDir();
  o.state_dir = DefaultStateDir();
  CLI::App* cmd = app.add_subcommand(
      "controller", "Run every Lane of a specs directory as local processes and keep them "
                    "converged; serve status on --status-addr");
  cmd->add_option("--specs", o.specs_dir,
                  "Directory of Lane specs (*.yaml, *.yml); watched")
      ->capture_default_str();
  cmd->add_option("--state-dir", o.state_dir,
                  "Where the controller keeps its roles' pids, handlers and cycle files")
      ->capture_default_str();
  AddStatusFlags(cmd, f->status);
  cmd->add_option("--rescan", f->rescan, "Re-read the specs and reconcile every lane this often, besides inotify and process exits")
      ->capture_default_str();
  cmd->add_flag("--leave-running", o.leave_running,
                "On SIGTERM leave the lanes running for the next controller to adopt "
                "(upgrades); default: stop them");
  cmd->add_option("--supervisor-arg", o.supervisor_args,
                  "Extra flag for every supervisor (repeatable), e.g. --supervisor-arg=--lease-ttl=5s");
  cmd->add_option("--autopilot-arg", o.autopilot_args,
                  "Extra flag for every autopilot (repeatable)");
  cmd->callback([f, &global, &exit_code] {
    LaneControllerOptions o = f->options;
    auto rescan = ParseDuration(f->rescan);
    if (!rescan.ok() || rescan->count() < 100) {
      std::cerr << "lanekeeper: --rescan: "
                << (rescan.ok() ? "must be at least 100ms" : rescan.status().message()) << "\n";
      exit_code = kExitUsage;
      return;
    }
    o.rescan_every = *rescan;
    o.resync_every = *rescan;
    o.default_redis_url = global.redis_url;
    o.log_format = global.log_format;
    o.log_level = global.log_level;
    exit_code = RunController(o, f->status, nullptr);
  });
}

}  // namespace lk::cmd
