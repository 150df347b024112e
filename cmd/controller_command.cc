// `lanekeeper controller --specs DIR [--status-addr 127.0.0.1:8081] [--state-dir D]`
// [--auth-token-file FILE] [--insecure]:
// the LaneController (controller/lane_controller.h) with the status server beside it
// (controller/status/status_server.h). Flags to options, nothing more.
//
// `lanekeeper controller --kube [--namespace N | --all-namespaces] [--leader-elect]
// [--kubeconfig F] [--context C] [--image IMG] [--resync 30s]`: the same controller with the
// Lanes of a cluster as its source (KubeLaneSource) and Deployments as its backend
// (KubeRoleBackend). SIGTERM leaves the lanes running (they are the cluster's Deployments);
// with --leader-elect, only the replica holding the Lease lanekeeper-controller (in
// $POD_NAMESPACE, else the kubeconfig context's namespace) acts.
#include <utility>  // before pplx: boost/asio/awaitable.hpp needs std::exchange

#include <pplx/threadpool.h>

#include <signal.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <spdlog/spdlog.h>

#include <cstdlib>
#include <iostream>
#include <memory>

#include "cmd/commands.h"
#include "controller/backend/kube_role_backend.h"
#include "controller/kube/kube_config.h"
#include "controller/kube/leader_elector.h"
#include "controller/lane_controller.h"
#include "controller/source/kube_lane_doctor.h"
#include "controller/source/kube_lane_source.h"
#include "controller/status/lane_observer.h"
#include "controller/status/status_server.h"
#include "worker/exit_codes.h"

