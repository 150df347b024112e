// chaos_soak: a lane under fire, judged from what happened (tests/chaos/README.md).
//
//   chaos_soak [--profile short|medium|long] [--seed N] [--duration SECONDS]
//              [--max-faults N] [--rate JOBS_PER_S] [--failover synced|stale]
//              [--redis-replicas 0|1]
//
// A `lanekeeper controller` runs one Lane (a supervisor, handlers that record every run)
// on a Redis with AOF and a replica, all clients behind a proxy; a producer submits jobs at
// a steady rate; a seeded driver injects faults (tests/chaos/chaos_driver.h) until the
// profile's time or fault count is spent. Then the producer stops, the queue drains, doctor
// runs, and one summary line (and one JSON line) gives the verdict
// (tests/chaos/chaos_record.h). Exit 0 when it passes: nothing acknowledged lost, no
// fencing violation, every duplicate explained, the queue drained, doctor all ok. With
// failovers to a stale replica, doctor must instead fail its redis check saying Redis lost
// acknowledged writes (and nothing else), then be all ok once the regression record is
// deleted as it advises; with roles that cannot wait for replicas, losses and violations
// are also counted and reported, not asserted.
#include <signal.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <optional>
#include <random>
#include <sstream>
#include <thread>
#include <unordered_set>

#include <nlohmann/json.hpp>

#include "tests/chaos/chaos_driver.h"
#include "tests/chaos/chaos_producer.h"
#include "tests/chaos/chaos_record.h"
#include "tests/chaos/chaos_redis.h"
#include "tests/support/child_process.h"
#include "tests/support/proc_scan.h"
#include "tests/support/temp_dir.h"
#include "worker/job_queue.h"

