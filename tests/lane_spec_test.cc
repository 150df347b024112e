// The Lane spec: a table of good and bad specs with the exact messages and positions, the
// rules across lanes and files, hostile inputs, the examples, `lanekeeper validate` end to
// end, and crds/lane.yaml agreeing with the parser.
#include "controller/spec/lane_parser.h"
#include "controller/spec/lane_set.h"
#include "controller/spec/lane_types.h"

#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>
#include <yaml-cpp/yaml.h>

#include <filesystem>
#include <fstream>
#include <regex>
#include <set>
#include <string>
#include <vector>

#include "controller/reconcile/role_plan.h"
#include "controller/spec/cycle_file.h"
#include "support/child_process.h"
#include "worker/redis_connection.h"

namespace lk {
namespace {

namespace fs = std::filesystem;

const fs::path kSourceDir = fs::path(__FILE__).parent_path().parent_path();

// Every row's spec is this header plus its body, so body line N is file line 4 + N.
constexpr std::string_view kHeader =
    "apiVersion: lanekeeper.dev/v1alpha1\n"
    "kind: Lane\n"
    "metadata: {name: kb}\n"
    "spec:\n";

struct Row {
  std::string name;
  std::string yaml;                 // the whole file
  std::vector<std::string> errors;  // "line:column: field: message"; none: valid
};

// Names the row in gtest's output instead of dumping its bytes.
void PrintTo(const Row& row, std::ostream* os) { *os << row.name; }

Row Spec(std::string name, std::string body, std::vector<std::string> errors) {
  return {std::move(name), std::string(kHeader) + body, std::move(errors)};
}

std::vector<std::string> Messages(const std::vector<SpecError>& errors) {
  std::vector<std::string> out;
  for (const auto& e : errors) out.push_back(e.ToString());
  return out;
}

// Errors without the "lane.yaml:" prefix, as the table writes them.
std::vector<std::string> Parse(const std::string& yaml, std::vector<LaneSpec>* lanes = nullptr) {
  ParsedLanes parsed = ParseLaneSpecs(yaml, "lane.yaml");
  if (lanes) *lanes = parsed.lanes;
  std::vector<std::string> out;
  for (const auto& e : parsed.errors) {
    std::string s = e.ToString();
    out.push_back(e.line > 0 ? s.substr(10) : s);
  }
  return out;
}

const std::string kUrlForms =
    " (expected redis://[[user]:password@]host[:port][/db] or "
    "unix://[[user]:password@]/path.sock[?db=N])";

std::vector<Row> Table() {
  return {
      // ---- valid -------------------------------------------------------------------------
      Spec("the_issue_sketch",
           "  queue: default\n"
           "  redis: {url: redis://127.0.0.1:6379/0}\n"
           "  autopilot: {mode: dispatch-only, repo: /srv/brain/knowledge, interval: 300s,\n"
           "              cycle: [{name: sync, command: [git, pull, --ff-only], timeout: 120s}]}\n"
           "  supervisor: {enabled: true, concurrency: 2, maxRSS: 2048Mi, maxCrashes: 10, "
           "drainTimeout: 30s}\n"
           "  handlers: {embed: {command: [gbrain, embed, --stale], timeout: 10m, lease: 300s, "
           "maxAttempts: 3}}\n",
           {}),
      Spec("a_supervisor_only_lane", "  queue: q\n", {}),
      Spec("a_managed_worker_lane",
           "  autopilot: {mode: managed-worker, repo: /r, concurrency: 3, maxRSS: 2Gi,\n"
           "              drainTimeout: 1m}\n"
           "  supervisor: {enabled: false}\n",
           {}),
      Spec("sizes_in_every_form",
           "  supervisor: {maxRSS: 2048}\n"
           "  autopilot: {mode: \"off\"}\n",
           {}),
      Spec("quoted_size_and_no_limit", "  supervisor: {maxRSS: \"0\", drainTimeout: \"45s\"}\n", {}),
      Spec("mode_off_needs_no_repo", "  autopilot: {mode: off, interval: 1h}\n", {}),
      Spec("a_unix_socket_with_a_password",
           "  redis: {url: \"unix://:s%40cret@/run/redis.sock?db=2\"}\n", {}),

      // ---- the document ------------------------------------------------------------------
      {"wrong_api_version",
       "apiVersion: lanekeeper.dev/v1\nkind: Lane\nmetadata: {name: kb}\nspec: {}\n",
       {"1:13: apiVersion: must be lanekeeper.dev/v1alpha1, got 'lanekeeper.dev/v1'"}},
      {"wrong_kind",
       "apiVersion: lanekeeper.dev/v1alpha1\nkind: Deployment\nmetadata: {name: kb}\nspec: {}\n",
       {"2:7: kind: must be Lane, got 'Deployment'"}},
      {"missing_everything", "metadata: {}\n",
       {"1:1: apiVersion: missing: expected lanekeeper.dev/v1alpha1",
        "1:1: kind: missing: expected Lane", "1:1: spec: missing",
        "1:11: metadata.name: missing"}},
      {"not_a_mapping", "- apiVersion: lanekeeper.dev/v1alpha1\n",
       {"1:1: expected a Lane (apiVersion, kind, metadata, spec), got a list"}},
      {"bad_name",
       "apiVersion: lanekeeper.dev/v1alpha1\nkind: Lane\nmetadata: {name: Knowledge_KB}\n"
       "spec: {}\n",
       {"3:18: metadata.name: must be 1 to 63 lowercase letters, digits or '-', starting and "
        "ending with a letter or digit, got 'Knowledge_KB'"}},
      {"spec_without_a_value",
       "apiVersion: lanekeeper.dev/v1alpha1\nkind: Lane\nmetadata: {name: kb}\nspec:\n",
       {"4:1: spec: has no value (write spec: {} for a lane with every default)"}},

      // ---- unknown fields ----------------------------------------------------------------
      Spec("a_typo_gets_a_suggestion", "  supervisor: {maxRss: 2Gi}\n",
           {"5:16: spec.supervisor.maxRss: unknown field 'maxRss' (did you mean 'maxRSS'?)"}),
      Spec("a_transposition_gets_a_suggestion", "  autopilot: {repo: /r, intreval: 5m}\n",
           {"5:25: spec.autopilot.intreval: unknown field 'intreval' (did you mean 'interval'?)"}),
      Spec("a_field_one_level_off", "  concurrency: 2\n",
           {"5:3: spec.concurrency: unknown field 'concurrency' (did you mean "
            "spec.supervisor.concurrency?)"}),
      Spec("a_field_from_a_cycle_file", "  autopilot: {repo: /r, steps: []}\n",
           {"5:25: spec.autopilot.steps: unknown field 'steps' (did you mean "
            "spec.autopilot.cycle?)"}),
      Spec("an_unknown_field_lists_the_known_ones", "  instances: 2\n",
           {"5:3: spec.instances: unknown field 'instances' (expected queue, redis, autopilot, "
            "supervisor or handlers)"}),
      Spec("a_field_written_twice",
           "  queue: a\n"
           "  queue: b\n",
           {"6:3: spec.queue: written twice (first at line 5)"}),
      Spec("merge_keys", "  supervisor: {<<: {concurrency: 2}}\n",
           {"5:16: spec.supervisor.<<: merge keys ('<<') are not supported: write the fields "
            "out"}),

      // ---- types -------------------------------------------------------------------------
      Spec("a_quoted_number", "  supervisor: {concurrency: \"2\"}\n",
           {"5:29: spec.supervisor.concurrency: expected a whole number (1 to 4096), got the "
            "string '2' (remove the quotes)"}),
      Spec("yes_is_not_a_boolean", "  supervisor: {enabled: yes}\n",
           {"5:25: spec.supervisor.enabled: expected true or false, got the string 'yes'"}),
      Spec("a_number_where_a_string_goes", "  queue: 2024\n",
           {"5:10: spec.queue: expected a string, got the number 2024 (quote it: \"2024\")"}),
      Spec("a_command_that_is_a_string", "  handlers: {embed: {command: gbrain embed}}\n",
           {"5:31: spec.handlers.embed.command: expected a non-empty list of arguments like "
            "[git, pull] (no shell), got the string 'gbrain embed'"}),
      Spec("an_argument_that_is_a_number",
           "  autopilot: {repo: /r, cycle: [{name: nap, command: [sleep, 5]}]}\n",
           {"5:62: spec.autopilot.cycle[0].command[1]: expected a string, got the number 5 "
            "(quote it: \"5\")"}),
      Spec("a_leading_zero", "  supervisor: {maxCrashes: 010}\n",
           {"5:28: spec.supervisor.maxCrashes: expected a whole number in decimal, got '010'"}),
      Spec("a_value_left_empty",
           "  supervisor:\n"
           "    concurrency:\n",
           {"6:5: spec.supervisor.concurrency: has no value (leave the field out for the "
            "default)"}),
      Spec("out_of_range",
           "  supervisor: {concurrency: 0, maxCrashes: 5000}\n"
           "  handlers: {embed: {command: [e], maxAttempts: 0}}\n",
           {"5:29: spec.supervisor.concurrency: must be 1 to 4096, got 0",
            "5:44: spec.supervisor.maxCrashes: must be 1 to 1000, got 5000",
            "6:49: spec.handlers.embed.maxAttempts: must be 1 to 1000, got 0"}),

      // ---- durations and sizes -----------------------------------------------------------
      Spec("a_bad_duration", "  supervisor: {drainTimeout: 10x}\n",
           {"5:30: spec.supervisor.drainTimeout: bad duration '10x': expected a number with a "
            "unit, like 500ms, 30s, 5m or 1h"}),
      Spec("a_duration_without_a_unit", "  autopilot: {repo: /r, interval: 300}\n",
           {"5:35: spec.autopilot.interval: expected a duration like 30s or 5m, got the number "
            "300 (add a unit: 300s)"}),
      Spec("durations_out_of_range",
           "  autopilot: {repo: /r, interval: 500ms}\n"
           "  handlers: {embed: {command: [e], lease: 2h, timeout: 31d}}\n",
           {"5:35: spec.autopilot.interval: must be 1s to 30d, got '500ms'",
            "6:43: spec.handlers.embed.lease: must be 5s to 1h, got '2h'",
            "6:56: spec.handlers.embed.timeout: must be 1ms to 30d, got '31d'"}),
      Spec("a_duration_that_would_overflow", "  supervisor: {drainTimeout: 999999999999d}\n",
           {"5:30: spec.supervisor.drainTimeout: must be 1s to 30d, got '999999999999d'"}),
      Spec("a_bad_size", "  supervisor: {maxRSS: 2GB}\n",
           {"5:24: spec.supervisor.maxRSS: bad size '2GB': expected megabytes like 2048, 2048Mi "
            "or 2Gi"}),
      Spec("a_gb_mb_mix_up", "  supervisor: {maxRSS: 100Mi}\n",
           {"5:24: spec.supervisor.maxRSS: '100Mi' is only 100 MB, which looks like a GB/MB "
            "mix-up: write 100Gi for gigabytes, at least 256Mi, or 0 for no limit"}),
      Spec("a_size_too_big", "  supervisor: {maxRSS: 2048Gi}\n",
           {"5:24: spec.supervisor.maxRSS: must be at most 1Ti, got '2048Gi'"}),

      // ---- names, queue, Redis -----------------------------------------------------------
      Spec("a_bad_queue", "  queue: \"my queue\"\n",
           {"5:10: spec.queue: must be 1 to 100 letters, digits, '.', '_' or '-', got 'my "
            "queue'"}),
      Spec("a_bad_port_hides_the_password", "  redis: {url: \"redis://:hunter2@db:99999/0\"}\n",
           {"5:16: spec.redis.url: bad Redis URL 'redis://:***@db:99999/0': port must be 1 to "
            "65535" + kUrlForms}),
      Spec("an_unknown_scheme", "  redis: {url: \"http://db:6379\"}\n",
           {"5:16: spec.redis.url: bad Redis URL 'http://db:6379': unknown scheme" + kUrlForms}),
      Spec("a_url_from_a_secret",
           "  redis: {urlFrom: {secretKeyRef: {name: redis.prod, key: .redis-url_2}}}\n", {}),
      Spec("url_and_url_from",
           "  redis: {url: \"redis://db\", urlFrom: {secretKeyRef: {name: r, key: u}}}\n",
           {"5:10: spec.redis: url and urlFrom are both set: write one, the URL inline or from a "
            "Secret"}),
      Spec("neither_url_nor_url_from", "  redis: {}\n",
           {"5:10: spec.redis: expected url or urlFrom (leave spec.redis out for the default "
            "Redis)"}),
      Spec("an_empty_redis_section_is_none", "  redis:\n", {}),
      Spec("url_from_without_a_secret", "  redis: {urlFrom: {}}\n",
           {"5:20: spec.redis.urlFrom.secretKeyRef: missing: the Secret and key that hold the "
            "Redis URL"}),
      Spec("a_secret_ref_without_a_key", "  redis: {urlFrom: {secretKeyRef: {name: r}}}\n",
           {"5:35: spec.redis.urlFrom.secretKeyRef.key: missing"}),
      Spec("bad_secret_names_and_keys",
           "  redis: {urlFrom: {secretKeyRef: {name: Redis_1, key: ..url}}}\n",
           {"5:42: spec.redis.urlFrom.secretKeyRef.name: must be a Secret name (lowercase "
            "letters, digits, '-' and '.', at most 253), got 'Redis_1'",
            "5:56: spec.redis.urlFrom.secretKeyRef.key: must be a Secret key (letters, digits, "
            "'-', '_' and '.', at most 253, not starting with '..'), got '..url'"}),
      Spec("a_secret_ref_with_a_typo", "  redis: {urlFrom: {secretKeyref: {name: r, key: u}}}\n",
           {"5:20: spec.redis.urlFrom.secretKeyRef: missing: the Secret and key that hold the "
            "Redis URL",
            "5:21: spec.redis.urlFrom.secretKeyref: unknown field 'secretKeyref' (did you mean "
            "'secretKeyRef'?)"}),
      Spec("a_relative_socket", "  redis: {url: \"unix://run/redis.sock\"}\n",
           {"5:16: spec.redis.url: bad Redis URL 'unix://run/redis.sock': a unix socket path "
            "must be absolute" + kUrlForms}),

      // ---- autopilot and cycle -----------------------------------------------------------
      Spec("an_unknown_mode", "  autopilot: {mode: managed, repo: /r}\n",
           {"5:21: spec.autopilot.mode: must be dispatch-only, managed-worker or off, got "
            "'managed'"}),
      Spec("a_missing_repo", "  autopilot: {interval: 5m}\n",
           {"5:14: spec.autopilot.repo: missing: required unless mode is off"}),
      Spec("a_relative_repo", "  autopilot: {repo: ~/kb}\n",
           {"5:21: spec.autopilot.repo: must be an absolute path, got '~/kb'"}),
      Spec("duplicate_step_names",
           "  autopilot:\n"
           "    repo: /r\n"
           "    cycle:\n"
           "      - {name: sync, command: [git, pull]}\n"
           "      - {name: sync, command: [git, push]}\n",
           {"9:16: spec.autopilot.cycle[1].name: duplicate step name 'sync' (first at line 8)"}),
      Spec("a_step_without_a_command",
           "  autopilot:\n"
           "    repo: /r\n"
           "    cycle:\n"
           "      - name: sync\n"
           "        comand: [git, pull]\n",
           {"8:9: spec.autopilot.cycle[0].command: missing",
            "9:9: spec.autopilot.cycle[0].comand: unknown field 'comand' (did you mean "
            "'command'?)"}),
      Spec("at_most_50_steps",
           "  autopilot:\n"
           "    repo: /r\n"
           "    cycle: [" + [] {
             std::string steps;
             for (int i = 0; i < 51; ++i) steps += (i ? ", " : "") + std::string("{name: s") + std::to_string(i) + ", command: [a]}";
             return steps;
           }() + "]\n",
           {"7:12: spec.autopilot.cycle: at most 50 steps, got 51"}),
      Spec("at_most_100_arguments_of_4096_characters",
           "  handlers: {h: {command: [" + std::string(4097, 'x') + "]}}\n"
           "  autopilot: {repo: /r, cycle: [{name: s, command: [" + [] {
             std::string args;
             for (int i = 0; i < 101; ++i) args += (i ? ", " : "") + std::string("a");
             return args;
           }() + "]}]}\n",
           {"5:28: spec.handlers.h.command[0]: at most 4096 characters, got 4097",
            "6:52: spec.autopilot.cycle[0].command: at most 100 arguments, got 101"}),
      Spec("long_names_count_characters_not_bytes",
           "  autopilot: {repo: \"/" + std::string(4095, 'r') + "\", cycle: [{name: \"" +
               [] {
                 std::string name;
                 for (int i = 0; i < 100; ++i) name += "\u00e9";  // two bytes each
                 return name;
               }() + "\", command: [a]}]}\n",
           {}),
      Spec("names_over_their_length",
           "  autopilot: {repo: \"/" + std::string(4096, 'r') + "\", cycle: [{name: \"" +
               std::string(101, 's') + "\", command: [a]}]}\n",
           {"5:21: spec.autopilot.repo: at most 4096 characters, got 4097",
            "5:4137: spec.autopilot.cycle[0].name: at most 100 characters, got 101"}),
      Spec("an_empty_argument", "  handlers: {embed: {command: [embed, \"\"]}}\n",
           {"5:39: spec.handlers.embed.command[1]: must not be empty"}),

      // ---- one worker owner --------------------------------------------------------------
      Spec("two_worker_owners",
           "  autopilot: {mode: managed-worker, repo: /r}\n"
           "  supervisor: {enabled: true}\n",
           {"5:21: spec.autopilot.mode: two worker owners: set autopilot.mode to dispatch-only, "
            "or spec.supervisor.enabled to false"}),
      Spec("two_worker_owners_by_default", "  autopilot: {mode: managed-worker, repo: /r}\n",
           {"5:21: spec.autopilot.mode: two worker owners: set autopilot.mode to dispatch-only, "
            "or spec.supervisor.enabled to false"}),
      Spec("no_worker_owner",
           "  autopilot: {repo: /r}\n"
           "  supervisor: {enabled: false}\n",
           {"6:25: spec.supervisor.enabled: no worker owner: enable the supervisor, or set "
            "autopilot.mode to managed-worker"}),
      Spec("settings_of_a_disabled_supervisor",
           "  autopilot: {mode: managed-worker, repo: /r}\n"
           "  supervisor: {enabled: false, concurrency: 4}\n",
           {"6:32: spec.supervisor.concurrency: has no effect while the supervisor is disabled "
            "(a managed-worker autopilot's worker takes spec.autopilot.concurrency)"}),
      Spec("worker_settings_of_a_dispatch_only_autopilot",
           "  autopilot: {repo: /r, maxRSS: 2Gi}\n",
           {"5:25: spec.autopilot.maxRSS: has no effect unless mode is managed-worker (the "
            "supervisor's worker takes spec.supervisor.maxRSS)"}),

      // ---- YAML itself -------------------------------------------------------------------
      Spec("a_syntax_error", "  queue: [a\n",
           {"6:1: invalid YAML: end of sequence flow not found"}),
      Spec("an_alias_without_an_anchor", "  queue: *q\n",
           {"5:10: invalid YAML: the referenced anchor is not defined"}),
      Spec("anchors_and_aliases_that_resolve",
           "  autopilot: {repo: &r /srv/kb, cycle: [{name: a, command: [ls, *r]}]}\n", {}),
  };
}

class LaneSpecTable : public ::testing::TestWithParam<Row> {};

TEST_P(LaneSpecTable, ReportsExactlyTheseErrors) {
  const Row& row = GetParam();
  std::vector<LaneSpec> lanes;
  EXPECT_EQ(Parse(row.yaml, &lanes), row.errors) << row.yaml;
  EXPECT_EQ(lanes.size(), row.errors.empty() ? 1u : 0u);
}

INSTANTIATE_TEST_SUITE_P(LaneSpec, LaneSpecTable, ::testing::ValuesIn(Table()),
                         [](const auto& info) { return info.param.name; });

TEST(LaneSpecParse, TheSketchBecomesTheModel) {
  std::vector<LaneSpec> lanes;
  ASSERT_EQ(Parse(Table()[0].yaml, &lanes), std::vector<std::string>{});
  const LaneSpec& l = lanes.at(0);
  EXPECT_EQ(l.name, "kb");
  EXPECT_EQ(l.queue, "default");
  EXPECT_EQ(l.redis_url, "redis://127.0.0.1:6379/0");
  EXPECT_EQ(l.autopilot.mode, AutopilotMode::kDispatchOnly);
  EXPECT_EQ(l.autopilot.repo, "/srv/brain/knowledge");
  EXPECT_EQ(l.autopilot.interval, Millis(300'000));
  ASSERT_EQ(l.autopilot.cycle.size(), 1u);
  EXPECT_EQ(l.autopilot.cycle[0].name, "sync");
  EXPECT_EQ(l.autopilot.cycle[0].command, (std::vector<std::string>{"git", "pull", "--ff-only"}));
  EXPECT_EQ(l.autopilot.cycle[0].timeout, Millis(120'000));
  EXPECT_TRUE(l.supervisor.enabled);
  EXPECT_EQ(l.supervisor.worker.concurrency, 2);
  EXPECT_EQ(l.supervisor.worker.max_rss_mb, 2048);
  EXPECT_EQ(l.supervisor.max_crashes, 10);
  EXPECT_EQ(l.supervisor.worker.drain_timeout, Millis(30'000));
  EXPECT_EQ(&l.Worker(), &l.supervisor.worker);
  ASSERT_EQ(l.handlers.size(), 1u);
  EXPECT_EQ(l.handlers[0].name, "embed");
  EXPECT_EQ(l.handlers[0].timeout, Millis(600'000));
  EXPECT_EQ(l.handlers[0].lease, Millis(300'000));
  EXPECT_EQ(l.handlers[0].max_attempts, 3);
  EXPECT_EQ(l.name_mark.line, 3);
  EXPECT_EQ(l.queue_mark.line, 5);
}

TEST(LaneSpecParse, DefaultsFillWhatIsNotWritten) {
  std::vector<LaneSpec> lanes;
  ASSERT_EQ(Parse(std::string(kHeader) + "  autopilot: {repo: /r, cycle: [{name: a, command: [a]}]}\n",
                  &lanes),
            std::vector<std::string>{});
  const LaneSpec& l = lanes.at(0);
  EXPECT_EQ(l.queue, "default");
  EXPECT_EQ(l.queue_mark.line, 4) << "no spec.queue: errors about the queue point at spec";
  EXPECT_EQ(l.redis_url, "");
  EXPECT_EQ(l.autopilot.mode, AutopilotMode::kDispatchOnly) << "a section without a mode";
  EXPECT_EQ(l.autopilot.cycle[0].timeout, kDefaultCycleStepTimeout);
  EXPECT_EQ(l.supervisor.worker.concurrency, 1);
  EXPECT_EQ(l.supervisor.worker.max_rss_mb, 0);
  EXPECT_EQ(l.generation, 0);

  ASSERT_EQ(Parse(std::string(kHeader) + "  queue: q\n", &lanes), std::vector<std::string>{});
  EXPECT_EQ(lanes.at(0).autopilot.mode, AutopilotMode::kOff) << "no section, no autopilot";
}

TEST(LaneSpecParse, AManagedWorkerLaneRunsTheAutopilotsWorkerSettings) {
  std::vector<LaneSpec> lanes;
  ASSERT_EQ(Parse(Table()[2].yaml, &lanes), std::vector<std::string>{});
  const LaneSpec& l = lanes.at(0);
  EXPECT_EQ(&l.Worker(), &l.autopilot.worker);
  EXPECT_EQ(l.Worker().concurrency, 3);
  EXPECT_EQ(l.Worker().max_rss_mb, 2048);
  EXPECT_EQ(l.Worker().drain_timeout, Millis(60'000));
}

TEST(LaneSpecParse, EveryErrorInEveryDocumentIsReportedAtItsLineInTheFile) {
  std::string text =
      "# two lanes\n"                                    // 1
      "apiVersion: lanekeeper.dev/v1alpha1\n"            // 2
      "kind: Lane\n"                                     // 3
      "metadata: {name: good}\n"                         // 4
      "spec: {queue: a}\n"                               // 5
      "---\n"                                            // 6
      "apiVersion: lanekeeper.dev/v1alpha1\n"            // 7
      "kind: Lane\n"                                     // 8
      "metadata: {name: bad}\n"                          // 9
      "spec:\n"                                          // 10
      "  queue: b\n"                                     // 11
      "  supervisor: {concurency: 2, maxRSS: 10Mi}\n"    // 12
      "---\n"                                            // 13
      "queue: [broken\n"                                 // 14
      "---\n"                                            // 15
      "apiVersion: lanekeeper.dev/v1alpha1\n"            // 16
      "kind: Lane\n"                                     // 17
      "metadata: {name: third}\n"                        // 18
      "spec: {queue: c}\n";                              // 19
  std::vector<LaneSpec> lanes;
  EXPECT_EQ(Parse(text, &lanes),
            (std::vector<std::string>{
                "12:16: spec.supervisor.concurency: unknown field 'concurency' (did you mean "
                "'concurrency'?)",
                "12:39: spec.supervisor.maxRSS: '10Mi' is only 10 MB, which looks like a GB/MB "
                "mix-up: write 10Gi for gigabytes, at least 256Mi, or 0 for no limit",
                "15:1: invalid YAML: end of sequence flow not found"}));
  ASSERT_EQ(lanes.size(), 2u) << "a broken document hides neither its neighbours nor their lanes";
  EXPECT_EQ(lanes[0].name, "good");
  EXPECT_EQ(lanes[1].name, "third");
  EXPECT_EQ(lanes[1].name_mark.line, 18);
}

TEST(LaneSpecParse, DirectivesCommentsAndEmptyDocumentsAreNotLanes) {
  std::string text =
      "%YAML 1.2\n"
      "---\n"
      "# nothing here\n"
      "---\n"
      "...\n"
      "---\n"
      "apiVersion: lanekeeper.dev/v1alpha1\n"
      "kind: Lane\n"
      "metadata: {name: kb}\n"
      "spec: {queue: \"x\"}\n"
      "...\n";
  std::vector<LaneSpec> lanes;
  EXPECT_EQ(Parse(text, &lanes), std::vector<std::string>{});
  ASSERT_EQ(lanes.size(), 1u);
  EXPECT_EQ(lanes[0].name_mark.line, 9);
  EXPECT_EQ(Parse("", &lanes), std::vector<std::string>{});
  EXPECT_TRUE(lanes.empty());
}

TEST(LaneSpecParse, WindowsLineEndingsAndAByteOrderMarkAreFine) {
  std::string text = "\xEF\xBB\xBF" + std::string(kHeader) + "  queue: q\n---\n" +
                     std::string(kHeader) + "  queue: r\n";
  std::string crlf;
  for (char c : text) crlf += c == '\n' ? std::string("\r\n") : std::string(1, c);
  std::vector<LaneSpec> lanes;
  EXPECT_EQ(Parse(crlf, &lanes), std::vector<std::string>{});
  ASSERT_EQ(lanes.size(), 2u);
  EXPECT_EQ(lanes[1].queue, "r");
  EXPECT_EQ(lanes[1].queue_mark.line, 11);
}

TEST(LaneSpecParse, HostileInputsBecomeErrorsNotCrashes) {
  // yaml-cpp throws on all of these (or would loop over a self-referencing node if we
  // walked it blindly); each must come back as an error, quickly.
  const std::vector<std::pair<std::string, std::vector<std::string>>> inputs = {
      {std::string(100'000, '['), {"1:1: invalid YAML: nested too deeply"}},
      // yaml-cpp 0.7 would loop forever on these, allocating as it goes.
      {",", {"1:1: invalid YAML: unexpected ','"}},
      {std::string(kHeader) + "  queue: q\n---\n, ]\n",
       {"7:1: invalid YAML: unexpected ','"}},
      {std::string(kHeader) + "  autopilot: &a {repo: /r, cycle: *a}\n",
       {"5:14: spec.autopilot.cycle: expected a list of steps like [{name: sync, command: [git, "
        "pull]}], got a mapping"}},
      {std::string(kHeader) + "  handlers: &h {x: *h}\n",
       {"5:13: spec.handlers.x.command: missing",
        "5:17: spec.handlers.x.x: unknown field 'x' (expected command, timeout, lease or "
        "maxAttempts)"}},
      {std::string(kHeader) + "  queue: !custom q\n",
       {"5:10: spec.queue: expected a string, got a value tagged '!custom'"}},
      {std::string(kHeader) + "  queue: !!int q\n",
       {"5:10: spec.queue: expected a string, got a value tagged 'tag:yaml.org,2002:int'"}},
      {std::string(kHeader) + "  queue: \"a\\0b\"\n", {"5:10: spec.queue: contains a NUL character"}},
      {std::string(kHeader) + "  queue: \"\xff\"\n", {"5:10: spec.queue: is not valid UTF-8"}},
      {std::string(kHeader) + "  ? [a, b]\n  : 1\n",
       {"5:5: spec: expected a field name, got a list"}},
      {std::string(kHeader) + "  \"line\\nbreak\": 1\n",
       {"5:3: spec.line\\nbreak: unknown field 'line\\nbreak' (expected queue, redis, autopilot, "
        "supervisor or handlers)"}},
  };
  for (const auto& [yaml, errors] : inputs) {
    EXPECT_EQ(Parse(yaml), errors) << yaml.substr(0, 200);
  }
  std::string many = std::string(kHeader);
  for (int i = 0; i < 150; ++i) many += "  k" + std::to_string(i) + ": 1\n";
  std::vector<std::string> errors = Parse(many);
  ASSERT_EQ(errors.size(), 101u);
  EXPECT_EQ(errors[99].substr(0, 17), "104:3: spec.k99: ");
  EXPECT_EQ(errors[100], "lane.yaml: and 50 more errors");
  std::string huge(2 << 20, '#');
  EXPECT_EQ(Parse(huge), std::vector<std::string>{"lane.yaml: is 2097152 bytes: a Lane spec file is "
                                                  "at most 1 MiB"});
}

TEST(LaneSpecParse, SpecJsonChangesWithTheSpecAndOnlyWithIt) {
  std::vector<LaneSpec> a, b, c;
  Parse(Table()[0].yaml, &a);
  Parse(Table()[0].yaml, &b);
  std::string edited = Table()[0].yaml;
  edited.replace(edited.find("concurrency: 2"), 14, "concurrency: 3");
  Parse(edited, &c);
  ASSERT_EQ(a.size() + b.size() + c.size(), 3u);
  EXPECT_EQ(a[0].SpecJson(), b[0].SpecJson());
  EXPECT_NE(a[0].SpecJson(), c[0].SpecJson());
  LaneSpec by_hand;
  by_hand.autopilot.repo = "/bad\xff";
  EXPECT_NE(by_hand.SpecJson(), "") << "bytes that are not UTF-8 must not throw";
}

TEST(LaneSpecParse, ARedisUrlFromASecretIsInTheModelAndItsJson) {
  auto parse = [](const std::string& redis) {
    std::vector<LaneSpec> lanes;
    EXPECT_EQ(Parse(std::string(kHeader) + "  redis: " + redis + "\n", &lanes),
              std::vector<std::string>{});
    return lanes.empty() ? LaneSpec{} : lanes[0];
  };
  LaneSpec a = parse("{urlFrom: {secretKeyRef: {name: redis, key: url}}}");
  EXPECT_EQ(a.redis_url, "");
  EXPECT_EQ(a.redis_url_from, (SecretKeyRef{"redis", "url"}));
  LaneSpec other_key = parse("{urlFrom: {secretKeyRef: {name: redis, key: url2}}}");
  LaneSpec other_secret = parse("{urlFrom: {secretKeyRef: {name: redis2, key: url}}}");
  LaneSpec inline_url = parse("{url: redis://127.0.0.1:6379/0}");
  EXPECT_TRUE(inline_url.redis_url_from.empty());
  std::set<std::string> json = {a.SpecJson(), other_key.SpecJson(), other_secret.SpecJson(),
                                inline_url.SpecJson(), parse("{url: redis://db}").SpecJson()};
  EXPECT_EQ(json.size(), 5u) << "a change of Secret or key is a change of the spec";
  EXPECT_EQ(a.SpecJson(), parse("{urlFrom: {secretKeyRef: {key: url, name: redis}}}").SpecJson());
}

TEST(LaneSpecParse, RedisReplicasReachTheRolesAsTheirGlobalFlag) {
  std::vector<LaneSpec> lanes;
  ASSERT_EQ(Parse(std::string(kHeader) + "  redis: {url: redis://db, replicas: 2}\n"
                                         "  autopilot: {repo: /r}\n",
                  &lanes),
            std::vector<std::string>{});
  ASSERT_EQ(lanes.size(), 1u);
  EXPECT_EQ(lanes[0].redis_replicas, 2);
  RolePlan plan = PlanRoles(lanes[0]);
  for (const PlannedRole& role : plan.roles) {
    ASSERT_GE(role.args.size(), 4u);
    EXPECT_EQ(std::vector<std::string>(role.args.begin(), role.args.begin() + 4),
              (std::vector<std::string>{"--queue", "default", "--redis-replicas", "2"}))
        << role.name;
  }
  LaneSpec none;
  ASSERT_EQ(Parse(std::string(kHeader) + "  redis: {url: redis://db}\n", &lanes),
            std::vector<std::string>{});
  none = lanes.back();
  EXPECT_EQ(none.SpecJson().find("replicas"), std::string::npos)
      << "a lane without it keeps the spec JSON it had";
  EXPECT_NE(Parse(std::string(kHeader) + "  redis: {url: redis://db, replicas: 17}\n").at(0).find(
                "spec.redis.replicas"),
            std::string::npos);
}

TEST(LaneSpecParse, AUnixSocketPathPast106BytesIsRefusedAtItsLine) {
  const std::string path106 = "/" + std::string(99, 'd') + "/r.soc";
  std::vector<LaneSpec> lanes;
  EXPECT_EQ(Parse(std::string(kHeader) + "  redis: {url: \"unix://" + path106 + "\"}\n", &lanes),
            std::vector<std::string>{});
  auto errors = Parse(std::string(kHeader) + "  redis: {url: \"unix://" + path106 + "k\"}\n");
  ASSERT_EQ(errors.size(), 1u);
  EXPECT_NE(errors[0].find("spec.redis.url"), std::string::npos) << errors[0];
  EXPECT_NE(errors[0].find("a unix socket path is at most 106 bytes (hiredis 0.14), this one is 107"),
            std::string::npos)
      << errors[0];
}

TEST(LaneSpecParse, MegabytesInEveryForm) {
  EXPECT_EQ(*ParseMegabytes("2048"), 2048);
  EXPECT_EQ(*ParseMegabytes("2048Mi"), 2048);
  EXPECT_EQ(*ParseMegabytes("2Gi"), 2048);
  EXPECT_EQ(*ParseMegabytes("0"), 0);
  for (const char* bad : {"", "Mi", "2G", "2GB", "2gi", "1.5Gi", "-1", "1234567890", " 2Gi"}) {
    EXPECT_FALSE(ParseMegabytes(bad).ok()) << bad;
  }
}

// ---- across lanes and files ------------------------------------------------------------

class LaneSpecDir : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() / ("lane_spec_test." + std::to_string(::getpid()) + "." +
                                        ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(dir_);
    fs::create_directories(dir_);
  }
  void TearDown() override { fs::remove_all(dir_); }
  std::string Write(const std::string& name, const std::string& text) {
    std::ofstream(dir_ / name) << text;
    return (dir_ / name).string();
  }
  static std::string Lane(const std::string& name, const std::string& spec) {
    return "apiVersion: lanekeeper.dev/v1alpha1\nkind: Lane\nmetadata: {name: " + name +
           "}\nspec:\n" + spec;
  }
  fs::path dir_;
};

TEST_F(LaneSpecDir, TwoLanesOnOneQueueAcrossTwoFilesAreRejectedAtTheLaterOne) {
  std::string a = Write("a.yaml", Lane("alpha", "  queue: jobs\n  redis: {url: redis://localhost:6379/0}\n"));
  std::string b = Write("b.yml", Lane("beta", "  redis: {url: \"redis://:pw@127.0.0.1\"}\n  queue: jobs\n"));
  Write("c.yaml", Lane("gamma", "  queue: jobs\n  redis: {url: redis://127.0.0.1:6379/1}\n"));
  Write(".b.yaml.swp", "not a spec");
  Write("notes.txt", "not a spec");
  ParsedLanes parsed = LoadLaneSpecs(dir_.string());
  EXPECT_EQ(Messages(parsed.errors), std::vector<std::string>{});
  ASSERT_EQ(parsed.lanes.size(), 3u);
  EXPECT_EQ(Messages(ValidateLaneSet(parsed.lanes, "redis://127.0.0.1:6379/0")),
            std::vector<std::string>{
                b + ":6:10: spec.queue: lane 'alpha' (" + a +
                ":5:10) already uses queue 'jobs' on redis://127.0.0.1:6379/0: a queue has "
                "exactly one lane"})
      << "localhost is 127.0.0.1, the password is not part of the server, db 1 is another queue";
}

TEST_F(LaneSpecDir, ALaneWithoutAUrlIsOnTheDefaultRedis) {
  std::string a = Write("a.yaml", Lane("alpha", "  queue: jobs\n"));
  std::string b = Write("b.yaml", Lane("beta", "  queue: jobs\n  redis: {url: redis://10.0.0.5:6380/0}\n"));
  ParsedLanes parsed = LoadLaneSpecs(dir_.string());
  EXPECT_EQ(Messages(ValidateLaneSet(parsed.lanes, "redis://127.0.0.1:6379/0")),
            std::vector<std::string>{});
  EXPECT_EQ(Messages(ValidateLaneSet(parsed.lanes, "redis://10.0.0.5:6380")),
            std::vector<std::string>{
                b + ":5:10: spec.queue: lane 'alpha' (" + a +
                ":5:10) already uses queue 'jobs' on redis://10.0.0.5:6380/0: a queue has exactly "
                "one lane"});
}

TEST_F(LaneSpecDir, ANameIsDefinedOnce) {
  std::string a = Write("a.yaml", Lane("kb", "  queue: one\n"));
  std::string b = Write("b.yaml", Lane("kb", "  queue: two\n"));
  ParsedLanes parsed = LoadLaneSpecs(dir_.string());
  EXPECT_EQ(Messages(ValidateLaneSet(parsed.lanes, "redis://127.0.0.1:6379/0")),
            std::vector<std::string>{b + ":3:18: metadata.name: lane 'kb' is already defined at " +
                                     a + ":3:18"});
}

TEST_F(LaneSpecDir, TwoLanesOnOneKeyOfOneSecretShareARedis) {
  auto from = [](const char* secret, const char* key) {
    return std::string("  queue: jobs\n  redis: {urlFrom: {secretKeyRef: {name: ") + secret +
           ", key: " + key + "}}}\n";
  };
  std::string a = Write("a.yaml", Lane("alpha", from("redis", "url")));
  std::string b = Write("b.yaml", Lane("beta", from("redis", "url")));
  Write("c.yaml", Lane("gamma", from("redis", "url2")));
  Write("d.yaml", Lane("delta", from("redis2", "url")));
  Write("e.yaml", Lane("epsilon", "  queue: jobs\n"));
  ParsedLanes parsed = LoadLaneSpecs(dir_.string());
  ASSERT_EQ(parsed.lanes.size(), 5u) << Messages(parsed.errors)[0];
  EXPECT_EQ(Messages(ValidateLaneSet(parsed.lanes, "redis://127.0.0.1:6379/0")),
            std::vector<std::string>{
                b + ":5:10: spec.queue: lane 'alpha' (" + a +
                ":5:10) already uses queue 'jobs' on the Redis of Secret redis key url: a queue "
                "has exactly one lane"})
      << "another key, another Secret or the default Redis may be another server";
}

// The controller's way: Check does not add; only the lanes it keeps are Added, so a lane it
// refused blocks nothing after it.
TEST_F(LaneSpecDir, TheCheckerAddsOnlyWhatTheCallerKeeps) {
  std::string a = Write("a.yaml", Lane("alpha", "  queue: jobs\n"));
  std::string b = Write("b.yaml", Lane("beta", "  queue: jobs\n"));
  std::string c = Write("c.yaml", Lane("gamma", "  queue: other\n"));
  ParsedLanes parsed = LoadLaneSpecs(dir_.string());
  ASSERT_EQ(parsed.lanes.size(), 3u);
  LaneSetChecker checker("redis://127.0.0.1:6379/0");
  EXPECT_EQ(Messages(checker.Check(parsed.lanes[0])), std::vector<std::string>{});
  EXPECT_EQ(Messages(checker.Check(parsed.lanes[0])), std::vector<std::string>{})
      << "checking twice is not a conflict with itself";
  checker.Add(parsed.lanes[0]);
  EXPECT_EQ(Messages(checker.Check(parsed.lanes[1])),
            std::vector<std::string>{b + ":5:10: spec.queue: lane 'alpha' (" + a +
                                     ":5:10) already uses queue 'jobs' on "
                                     "redis://127.0.0.1:6379/0: a queue has exactly one lane"});
  EXPECT_EQ(Messages(checker.Check(parsed.lanes[2])), std::vector<std::string>{});
  checker.Add(parsed.lanes[2]);
  const std::vector<std::string> again = {
      c + ":3:18: metadata.name: lane 'gamma' is already defined at " + c + ":3:18",
      c + ":5:10: spec.queue: lane 'gamma' (" + c +
          ":5:10) already uses queue 'other' on redis://127.0.0.1:6379/0: a queue has exactly "
          "one lane"};
  EXPECT_EQ(Messages(checker.Check(parsed.lanes[2])), again);
}

TEST_F(LaneSpecDir, UnreadablePathsAreErrors) {
  EXPECT_EQ(Messages(LoadLaneSpecs((dir_ / "missing.yaml").string()).errors),
            std::vector<std::string>{(dir_ / "missing.yaml").string() +
                                     ": cannot read: No such file or directory"});
  ASSERT_EQ(::mkfifo((dir_ / "fifo.yaml").c_str(), 0600), 0);
  EXPECT_EQ(Messages(LoadLaneSpecs((dir_ / "fifo.yaml").string()).errors),
            std::vector<std::string>{(dir_ / "fifo.yaml").string() +
                                     ": cannot read: not a regular file"})
      << "a FIFO would block forever";
}

TEST(LaneSpecExamples, EveryExampleIsValidAndTheyFitTogether) {
  ParsedLanes parsed = LoadLaneSpecs((kSourceDir / "examples").string());
  EXPECT_EQ(Messages(parsed.errors), std::vector<std::string>{});
  ASSERT_EQ(parsed.lanes.size(), 3u);
  EXPECT_EQ(Messages(ValidateLaneSet(parsed.lanes, "redis://127.0.0.1:6379/0")),
            std::vector<std::string>{});
  EXPECT_EQ(parsed.lanes[0].name, "knowledge");
  EXPECT_EQ(parsed.lanes[0].redis_url, "") << "`up` supplies the Redis of knowledge.yaml";
  EXPECT_EQ(parsed.lanes[1].name, "laptop");
  EXPECT_EQ(parsed.lanes[1].autopilot.mode, AutopilotMode::kManagedWorker);
  EXPECT_FALSE(parsed.lanes[1].supervisor.enabled);
  EXPECT_EQ(parsed.lanes[2].name, "quickstart");
  EXPECT_EQ(parsed.lanes[2].redis_url, "") << "`up` supplies the Redis of quickstart.yaml";
}

// ---- lanekeeper validate ---------------------------------------------------------------

TEST_F(LaneSpecDir, ValidateCommandPrintsTheLanesOfAGoodFile) {
  std::string good = Write("good.yaml", Lane("kb", "  queue: jobs\n") + "---\n" +
                                            Lane("other", "  redis: {url: \"redis://u:pw@db:6380/2\"}\n"));
  auto r = testing::RunLanekeeper({"validate", "-f", good}, {"LANEKEEPER_REDIS_URL="});
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.out,
            "2 lane(s) valid: kb (queue jobs on redis://127.0.0.1:6379/0 (default)), other (queue "
            "default on redis://u:***@db:6380/2)\n");
  EXPECT_EQ(r.err, "");
}

TEST_F(LaneSpecDir, ValidateCommandPrintsEveryErrorOfADirectory) {
  std::string a = Write("a.yaml", Lane("alpha", "  queue: jobs\n  supervisor: {maxRSS: 100Mi}\n"));
  std::string b = Write("b.yaml", Lane("beta", "  queue: jobs\n"));
  auto r = testing::RunLanekeeper({"validate", "-f", dir_.string(), "--redis", "redis://127.0.0.1:7000"});
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_EQ(r.out, "");
  EXPECT_EQ(r.err,
            a + ":6:24: spec.supervisor.maxRSS: '100Mi' is only 100 MB, which looks like a GB/MB "
                "mix-up: write 100Gi for gigabytes, at least 256Mi, or 0 for no limit\n");
  Write("a.yaml", Lane("alpha", "  queue: jobs\n"));
  r = testing::RunLanekeeper({"validate", "-f", dir_.string()}, {"LANEKEEPER_REDIS_URL="});
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_EQ(r.err, b + ":5:10: spec.queue: lane 'alpha' (" + a +
                       ":5:10) already uses queue 'jobs' on redis://127.0.0.1:6379/0: a queue has "
                       "exactly one lane\n");
}

TEST_F(LaneSpecDir, ValidateCommandRefusesNothingToValidate) {
  auto r = testing::RunLanekeeper({"validate", "-f", dir_.string()});
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_EQ(r.err, dir_.string() + ": no Lane specs here\n");
  r = testing::RunLanekeeper({"validate"});
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_NE(r.err.find("--filename is required"), std::string::npos) << r.err;
}

// ---- crds/lane.yaml agrees with the parser --------------------------------------------

class LaneSpecCrd : public ::testing::Test {
 protected:
  static YAML::Node Schema() {
    YAML::Node crd = YAML::LoadFile((kSourceDir / "crds" / "lane.yaml").string());
    return crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"];
  }
  static std::set<std::string> Properties(const YAML::Node& schema) {
    std::set<std::string> out;
    for (const auto& kv : schema["properties"]) out.insert(kv.first.as<std::string>());
    return out;
  }
  // The fields the parser knows at path, read from its unknown-field message.
  static std::set<std::string> ParserFields(const std::string& body) {
    std::vector<std::string> errors = Parse(std::string(kHeader) + body);
    EXPECT_EQ(errors.size(), 1u) << body;
    if (errors.empty()) return {};
    std::string e = errors[0];
    size_t open = e.find("(expected ");
    EXPECT_NE(open, std::string::npos) << e;
    std::string list = e.substr(open + 10, e.size() - open - 11);
    std::set<std::string> out;
    for (size_t pos = 0; pos < list.size();) {
      size_t end = list.find_first_of(", ", pos);
      std::string word = list.substr(pos, end - pos);
      if (word != "or" && !word.empty()) out.insert(word);
      if (end == std::string::npos) break;
      pos = end + 1;
    }
    return out;
  }
  static std::string Pattern(const YAML::Node& field) { return field["pattern"].as<std::string>(); }
  static bool Accepts(const std::string& pattern, const std::string& value) {
    return std::regex_search(value, std::regex(pattern));
  }
};

TEST_F(LaneSpecCrd, DeclaresTheFieldsTheParserKnows) {
  YAML::Node spec = Schema()["properties"]["spec"];
  YAML::Node ap = spec["properties"]["autopilot"], sup = spec["properties"]["supervisor"];
  EXPECT_EQ(Properties(spec), ParserFields("  zzz: 1\n"));
  EXPECT_EQ(Properties(spec["properties"]["redis"]), ParserFields("  redis: {url: redis://h, zzz: 1}\n"));
  EXPECT_EQ(Properties(ap), ParserFields("  autopilot: {repo: /r, zzz: 1}\n"));
  EXPECT_EQ(Properties(ap["properties"]["cycle"]["items"]),
            ParserFields("  autopilot: {repo: /r, cycle: [{name: a, command: [a], zzz: 1}]}\n"));
  EXPECT_EQ(Properties(sup), ParserFields("  supervisor: {zzz: 1}\n"));
  EXPECT_EQ(Properties(spec["properties"]["handlers"]["additionalProperties"]),
            ParserFields("  handlers: {x: {command: [a], zzz: 1}}\n"));
  EXPECT_EQ(ap["properties"]["mode"]["enum"].as<std::vector<std::string>>(),
            (std::vector<std::string>{"dispatch-only", "managed-worker", "off"}));
}

TEST_F(LaneSpecCrd, PatternsAcceptWhatTheParserAccepts) {
  YAML::Node spec = Schema()["properties"]["spec"];
  struct Case {
    std::string pattern;
    std::string body_prefix, body_suffix;
    std::vector<std::string> values;
  };
  YAML::Node sup = spec["properties"]["supervisor"]["properties"];
  const std::vector<Case> cases = {
      {Pattern(spec["properties"]["queue"]), "  queue: \"", "\"\n",
       {"default", "a.b_c-d", "", "my queue", "q{1}", std::string(100, 'q'), std::string(101, 'q'),
        "ü"}},
      {Pattern(spec["properties"]["redis"]["properties"]["url"]), "  redis: {url: \"", "\"}\n",
       {"redis://127.0.0.1:6379/0", "redis://h", "redis://h:1", "redis://h:65535/9999",
        "redis://h:65536", "redis://h:0", "redis://h:06379", "redis://h/", "redis://h/01",
        "redis://h/10000", "redis://u:p@h:1/2", "redis://:p%40x@h", "redis://:p@x@h",
        "redis://:p/x@h", "redis://", "redis://:6379", "redis://h:", "redis://h:1:2",
        "redis://[::1]:6379", "redis://h?db=1", "unix:///run/r.sock", "unix://:p@/run/r.sock?db=3",
        "unix:///", "unix://run/r.sock", "unix:///r?db=", "unix:///r?x=1", "unix:///r@x",
        "unix:///" + std::string(105, 's'), "unix:///" + std::string(106, 's'),
        "http://h", "REDIS://h", ""}},
      {Pattern(sup["drainTimeout"]), "  supervisor: {drainTimeout: \"", "\"}\n",
       {"1s", "30s", "5m", "2h", "30d", "31d", "999ms", "1000ms", "0s", "000000000001s",
        "999999999999d", "1234567890123s", "1.5s", "30", "s", "30S", " 30s", "1w"}},
      {Pattern(sup["maxRSS"]), "  supervisor: {maxRSS: \"", "\"}\n",
       {"0", "256", "2048Mi", "2Gi", "1024Gi", "1025Gi", "1048576", "255", "100Mi", "0Gi",
        "2G", "2GB", "1.5Gi", "1234567890", "-1"}},
  };
  // The CRD states a range beyond some patterns in a CEL rule (durations, sizes); where the
  // parser rejects a value by range alone, the pattern may accept it.
  auto range_only = [](const std::string& e) {
    return e.find(": must be ") != std::string::npos || e.find("mix-up") != std::string::npos;
  };
  for (const auto& c : cases) {
    for (const auto& v : c.values) {
      std::vector<std::string> errors = Parse(std::string(kHeader) + c.body_prefix + v + c.body_suffix);
      bool parser = errors.empty();
      bool crd = Accepts(c.pattern, v);
      if (!parser && crd && errors.size() == 1 && range_only(errors[0])) continue;
      EXPECT_EQ(crd, parser) << "value '" << v << "' pattern " << c.pattern
                             << (errors.empty() ? "" : "\nparser: " + errors[0]);
    }
  }
}

TEST_F(LaneSpecCrd, EveryUrlTheParserAcceptsRedisAccepts) {
  for (const char* url : {"redis://127.0.0.1:6379/0", "redis://h", "redis://u:p%40x@h:1/",
                          "unix:///run/r.sock", "unix://:p@/run/r.sock?db=3"}) {
    ASSERT_EQ(Parse(std::string(kHeader) + "  redis: {url: \"" + url + "\"}\n"),
              std::vector<std::string>{});
    EXPECT_TRUE(ParseRedisUrl(url).ok()) << url;
  }
}

}  // namespace
}  // namespace lk
