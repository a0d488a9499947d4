#include "capture/libbpf_log.h"

#include <bpf/libbpf.h>
#include <spdlog/spdlog.h>

#include <cstdarg>
#include <cstdio>

namespace shadowtap::capture {
namespace {

thread_local int quietDepth = 0;

int libbpfPrint(enum libbpf_print_level level, const char* format, va_list args) {
  char line[1024];
  int n = vsnprintf(line, sizeof(line), format, args);
  if (n > 0 && static_cast<size_t>(n) < sizeof(line) && line[n - 1] == '\n') {
    line[n - 1] = '\0';
  }
  spdlog::level::level_enum to = spdlog::level::trace;
  if (quietDepth == 0) {
    to = level == LIBBPF_WARN ? spdlog::level::info
         : level == LIBBPF_INFO ? spdlog::level::debug
                                : spdlog::level::trace;
  }
  spdlog::log(to, "libbpf: {}", line);
  return 0;
}

}  // namespace

void routeLibbpfLogsToSpdlog() { libbpf_set_print(libbpfPrint); }

LibbpfQuietScope::LibbpfQuietScope() { ++quietDepth; }
LibbpfQuietScope::~LibbpfQuietScope() { --quietDepth; }

}  // namespace shadowtap::capture
