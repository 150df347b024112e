// crds/lane.yaml and `lanekeeper validate` judge Lanes alike: one table of good and bad
// specs (tests/lane_spec_table.yaml) runs through the parser in process and through the
// fake API server of tests/kube (a dryRun=All create with fieldValidation=Strict, as kubectl
// sends it), and both must accept every good row and refuse every bad one at the same field.
// The examples (examples/*.yaml, examples/kubernetes/*.yaml) pass both.
#include <gtest/gtest.h>
#include <yaml-cpp/yaml.h>

#include <cpprest/http_client.h>

#include <filesystem>
#include <fstream>
#include <regex>
#include <sstream>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "controller/spec/lane_parser.h"
#include "tests/support/fake_apiserver.h"
#include "tests/support/temp_dir.h"
#include "worker/yaml_checker.h"

namespace lk::kube_crd_test {

namespace fs = std::filesystem;
using nlohmann::json;

struct TableRow {
  std::string name;
  std::string text;  // the whole Lane document
  bool good = true;
  std::string field, server_field, parser, server;
};

std::string Indent(const std::string& text) {
  std::string out;
  std::istringstream lines(text);
  for (std::string line; std::getline(lines, line);) out += "  " + line + "\n";
  return out;
}

std::vector<TableRow> ReadTable() {
  YAML::Node table = YAML::LoadFile(testing::SourceDir() + "/tests/lane_spec_table.yaml");
  std::vector<TableRow> rows;
  for (const auto& r : table["rows"]) {
    TableRow row;
    row.name = r["name"].as<std::string>();
    std::string metadata = r["metadata"] ? r["metadata"].as<std::string>() : "{name: " + row.name + "}\n";
    row.text = "apiVersion: lanekeeper.dev/v1alpha1\nkind: Lane\nmetadata:\n" + Indent(metadata) +
               "spec:\n" + Indent(r["spec"].as<std::string>());
    if (r["field"]) {
      row.good = false;
      row.field = r["field"].as<std::string>();
      row.server_field = r["server_field"] ? r["server_field"].as<std::string>() : row.field;
      row.parser = r["parser"].as<std::string>();
      row.server = r["server"].as<std::string>();
    }
    rows.push_back(std::move(row));
  }
  return rows;
}

// Field paths as both sides write them, in one form: Kubernetes writes a map key as
// handlers[embed], the parser as handlers.embed; the parser writes the empty handler name
// as "spec.handlers.".
std::string NormalField(std::string f) {
  f = std::regex_replace(f, std::regex(R"(\[([^\]0-9][^\]]*)\])"), ".$1");
  while (!f.empty() && f.back() == '.') f.pop_back();
  return f;
}

// A YAML document as the parser reads it (YAML 1.2's core schema), in JSON.
json Yaml12ToJson(const YAML::Node& n) {
  switch (KindOf(n)) {
    case YamlKind::kNull: return nullptr;
    case YamlKind::kBool: return n.Scalar()[0] == 't' || n.Scalar()[0] == 'T';
    case YamlKind::kInt: return std::stoll(n.Scalar());
    case YamlKind::kFloat: return std::stod(n.Scalar());
    case YamlKind::kMap: {
      json out = json::object();
      for (const auto& kv : n) out[kv.first.Scalar()] = Yaml12ToJson(kv.second);
      return out;
    }
    case YamlKind::kList: {
      json out = json::array();
      for (const auto& item : n) out.push_back(Yaml12ToJson(item));
      return out;
    }
    default: return n.Scalar();
  }
}

struct Verdict {
  bool accepted = false;
  std::vector<std::pair<std::string, std::string>> errors;  // normal field, message
  std::string Describe() const {
    std::string out = accepted ? "accepted" : "refused:";
    for (const auto& [f, m] : errors) out += "\n  " + f + ": " + m;
    return out;
  }
  bool Names(const std::string& field, const std::string& part) const {
    for (const auto& [f, m] : errors) {
      if (f == NormalField(field) && m.find(part) != std::string::npos) return true;
    }
    return false;
  }
};

Verdict ParserVerdict(const std::string& text) {
  ParsedLanes parsed = ParseLaneSpecs(text, "lane.yaml");
  Verdict v;
  v.accepted = parsed.errors.empty() && parsed.lanes.size() == 1;
  for (const auto& e : parsed.errors) v.errors.emplace_back(NormalField(e.field), e.message);
  return v;
}

struct HttpAnswer {
  int code = 0;
  json body;
};

HttpAnswer Post(const std::string& base, const std::string& path, const json& body) {
  web::http::client::http_client client(base);
  web::http::http_request request(web::http::methods::POST);
  request.set_request_uri(path);
  request.set_body(body.dump(), "application/json");
  web::http::http_response response = client.request(request).get();
  std::string text = response.extract_utf8string(true).get();
  return {response.status_code(), json::parse(text, nullptr, false)};
}

// The API server's verdict on a create of lane: accepted (201), or refused with the causes
// of a 422 Invalid, or the unknown fields of a 400 strict decoding error.
Verdict ServerVerdict(const std::string& base, const json& lane) {
  HttpAnswer a = Post(base,
                      "/apis/lanekeeper.dev/v1alpha1/namespaces/default/lanes"
                      "?dryRun=All&fieldValidation=Strict",
                      lane);
  Verdict v;
  v.accepted = a.code == 201;
  if (v.accepted) return v;
  std::string message = a.body.is_object() ? a.body.value("message", "") : "";
  if (a.body.is_object() && a.body.contains("details") && a.body["details"].contains("causes")) {
    for (const auto& c : a.body["details"]["causes"]) {
      v.errors.emplace_back(NormalField(c.value("field", "")), c.value("message", ""));
    }
  }
  std::regex unknown(R"re(unknown field "([^"]+)")re");
  for (std::sregex_iterator it(message.begin(), message.end(), unknown), end; it != end; ++it) {
    v.errors.emplace_back(NormalField((*it)[1]), message);
  }
  if (v.errors.empty()) v.errors.emplace_back("?", std::to_string(a.code) + " " + a.body.dump());
  return v;
}

class KubeCrd : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    auto fake = testing::FakeApiServer::Start();
    ASSERT_TRUE(fake.ok()) << fake.status().message();
    fake_ = std::move(*fake).release();
    auto crd = testing::ReadYamlManifests(testing::SourceDir() + "/crds/lane.yaml");
    ASSERT_TRUE(crd.ok()) << crd.status().message();
    HttpAnswer created =
        Post(fake_->url(), "/apis/apiextensions.k8s.io/v1/customresourcedefinitions", crd->at(0));
    ASSERT_EQ(created.code, 201) << created.body.dump();
  }
  static void TearDownTestSuite() {
    delete fake_;
    fake_ = nullptr;
  }

  // The document of text as kubectl sends it: YAML 1.1, in JSON.
  static json AsKubectlSends(const std::string& text) {
    testing::TempDir dir("kube-crd");
    std::string path = dir / "lane.yaml";
    std::ofstream(path) << text;
    auto docs = testing::ReadYamlManifests(path);
    EXPECT_TRUE(docs.ok()) << docs.status().message();
    return docs.ok() && docs->size() == 1 ? docs->at(0) : json();
  }

  static testing::FakeApiServer* fake_;
};

testing::FakeApiServer* KubeCrd::fake_ = nullptr;

TEST_F(KubeCrd, SameVerdictAsValidate) {
  ASSERT_TRUE(fake_);
  std::vector<TableRow> rows = ReadTable();
  ASSERT_GE(rows.size(), 60u);
  int good = 0;
  for (const TableRow& row : rows) {
    SCOPED_TRACE("row " + row.name + ":\n" + row.text);
    Verdict parser = ParserVerdict(row.text);
    Verdict server = ServerVerdict(fake_->url(), AsKubectlSends(row.text));
    for (const auto& [field, message] : server.errors) {
      EXPECT_FALSE(std::regex_search(message, std::regex("overflow|no such overload|no matching "
                                                         "overload|evaluation error")))
          << "a CEL rule failed to evaluate at " << field << ": " << message;
    }
    if (row.good) {
      ++good;
      EXPECT_TRUE(parser.accepted) << "parser " << parser.Describe();
      EXPECT_TRUE(server.accepted) << "server " << server.Describe();
      continue;
    }
    EXPECT_FALSE(parser.accepted) << "the parser accepts it";
    EXPECT_FALSE(server.accepted) << "the API server accepts it";
    EXPECT_TRUE(parser.Names(row.field, row.parser))
        << "expected the parser to name " << row.field << " with '" << row.parser << "'; parser "
        << parser.Describe();
    EXPECT_TRUE(server.Names(row.server_field, row.server))
        << "expected the API server to name " << row.server_field << " with '" << row.server
        << "'; server " << server.Describe();
  }
  EXPECT_GE(good, 10);
}

TEST(KubeCrdTable, EveryRowReadsTheSameInYaml11AndYaml12) {
  for (const TableRow& row : ReadTable()) {
    testing::TempDir dir("kube-crd");
    std::string path = dir / "lane.yaml";
    std::ofstream(path) << row.text;
    auto yaml11 = testing::ReadYamlManifests(path);
    ASSERT_TRUE(yaml11.ok()) << row.name << ": " << yaml11.status().message();
    ASSERT_EQ(yaml11->size(), 1u) << row.name;
    EXPECT_EQ(yaml11->at(0), Yaml12ToJson(YAML::Load(row.text)))
        << row.name << ": kubectl (YAML 1.1) and the parser (YAML 1.2) read it differently";
  }
}

TEST_F(KubeCrd, EveryExampleIsAcceptedByBoth) {
  ASSERT_TRUE(fake_);
  int lanes = 0;
  for (const char* dir : {"/examples", "/examples/kubernetes"}) {
    for (const auto& entry : fs::directory_iterator(testing::SourceDir() + dir)) {
      if (entry.path().extension() != ".yaml") continue;
      SCOPED_TRACE(entry.path().string());
      ParsedLanes parsed = LoadLaneSpecs(entry.path().string());
      EXPECT_TRUE(parsed.errors.empty()) << parsed.errors.front().ToString();
      auto docs = testing::ReadYamlManifests(entry.path().string());
      ASSERT_TRUE(docs.ok()) << docs.status().message();
      for (const json& doc : *docs) {
        if (doc.value("kind", "") != "Lane") continue;
        ++lanes;
        Verdict server = ServerVerdict(fake_->url(), doc);
        EXPECT_TRUE(server.accepted) << server.Describe();
      }
    }
  }
  EXPECT_GE(lanes, 4);
}

}  // namespace lk::kube_crd_test
