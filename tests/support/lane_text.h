// Lanes for unit tests, written as a user writes them and read by the real parser.
#pragma once

#include <gtest/gtest.h>

#include <initializer_list>
#include <string>
#include <vector>

#include "controller/spec/lane_parser.h"
#include "controller/spec/lane_types.h"

namespace lk::testing {

// The Lane named name whose `spec:` is spec_body (indented two spaces), from name.yaml.
inline LaneSpec ParseLane(const std::string& name, const std::string& spec_body) {
  std::string text = "apiVersion: lanekeeper.dev/v1alpha1\nkind: Lane\nmetadata: {name: " +
                     name + "}\nspec:\n" + spec_body;
  ParsedLanes p = ParseLaneSpecs(text, name + ".yaml");
  EXPECT_TRUE(p.errors.empty()) << (p.errors.empty() ? "" : p.errors[0].ToString());
  return p.lanes.empty() ? LaneSpec{} : p.lanes[0];
}

// Keys of lanes without a namespace.
inline std::vector<LaneKey> Keys(std::initializer_list<const char*> names) {
  std::vector<LaneKey> out;
  for (const char* n : names) out.push_back({"", n});
  return out;
}

}  // namespace lk::testing
