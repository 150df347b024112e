// Handler commands run as argv, never through a shell, and a job's payload reaches them on
// stdin only: text that a shell would run stays text. Real processes (worker/handler.h's
// CommandHandler); each injection names a file that must never appear.
#include <gtest/gtest.h>
#include <signal.h>

#include <filesystem>
#include <string>
#include <vector>

#include "tests/support/temp_dir.h"
#include "worker/handler.h"

namespace lk {
namespace handler_lockdown_test {

HandlerOutcome RunCommand(std::vector<std::string> argv, const std::string& payload) {
  // As in every lanekeeper process (cmd/main.cc): a command that does not read its stdin
  // is an EPIPE, not a signal.
  ::signal(SIGPIPE, SIG_IGN);
  StopToken stop;
  stop.Reset(std::chrono::steady_clock::now() + std::chrono::seconds(10));
  const std::string queue = "q", id = "1", name = "cmd";
  CommandHandler handler(std::move(argv));
  return handler.Run({queue, id, name, payload, 1, Millis(10'000), stop});
}

TEST(HandlerLockdown, ShellTextInACommandIsPassedAsItIs) {
  testing::TempDir dir("inject-argv");
  const std::string a = "$(touch " + (dir / "a") + ")", b = "; touch " + (dir / "b"),
                    c = "`touch " + (dir / "c") + "`";
  auto out = RunCommand({"/bin/echo", a, b, c}, "{}");
  ASSERT_TRUE(out.success) << out.error;
  EXPECT_EQ(out.result, a + " " + b + " " + c + "\n");
  for (const char* f : {"a", "b", "c"}) EXPECT_FALSE(std::filesystem::exists(dir / f)) << f;
}

TEST(HandlerLockdown, APayloadReachesTheCommandOnStdinAndNeverItsArgv) {
  testing::TempDir dir("inject-payload");
  const std::string payload = "{\"x\": \"$(touch " + (dir / "a") + "); touch " + (dir / "b") +
                              " `touch " + (dir / "c") + "`\"}";
  auto echoed = RunCommand({"/bin/cat"}, payload);
  ASSERT_TRUE(echoed.success) << echoed.error;
  EXPECT_EQ(echoed.result, payload);
  // The handler process's own command line, as the kernel holds it: the command alone.
  auto argv = RunCommand({"/bin/cat", "/proc/self/cmdline"}, payload);
  ASSERT_TRUE(argv.success) << argv.error;
  EXPECT_EQ(argv.result, std::string("/bin/cat\0/proc/self/cmdline\0", 28));
  for (const char* f : {"a", "b", "c"}) EXPECT_FALSE(std::filesystem::exists(dir / f)) << f;
}

}  // namespace handler_lockdown_test
}  // namespace lk
