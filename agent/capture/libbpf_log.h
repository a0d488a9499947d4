#pragma once

#include <string>
#include <vector>

namespace shadowtap::capture {

// Routes libbpf's messages into spdlog one level down (libbpf warnings are
// mostly probing noise), one log line per line of the message, however long
// (a verifier log is one message of thousands of lines).
void routeLibbpfLogsToSpdlog();

// The last lines (at most maxLines) of the most recent verifier log libbpf
// printed on any thread (libbpf prints one when a program load fails), or
// empty when none was printed since the last clearVerifierLog().
std::vector<std::string> lastVerifierLog(size_t maxLines);
void clearVerifierLog();

// While alive, libbpf messages on this thread go to trace level: for calls whose
// failure is an expected answer (asking whether a tc filter exists makes the
// kernel "error" when it does not).
class LibbpfQuietScope {
 public:
  LibbpfQuietScope();
  ~LibbpfQuietScope();
  LibbpfQuietScope(const LibbpfQuietScope&) = delete;
  LibbpfQuietScope& operator=(const LibbpfQuietScope&) = delete;
};

}  // namespace shadowtap::capture
