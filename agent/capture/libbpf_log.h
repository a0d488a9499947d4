#pragma once

namespace shadowtap::capture {

// Routes libbpf's messages into spdlog one level down (libbpf warnings are
// mostly probing noise).
void routeLibbpfLogsToSpdlog();

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
