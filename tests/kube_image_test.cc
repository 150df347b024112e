// The Dockerfile, without a container engine (none can run here): its runtime stage installs
// exactly the Debian packages of the shared libraries this build's lanekeeper binary links
// (ldd, then dpkg -S on this Debian 12 machine, the image's base), so the binary starts in
// the image and nothing else is in it; its builder installs scripts/setup's packages less
// those only the tests use; both stages are Debian 12 slim and the image runs as non-root
// 65532 (the chart's runAsUser) with lanekeeper as ENTRYPOINT, also named kubectl-lanekeeper.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <map>
#include <regex>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include "tests/support/child_process.h"
#include "tests/support/fake_apiserver.h"

namespace lk::kube_image_test {

std::string ReadFile(const std::string& path) {
  std::ifstream in(path);
  EXPECT_TRUE(in) << "cannot read " << path;
  std::ostringstream out;
  out << in.rdbuf();
  return out.str();
}

// A Dockerfile's instructions (continuation lines joined, comments dropped), by stage: each
// stage starts at a FROM.
using Stage = std::vector<std::string>;

std::vector<Stage> Stages(const std::string& dockerfile) {
  std::vector<Stage> stages;
  std::istringstream in(dockerfile);
  std::string line, instruction;
  while (std::getline(in, line)) {
    if (std::regex_match(line, std::regex(R"(\s*#.*)"))) continue;
    const bool continued = !line.empty() && line.back() == '\\';
    instruction += continued ? line.substr(0, line.size() - 1) : line;
    if (continued) continue;
    instruction = std::regex_replace(instruction, std::regex(R"(\s+)"), " ");
    if (instruction.starts_with("FROM ")) stages.emplace_back();
    if (!instruction.empty() && instruction != " " && !stages.empty()) stages.back().push_back(instruction);
    instruction.clear();
  }
  return stages;
}

// The packages of a stage's `apt-get install` (its words up to the next shell operator that
// are not options).
std::set<std::string> AptInstalled(const Stage& stage) {
  std::set<std::string> out;
  for (const std::string& ins : stage) {
    size_t at = ins.find("apt-get install ");
    if (!ins.starts_with("RUN ") || at == std::string::npos) continue;
    std::istringstream words(ins.substr(at + std::string("apt-get install ").size()));
    for (std::string w; words >> w;) {
      if (w == "&&" || w == ";" || w == "||") break;
      if (!w.starts_with("-")) out.insert(w);
    }
  }
  return out;
}

std::vector<Stage> DockerfileStages() { return Stages(ReadFile(testing::SourceDir() + "/Dockerfile")); }

// The package that holds path, as dpkg knows it: Debian 12 merged /lib into /usr/lib, and dpkg
// records each file under the one name its package ships, so both names are asked.
std::string PackageOf(const std::string& path) {
  std::vector<std::string> names = {path};
  if (path.starts_with("/usr/")) names.push_back(path.substr(4));
  else names.push_back("/usr" + path);
  std::error_code ec;
  const std::string real = std::filesystem::canonical(path, ec).string();
  if (!ec && real != path) {
    names.push_back(real);
    names.push_back(real.starts_with("/usr/") ? real.substr(4) : "/usr" + real);
  }
  for (const std::string& name : names) {
    testing::CommandResult r = testing::Run({"dpkg", "-S", name});
    if (r.exit_code == 0) return r.out.substr(0, r.out.find_first_of(":,"));  // "libc6:amd64: /lib/..."
  }
  return "";
}

// The binary's shared libraries (ldd's resolved paths) -> "package (the .so files)".
struct Needed {
  std::set<std::string> packages;
  std::vector<std::string> unowned;  // paths no package holds
  std::string detail;                // "libssl3: libssl.so.3 libcrypto.so.3; ..."
};

Needed PackagesOfLibraries(const std::string& binary) {
  testing::CommandResult ldd = testing::Run({"ldd", binary});
  EXPECT_EQ(ldd.exit_code, 0) << "ldd " << binary << ": " << ldd.err;
  Needed out;
  std::map<std::string, std::string> files;
  std::istringstream lines(ldd.out);
  for (std::string line; std::getline(lines, line);) {
    std::smatch m;
    // "libz.so.1 => /lib/x86_64-linux-gnu/libz.so.1 (0x...)" or "/lib64/ld-linux-x86-64.so.2 (0x...)"
    if (!std::regex_search(line, m, std::regex(R"((?:=> )?(/\S+) \(0x)"))) continue;
    const std::string path = m[1];
    const std::string soname = std::filesystem::path(path).filename();
    // A sanitizer build (LANEKEEPER_SANITIZE) links its runtimes; the image is never one.
    if (soname.starts_with("libasan.") || soname.starts_with("libubsan.")) continue;
    const std::string package = PackageOf(path);
    if (package.empty()) {
      out.unowned.push_back(path);
      continue;
    }
    out.packages.insert(package);
    files[package] += " " + soname;
  }
  for (const auto& [package, sonames] : files) out.detail += package + ":" + sonames + "\n";
  return out;
}

std::string Join(const std::set<std::string>& s) {
  std::string out;
  for (const auto& v : s) out += (out.empty() ? "" : " ") + v;
  return out;
}

std::set<std::string> Minus(const std::set<std::string>& a, const std::set<std::string>& b) {
  std::set<std::string> out;
  for (const auto& v : a) if (!b.count(v)) out.insert(v);
  return out;
}

TEST(KubeImage, TheRuntimeStageInstallsExactlyThePackagesOfTheBinarysSharedLibraries) {
  std::vector<Stage> stages = DockerfileStages();
  ASSERT_EQ(stages.size(), 2u) << "a builder stage and a runtime stage";
  const std::set<std::string> runtime = AptInstalled(stages[1]);
  Needed needed = PackagesOfLibraries(testing::LanekeeperBinary());
  EXPECT_TRUE(needed.unowned.empty()) << "libraries no Debian package holds: " << needed.unowned.front();
  ASSERT_GE(needed.packages.size(), 5u) << "ldd found too few libraries:\n" << needed.detail;
  EXPECT_EQ(Join(Minus(needed.packages, runtime)), "")
      << "the binary links libraries of these packages, which the Dockerfile's runtime stage "
         "does not install; the binary's libraries by package:\n" << needed.detail;
  EXPECT_EQ(Join(Minus(runtime, needed.packages)), "")
      << "the Dockerfile's runtime stage installs these packages, whose libraries the binary "
         "does not link:\n" << needed.detail;
}

// scripts/setup's `packages=(` ... `)` (the closing parenthesis alone on its line), comments
// dropped.
std::set<std::string> SetupPackages() {
  std::istringstream lines(ReadFile(testing::SourceDir() + "/scripts/setup"));
  std::set<std::string> out;
  bool in = false, closed = false;
  for (std::string line; std::getline(lines, line) && !closed;) {
    if (!in) {
      in = line == "packages=(";
      continue;
    }
    closed = std::regex_match(line, std::regex(R"(\s*\)\s*)"));
    std::istringstream words(line.substr(0, line.find('#')));
    for (std::string w; words >> w && !closed;) out.insert(w);
  }
  EXPECT_TRUE(closed) << "scripts/setup: no packages=( ... ) list";
  return out;
}

TEST(KubeImage, TheBuilderInstallsTheBuildsPackagesOfScriptsSetup) {
  // scripts/setup's packages that only the tests, the fuzzers and the fake API server use.
  const std::set<std::string> kNotForTheBuild = {
      "libgtest-dev", "libgmock-dev", "redis-server", "chromium", "fonts-liberation", "clang",
      "libclang-rt-14-dev", "procps", "unzip", "openssl", "systemd"};
  const std::set<std::string> setup = SetupPackages();
  EXPECT_EQ(Join(Minus(kNotForTheBuild, setup)), "") << "no longer in scripts/setup: drop them here";
  EXPECT_EQ(Join(AptInstalled(DockerfileStages()[0])), Join(Minus(setup, kNotForTheBuild)))
      << "the Dockerfile's builder stage should install scripts/setup's packages, less the tests' ones";
}

TEST(KubeImage, BothStagesAreDebian12SlimAndTheImageRunsLanekeeperAsNonRoot) {
  std::vector<Stage> stages = DockerfileStages();
  ASSERT_EQ(stages.size(), 2u);
  EXPECT_EQ(stages[0].front(), "FROM debian:12-slim AS builder");
  EXPECT_EQ(stages[1].front(), "FROM debian:12-slim");
  const Stage& runtime = stages[1];
  auto has = [&](const std::string& instruction) {
    for (const auto& i : runtime) if (i == instruction) return true;
    return false;
  };
  EXPECT_TRUE(has("COPY --from=builder /src/build/lanekeeper /usr/local/bin/lanekeeper"));
  EXPECT_TRUE(has("USER 65532:65532")) << "the chart's and the lanes' pods run as 65532";
  EXPECT_TRUE(has(R"(ENTRYPOINT ["lanekeeper"])")) << "the chart gives args only; the lanes' pods run `lanekeeper`";
  bool plugin = false, user = false;
  for (const auto& i : runtime) {
    plugin = plugin || i.find("ln -s lanekeeper /usr/local/bin/kubectl-lanekeeper") != std::string::npos;
    user = user || i.find("useradd --uid 65532 --gid 65532") != std::string::npos;
  }
  EXPECT_TRUE(plugin) << "kubectl finds its plugin as kubectl-lanekeeper on PATH";
  EXPECT_TRUE(user) << "a passwd entry for 65532, with a home";
  EXPECT_EQ(runtime.back(), R"(CMD ["--help"])");
}

}  // namespace lk::kube_image_test
