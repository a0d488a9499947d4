#pragma once

// A Config from a command line as a user writes it (without the program
// name), through the agent's own parser; a parse error fails the test.
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "config.h"

namespace shadowtap::testing {

inline Config parseArgs(std::vector<std::string> args) {
  args.insert(args.begin(), "shadowtap");
  std::vector<char*> argv;
  for (auto& a : args) {
    argv.push_back(a.data());
  }
  Config c;
  std::string error;
  EXPECT_TRUE(reparseConfig(static_cast<int>(argv.size()), argv.data(), c, &error)) << error;
  return c;
}

}  // namespace shadowtap::testing
