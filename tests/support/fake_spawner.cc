#include "tests/support/fake_spawner.h"

#include <signal.h>

namespace lk::testing {

namespace {

class FakeProcess final : public ProcessHandle {
 public:
  FakeProcess(FakeSpawner& spawner, pid_t pid, bool adopted)
      : spawner_(spawner), pid_(pid), adopted_(adopted) {}
  pid_t pid() const override { return pid_; }
  uint64_t start_ticks() const override { return spawner_.processes.at(pid_).start_ticks; }
  bool adopted() const override { return adopted_; }
  int wait_fd() const override { return -1; }
  std::optional<ProcessExit> Poll() override {
    auto& p = spawner_.processes.at(pid_);
    if (p.alive) return std::nullopt;
    return adopted_ ? ProcessExit::Unknown() : *p.exit;
  }
  void Signal(int sig) override {
    auto& p = spawner_.processes.at(pid_);
    if (!p.alive) return;
    p.signals.push_back(sig);
    if (sig == SIGTERM && spawner_.exit_on_term) spawner_.Exit(pid_, ProcessExit{0, false, 0, true});
  }
  void KillGroup() override {
    auto& p = spawner_.processes.at(pid_);
    if (!p.alive) return;
    p.signals.push_back(SIGKILL);
    spawner_.Exit(pid_, ProcessExit{128 + SIGKILL, true, SIGKILL, true});
  }

 private:
  FakeSpawner& spawner_;
  pid_t pid_;
  bool adopted_;
};

}  // namespace

StatusOr<std::unique_ptr<ProcessHandle>> FakeSpawner::Spawn(
    const std::vector<std::string>& argv, const std::map<std::string, std::string>& env) {
  if (fail_spawn) {
    Status s = *fail_spawn;
    fail_spawn.reset();
    return s;
  }
  pid_t pid = next_pid_++;
  processes[pid] = State{true, static_cast<uint64_t>(pid) * 7, std::nullopt, {}};
  spawned.push_back({pid, argv, env});
  return std::unique_ptr<ProcessHandle>(new FakeProcess(*this, pid, false));
}

StatusOr<std::unique_ptr<ProcessHandle>> FakeSpawner::Adopt(pid_t pid, uint64_t start_ticks) {
  auto it = processes.find(pid);
  if (it == processes.end() || !it->second.alive || it->second.start_ticks != start_ticks) {
    return Status::NotFound("process " + std::to_string(pid) + " is gone");
  }
  return std::unique_ptr<ProcessHandle>(new FakeProcess(*this, pid, true));
}

void FakeSpawner::Exit(pid_t pid, ProcessExit exit) {
  auto& p = processes.at(pid);
  p.alive = false;
  p.exit = exit;
}

bool FakeSpawner::Alive(pid_t pid) const {
  auto it = processes.find(pid);
  return it != processes.end() && it->second.alive;
}

std::vector<int> FakeSpawner::Signals(pid_t pid) const {
  auto it = processes.find(pid);
  return it == processes.end() ? std::vector<int>{} : it->second.signals;
}

void FakeSpawner::Preexisting(pid_t pid, uint64_t start_ticks) {
  processes[pid] = State{true, start_ticks, std::nullopt, {}};
}

}  // namespace lk::testing
