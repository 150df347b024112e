// Reading Lane specs from YAML, strictly: every document of a file, every error at once,
// each with file:line:column and the field path (the checks are worker/yaml_checker.h's;
// the handlers map and the cycle steps are read by the same code that reads handlers and
// cycle files). The ownership rule — exactly one worker owner per lane — is part of the
// validation. Pure functions (LoadLaneSpecs reads files), thread-safe.
#pragma once

#include <initializer_list>
#include <string>
#include <string_view>
#include <vector>

#include "controller/spec/lane_types.h"

namespace lk {

// The metadata fields a Kubernetes API server sets on a Lane object: accepted and never
// read by the parser, so that a Lane fetched from a cluster parses like the file it came from.
inline const std::initializer_list<std::string_view> kServerSetMetadataFields = {
    "generation", "uid", "resourceVersion", "creationTimestamp", "deletionTimestamp",
    "deletionGracePeriodSeconds", "managedFields", "finalizers", "ownerReferences",
    "generateName", "selfLink"};

struct ParsedLanes {
  std::vector<LaneSpec> lanes;    // the documents without errors
  std::vector<SpecError> errors;  // every error of every document, in file order
};

// Parses every YAML document of text (--- separated). An error in one document does not
// hide the others, nor the lanes they define. Empty documents are skipped. file names the
// source in errors and in LaneSpec::source. Texts over 1 MiB are rejected whole.
ParsedLanes ParseLaneSpecs(std::string_view text, const std::string& file);

// Reads a file, or every *.yaml / *.yml file of a directory (sorted by name, not
// recursive, dot-files skipped: editors keep swap and lock files there).
ParsedLanes LoadLaneSpecs(const std::string& path);

// The files LoadLaneSpecs reads in a directory, in that order. A directory that cannot be
// read adds an error (when errors is given) and lists nothing.
std::vector<std::string> ListLaneSpecFiles(const std::string& dir,
                                           std::vector<SpecError>* errors = nullptr);

}  // namespace lk
