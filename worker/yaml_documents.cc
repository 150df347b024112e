// The document half of worker/yaml_checker.h: splitting a stream, loading each document
// safely, and the one-document config files.
#include <yaml-cpp/depthguard.h>
#include <yaml-cpp/eventhandler.h>

#include <sstream>

#include "worker/yaml_checker.h"

namespace lk {

namespace {

// One YAML document's text, and the line (0-based) it starts on in the file.
struct DocumentText {
  std::string_view text;
  int first_line = 0;
};

bool IsMarker(std::string_view line, std::string_view marker) {
  return line.starts_with(marker) &&
         (line.size() == 3 || line[3] == ' ' || line[3] == '\t' || line[3] == '\r' ||
          line[3] == '\n');
}

// Splits a stream at its document markers. YAML forbids "---" and "..." at the start of
// a line inside any scalar (they always end the document there), so the split is exact,
// and it lets each document be parsed alone: a syntax error in one then hides neither the
// documents before it nor those after it. Directives and comments before a "---" stay
// with the document they introduce.
std::vector<DocumentText> SplitDocuments(std::string_view text) {
  std::vector<DocumentText> docs;
  size_t start = 0;
  int start_line = 0;
  bool has_content = false;
  int line_no = 0;
  for (size_t pos = 0; pos < text.size(); ++line_no) {
    size_t end = text.find('\n', pos);
    size_t next = end == std::string_view::npos ? text.size() : end + 1;
    std::string_view line = text.substr(pos, next - pos);
    if (IsMarker(line, "---") && has_content) {
      docs.push_back({text.substr(start, pos - start), start_line});
      start = pos;
      start_line = line_no;
    }
    if (IsMarker(line, "...")) {
      docs.push_back({text.substr(start, next - start), start_line});
      start = next;
      start_line = line_no + 1;
      has_content = false;
    } else {
      size_t first = line.find_first_not_of(" \t\r\n");
      bool blank = first == std::string_view::npos || line[first] == '#' || line[0] == '%';
      has_content = has_content || !blank;
    }
    pos = next;
  }
  if (start < text.size()) docs.push_back({text.substr(start), start_line});
  return docs;
}

// yaml-cpp 0.7 (Debian 12's) loops forever in LoadAll on a document that starts with a
// stray ',' (upstream issue #1040, fixed after 0.7): each turn yields one more empty
// document without consuming the ',', and memory grows until the process dies. So the
// text first goes through the same parser with a handler that builds nothing and stops at
// a document that starts where the previous one did; only then through LoadAll, which
// makes the same moves and so ends too.
class ProgressCheck : public YAML::EventHandler {
 public:
  explicit ProgressCheck(const std::string& text) : text_(text) {}

  void OnDocumentStart(const YAML::Mark& mark) override {
    if (started_ && mark.pos == last_start_) {
      std::string what = mark.pos >= 0 && static_cast<size_t>(mark.pos) < text_.size()
                             ? Quote(text_.substr(mark.pos, 1))
                             : "input";
      throw YAML::ParserException(mark, "unexpected " + what);
    }
    started_ = true;
    last_start_ = mark.pos;
  }
  void OnDocumentEnd() override {}
  void OnNull(const YAML::Mark&, YAML::anchor_t) override {}
  void OnAlias(const YAML::Mark&, YAML::anchor_t) override {}
  void OnScalar(const YAML::Mark&, const std::string&, YAML::anchor_t,
                const std::string&) override {}
  void OnSequenceStart(const YAML::Mark&, const std::string&, YAML::anchor_t,
                       YAML::EmitterStyle::value) override {}
  void OnSequenceEnd() override {}
  void OnMapStart(const YAML::Mark&, const std::string&, YAML::anchor_t,
                  YAML::EmitterStyle::value) override {}
  void OnMapEnd() override {}

 private:
  const std::string& text_;
  bool started_ = false;
  int last_start_ = 0;
};

// The documents of text. Throws YAML::Exception, as yaml-cpp does.
std::vector<YAML::Node> LoadDocuments(const std::string& text) {
  std::istringstream in(text);
  YAML::Parser parser(in);
  ProgressCheck check(text);
  while (parser.HandleNextDocument(check)) {
  }
  return YAML::LoadAll(text);
}

}  // namespace

std::vector<YamlDocument> ReadYamlDocuments(const std::string& text, const std::string& file,
                                            std::vector<ConfigError>& errors) {
  std::vector<YamlDocument> out;
  for (const DocumentText& part : SplitDocuments(text)) {
    std::vector<YAML::Node> nodes;
    try {
      nodes = LoadDocuments(std::string(part.text));
    } catch (const YAML::Exception& e) {
      // DeepRecursion's own message is "bad file".
      std::string what = dynamic_cast<const YAML::DeepRecursion*>(&e) ? "nested too deeply" : e.msg;
      int line = e.mark.is_null() ? part.first_line + 1 : part.first_line + e.mark.line + 1;
      int column = e.mark.is_null() ? 1 : e.mark.column + 1;
      errors.push_back({file, line, column, "", "invalid YAML: " + Escape(what, 200)});
      continue;
    }
    for (YAML::Node& n : nodes) {
      // An empty document, or one of only comments, is none.
      if (!n.IsNull()) out.push_back({std::move(n), part.first_line});
    }
  }
  return out;
}

YAML::Node ReadOneYamlDocument(const std::string& text, const std::string& file,
                               std::vector<ConfigError>& errors) {
  std::vector<YamlDocument> docs = ReadYamlDocuments(text, file, errors);
  if (docs.size() > 1) {
    YAML::Mark m = docs[1].node.Mark();
    errors.push_back({file, docs[1].first_line + (m.is_null() ? 0 : m.line) + 1,
                      m.is_null() ? 1 : m.column + 1, "",
                      "a second YAML document: this file holds one (remove the '---' and "
                      "merge them)"});
  }
  return docs.empty() ? YAML::Node() : docs[0].node;
}

void ReadSingleFieldFile(const std::string& text, const std::string& file, std::string_view key,
                         const std::function<void(YamlChecker&, const YamlField&)>& check,
                         std::vector<ConfigError>& errors) {
  YAML::Node root = ReadOneYamlDocument(text, file, errors);
  if (!errors.empty()) return;
  YamlChecker c(file, 0, errors);
  YamlField whole{root, root, ""};
  if (KindOf(root) != YamlKind::kMap) {
    c.Error(whole, "expected a mapping with " + std::string(key) + ":, got " + Describe(root));
    return;
  }
  auto top = c.Fields(whole, {key});
  if (!top) return;
  if (auto it = top->find(std::string(key)); it == top->end()) {
    c.Missing(whole, key);
  } else {
    check(c, it->second);
  }
}

}  // namespace lk
