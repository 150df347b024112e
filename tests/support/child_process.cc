#include "tests/support/child_process.h"

#include <dirent.h>
#include <fcntl.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <mutex>
#include <set>
#include <sstream>

#include "controller/process/process_spawner.h"
#include "tests/support/temp_dir.h"

extern char** environ;

namespace lk::testing {

namespace {

constexpr char kMarkerVariable[] = "LK_TEST_MARKER";

std::string ReadFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// ---- the test marker ----------------------------------------------------------------------

struct MarkerState {
  std::mutex mu;
  std::string process;  // "PID.START": this test process
  int test = 0;         // the running test's number in it
};

MarkerState& Marker() {
  static MarkerState* state = [] {
    auto* s = new MarkerState;
    s->process = std::to_string(getpid()) + "." +
                 std::to_string(ProcessStartTicks(getpid()).value_or(0));
    return s;
  }();
  return *state;
}

// The LK_TEST_MARKER value in pid's environment; empty when it has none or is gone.
std::string MarkerOf(pid_t pid) {
  std::string env = ReadFile("/proc/" + std::to_string(pid) + "/environ");
  const std::string key = std::string(kMarkerVariable) + "=";
  for (size_t at = 0; at < env.size();) {
    size_t end = env.find('\0', at);
    if (end == std::string::npos) end = env.size();
    if (env.compare(at, key.size(), key) == 0) {
      return env.substr(at + key.size(), end - at - key.size());
    }
    at = end + 1;
  }
  return "";
}

// Whether the test process a marker names ("PID.START.N") is gone. A marker that does not
// say (not ours, or a start time that could not be read) is never taken for gone.
bool OwnerGone(const std::string& marker) {
  pid_t pid = static_cast<pid_t>(std::atoi(marker.c_str()));
  size_t dot = marker.find('.');
  if (pid <= 0 || dot == std::string::npos) return false;
  uint64_t start = std::strtoull(marker.c_str() + dot + 1, nullptr, 10);
  if (start == 0) return false;
  auto ticks = ProcessStartTicks(pid);
  return !ticks || *ticks != start;
}

// SIGKILLs the live processes whose marker satisfies doomed, until none is left (one may
// fork while we look); returns how many were killed.
template <typename Doomed>
int KillMarked(Doomed doomed) {
  std::set<pid_t> killed;
  for (int round = 0; round < 20; ++round) {
    int found = 0;
    std::error_code ec;
    for (std::filesystem::directory_iterator it("/proc", ec), end; !ec && it != end;
         it.increment(ec)) {
      pid_t pid = static_cast<pid_t>(std::atoi(it->path().filename().c_str()));
      if (pid <= 1 || pid == getpid()) continue;
      std::string marker = MarkerOf(pid);  // empty once it is a zombie
      if (marker.empty() || !doomed(marker)) continue;
      ++found;
      if (SignalProcess(pid, SIGKILL)) killed.insert(pid);
    }
    if (found == 0) break;
    usleep(5'000);
  }
  return static_cast<int>(killed.size());
}

// Kills what the test left running when it ends, and what dead test processes left running
// when the next test starts.
class ProcessSweeper : public ::testing::EmptyTestEventListener {
  void OnTestStart(const ::testing::TestInfo&) override {
    {
      std::lock_guard<std::mutex> lock(Marker().mu);
      ++Marker().test;
    }
    int n = KillProcessesOfGoneTests();
    if (n > 0) std::cerr << "[harness] killed " << n << " process(es) of dead test processes\n";
  }
  void OnTestEnd(const ::testing::TestInfo&) override {
    int n = KillProcessesOfThisTest();
    if (n > 0) std::cerr << "[harness] killed " << n << " process(es) the test left running\n";
  }
};

const bool kSweeperInstalled = [] {
  ::testing::UnitTest::GetInstance()->listeners().Append(new ProcessSweeper);
  return true;
}();

// A child the test's main thread forks is SIGKILLed when the test process dies.
// PR_SET_PDEATHSIG fires when the forking *thread* ends, so a child forked by another thread
// is not tied this way. Take the origin before fork(); call ApplyInChild in the child.
struct ForkOrigin {
  bool main_thread;
  pid_t parent;
  static ForkOrigin Here() { return ForkOrigin{::gettid() == ::getpid(), ::getpid()}; }
  void ApplyInChild() const {
    if (!main_thread) return;
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (::getppid() != parent) _exit(127);  // the test process died before prctl
  }
};

int DecodeExit(const siginfo_t& info) {
  if (info.si_code == CLD_EXITED) return info.si_status;
  return 128 + info.si_status;  // CLD_KILLED, CLD_DUMPED
}

}  // namespace

const std::string& TestMarker() {
  static thread_local std::string marker;
  std::lock_guard<std::mutex> lock(Marker().mu);
  marker = Marker().process + "." + std::to_string(Marker().test);
  return marker;
}

int KillProcessesOfGoneTests() {
  return KillMarked([](const std::string& marker) { return OwnerGone(marker); });
}

int KillProcessesOfThisTest() {
  const std::string mine = TestMarker();
  return KillMarked([&](const std::string& marker) { return marker == mine; });
}

std::string LanekeeperBinary() { return LANEKEEPER_BIN; }
std::string TestHelperBinary(const std::string& name) {
  return std::string(LK_TEST_HELPER_DIR) + "/" + name;
}

ChildProcess::ChildProcess(std::vector<std::string> argv, std::vector<std::string> env,
                           ProcessCalls& calls)
    : calls_(calls) {
  std::string what = argv.empty() ? "(empty argv)" : argv[0];
  Status s = Launch(std::move(argv), env);
  if (!s.ok()) ADD_FAILURE() << "cannot start " << what << ": " << s.message();
}

StatusOr<std::unique_ptr<ChildProcess>> ChildProcess::Start(std::vector<std::string> argv,
                                                            std::vector<std::string> env) {
  std::unique_ptr<ChildProcess> child(new ChildProcess(ProcessCalls::Real()));
  std::string what = argv.empty() ? "(empty argv)" : argv[0];
  Status s = child->Launch(std::move(argv), env);
  if (!s.ok()) return Status::Internal("cannot start " + what + ": " + s.message());
  return child;
}

// Everything the child needs is prepared before fork(): between fork and exec a child of a
// multi-threaded process may only make async-signal-safe calls (no malloc). The child reports
// a failed setpgid, dup2 or exec through a close-on-exec pipe: the parent reads nothing when
// exec succeeded.
Status ChildProcess::Launch(std::vector<std::string> argv, const std::vector<std::string>& env) {
  if (argv.empty()) return Status::InvalidArgument("empty argv");
  auto dir = TempDir::Create("child");
  if (!dir.ok()) return dir.status();
  dir_ = *dir;

  std::vector<std::string> envs;
  auto overridden = [&](const std::string& kv) {
    std::string key = kv.substr(0, kv.find('='));
    if (key == kMarkerVariable) return true;
    for (const auto& o : env) {
      if (o.substr(0, o.find('=')) == key) return true;
    }
    return false;
  };
  for (char** e = environ; *e; ++e) {
    if (!overridden(*e)) envs.emplace_back(*e);
  }
  envs.insert(envs.end(), env.begin(), env.end());
  envs.push_back(std::string(kMarkerVariable) + "=" + TestMarker());
  std::vector<char*> av, ev;
  for (auto& a : argv) av.push_back(a.data());
  av.push_back(nullptr);
  for (auto& v : envs) ev.push_back(v.data());
  ev.push_back(nullptr);

  auto fail = [](const std::string& what) {
    return Status::Internal(what + ": " + std::strerror(errno));
  };
  const std::string out = dir_ + "/stdout", err = dir_ + "/stderr";
  int in_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
  int out_fd = open(out.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  int err_fd = open(err.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  int report[2] = {-1, -1};
  Status s = Status::OK();
  if (in_fd < 0) s = fail("open /dev/null");
  else if (out_fd < 0) s = fail("open " + out);
  else if (err_fd < 0) s = fail("open " + err);
  else if (pipe2(report, O_CLOEXEC) != 0) s = fail("pipe2");
  pid_t pid = -1;
  if (s.ok()) {
    const ForkOrigin origin = ForkOrigin::Here();
    pid = calls_.Fork();
    if (pid < 0) {
      s = fail("fork");
    } else if (pid == 0) {
      origin.ApplyInChild();
      const char* stage = "setpgid";
      bool ok = setpgid(0, 0) == 0;
      if (ok) {
        stage = "dup2";
        ok = dup2(in_fd, 0) == 0 && dup2(out_fd, 1) == 1 && dup2(err_fd, 2) == 2;
      }
      if (ok) {
        stage = "exec";
        execvpe(av[0], av.data(), ev.data());
      }
      int code = errno;
      (void)!write(report[1], stage, std::strlen(stage) + 1);
      (void)!write(report[1], &code, sizeof(code));
      _exit(127);
    }
  }
  for (int fd : {in_fd, out_fd, err_fd, report[1]}) {
    if (fd >= 0) close(fd);
  }
  if (pid > 0) {
    char buf[64] = {0};
    ssize_t n, got = 0;
    while ((n = read(report[0], buf + got, sizeof(buf) - 1 - got)) > 0 ||
           (n < 0 && errno == EINTR)) {
      if (n > 0) got += n;
    }
    if (got == 0) {
      pid_ = pid;
    } else {
      int code = 0;
      size_t stage_len = std::strlen(buf) + 1;
      if (static_cast<size_t>(got) >= stage_len + sizeof(code)) {
        std::memcpy(&code, buf + stage_len, sizeof(code));
      }
      waitpid(pid, nullptr, 0);
      s = Status::Internal(std::string(buf) + " " + argv[0] + ": " + std::strerror(code));
    }
  }
  if (report[0] >= 0) close(report[0]);
  return s;
}

ChildProcess::~ChildProcess() {
  if (pid_ > 0 && !reaped_) {
    SignalProcess(pid_, SIGKILL, calls_);
    Running();  // waits for nothing: it only sees the exit, kills the group and reaps
    if (!reaped_) {
      SignalProcessGroup(pid_, SIGKILL, calls_);
      while (waitpid(pid_, nullptr, 0) < 0 && errno == EINTR) {
      }
    }
  }
  if (!dir_.empty()) {
    std::error_code ec;
    std::filesystem::remove_all(dir_, ec);
  }
}

bool ChildProcess::Signal(int sig) {
  return Running() && SignalProcess(pid_, sig, calls_);
}

bool ChildProcess::SignalGroup(int sig) {
  return started() && !reaped_ && SignalProcessGroup(pid_, sig, calls_);
}

bool ChildProcess::Running() {
  if (!started() || reaped_) return false;
  siginfo_t info{};
  // WNOWAIT: peek. While the child is a zombie its pid, and so its group id, belongs to no
  // other process: what it left in its group is killed first, and only then is it reaped.
  if (waitid(P_PID, pid_, &info, WEXITED | WNOHANG | WNOWAIT) != 0) {
    // ECHILD: something else in this process reaped it; its pid may belong to another
    // process by now, so it is never signalled again.
    ADD_FAILURE() << "waitid " << pid_ << ": " << std::strerror(errno);
    reaped_ = true;
    exit_code_ = -1;
    return false;
  }
  if (info.si_pid == 0) return true;
  exit_code_ = DecodeExit(info);
  SignalProcessGroup(pid_, SIGKILL, calls_);
  while (waitpid(pid_, nullptr, 0) < 0 && errno == EINTR) {
  }
  reaped_ = true;
  return false;
}

std::optional<int> ChildProcess::Wait(std::chrono::milliseconds timeout) {
  Eventually([&] { return !Running(); }, timeout);
  return exit_code_;
}

std::string ChildProcess::Stdout() const { return dir_.empty() ? "" : ReadFile(dir_ + "/stdout"); }
std::string ChildProcess::Stderr() const { return dir_.empty() ? "" : ReadFile(dir_ + "/stderr"); }

bool ChildProcess::WaitForOutput(const std::string& text, std::chrono::milliseconds timeout) {
  return Eventually(
      [&] { return Stdout().find(text) != std::string::npos ||
                   Stderr().find(text) != std::string::npos; },
      timeout);
}

CommandResult Run(std::vector<std::string> argv, std::vector<std::string> env,
                  std::chrono::milliseconds timeout, const std::string& stdin_text) {
  CommandResult result;
  TempDir dir("run");
  if (!dir.ok()) return result;
  {
    std::ofstream in(dir / "stdin");
    in << stdin_text;
    if (!in) {
      ADD_FAILURE() << "cannot write " << (dir / "stdin");
      return result;
    }
  }
  std::vector<std::string> wrapped = {"/bin/sh", "-c", "exec \"$@\" < \"$0\"", dir / "stdin"};
  wrapped.insert(wrapped.end(), argv.begin(), argv.end());
  ChildProcess child(wrapped, env);
  auto code = child.Wait(timeout);
  result.exit_code = code.value_or(-1);
  result.out = child.Stdout();
  result.err = child.Stderr();
  return result;
}

CommandResult RunLanekeeper(std::vector<std::string> args, std::vector<std::string> env,
                            std::chrono::milliseconds timeout) {
  args.insert(args.begin(), LanekeeperBinary());
  return Run(std::move(args), std::move(env), timeout);
}

std::vector<pid_t> ChildPids(pid_t pid) {
  std::vector<pid_t> out;
  DIR* d = opendir("/proc");
  if (!d) {
    ADD_FAILURE() << "opendir /proc: " << std::strerror(errno);
    return out;
  }
  while (dirent* e = readdir(d)) {
    pid_t p = std::atoi(e->d_name);
    if (p <= 0) continue;
    std::string stat = ReadFile("/proc/" + std::string(e->d_name) + "/stat");
    auto close_paren = stat.rfind(')');
    if (close_paren == std::string::npos) continue;
    std::istringstream rest(stat.substr(close_paren + 2));
    char state;
    pid_t ppid;
    rest >> state >> ppid;
    if (ppid == pid && state != 'Z') out.push_back(p);
  }
  closedir(d);
  return out;
}

bool ProcessAlive(pid_t pid) {
  if (pid <= 0) return false;
  std::string stat = ReadFile("/proc/" + std::to_string(pid) + "/stat");
  if (stat.empty()) return false;
  auto close_paren = stat.rfind(')');
  return close_paren != std::string::npos && stat[close_paren + 2] != 'Z';
}

}  // namespace lk::testing
