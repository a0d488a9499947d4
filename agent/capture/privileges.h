#pragma once

#include <string>

namespace shadowtap::capture {

// Empty when this process may load and attach the capture program; otherwise
// one sentence naming the missing capabilities and how to get them.
std::string missingPrivileges();

}  // namespace shadowtap::capture
