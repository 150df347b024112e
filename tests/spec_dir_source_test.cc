// The spec directory as a lane source: real files and real inotify, a fake clock for the
// debounce and the rescan. The watch must survive the directory being removed and made
// again, or replaced by a rename: a change is then seen within the debounce, not at the
// next rescan.
#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>

#include "controller/source/spec_dir_source.h"
#include "tests/support/fake_clock.h"
#include "tests/support/lane_text.h"

namespace lk {
// Named, not anonymous: the unity build compiles several test files as one.
namespace spec_dir_source_test {


namespace fs = std::filesystem;
using testing::FakeClock;
using testing::Keys;

std::string Lane(const std::string& name, const std::string& queue) {
  return "apiVersion: lanekeeper.dev/v1alpha1\nkind: Lane\nmetadata: {name: " + name +
         "}\nspec:\n  queue: " + queue + "\n";
}

class SpecDirSourceTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/lk-specdir-test-XXXXXX";
    ASSERT_NE(mkdtemp(tmpl), nullptr);
    root_ = tmpl;
    dir_ = root_ + "/lanes";
    fs::create_directories(dir_);
  }
  void TearDown() override { fs::remove_all(root_); }

  void Write(const std::string& dir, const std::string& file, const std::string& text) {
    std::ofstream(dir + "/" + file) << text;
  }
  // Polls as the controller does once inotify woke it: after the debounce. The rescan is
  // an hour away, so only the watch can have seen the change.
  std::vector<LaneKey> PollAfterDebounce(SpecDirSource& s) {
    s.Poll();  // drains the events
    clock_.Advance(Millis(50));
    return s.Poll();
  }

  std::string root_, dir_;
  FakeClock clock_;
  SpecDirSourceOptions Options() { return {dir_, Millis(3'600'000), Millis(50), &clock_}; }
};

TEST_F(SpecDirSourceTest, ReportsTheLanesOfEveryFileAndWhichChanged) {
  Write(dir_, "a.yaml", Lane("a", "qa"));
  SpecDirSource s(Options());
  ASSERT_TRUE(s.Start().ok());
  EXPECT_EQ(s.Keys(), Keys({"a"}));
  ASSERT_TRUE(s.Get({"", "a"})->valid);
  EXPECT_EQ(s.Get({"", "a"})->spec.queue, "qa");
  Write(dir_, "b.yaml", Lane("b", "qb"));
  EXPECT_EQ(PollAfterDebounce(s), Keys({"b"}));
  Write(dir_, "a.yaml", Lane("a", "qa2"));
  fs::remove(dir_ + "/b.yaml");
  EXPECT_EQ(PollAfterDebounce(s), Keys({"a", "b"}));
  EXPECT_EQ(s.Get({"", "b"}), nullptr);
}

TEST_F(SpecDirSourceTest, ABrokenFileKeepsItsLanesWithItsErrorsAndANewBrokenFileIsAnError) {
  Write(dir_, "a.yaml", Lane("a", "qa"));
  SpecDirSource s(Options());
  ASSERT_TRUE(s.Start().ok());
  Write(dir_, "a.yaml", Lane("a", "qa") + "  supervisor: {concurrency: 0}\n");
  Write(dir_, "new.yaml", "kind: [\n");
  PollAfterDebounce(s);
  const SourcedLane* a = s.Get({"", "a"});
  ASSERT_NE(a, nullptr);
  EXPECT_FALSE(a->valid);
  ASSERT_FALSE(a->errors.empty());
  EXPECT_EQ(a->errors[0].field, "spec.supervisor.concurrency");
  ASSERT_EQ(s.Errors().size(), 1u);
  EXPECT_EQ(s.Errors()[0].file, dir_ + "/new.yaml");
}

