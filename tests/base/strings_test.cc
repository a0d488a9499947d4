// base/strings: the two trims (HTTP's OWS, and any ASCII white space for file
// contents and text lines).
#include "base/strings.h"

#include <gtest/gtest.h>

namespace shadowtap::base {
namespace {

TEST(Strings, TrimOwsKeepsLineEnds) {
  EXPECT_EQ(trimOws(" \tvalue \t"), "value");
  EXPECT_EQ(trimOws("value\r\n"), "value\r\n");
}

TEST(Strings, TrimSpaceTakesEveryAsciiWhiteSpaceAtTheEnds) {
  EXPECT_EQ(trimSpace("150000 100000\n"), "150000 100000");
  EXPECT_EQ(trimSpace(" \t\r\n\v\fa b\r\n"), "a b");
  EXPECT_EQ(trimSpace("\n\n"), "");
  EXPECT_EQ(trimSpace(""), "");
}

}  // namespace
}  // namespace shadowtap::base
