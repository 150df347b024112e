// FakeSpawner: a ProcessSpawner (controller/process/process_spawner.h) that starts nothing.
// Each "process" has a pid from 100000 up and lives until the test ends it with Exit();
// signals are recorded, and SIGTERM ends it at once when exit_on_term is set. For tests of
// what decides about processes (the process backend, the owned worker) without processes.
#pragma once

#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "controller/process/process_spawner.h"

namespace lk::testing {

class FakeSpawner final : public ProcessSpawner {
 public:
  struct Spawned {
    pid_t pid = 0;
    std::vector<std::string> argv;
    std::map<std::string, std::string> env;
  };

  StatusOr<std::unique_ptr<ProcessHandle>> Spawn(
      const std::vector<std::string>& argv,
      const std::map<std::string, std::string>& env) override;
  StatusOr<std::unique_ptr<ProcessHandle>> Adopt(pid_t pid, uint64_t start_ticks) override;

  // Ends pid with exit (a crash: {1}, killed: {137, true, 9}).
  void Exit(pid_t pid, ProcessExit exit = ProcessExit{1, false, 0, true});
  bool Alive(pid_t pid) const;
  // Signals pid received, in order (SIGKILL of its group counts as SIGKILL).
  std::vector<int> Signals(pid_t pid) const;
  // A process that outlives the test's spawner (for adoption): alive with these ticks.
  void Preexisting(pid_t pid, uint64_t start_ticks);

  std::vector<Spawned> spawned;
  bool exit_on_term = false;         // SIGTERM ends the process (exit code 0)
  std::optional<Status> fail_spawn;  // the next Spawn fails with it

  struct State {
    bool alive = true;
    uint64_t start_ticks = 0;
    std::optional<ProcessExit> exit;
    std::vector<int> signals;
  };
  std::map<pid_t, State> processes;

 private:
  pid_t next_pid_ = 100000;
};

}  // namespace lk::testing
