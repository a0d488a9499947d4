#pragma once

#include "response_test_util.h"

namespace shadowtap::compare::test {

using shadowtap::test::asBytes;
using shadowtap::test::CollectingSink;
using shadowtap::test::jsonResponse;
using shadowtap::test::load;
using shadowtap::test::makeResponse;

}  // namespace shadowtap::compare::test
