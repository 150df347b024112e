// docs/queue.md: "The queue needs Redis 6.0 or later ... it uses no command newer than that,
// and lists finished jobs with ZREVRANGE, not ZRANGE … REV, which came with 6.2". Only a
// Redis 7 is installed, so the promise is checked on what is sent: redis-cli MONITOR records
// every command of a whole lane's life — jobs commands, a worker under a supervisor, an
// autopilot, doctor — those its Lua scripts call included, and none may be a command or an
// option that Redis 6.0 lacks.
#include <gtest/gtest.h>

#include <signal.h>

#include <chrono>
#include <filesystem>
#include <map>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include "tests/support/child_process.h"
#include "tests/support/redis_server.h"
#include "worker/job_queue.h"

namespace lk {
namespace redis_commands_test {

using std::chrono::milliseconds;
using testing::Eventually;
using testing::RunLanekeeper;

constexpr auto kSlack = std::chrono::seconds(30);

// One MONITOR line's command and arguments, upper-cased command: `1700000000.1 [0 lua] "ZRANGE" "k" "0"`.
std::vector<std::string> ParseMonitorLine(const std::string& line) {
  std::vector<std::string> words;
  size_t i = line.find("] ");
  if (i == std::string::npos) return words;
  for (i += 2; i < line.size();) {
    if (line[i] != '"') { ++i; continue; }
    std::string word;
    for (++i; i < line.size() && line[i] != '"'; ++i) {
      if (line[i] == '\\' && i + 1 < line.size()) ++i;
      word += line[i];
    }
    ++i;
    words.push_back(word);
  }
  if (!words.empty()) {
    for (char& c : words[0]) c = static_cast<char>(toupper(static_cast<unsigned char>(c)));
  }
  return words;
}

bool HasWord(const std::vector<std::string>& argv, size_t from, const std::set<std::string>& any) {
  for (size_t i = from; i < argv.size(); ++i) {
    std::string w = argv[i];
    for (char& c : w) c = static_cast<char>(toupper(static_cast<unsigned char>(c)));
    if (any.count(w)) return true;
  }
  return false;
}

// Why argv would fail on Redis 6.0, or "" when it would not.
std::string NewerThanSix(const std::vector<std::string>& argv) {
  static const std::set<std::string> kNewCommands = {
      // 6.2
      "GETDEL", "GETEX", "LMOVE", "BLMOVE", "ZRANGESTORE", "COPY", "ZUNION", "ZINTER", "ZDIFF",
      "ZDIFFSTORE", "ZRANDMEMBER", "HRANDFIELD", "SMISMEMBER", "ZMSCORE", "XAUTOCLAIM", "RESET",
      "FAILOVER", "GEOSEARCH", "GEOSEARCHSTORE",
      // 7.0
      "EXPIRETIME", "PEXPIRETIME", "LMPOP", "BLMPOP", "ZMPOP", "BZMPOP", "SINTERCARD",
      "ZINTERCARD", "FUNCTION", "FCALL", "FCALL_RO", "EVAL_RO", "EVALSHA_RO", "SORT_RO",
      "SPUBLISH", "SSUBSCRIBE", "SUNSUBSCRIBE"};
  const std::string& cmd = argv[0];
  if (kNewCommands.count(cmd)) return cmd + " came after 6.0";
  if (cmd == "ZRANGE" && HasWord(argv, 4, {"REV", "BYSCORE", "BYLEX", "LIMIT"})) {
    return "ZRANGE with REV, BYSCORE, BYLEX or LIMIT came with 6.2";
  }
  if (cmd == "SET" && HasWord(argv, 3, {"GET", "EXAT", "PXAT"})) return "SET GET/EXAT/PXAT: 6.2";
  if (cmd == "ZADD" && HasWord(argv, 2, {"GT", "LT"})) return "ZADD GT/LT: 6.2";
  if ((cmd == "XADD" || cmd == "XTRIM") && HasWord(argv, 2, {"MINID", "LIMIT", "NOMKSTREAM"})) {
    return cmd + " MINID/LIMIT/NOMKSTREAM: 6.2";
  }
  if ((cmd == "LPOP" || cmd == "RPOP") && argv.size() > 2) return cmd + " with a count: 6.2";
  if ((cmd == "EXPIRE" || cmd == "PEXPIRE") && HasWord(argv, 3, {"NX", "XX", "GT", "LT"})) {
    return cmd + " NX/XX/GT/LT: 7.0";
  }
  if (cmd == "INFO" && argv.size() > 2) return "INFO with several sections: 7.0";
  return "";
}

TEST(RedisCommands, EveryCommandOfALanesLifeExistsInRedis6) {
  auto server = testing::RedisServer::Start();
  ASSERT_TRUE(server.ok()) << server.status().ToString();
  const std::string url = (*server)->url();
  const std::string dir = (*server)->dir();
  testing::ChildProcess monitor({"redis-cli", "-p", std::to_string((*server)->port()), "MONITOR"});
  ASSERT_TRUE(monitor.WaitForOutput("OK", milliseconds(10'000))) << monitor.Stderr();

  auto lk = [&](std::vector<std::string> args) {
    std::vector<std::string> all = {"--redis", url, "--queue", "q"};
    all.insert(all.end(), args.begin(), args.end());
    return RunLanekeeper(all);
  };
  ASSERT_EQ(lk({"jobs", "submit", "noop"}).exit_code, 0);
  ASSERT_EQ(lk({"jobs", "submit", "noop", "--idempotency-key", "k"}).exit_code, 0);
  ASSERT_EQ(lk({"jobs", "submit", "noop", "--idempotency-key", "k"}).exit_code, 0);
  ASSERT_EQ(lk({"jobs", "submit", "fail", "--max-attempts", "1"}).exit_code, 0);
  ASSERT_EQ(lk({"jobs", "submit", "fail", "--max-attempts", "2"}).exit_code, 0);
  auto delayed = lk({"jobs", "submit", "noop", "--delay", "1h"});
  ASSERT_EQ(delayed.exit_code, 0);
  auto queue = OpenJobQueue(url, "q");
  ASSERT_TRUE(queue.ok()) << queue.status().ToString();

  {
    testing::ChildProcess supervisor(
        {testing::LanekeeperBinary(), "--redis", url, "--queue", "q", "jobs", "supervisor",
         "--concurrency", "2", "--pid-file", dir + "/sup.pid"});
    testing::ChildProcess autopilot({testing::LanekeeperBinary(), "--redis", url, "--queue", "q",
                                     "autopilot", "--repo", dir, "--interval", "1s", "--no-worker"});
    ASSERT_TRUE(Eventually([&] {
      auto s = (*queue)->Stats();
      return s.ok() && s->completed >= 3 && s->dead >= 2;  // the fail job retried once too
    }, kSlack)) << supervisor.Stderr();
    for (const char* state : {"waiting", "delayed", "active", "completed", "dead", "cancelled"}) {
      EXPECT_EQ(lk({"jobs", "list", "--state", state}).exit_code, 0) << state;
    }
    EXPECT_EQ(lk({"jobs", "list", "--state", "completed", "--json"}).exit_code, 0);
    EXPECT_EQ(lk({"jobs", "get", "1"}).exit_code, 0);
    EXPECT_EQ(lk({"jobs", "stats", "--json"}).exit_code, 0);
    auto dead = (*queue)->List(JobState::kDead, 1);
    ASSERT_TRUE(dead.ok() && !dead->empty());
    EXPECT_EQ(lk({"jobs", "retry", (*dead)[0].id}).exit_code, 0);
    std::string delayed_id = delayed.out.substr(0, delayed.out.find('\n'));
    EXPECT_EQ(lk({"jobs", "cancel", delayed_id}).exit_code, 0);
    lk({"doctor"});
    lk({"doctor", "--json"});
    ASSERT_TRUE(supervisor.Signal(SIGTERM));
    ASSERT_TRUE(autopilot.Signal(SIGTERM));
    EXPECT_EQ(supervisor.Wait(kSlack), 0) << supervisor.Stderr();
    EXPECT_EQ(autopilot.Wait(kSlack), 0) << autopilot.Stderr();
  }
  lk({"jobs", "supervisor", "status", "--pid-file", dir + "/sup.pid"});
  ASSERT_TRUE(monitor.Signal(SIGTERM));
  monitor.Wait(milliseconds(10'000));

  std::istringstream lines(monitor.Stdout());
  std::map<std::string, int> seen;
  for (std::string line; std::getline(lines, line);) {
    std::vector<std::string> argv = ParseMonitorLine(line);
    if (argv.empty()) continue;
    ++seen[argv[0]];
    std::string why = NewerThanSix(argv);
    EXPECT_EQ(why, "") << line;
  }
  // The audit saw what it was meant to: the scripts' own commands, the finished-set listing,
  // a lease renewal and the events stream.
  for (const char* cmd : {"EVALSHA", "HSET", "ZREVRANGE", "XADD", "PEXPIRE", "BRPOP"}) {
    EXPECT_GT(seen[cmd], 0) << cmd << " never seen: is MONITOR recording?";
  }
}

}  // namespace redis_commands_test
}  // namespace lk
