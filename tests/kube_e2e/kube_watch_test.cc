// `lanekeeper controller --kube` loses no change when its watches drop, or when it comes
// back after the fake API server has compacted away the resourceVersion it held (410
// Gone, then a relist): its connections go through a proxy that the test cuts.
#include <fstream>
#include <sstream>

#include "tests/kube_e2e/cuttable_proxy.h"
#include "tests/kube_e2e/kube_e2e_fixture.h"

namespace lk::kube_e2e {

using namespace std::chrono_literals;

class KubeE2EWatch : public KubeE2E {
 protected:
  // A short history, so that a few dozen writes put a disconnected watcher out of it.
  KubeE2EWatch() { history_ = 60; }

  // Our kubeconfig with its server replaced by url.
  std::string KubeconfigThrough(const std::string& url) {
    std::ifstream in(kubeconfig_);
    std::stringstream ss;
    ss << in.rdbuf();
    std::string text = ss.str();
    auto at = text.find(fake_->url());
    EXPECT_NE(at, std::string::npos) << text;
    if (at != std::string::npos) text.replace(at, fake_->url().size(), url);
    std::string path = tmp_ / "kubeconfig-proxy";
    std::ofstream(path) << text;
    return path;
  }

  // count ConfigMaps, one YAML document each: count writes to the fake.
  static std::string Fillers(int count) {
    std::string docs;
    for (int i = 0; i < count; ++i) {
      Json cm = {{"apiVersion", "v1"}, {"kind", "ConfigMap"},
                 {"metadata", {{"name", "filler-" + std::to_string(i)}}},
                 {"data", {{"i", std::to_string(i)}}}};
      docs += "---\n" + cm.dump() + "\n";
    }
    return docs;
  }
};

TEST_F(KubeE2EWatch, ADroppedWatchAndA410ThenRelistLoseNoChange) {
  auto proxy = CuttableProxy::Start(fake_->port());
  ASSERT_TRUE(proxy.ok()) << proxy.status().message();
  controller_kubeconfig_ = KubeconfigThrough((*proxy)->url());
  controllers_.push_back(StartController());
  ApplyExample();
  WaitReady();

  // Every connection of the controller dropped at once, an edit made right after: the
  // watches resume from the resourceVersions they held.
  EXPECT_GT((*proxy)->Cut(), 0);
  ApplyExample({{"concurrency: 2", "concurrency: 3"}});
  Json lane = WaitReady();
  EXPECT_EQ(lane["metadata"]["generation"], 2);
  EXPECT_TRUE(testing::Eventually([&] { return WorkerConcurrency() == 3; }, 30s));

  // Cut off while the lane is edited and more writes than the fake keeps for watches
  // happen: resuming is refused with 410 Gone, and only a relist shows the edit.
  (*proxy)->Block(true);
  (*proxy)->Cut();
  ApplyExample({{"concurrency: 2", "concurrency: 4"}});
  KubectlOk({"apply", "-f", "-"}, Fillers(80));
  const size_t log_mark = fake_->Log().size();
  (*proxy)->Block(false);
  lane = WaitReady();
  EXPECT_EQ(lane["metadata"]["generation"], 3);
  EXPECT_TRUE(testing::Eventually([&] { return WorkerConcurrency() == 4; }, 30s));
  // The controller listed the Lanes again after it was let back: a resumed watch would
  // not have (it watches from its resourceVersion), a 410 makes it.
  const std::string after = fake_->Log().substr(log_mark);
  bool relisted = false;
  std::istringstream lines(after);
  for (std::string line; std::getline(lines, line);) {
    if (line.find("GET /apis/lanekeeper.dev/v1alpha1/namespaces/default/lanes") != std::string::npos &&
        line.find("watch=") == std::string::npos && line.find("agent=lanekeeper") != std::string::npos) {
      relisted = true;
    }
  }
  EXPECT_TRUE(relisted) << "no list of Lanes by the controller after it was let back:\n" << after.substr(0, 4000);
}

}  // namespace lk::kube_e2e
