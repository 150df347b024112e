#include "tests/support/child_process.h"

#include <dirent.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/wait.h>
#include <sys/prctl.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <thread>

extern char** environ;

namespace lk::testing {

namespace {

std::string ReadFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

int DecodeStatus(int status) {
  if (WIFEXITED(status)) return WEXITSTATUS(status);
  if (WIFSIGNALED(status)) return 128 + WTERMSIG(status);
  return -1;
}

}  // namespace

ForkOrigin ForkOrigin::Here() { return ForkOrigin{::gettid() == ::getpid(), ::getpid()}; }

void ForkOrigin::ApplyInChild() const {
  if (!main_thread) return;
  prctl(PR_SET_PDEATHSIG, SIGKILL);
  if (::getppid() != parent) _exit(127);  // the test process died before prctl
}

std::string LanekeeperBinary() { return LANEKEEPER_BIN; }
std::string TestHelperBinary(const std::string& name) {
  return std::string(LK_TEST_HELPER_DIR) + "/" + name;
}

ChildProcess::ChildProcess(std::vector<std::string> argv, std::vector<std::string> env) {
  char tmpl[] = "/tmp/lk-child-XXXXXX";
  dir_ = mkdtemp(tmpl);
  std::string out = dir_ + "/stdout", err = dir_ + "/stderr";
  std::vector<std::string> envs;
  for (char** e = environ; *e; ++e) {
    std::string kv = *e;
    std::string key = kv.substr(0, kv.find('='));
    bool overridden = false;
    for (const auto& o : env) overridden |= o.substr(0, o.find('=')) == key;
    if (!overridden) envs.push_back(kv);
  }
  envs.insert(envs.end(), env.begin(), env.end());
  const ForkOrigin origin = ForkOrigin::Here();
  pid_ = fork();
  if (pid_ == 0) {
    origin.ApplyInChild();
    int in = open("/dev/null", O_RDONLY);
    int o = open(out.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    int e = open(err.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    dup2(in, 0);
    dup2(o, 1);
    dup2(e, 2);
    std::vector<char*> av, ev;
    for (auto& a : argv) av.push_back(a.data());
    av.push_back(nullptr);
    for (auto& v : envs) ev.push_back(v.data());
    ev.push_back(nullptr);
    execvpe(av[0], av.data(), ev.data());
    _exit(127);
  }
}

ChildProcess::~ChildProcess() {
  if (Running()) {
    kill(pid_, SIGKILL);
    waitpid(pid_, nullptr, 0);
  }
  std::error_code ec;
  std::filesystem::remove_all(dir_, ec);
}

bool ChildProcess::Signal(int sig) { return !exit_code_ && kill(pid_, sig) == 0; }

bool ChildProcess::Running() {
  if (exit_code_) return false;
  int status;
  if (waitpid(pid_, &status, WNOHANG) == pid_) {
    exit_code_ = DecodeStatus(status);
    return false;
  }
  return true;
}

std::optional<int> ChildProcess::Wait(std::chrono::milliseconds timeout) {
  Eventually([&] { return !Running(); }, timeout);
  return exit_code_;
}

std::string ChildProcess::Stdout() const { return ReadFile(dir_ + "/stdout"); }
std::string ChildProcess::Stderr() const { return ReadFile(dir_ + "/stderr"); }

bool ChildProcess::WaitForOutput(const std::string& text, std::chrono::milliseconds timeout) {
  return Eventually(
      [&] { return Stdout().find(text) != std::string::npos ||
                   Stderr().find(text) != std::string::npos; },
      timeout);
}

CommandResult Run(std::vector<std::string> argv, std::vector<std::string> env,
                  std::chrono::milliseconds timeout, const std::string& stdin_text) {
  char tmpl[] = "/tmp/lk-run-XXXXXX";
  std::string dir = mkdtemp(tmpl);
  {
    std::ofstream(dir + "/stdin") << stdin_text;
  }
  std::vector<std::string> wrapped = {"/bin/sh", "-c", "exec \"$@\" < \"$0\"", dir + "/stdin"};
  wrapped.insert(wrapped.end(), argv.begin(), argv.end());
  CommandResult result;
  {
    ChildProcess child(wrapped, env);
    auto code = child.Wait(timeout);
    result.exit_code = code.value_or(-1);
    if (!code) child.Signal(SIGKILL);
    result.out = child.Stdout();
    result.err = child.Stderr();
  }
  std::error_code ec;
  std::filesystem::remove_all(dir, ec);
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
  if (!d) return out;
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
  std::string stat = ReadFile("/proc/" + std::to_string(pid) + "/stat");
  if (stat.empty()) return false;
  auto close_paren = stat.rfind(')');
  return close_paren != std::string::npos && stat[close_paren + 2] != 'Z';
}

}  // namespace lk::testing