namespace lk::chaos {

namespace soak {

using std::chrono::milliseconds;
using std::chrono::seconds;
constexpr char kQueue[] = "chaos";

struct Profile {
  std::string name = "short";
  uint64_t seed = 0;
  FaultPlan plan;
  int rate = 40;         // jobs submitted per second
  int handler_ms = 10;   // each job's work
  int concurrency_low = 4, concurrency_high = 6;  // the spec edits flip between them
  // The longest drain; it also ends after a minute without a completed run.
  milliseconds drain{240'000};
  // Stale failovers only: whether the roles wait for a replica (--redis-replicas=1). Unset:
  // when the build offers it (OffersRedisReplicas); --redis-replicas 0 measures without.
  std::optional<bool> replicas;
  // --restart-backoff-max of the controller and its supervisors ("": their default, 60 s).
  // The long profile kills a worker every few seconds and a supervisor every ten: with the
  // default, both backoffs reached 60 s and the lane was down most of the run (77 jobs/s
  // done of 180-200 submitted).
  std::string restart_backoff_max;
};

Profile NamedProfile(const std::string& name) {
  Profile p;
  p.name = name;
  p.plan.weights = {{"kill-worker", 30}, {"kill-supervisor", 12}, {"compete", 15},
                    {"stall", 8},        {"redis-restart", 10},  {"failover", 8},
                    {"spec-edit", 8}};
  if (name == "short") {
    p.plan.duration = seconds(100);
    p.plan.max_faults = 60;
    p.plan.every_min = milliseconds(1'500);
    p.plan.every_max = milliseconds(3'500);
  } else if (name == "medium") {
    p.plan.duration = seconds(300);
    p.plan.max_faults = 400;
    p.plan.every_min = milliseconds(1'000);
    p.plan.every_max = milliseconds(3'000);
    p.drain = seconds(600);
  } else {  // long: >= 30 min, >= 1e6 jobs, >= 500 kills, >= 20 restarts, >= 5 failovers
    p.plan.duration = seconds(1'900);
    p.plan.max_faults = 100'000;
    p.plan.every_min = milliseconds(800);
    p.plan.every_max = milliseconds(2'400);
    p.plan.weights = {{"kill-worker", 40}, {"kill-supervisor", 15}, {"compete", 10},
                      {"stall", 5},        {"redis-restart", 8},   {"failover", 5},
                      {"spec-edit", 5}};
    p.rate = 600;
    p.handler_ms = 5;
    p.concurrency_low = 16;
    p.concurrency_high = 24;
    p.drain = seconds(1'800);
    p.restart_backoff_max = "2s";
  }
  return p;
}

// The profile, with the command line's overrides; exits 2 on a bad flag.
Profile ParseFlags(int argc, char** argv) {
  std::string name = "short";
  for (int i = 1; i + 1 < argc; i += 2) {
    if (std::string(argv[i]) == "--profile") name = argv[i + 1];
  }
  if (name != "short" && name != "medium" && name != "long") {
    std::cerr << "chaos_soak: --profile must be short, medium or long, not '" << name << "'\n";
    std::exit(2);
  }
  Profile p = NamedProfile(name);
  p.seed = std::random_device{}();
  for (int i = 1; i < argc; i += 2) {
    std::string flag = argv[i];
    if (i + 1 >= argc) {
      std::cerr << "chaos_soak: " << flag << " needs a value\n";
      std::exit(2);
    }
    std::string value = argv[i + 1];
    char* end = nullptr;
    long long n = std::strtoll(value.c_str(), &end, 10);
    bool number = !value.empty() && *end == '\0' && n >= 0;
    if (flag == "--profile") continue;
    if (flag == "--failover" && (value == "synced" || value == "stale")) {
      p.plan.failover = value == "synced" ? FailoverKind::kSynced : FailoverKind::kStale;
    } else if (flag == "--seed" && number) {
      p.seed = static_cast<uint64_t>(n);
    } else if (flag == "--duration" && number && n > 0) {
      p.plan.duration = seconds(n);
    } else if (flag == "--max-faults" && number) {
      p.plan.max_faults = static_cast<int>(n);
    } else if (flag == "--rate" && number && n > 0) {
      p.rate = static_cast<int>(n);
    } else if (flag == "--redis-replicas" && (value == "0" || value == "1")) {
      p.replicas = value == "1";
    } else {
      std::cerr << "chaos_soak: bad flag or value: " << flag << " " << value
                << " (see the top of tests/chaos/chaos_soak.cc)\n";
      std::exit(2);
    }
  }
  return p;
}

// Whether the build offers --redis-replicas (issue 11's WAIT): a global flag, so
// `lanekeeper --help` lists it, and every command takes it, before or after its name.
bool OffersRedisReplicas() {
  return testing::RunLanekeeper({"--help"}).out.find("--redis-replicas") != std::string::npos;
}

// Written whole then renamed: the controller never reads half a spec. (The temporary name
// does not end in .yaml, so the spec directory ignores it.)
void WriteFile(const std::string& path, const std::string& text) {
  std::ofstream(path + ".tmp") << text;
  std::filesystem::rename(path + ".tmp", path);
}

// The handler entry the Lane and the competitors' handlers file share.
std::string ChaosHandler(const Profile& p, const std::string& record, const std::string& url) {
  return "chaos: {command: [" + std::string(CHAOS_JOB_BIN) + ", " + record + ", '" + url +
         "', --ms, '" + std::to_string(p.handler_ms) + "'], lease: 5s, maxAttempts: 100}\n";
}

std::string LaneYaml(const Profile& p, const std::string& record, const std::string& url,
                     int concurrency) {
  return "apiVersion: lanekeeper.dev/v1alpha1\nkind: Lane\nmetadata: {name: chaos}\nspec:\n"
         "  queue: " + std::string(kQueue) + "\n  redis: {url: '" + url + "'}\n"
         "  supervisor: {enabled: true, concurrency: " + std::to_string(concurrency) +
         ", maxRSS: 0, maxCrashes: 1000, drainTimeout: 10s}\n"
         "  handlers:\n    " + ChaosHandler(p, record, url);
}

int64_t Unfinished(const std::string& url) {
  auto queue = OpenJobQueue(url, kQueue);
  if (!queue.ok()) return -1;
  auto stats = (*queue)->Stats();
  if (!stats.ok()) return -1;
  return stats->waiting + stats->delayed + stats->active;
}

int64_t Dead(const std::string& url) {
  auto queue = OpenJobQueue(url, kQueue);
  if (!queue.ok()) return -1;
  auto stats = (*queue)->Stats();
  return stats.ok() ? stats->dead : -1;
}

// The sequence numbers of the chaos jobs the queue still holds unfinished.
std::unordered_set<int64_t> Queued(const std::string& url) {
  std::unordered_set<int64_t> seqs;
  auto queue = OpenJobQueue(url, kQueue);
  if (!queue.ok()) return seqs;
  for (JobState state : {JobState::kWaiting, JobState::kDelayed, JobState::kActive}) {
    auto jobs = (*queue)->List(state, 100'000);
    if (!jobs.ok()) continue;
    for (const Job& job : *jobs) {
      auto payload = nlohmann::json::parse(job.payload, nullptr, /*allow_exceptions=*/false);
      if (job.name == "chaos" && payload.is_object() && payload["n"].is_number_integer()) {
        seqs.insert(payload["n"].get<int64_t>());
      }
    }
  }
  return seqs;
}

// A failed run's record and the driver's log, kept for reading: the run's own directory
// goes away with it.
std::string KeepEvidence(const Profile& p, const std::string& record,
                         const std::vector<Disruption>& disruptions) {
  const char* tmp = std::getenv("TMPDIR");
  const std::string dir = std::string(tmp != nullptr && *tmp ? tmp : "/tmp") +
                          "/lk-chaos-failed-" + std::to_string(p.seed);
  std::error_code ec;
  std::filesystem::create_directories(dir, ec);
  std::filesystem::copy_file(record, dir + "/record.log",
                             std::filesystem::copy_options::overwrite_existing, ec);
  std::ofstream log(dir + "/disruptions.log");
  for (const auto& d : disruptions) log << d.at_ms << " " << d.kind << " " << d.pid << "\n";
  return dir;
}

// Until the queue holds nothing unfinished (waiting, delayed or active) at two looks half a
// second apart: every job has had its run (a handler records its run before its worker
// reports, and a job whose worker died stays active until its lease runs out). false when
// no run completed for a minute (the lane is stuck) or past cap (a backlog the machine
// cannot clear in time).
bool Drain(const std::string& url, const std::string& record, milliseconds cap) {
  const auto give_up = std::chrono::steady_clock::now() + cap;
  auto last_progress = std::chrono::steady_clock::now();
  size_t runs_seen = 0;
  int empty_looks = 0;
  while (true) {
    int malformed = 0;
    size_t runs = ReadChaosRecord(record, &malformed).size();
    auto now = std::chrono::steady_clock::now();
    if (runs != runs_seen) {
      runs_seen = runs;
      last_progress = now;
    }
    empty_looks = Unfinished(url) == 0 ? empty_looks + 1 : 0;
    if (empty_looks >= 2) return true;
    if (now >= give_up || now - last_progress >= seconds(60)) return false;
    std::this_thread::sleep_for(milliseconds(500));
  }
}

// The redis check's failure once a role noticed that Redis lost acknowledged writes
// (controller/status/doctor.cc), and what docs/production.md tells the operator to run
// once it is handled: delete the record (the check otherwise clears after 24 h).
constexpr char kRegressionMessage[] = "lost acknowledged writes (failover to a stale replica";
constexpr char kRegressionRecord[] = "regressed";

// doctor's verdict on the lane after the soak.
struct DoctorVerdict {
  std::string problems;  // "" when the verdict holds
  bool regression_reported = false;  // the redis check failed with kRegressionMessage
};

// Every check ok or info, except that the supervisor check may warn about worker crashes —
// as many as the workers the driver killed, at most, since a supervisor rightly counts a
// SIGKILLed worker as a crash — and, when regression_expected, the redis check must fail
// with kRegressionMessage (a stale failover lost writes; saying so is the detection issue
// 11 asks for) and fail with nothing else.
DoctorVerdict JudgeDoctor(const testing::CommandResult& doctor, int worker_kills,
                          bool regression_expected) {
  DoctorVerdict verdict;
  auto report = nlohmann::json::parse(doctor.out, nullptr, /*allow_exceptions=*/false);
  if (!report.is_object() || !report.contains("checks")) {
    verdict.problems = "doctor --json exited " + std::to_string(doctor.exit_code) +
                       " with no report:\n" + doctor.out + doctor.err;
    return verdict;
  }
  std::string& problems = verdict.problems;
  for (const auto& check : report["checks"]) {
    const std::string level = check.value("status", ""), message = check.value("message", "");
    if (check.value("name", "") == "redis" && level == "fail" &&
        message.find(kRegressionMessage) != std::string::npos) {
      verdict.regression_reported = true;
      if (regression_expected) continue;
    }
    if (level == "ok" || level == "info") continue;
    auto at = message.find("crashes_24h=");
    int crashes = at == std::string::npos ? -1 : std::atoi(message.c_str() + at + 12);
    if (check.value("name", "") == "supervisor" && level == "warn" && crashes > 0 &&
        crashes <= worker_kills && message.find("state=") == std::string::npos) {
      continue;
    }
    problems += "  " + check.value("name", "?") + ": " + level + "  " + message + "\n";
  }
  if (regression_expected && !verdict.regression_reported) {
    problems += "  redis: expected a fail saying Redis lost acknowledged writes after the stale "
                "failovers, got none\n";
  }
  return verdict;
}

// Waits up to 90 s for doctor's verdict to hold: the lane settles first (a supervisor
// killed at the end is restarted after its backoff and takes over from its orphaned
// worker within a minute or so). The last verdict either way.
DoctorVerdict SettledDoctor(const std::string& url, int worker_kills, bool regression_expected) {
  DoctorVerdict verdict;
  testing::Eventually(
      [&] {
        verdict = JudgeDoctor(
            testing::RunLanekeeper({"--redis", url, "--queue", kQueue, "doctor", "--json"}),
            worker_kills, regression_expected);
        return verdict.problems.empty();
      },
      seconds(90));
  return verdict;
}

// Deletes the regression record as docs/production.md tells the operator to
// (`redis-cli DEL 'lk:{Q}:regressed'`). "" when done, else why not.
std::string ClearRegression(const std::string& url) {
  auto queue = OpenJobQueue(url, kQueue);
  if (!queue.ok()) return queue.status().message();
  auto r = (*queue)->connection().Command(
      {"DEL", JobQueue::KeyPrefix(kQueue) + kRegressionRecord});
  if (!r.ok()) return r.status().message();
  if (r->is_error()) return r->str;
  return "";
}

// A `lanekeeper controller` on the spec directory, once it has started the lane's worker;
// nullptr (and why, on stderr) when no worker came up within 60 s.
std::unique_ptr<testing::ChildProcess> StartController(const std::string& specs,
                                                       const std::string& state, bool replicas,
                                                       const std::string& restart_backoff_max) {
  std::vector<std::string> argv = {
      testing::LanekeeperBinary(), "--log-level", "warn", "controller", "--specs", specs,
      "--state-dir", state, "--status-addr", "off", "--rescan", "1s",
      "--supervisor-arg=--lease-ttl=3s", "--supervisor-arg=--lease-renew=1s"};
  if (replicas) argv.push_back("--supervisor-arg=--redis-replicas=1");
  if (!restart_backoff_max.empty()) {
    // For the controller's supervisors (a killed one) and for their workers.
    argv.push_back("--restart-backoff-max=" + restart_backoff_max);
    argv.push_back("--supervisor-arg=--restart-backoff-max=" + restart_backoff_max);
  }
  auto controller = std::make_unique<testing::ChildProcess>(argv);
  if (!testing::Eventually(
          [] { return !testing::FindProcesses({"jobs", "work", "--queue", kQueue}).empty(); },
          seconds(60))) {
    std::cerr << "chaos: the controller started no worker within 60 s:\n" << controller->Stderr();
    return nullptr;
  }
  return controller;
}

// Steps the driver until its plan is spent, with a progress line every 15 s.
void RunFaults(ChaosDriver& driver, const ChaosProducer& producer) {
  const auto started = std::chrono::steady_clock::now();
  auto next_progress = started + seconds(15);
  while (driver.Step()) {
    std::this_thread::sleep_for(milliseconds(20));
    auto now = std::chrono::steady_clock::now();
    if (now >= next_progress) {
      next_progress += seconds(15);
      std::cout << "chaos: +" << std::chrono::duration_cast<seconds>(now - started).count()
                << "s acked " << producer.acked_count() << ", faults " << driver.faults()
                << std::endl;
    }
  }
}

int Count(const ChaosDriver& driver, const std::string& fault) {
  auto it = driver.counts().find(fault);
  return it == driver.counts().end() ? 0 : it->second;
}

// What the run came to, besides the driver's counts.
struct Outcome {
  Verdict verdict;
  int malformed = 0;  // record lines that did not parse
  bool drained = false;
  std::string doctor_problems;
  bool regression_reported = false;  // doctor's redis check said Redis lost writes
  int64_t dead = 0;
  int64_t seconds = 0;
  int64_t submit_errors = 0;
};

// Prints the problems, the summary line and the JSON line; returns whether the run passed.
bool Report(const Profile& p, const std::string& mode, bool asserted, const ChaosDriver& driver,
            const Outcome& out) {
  const Verdict& v = out.verdict;
  const int kills = Count(driver, "kill-worker") + Count(driver, "kill-supervisor");
  int skipped = 0;
  for (const auto& [name, n] : driver.counts()) {
    if (name.rfind("skipped-", 0) == 0) skipped += n;
  }
  const bool doctor_ok = out.doctor_problems.empty();
  const bool pass = out.drained && doctor_ok && v.unexplained == 0 && out.malformed == 0 &&
                    driver.errors().empty() && (!asserted || (v.lost == 0 && v.violations == 0));
  for (const auto& e : driver.errors()) std::cout << "chaos: driver error: " << e << "\n";
  for (const auto& e : v.examples) std::cout << "chaos: " << e << "\n";
  if (!doctor_ok) std::cout << "chaos: doctor is not all ok:\n" << out.doctor_problems;
  if (out.malformed > 0) std::cout << "chaos: " << out.malformed << " record lines did not parse\n";
  if (!out.drained) {
    std::cout << "chaos: the queue did not drain (a minute without a completed run, or past "
              << p.drain.count() / 1000 << " s): " << v.unfinished
              << " acknowledged jobs still in it\n";
  }
  nlohmann::json j = {
      {"profile", p.name}, {"seed", p.seed}, {"mode", mode}, {"asserted", asserted},
      {"seconds", out.seconds}, {"jobs", v.acked}, {"runs", v.runs},
      {"kills", kills}, {"worker_kills", Count(driver, "kill-worker")},
      {"supervisor_kills", Count(driver, "kill-supervisor")},
      {"restarts", Count(driver, "redis-restart")}, {"failovers", Count(driver, "failover")},
      {"stalls", Count(driver, "stall")}, {"competitors", Count(driver, "compete")},
      {"spec_edits", Count(driver, "spec-edit")}, {"skipped", skipped},
      {"duplicates", v.duplicates}, {"unexplained_duplicates", v.unexplained},
      {"lost", v.lost}, {"unfinished", v.unfinished}, {"fencing_violations", v.violations},
      {"fenced_claims", v.fenced_claims}, {"unfenced_claims", v.unfenced_claims},
      {"unknown_tokens", v.unknown_tokens}, {"dead", out.dead}, {"drained", out.drained},
      {"doctor_ok", doctor_ok}, {"redis_regression_reported", out.regression_reported},
      {"submit_errors", out.submit_errors}, {"pass", pass}};
  std::cout << "chaos: jobs=" << v.acked << " kills=" << kills
            << " restarts=" << Count(driver, "redis-restart")
            << " failovers=" << Count(driver, "failover") << " stalls=" << Count(driver, "stall")
            << " duplicates=" << v.duplicates << " (unexplained " << v.unexplained
            << ") lost=" << v.lost << " fencing_violations=" << v.violations
            << " redis_regression_reported=" << (out.regression_reported ? "true" : "false")
            << " seconds=" << out.seconds << " seed=" << p.seed << " mode=" << mode
            << " verdict=" << (pass ? "PASS" : "FAIL") << "\n"
            << j.dump() << std::endl;
  return pass;
}

}  // namespace soak

int Main(int argc, char** argv) {
  using namespace soak;
  Profile p = ParseFlags(argc, argv);
  const bool stale = p.plan.failover == FailoverKind::kStale;
  // Only where it matters: a synced failover loses nothing without WAIT, and WAIT would make
  // every Redis restart of the CI profile also a wait for the replica to reconnect.
  const bool replicas = stale && p.replicas.value_or(true) && OffersRedisReplicas();
  const bool asserted = !stale || replicas;
  const std::string mode = std::string(stale ? "stale-failover" : "synced-failover") +
                           (replicas ? "+redis-replicas=1" : "");
  std::cout << "chaos: profile " << p.name << ", seed " << p.seed << " (rerun with --seed "
            << p.seed << "), mode " << mode << (asserted ? "" : " (losses reported, not asserted)")
            << std::endl;

  testing::TempDir root("chaos");
  const std::string record = root / "record.log", specs = root / "specs";
  std::filesystem::create_directories(specs);
  auto redis = ChaosRedis::Start(/*with_replica=*/true);
  if (!redis.ok()) {
    std::cerr << "chaos: " << redis.status().message() << "\n";
    return 1;
  }
  const std::string url = (*redis)->url();
  WriteFile(root / "handlers.yaml", "handlers:\n  " + ChaosHandler(p, record, url));
  auto write_spec = [&](bool high) {
    WriteFile(specs + "/chaos.yaml",
              LaneYaml(p, record, url, high ? p.concurrency_high : p.concurrency_low));
  };
  write_spec(false);
  auto controller = StartController(specs, root / "state", replicas, p.restart_backoff_max);
  if (!controller) return 1;

  const auto started = std::chrono::steady_clock::now();
  ChaosProducer producer(url, kQueue, p.rate, stale && replicas);
  LaneUnderTest lane{redis->get(), kQueue, root.path(), root / "handlers.yaml", write_spec, {}};
  for (const char* kind : {"supervisor", "worker", "autopilot"}) {
    if (replicas) lane.competitor_args[kind] = {"--redis-replicas", "1"};
  }
  ChaosDriver driver(lane, p.plan, p.seed);
  RunFaults(driver, producer);
  driver.Finish();
  producer.Stop();
  const std::vector<int64_t> acked = producer.Acked();
  bool drained = Drain(url, record, p.drain);
  // A stale failover loses writes, and doctor must say so (and say nothing else is wrong);
  // then, once the operator has done what doctor advises, doctor must be all ok. A synced
  // failover loses nothing: doctor all ok at once.
  const bool regression_expected = stale && Count(driver, "failover") > 0;
  DoctorVerdict doctor = SettledDoctor(url, Count(driver, "kill-worker"), regression_expected);
  std::string doctor_problems = doctor.problems;
  if (regression_expected && doctor_problems.empty()) {
    if (std::string why = ClearRegression(url); !why.empty()) {
      doctor_problems = "  cannot delete the regression record: " + why + "\n";
    } else {
      doctor_problems = SettledDoctor(url, Count(driver, "kill-worker"), false).problems;
      if (!doctor_problems.empty()) {
        doctor_problems = "  after deleting the regression record, as doctor advises:\n" +
                          doctor_problems;
      }
    }
  }
  if (!doctor_problems.empty()) {
    // What the controller said about its roles (it logs at warn: restarts, backoffs,
    // refusals): the first place to look when the lane did not settle.
    std::string log = controller->Stderr();
    if (log.size() > 6000) log = "..." + log.substr(log.size() - 6000);
    std::cout << "chaos: the lane did not settle; the controller's log ends:\n" << log << "\n";
  }
  const int64_t dead = Dead(url);
  const std::unordered_set<int64_t> queued = drained ? std::unordered_set<int64_t>{} : Queued(url);
  controller->Signal(SIGTERM);
  controller->Wait(seconds(30));
  const auto elapsed = std::chrono::duration_cast<seconds>(
      std::chrono::steady_clock::now() - started);

  int malformed = 0;
  Outcome out;
  out.verdict = Judge(ReadChaosRecord(record, &malformed), acked, driver.disruptions(), queued);
  out.malformed = malformed;
  out.drained = drained;
  out.doctor_problems = doctor_problems;
  out.regression_reported = doctor.regression_reported;
  out.dead = dead;
  out.seconds = elapsed.count();
  out.submit_errors = producer.errors();
  const bool pass = Report(p, mode, asserted, driver, out);
  if (!pass) {
    std::cout << "chaos: the record and the driver's log are kept in "
              << KeepEvidence(p, record, driver.disruptions()) << "\n";
  }
  testing::KillProcessesOfThisTest();
  return pass ? 0 : 1;
}

}  // namespace lk::chaos

int main(int argc, char** argv) {
  signal(SIGPIPE, SIG_IGN);
  return lk::chaos::Main(argc, argv);
}
