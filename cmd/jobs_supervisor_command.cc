// `lanekeeper jobs supervisor [status|stop]`: flags to SupervisorOptions, nothing more.
#include <signal.h>
#include <unistd.h>

#include <fstream>
#include <iostream>
#include <iterator>
#include <thread>

#include "cmd/commands.h"
#include "controller/owner/owner_lease.h"
#include "controller/owner/pid_file.h"
#include "controller/owner/supervisor.h"
#include "controller/owner/supervisor_status.h"
#include "worker/exit_codes.h"

namespace lk::cmd {

namespace {

struct SupervisorFlags {
  SupervisorOptions options;
  std::string drain_timeout = "30s";
  std::string lease_ttl = "15s";
  std::string lease_renew = "5s";
  std::string wedge_time = "15m";
  std::string restart_backoff_max = "60s";
  std::string wedge_check = "1m";
  std::string stop_timeout = "90s";
};

// Gone, or a zombie waiting for its parent to reap it (it runs nothing any more).
bool ProcessGone(pid_t pid) {
  if (pid <= 0) return true;
  std::ifstream in("/proc/" + std::to_string(pid) + "/stat");
  std::string stat((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  auto paren = stat.rfind(')');
  return paren == std::string::npos || paren + 2 >= stat.size() || stat[paren + 2] == 'Z';
}

int ShowStatus(const GlobalOptions& global, const std::string& pid_file) {
  auto holder = PidFile::LiveHolder(pid_file);
  if (holder) {
    std::cout << "supervisor: running pid=" << *holder << " (pid file " << pid_file << ")\n";
  } else {
    std::cout << "supervisor: not running (pid file " << pid_file << ")\n";
  }
  auto ep = ParseRedisUrl(global.redis_url);
  if (!ep.ok()) {
    std::cerr << "lanekeeper: " << ep.status().message() << "\n";
    return kExitUsage;
  }
  auto conn = RedisConnection::Connect(*ep, Millis(2000));
  if (!conn.ok()) {
    std::cerr << "lanekeeper: " << conn.status().message() << "\n";
    return kExitFailure;
  }
  auto owner = ReadOwner(**conn, global.queue);
  if (owner.ok() && owner->has_value()) {
    const auto& o = **owner;
    std::cout << "owner: " << o.role << " " << o.holder << " epoch=" << o.epoch << " up "
              << FormatDuration(Millis((NowUnixMillis() - o.since_ms) / 1000 * 1000)) << "\n";
  } else if (owner.ok()) {
    std::cout << "owner: none\n";
  }
  auto sups = ReadLiveSupervisors(**conn, global.queue);
  if (sups.ok()) {
    for (const auto& s : *sups) {
      std::cout << "  " << s.holder << " state=" << s.state << " epoch=" << s.epoch
                << " worker_pid=" << s.worker_pid << " rss_mb=" << s.rss_mb
                << " crashes_10m=" << s.crashes_in_window << (s.degraded ? " DEGRADED" : "")
                << (s.last_exit.empty() ? "" : " last_exit=\"" + s.last_exit + "\"") << "\n";
    }
  }
  return holder ? kExitOk : 3;
}

int StopSupervisor(const GlobalOptions& global, const std::string& pid_file, Millis timeout) {
  auto holder = PidFile::LiveHolder(pid_file);
  if (!holder) {
    std::cout << "supervisor: not running (pid file " << pid_file << ")\n";
    return kExitOk;
  }
  // Learn the worker's pid first, so we can wait for it too.
  pid_t worker_pid = 0;
  if (auto ep = ParseRedisUrl(global.redis_url); ep.ok()) {
    if (auto conn = RedisConnection::Connect(*ep, Millis(2000)); conn.ok()) {
      if (auto sups = ReadLiveSupervisors(**conn, global.queue); sups.ok()) {
        for (const auto& s : *sups) {
          if (s.pid == *holder) worker_pid = s.worker_pid;
        }
      }
    }
  }
  kill(*holder, SIGTERM);
  auto deadline = std::chrono::steady_clock::now() + timeout;
  while (!(ProcessGone(*holder) && ProcessGone(worker_pid))) {
    if (std::chrono::steady_clock::now() >= deadline) {
      std::cerr << "lanekeeper: supervisor " << *holder << " did not stop within "
                << FormatDuration(timeout) << "\n";
      return kExitFailure;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  std::cout << "stopped supervisor " << *holder;
  if (worker_pid > 0) std::cout << " and its worker " << worker_pid;
  std::cout << "\n";
  return kExitOk;
}

}  // namespace

void AddJobsSupervisorCommand(CLI::App& jobs, GlobalOptions& global, int& exit_code) {
  auto flags = std::make_shared<SupervisorFlags>();
  auto* sup = jobs.add_subcommand("supervisor",
                                  "Own the queue's worker: lease, restarts, RSS watchdog");
  auto& o = flags->options;
  sup->add_option("--concurrency", o.concurrency, "Jobs the worker runs at once")
      ->check(CLI::Range(1, 4096));
  sup->add_option("--max-rss", o.max_rss_mb,
                  "Drain and restart the worker when its process tree passes this many MB (0: off)");
  sup->add_option("--pid-file", o.pid_file, "Pid file (default: " +
                                                DefaultSupervisorPidFile("QUEUE") + ")");
  sup->add_option("--max-crashes", o.max_crashes,
                  "Crashes within 10 minutes before the supervisor reports degraded")
      ->check(CLI::Range(1, 1000));
  sup->add_option("--restart-backoff-max", flags->restart_backoff_max,
                  "Cap of the wait before restarting a crashed worker (1s doubling up to it)");
  sup->add_option("--handlers", o.handlers_file, "Handlers YAML file for the worker");
  sup->add_option("--drain-timeout", flags->drain_timeout, "How long a draining worker may finish");
  sup->add_option("--lease-ttl", flags->lease_ttl, "Owner lease TTL");
  sup->add_option("--lease-renew", flags->lease_renew, "Owner lease renewal interval");
  sup->add_option("--wedge-time", flags->wedge_time,
                  "Restart the worker when work waits and nothing finished for this long");
  sup->add_option("--wedge-check-every", flags->wedge_check, "Wedge check interval");
  auto* status = sup->add_subcommand("status", "Is the supervisor running, and who owns the queue");
  auto* stop = sup->add_subcommand("stop", "Stop the supervisor; returns once its worker is gone");
  stop->add_option("--timeout", flags->stop_timeout, "Give up waiting after this long");
  sup->require_subcommand(0, 1);

  status->callback([flags, &global, &exit_code] {
    std::string pid_file = flags->options.pid_file.empty()
                               ? DefaultSupervisorPidFile(global.queue)
                               : flags->options.pid_file;
    exit_code = ShowStatus(global, pid_file);
  });
  stop->callback([flags, &global, &exit_code] {
    std::string pid_file = flags->options.pid_file.empty()
                               ? DefaultSupervisorPidFile(global.queue)
                               : flags->options.pid_file;
    Millis timeout;
    if (!ParseDurationFlag("--timeout", flags->stop_timeout, timeout)) {
      exit_code = kExitUsage;
      return;
    }
    exit_code = StopSupervisor(global, pid_file, timeout);
  });
  sup->callback([sup, flags, &global, &exit_code] {
    if (!sup->get_subcommands().empty()) return;
    SupervisorOptions o = flags->options;
    if (o.max_rss_mb != 0 && o.max_rss_mb < 256) {
      std::cerr << "lanekeeper: --max-rss " << o.max_rss_mb
                << " looks like a GB/MB mix-up: the value is in MB; use 0 to disable or at "
                   "least 256\n";
      exit_code = kExitUsage;
      return;
    }
    if (o.max_rss_mb < 0) {
      std::cerr << "lanekeeper: --max-rss must be 0 or more\n";
      exit_code = kExitUsage;
      return;
    }
    if (!ParseDurationFlag("--drain-timeout", flags->drain_timeout, o.drain_timeout) ||
        !ParseDurationFlag("--lease-ttl", flags->lease_ttl, o.lease_ttl) ||
        !ParseDurationFlag("--lease-renew", flags->lease_renew, o.lease_renew_every) ||
        !ParseDurationFlag("--wedge-time", flags->wedge_time, o.wedge_time) ||
        !ParseDurationFlag("--wedge-check-every", flags->wedge_check, o.wedge_check_every) ||
        !ParseDurationFlag("--restart-backoff-max", flags->restart_backoff_max,
                           o.restart_backoff_max)) {
      exit_code = kExitUsage;
      return;
    }
    if (o.restart_backoff_max < Millis(100)) {
      std::cerr << "lanekeeper: --restart-backoff-max must be at least 100ms (a crashing worker "
                   "would be restarted in a tight loop)\n";
      exit_code = kExitUsage;
      return;
    }
    if (o.lease_renew_every * 2 > o.lease_ttl) {
      std::cerr << "lanekeeper: --lease-renew must be at most half of --lease-ttl\n";
      exit_code = kExitUsage;
      return;
    }
    o.redis_url = global.redis_url;
    o.redis_replicas = global.redis_replicas;
    o.queue = global.queue;
    o.log_format = global.log_format;
    o.log_level = global.log_level;
    exit_code = RunSupervisor(o);
  });
}

}  // namespace lk::cmd