TEST_F(SpecDirSourceTest, ALaneDefinedInTwoFilesStaysWithTheFileThatHadItFirst) {
  Write(dir_, "z.yaml", Lane("kb", "q1"));
  SpecDirSource s(Options());
  ASSERT_TRUE(s.Start().ok());
  Write(dir_, "a.yaml", Lane("kb", "q2"));  // sorts first, came second
  PollAfterDebounce(s);
  EXPECT_EQ(s.Get({"", "kb"})->spec.queue, "q1");
  ASSERT_EQ(s.Errors().size(), 1u);
  EXPECT_EQ(s.Errors()[0].file, dir_ + "/a.yaml");
  EXPECT_NE(s.Errors()[0].message.find("already defined at " + dir_ + "/z.yaml:3:18"),
            std::string::npos) << s.Errors()[0].message;
}

TEST_F(SpecDirSourceTest, AMissingDirectoryKeepsEveryLaneAndSaysSo) {
  Write(dir_, "a.yaml", Lane("a", "qa"));
  SpecDirSource s(Options());
  ASSERT_TRUE(s.Start().ok());
  fs::remove_all(dir_);
  EXPECT_TRUE(PollAfterDebounce(s).empty());
  EXPECT_NE(s.Get({"", "a"}), nullptr);
  ASSERT_EQ(s.Errors().size(), 1u);
  EXPECT_NE(s.Errors()[0].message.find("the directory is gone"), std::string::npos);
}

TEST_F(SpecDirSourceTest, TheWatchSurvivesTheDirectoryBeingRemovedAndCreatedAgain) {
  Write(dir_, "a.yaml", Lane("a", "qa"));
  SpecDirSource s(Options());
  ASSERT_TRUE(s.Start().ok());
  fs::remove_all(dir_);
  PollAfterDebounce(s);
  fs::create_directories(dir_);
  Write(dir_, "a.yaml", Lane("a", "qa2"));
  EXPECT_EQ(PollAfterDebounce(s), Keys({"a"}));
  EXPECT_TRUE(s.Errors().empty());
  // ...and keeps watching the new directory.
  Write(dir_, "a.yaml", Lane("a", "qa3"));
  EXPECT_EQ(PollAfterDebounce(s), Keys({"a"}));
  EXPECT_EQ(s.Get({"", "a"})->spec.queue, "qa3");
}

TEST_F(SpecDirSourceTest, TheWatchFollowsTheNameWhenTheDirectoryIsReplacedByARename) {
  Write(dir_, "a.yaml", Lane("a", "qa"));
  SpecDirSource s(Options());
  ASSERT_TRUE(s.Start().ok());
  // As deploy tools do: build the new directory beside it, then swap it in.
  fs::create_directories(root_ + "/lanes.new");
  Write(root_ + "/lanes.new", "a.yaml", Lane("a", "qb"));
  fs::rename(dir_, root_ + "/lanes.old");
  fs::rename(root_ + "/lanes.new", dir_);
  EXPECT_EQ(PollAfterDebounce(s), Keys({"a"}));
  EXPECT_EQ(s.Get({"", "a"})->spec.queue, "qb");
  // The old directory, renamed away, no longer counts; the new one does.
  Write(root_ + "/lanes.old", "a.yaml", Lane("a", "stale"));
  Write(dir_, "a.yaml", Lane("a", "qc"));
  EXPECT_EQ(PollAfterDebounce(s), Keys({"a"}));
  EXPECT_EQ(s.Get({"", "a"})->spec.queue, "qc");
}

TEST_F(SpecDirSourceTest, WithoutEventsTheRescanStillSeesAChange) {
  SpecDirSource s({dir_, Millis(1'000), Millis(50), &clock_});
  ASSERT_TRUE(s.Start().ok());
  EXPECT_EQ(s.NextPoll(), clock_.Now() + Millis(1'000));
  Write(dir_, "a.yaml", Lane("a", "qa"));
  clock_.Advance(Millis(1'000));
  EXPECT_EQ(s.Poll(), Keys({"a"}));
}

}  // namespace spec_dir_source_test
}  // namespace lk
