// The chaos soak's job handler: it does a little work and, on completion, appends one line
// to the run's record saying which claim ran it, so that the soak counts runs, duplicates
// and claims from what happened rather than from the queue's final state:
//
//   done SEQ ID ATTEMPT TOKEN EPOCH PID WORKER OWNER START_MS END_MS
//
//   SEQ     the producer's sequence number, from the payload {"n": SEQ} (job ids may be
//           reused when Redis loses writes; SEQ never is)
//   TOKEN   the claim token read back from Redis at start (claim:<id>, "<attempt>:
//           <claimed_ms>:<claimseq>.<id>": Redis's clock when the claim was accepted), or
//           "-" when it could not be read (Redis away for 2 s, or the claim already gone)
//   EPOCH   the owner epoch the worker runs under: its --epoch; for a worker without one,
//           the owner lease's epoch if the worker holds the lease itself (read at start);
//           else 0 (an unfenced worker)
//   WORKER  the worker that ran it (our parent; 1 when the worker was killed before we
//           started); OWNER the worker's parent (its supervisor or autopilot)
// The line is one write(2) to a file opened with O_APPEND: lines never interleave, and a
// failover of the queue's Redis cannot take the record with it.
//
// Usage: chaos_job RECORD REDIS_URL [--ms N]; the env is the worker's (LANEKEEPER_JOB_ID,
// LANEKEEPER_JOB_ATTEMPT, LANEKEEPER_QUEUE). It exits 0 unless the record cannot be written
// or there is no payload (its worker died first): a run that could not read its token
// still ran.
#include <fcntl.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <iostream>
#include <iterator>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "worker/job_queue.h"
#include "worker/redis_connection.h"

namespace lk::chaos_job {

long long NowMs() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

std::string Env(const char* name) {
  const char* v = std::getenv(name);
  return v == nullptr ? "" : v;
}

std::vector<std::string> ArgsOf(pid_t pid) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/cmdline", std::ios::binary);
  std::string all((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  std::vector<std::string> args;
  std::string arg;
  for (char c : all) {
    if (c == '\0') {
      args.push_back(arg);
      arg.clear();
    } else {
      arg += c;
    }
  }
  return args;
}

std::string EpochOf(pid_t worker) {
  auto args = ArgsOf(worker);
  for (size_t i = 0; i + 1 < args.size(); ++i) {
    if (args[i] == "--epoch") return args[i + 1];
    if (args[i].rfind("--epoch=", 0) == 0) return args[i].substr(8);
  }
  return "0";
}

pid_t ParentOf(pid_t pid) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/stat");
  std::string stat((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  // pid (comm) state ppid ...: comm may hold spaces, so read after the last ')'.
  auto close = stat.rfind(')');
  if (close == std::string::npos) return 0;
  std::istringstream rest(stat.substr(close + 1));
  std::string state;
  pid_t ppid = 0;
  rest >> state >> ppid;
  return ppid;
}

// What the handler reads back from Redis at start.
struct ClaimSeen {
  std::string token = "-";
  std::string lease_epoch = "0";  // the owner lease's epoch when the worker holds it itself
};

// The claim's token ("-" when it is gone or belongs to another attempt) and, for a worker
// that holds the owner lease itself (a hand-started `jobs work` that takes the lease), the
// lease's epoch: a few tries over 2 s, for a Redis that is restarting.
ClaimSeen ReadClaim(const std::string& url, const std::string& queue, const std::string& id,
                    const std::string& attempt, pid_t worker) {
  ClaimSeen seen;
  auto endpoint = ParseRedisUrl(url);
  if (!endpoint.ok()) return seen;
  const std::string prefix = JobQueue::KeyPrefix(queue);
  for (int i = 0; i < 8; ++i) {
    if (i > 0) std::this_thread::sleep_for(std::chrono::milliseconds(250));
    auto conn = RedisConnection::Connect(*endpoint, std::chrono::milliseconds(500));
    if (!conn.ok()) continue;
    auto claim = (*conn)->Command({"GET", prefix + "claim:" + id});
    auto owner = (*conn)->Command({"HMGET", prefix + "owner", "holder", "epoch"});
    if (!claim.ok() || claim->is_error() || !owner.ok() || owner->is_error()) continue;
    // "<attempt>:..." and possibly " cancelled" after it.
    std::string token = claim->is_nil() ? "-" : claim->str.substr(0, claim->str.find(' '));
    if (token.rfind(attempt + ":", 0) == 0) seen.token = token;
    const std::string me = ":" + std::to_string(worker);
    if (owner->elements.size() == 2 && owner->elements[0].str.size() > me.size() &&
        owner->elements[0].str.compare(owner->elements[0].str.size() - me.size(), me.size(),
                                       me) == 0) {
      seen.lease_epoch = owner->elements[1].str;
    }
    return seen;
  }
  return seen;
}

std::string SeqOf(const std::string& payload) {
  auto at = payload.find("\"n\"");
  if (at == std::string::npos) return "-";
  at = payload.find(':', at);
  if (at == std::string::npos) return "-";
  return std::to_string(std::strtoll(payload.c_str() + at + 1, nullptr, 10));
}

int Main(int argc, char** argv) {
  if (argc < 3) {
    std::cerr << "usage: chaos_job RECORD REDIS_URL [--ms N]\n";
    return 2;
  }
  // First: once the worker is gone (SIGKILLed while starting us) our parent is init.
  const pid_t worker = getppid();
  long long start_ms = NowMs();
  const std::string record = argv[1], url = argv[2];
  long ms = argc >= 5 && std::string(argv[3]) == "--ms" ? std::atol(argv[4]) : 0;
  std::string payload((std::istreambuf_iterator<char>(std::cin)), std::istreambuf_iterator<char>());
  const std::string id = Env("LANEKEEPER_JOB_ID"), attempt = Env("LANEKEEPER_JOB_ATTEMPT");
  const std::string seq = SeqOf(payload);
  // The worker died before it handed over the payload: this run has nothing to do.
  if (seq == "-") return 1;
  ClaimSeen seen = ReadClaim(url, Env("LANEKEEPER_QUEUE"), id, attempt, worker);
  std::string epoch = EpochOf(worker);
  if (epoch == "0") epoch = seen.lease_epoch;
  pid_t owner = ParentOf(worker);
  std::this_thread::sleep_for(std::chrono::milliseconds(ms));

  char line[512];
  int n = std::snprintf(line, sizeof(line), "done %s %s %s %s %s %d %d %d %lld %lld\n",
                        seq.c_str(), id.c_str(), attempt.c_str(), seen.token.c_str(),
                        epoch.c_str(), static_cast<int>(getpid()), static_cast<int>(worker),
                        static_cast<int>(owner), start_ms, NowMs());
  int fd = open(record.c_str(), O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0644);
  if (fd < 0 || write(fd, line, n) != n) {
    std::perror(record.c_str());
    return 1;
  }
  close(fd);
  return 0;
}

}  // namespace lk::chaos_job

int main(int argc, char** argv) { return lk::chaos_job::Main(argc, argv); }
