#pragma once

#include <string>

namespace shadowtap {

// Installs the process logger: `level` as spdlog names it, `format` "text"
// (human-readable) or "json" (one object per line: time in UTC, level, msg).
// Logs go to stderr when `toStderr` (stdout then carries data, e.g. --dry-run).
void setupLogging(const std::string& level, const std::string& format, bool toStderr);

// `text` as the body of a JSON string (quotes, backslashes and control
// characters escaped).
std::string jsonEscape(const std::string& text);

}  // namespace shadowtap