namespace lk::cmd {

namespace {

struct KubeFlags {
  bool kube = false;
  std::string ns;
  bool all_namespaces = false;
  bool leader_elect = false;
  std::string kubeconfig;
  std::string context;
  std::string image;
  std::string image_pull_policy = "IfNotPresent";
  std::string resync = "30s";
  std::string lease_duration = "15s";
  std::string renew_deadline = "10s";
  std::string retry_period = "2s";
};

struct ControllerFlags {
  LaneControllerOptions options;
  StatusFlags status;
  std::string rescan = "15s";
  std::string restart_backoff_max = "60s";
  int workers = 0;  // 0: 8 with --kube, else 1
  KubeFlags kube;
};

// The controller with its status server; after_init runs once the controller has blocked
// the signals it reads and read its source (leader election starts there); doctor_more_checks
// adds to /doctor's checks of a lane (status_server.h).
int RunControllerWith(LaneControllerOptions options, const StatusFlags& status,
                      const std::function<void(const std::string& url)>& on_listening,
                      const std::function<void()>& after_init,
                      const LaneDoctorChecks& doctor_more_checks = {}) {
  ControllerStateStore store;
  LaneController controller(options, store);
  // Init blocks the signals the controller reads, before the status server's threads
  // exist, so that they inherit the mask.
  if (Status s = controller.Init(); !s.ok()) {
    std::cerr << "lanekeeper: controller: " << s.message() << "\n";
    return kExitUsage;
  }
  if (after_init) after_init();
  LaneObserver observer;
  std::unique_ptr<StatusServer> server;
  if (status.addr != "off") {
    // cpprestsdk's default pool is 40 threads; a status server for people and Prometheus
    // needs a few. Must run before anything uses the pool.
    try {
      crossplat::threadpool::initialize_with_threads(4);
    } catch (const std::exception&) {
      // Already initialized (a second controller in one process, or the Kubernetes
      // client's): keep that pool.
    }
    StatusServerOptions so;
    so.addr = status.addr;
    so.insecure = status.insecure;
    so.doctor_more_checks = doctor_more_checks;
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

int RunKubeController(LaneControllerOptions o, const StatusFlags& status, const KubeFlags& f) {
  Millis resync, lease, renew, retry;
  if (!ParseDurationFlag("--resync", f.resync, resync) ||
      !ParseDurationFlag("--leader-elect-lease-duration", f.lease_duration, lease) ||
      !ParseDurationFlag("--leader-elect-renew-deadline", f.renew_deadline, renew) ||
      !ParseDurationFlag("--leader-elect-retry-period", f.retry_period, retry)) {
    return kExitUsage;
  }
  if (resync.count() < 100) {
    std::cerr << "lanekeeper: --resync: must be at least 100ms\n";
    return kExitUsage;
  }
  if (!(retry < renew && renew < lease)) {
    std::cerr << "lanekeeper: leader election needs retry period < renew deadline < lease duration\n";
    return kExitUsage;
  }
  std::string image = f.image;
  if (image.empty()) {
    if (const char* env = std::getenv("LANEKEEPER_IMAGE"); env != nullptr) image = env;
  }
  if (image.empty()) {
    std::cerr << "lanekeeper: --kube: no image for the lanes' pods: pass --image or set "
                 "$LANEKEEPER_IMAGE (the chart sets it)\n";
    return kExitUsage;
  }
  if (!f.ns.empty() && f.all_namespaces) {
    std::cerr << "lanekeeper: --namespace and --all-namespaces: give one\n";
    return kExitUsage;
  }

  // The Kubernetes client's threads (cpprestsdk's pool, the informers', the status
  // writer's) start before the controller's Init: block the signals it reads here, so that
  // they inherit the mask and SIGTERM reaches its signalfd, not a thread that dies of it.
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGTERM);
  sigaddset(&set, SIGINT);
  pthread_sigmask(SIG_BLOCK, &set, nullptr);
  try {
    // A watch per informer waits in the pool, besides requests and the status server.
    crossplat::threadpool::initialize_with_threads(8);
  } catch (const std::exception&) {
  }

  auto config = kube::LoadKubeConfig(f.kubeconfig, f.context);
  if (!config.ok()) return Fail(config.status());
  auto client = kube::NewKubeClient(*config);
  if (!client.ok()) return Fail(client.status());
  const std::string ns = f.all_namespaces ? "" : (f.ns.empty() ? config->ns : f.ns);
  std::string lease_ns = config->ns;
  if (const char* pod_ns = std::getenv("POD_NAMESPACE"); pod_ns != nullptr && *pod_ns != '\0') {
    lease_ns = pod_ns;
  }

  std::unique_ptr<kube::LeaderElector> elector;
  int leadership_fd = -1;
  if (f.leader_elect) {
    leadership_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    if (leadership_fd < 0) return Fail(Status::Internal("eventfd: cannot create one"));
    kube::LeaderElectionOptions le;
    le.lease_namespace = lease_ns;
    le.lease_name = "lanekeeper-controller";
    le.lease_duration = lease;
    le.renew_deadline = renew;
    le.retry_period = retry;
    auto notify = [leadership_fd] {
      uint64_t one = 1;
      [[maybe_unused]] ssize_t n = write(leadership_fd, &one, sizeof(one));
    };
    le.on_started_leading = [notify] {
      spdlog::info("controller: leading (Lease lanekeeper-controller): acting");
      notify();
    };
    le.on_stopped_leading = [notify] {
      spdlog::warn("controller: no longer leading (Lease lanekeeper-controller): not acting");
      notify();
    };
    elector = std::make_unique<kube::LeaderElector>(**client, std::move(le));
    kube::LeaderElector* e = elector.get();
    o.may_act = [e] { return e->is_leader(); };
    o.leadership_fd = leadership_fd;
  }

  // A watch of the backend's that fails (the API server unreachable, RBAC) is retried with
  // backoff; say so (the source's failures are its Errors(), which the controller logs).
  kube::InformerOptions informer;
  informer.on_failure = [](const Status& s, Millis retry_in) {
    spdlog::warn("controller: watch failed: {} (retrying in {} ms)", s.message(), retry_in.count());
  };
  KubeLaneSourceOptions so;
  so.client = client->get();
  so.ns = ns;
  so.status.may_act = o.may_act;
  so.status.reporting_instance = kube::DefaultLeaderIdentity();
  KubeLaneSource source(std::move(so));

  KubeRoleBackendOptions bo;
  bo.client = client->get();
  bo.informer = informer;
  bo.ns = ns;
  bo.pod.image = image;
  bo.pod.image_pull_policy = f.image_pull_policy;
  bo.pod.log_level = o.log_level;
  bo.pod.supervisor_args = o.supervisor_args;
  bo.pod.autopilot_args = o.autopilot_args;
  bo.lane_uid = [&source](const LaneKey& key) { return source.Uid(key); };
  KubeRoleBackend backend(std::move(bo));

  o.source = &source;
  o.backend = &backend;
  o.resync_every = resync;
  o.leave_running = true;  // the lanes are Deployments: a controller's exit leaves them
  o.state_dir = "(none: --kube keeps its state in the API server)";
  spdlog::info("controller: --kube on {} ({}), lanes in {}, leader election {}", (*client)->server(),
               config->origin, ns.empty() ? "every namespace" : "namespace " + ns,
               f.leader_elect ? "on (Lease " + lease_ns + "/lanekeeper-controller)" : "off");
  // /doctor of a Lane: what `doctor --kube --lane NS/NAME` adds, read as it reads it.
  kube::KubeClient* api = client->get();
  auto cluster_checks = [api](const LaneState& lane, DoctorReport& report) {
    const LaneKey key = lane.spec.Key();
    auto object = api->Get(kube::LanesRef(key.ns).Named(key.name));
    if (!object.ok()) {
      report.checks.push_back(DoctorCheck{"lane", CheckLevel::kWarn,
                                          "Lane " + key.ToString() + " cannot be read: " + object.status().message(),
                                          {{"lane", key.ToString()}}});
      return;
    }
    AddClusterChecks(*api, *object, key, report);
  };
  int rc = RunControllerWith(
      o, status, nullptr, [&] { if (elector) elector->Start(); }, cluster_checks);
  if (elector) elector->Stop();  // hands the Lease over at once, not after its duration
  if (leadership_fd >= 0) close(leadership_fd);
  return rc;
}

}  // namespace

int RunController(LaneControllerOptions options, const StatusFlags& status,
                  const std::function<void(const std::string& url)>& on_listening) {
  return RunControllerWith(std::move(options), status, on_listening, nullptr);
}

void AddControllerCommand(CLI::App& app, GlobalOptions& global, int& exit_code) {
  auto f = std::make_shared<ControllerFlags>();
  auto& o = f->options;
  auto& k = f->kube;
  o.specs_dir = DefaultSpecsDir();
  o.state_dir = DefaultStateDir();
  CLI::App* cmd = app.add_subcommand(
      "controller", "Run every Lane of a specs directory as local processes (or, with --kube, "
                    "every Lane of a cluster as Deployments) and keep them converged; serve "
                    "status on --status-addr");
  cmd->add_option("--specs", o.specs_dir,
                  "Directory of Lane specs (*.yaml, *.yml); watched")
      ->capture_default_str();
  cmd->add_option("--state-dir", o.state_dir,
                  "Where the controller keeps its roles' pids, handlers and cycle files")
      ->capture_default_str();
  AddStatusFlags(cmd, f->status);
  cmd->add_option("--rescan", f->rescan, "Re-read the specs and reconcile every lane this often, besides inotify and process exits")
      ->capture_default_str();
  cmd->add_option("--workers", f->workers,
                  "Lanes reconciled at once (default: 8 with --kube, where each reconcile waits on "
                  "API round trips; 1 for local processes)")
      ->check(CLI::Range(1, 64));
  cmd->add_flag("--leave-running", o.leave_running,
                "On SIGTERM leave the lanes running for the next controller to adopt "
                "(upgrades); default: stop them");
  cmd->add_option("--restart-backoff-max", f->restart_backoff_max,
                  "Cap of the wait before starting again a role process that died unasked (1s "
                  "doubling up to it; local processes)")
      ->capture_default_str();
  cmd->add_option("--supervisor-arg", o.supervisor_args,
                  "Extra flag for every supervisor (repeatable), e.g. --supervisor-arg=--lease-ttl=5s");
  cmd->add_option("--autopilot-arg", o.autopilot_args,
                  "Extra flag for every autopilot (repeatable)");
  cmd->add_flag("--kube", k.kube,
                "Reconcile the Lane objects of a Kubernetes cluster into Deployments, instead of "
                "a specs directory into processes; SIGTERM leaves them running");
  cmd->add_option("--namespace,-n", k.ns,
                  "(--kube) The namespace of the Lanes (default: the kubeconfig context's, or the pod's)");
  cmd->add_flag("--all-namespaces,-A", k.all_namespaces, "(--kube) The Lanes of every namespace");
  cmd->add_flag("--leader-elect", k.leader_elect,
                "(--kube) Act only while holding the Lease lanekeeper-controller (for several replicas)");
  cmd->add_option("--kubeconfig", k.kubeconfig,
                  "(--kube) kubeconfig file (default: $KUBECONFIG, in-cluster, ~/.kube/config)");
  cmd->add_option("--context", k.context, "(--kube) kubeconfig context (default: its current-context)");
  cmd->add_option("--image", k.image,
                  "(--kube) The lanekeeper image the lanes' pods run (default: $LANEKEEPER_IMAGE)");
  cmd->add_option("--image-pull-policy", k.image_pull_policy, "(--kube) Their imagePullPolicy")
      ->check(CLI::IsMember({"Always", "IfNotPresent", "Never"}))
      ->capture_default_str();
  cmd->add_option("--resync", k.resync,
                  "(--kube) Reconcile every lane again this often, whatever happened (drift)")
      ->capture_default_str();
  cmd->add_option("--leader-elect-lease-duration", k.lease_duration,
                  "(--leader-elect) How long others wait before taking an unrenewed Lease")
      ->capture_default_str();
  cmd->add_option("--leader-elect-renew-deadline", k.renew_deadline,
                  "(--leader-elect) How long the leader acts without renewing it")
      ->capture_default_str();
  cmd->add_option("--leader-elect-retry-period", k.retry_period,
                  "(--leader-elect) Between attempts to take or renew it")
      ->capture_default_str();
  cmd->callback([f, &global, &exit_code] {
    LaneControllerOptions o = f->options;
    o.default_redis_url = global.redis_url;
    o.log_format = global.log_format;
    o.log_level = global.log_level;
    o.workers = f->workers > 0 ? f->workers : f->kube.kube ? 8 : 1;
    if (f->kube.kube) {
      exit_code = RunKubeController(o, f->status, f->kube);
      return;
    }
    auto rescan = ParseDuration(f->rescan);
    if (!rescan.ok() || rescan->count() < 100) {
      std::cerr << "lanekeeper: --rescan: "
                << (rescan.ok() ? "must be at least 100ms" : rescan.status().message()) << "\n";
      exit_code = kExitUsage;
      return;
    }
    o.rescan_every = *rescan;
    o.resync_every = *rescan;
    auto backoff_max = ParseDuration(f->restart_backoff_max);
    if (!backoff_max.ok() || backoff_max->count() < 100) {
      std::cerr << "lanekeeper: --restart-backoff-max: "
                << (backoff_max.ok() ? "must be at least 100ms" : backoff_max.status().message())
                << "\n";
      exit_code = kExitUsage;
      return;
    }
    o.restart_backoff_max = *backoff_max;
    exit_code = RunController(o, f->status, nullptr);
  });
}

}  // namespace lk::cmd
