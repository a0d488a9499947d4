#include "capture/libbpf_log.h"

#include <bpf/libbpf.h>
#include <spdlog/spdlog.h>

#include <cstdarg>
#include <cstdio>
#include <deque>
#include <mutex>
#include <string_view>

namespace shadowtap::capture {
namespace {

thread_local int quietDepth = 0;

// libbpf 1.x frames a failed load's verifier log with these markers.
constexpr std::string_view kLogBegin = "-- BEGIN PROG LOAD LOG --";
constexpr std::string_view kLogEnd = "-- END PROG LOAD LOG --";
// libbpf starts its own messages with this; we add it to every line, once.
constexpr std::string_view kPrefix = "libbpf: ";
// Enough for the verifier's conclusion and the instructions that led to it.
constexpr size_t kKeptVerifierLines = 64;

std::mutex verifierMutex;
std::deque<std::string> verifierTail;  // guarded by verifierMutex

// Keeps the tail of every verifier log found in a message (the lines between the markers).
void keepVerifierLines(std::string_view message) {
  size_t begin = message.find(kLogBegin);
  if (begin == std::string_view::npos) {
    return;
  }
  std::string_view body = message.substr(begin + kLogBegin.size());
  body = body.substr(0, body.find(kLogEnd));
  std::lock_guard lock(verifierMutex);
  verifierTail.clear();
  while (!body.empty()) {
    size_t nl = body.find('\n');
    std::string_view line = body.substr(0, nl);
    if (!line.empty()) {
      verifierTail.emplace_back(line);
      if (verifierTail.size() > kKeptVerifierLines) {
        verifierTail.pop_front();
      }
    }
    body = nl == std::string_view::npos ? std::string_view{} : body.substr(nl + 1);
  }
}

std::string format(const char* fmt, va_list args) {
  va_list again;
  va_copy(again, args);
  char small[512];
  int n = vsnprintf(small, sizeof(small), fmt, args);
  std::string out;
  if (n < 0) {
    out = fmt;
  } else if (static_cast<size_t>(n) < sizeof(small)) {
    out.assign(small, static_cast<size_t>(n));
  } else {
    out.resize(static_cast<size_t>(n) + 1);
    vsnprintf(out.data(), out.size(), fmt, again);
    out.resize(static_cast<size_t>(n));
  }
  va_end(again);
  return out;
}

int libbpfPrint(enum libbpf_print_level level, const char* fmt, va_list args) {
  const std::string message = format(fmt, args);
  keepVerifierLines(message);
  spdlog::level::level_enum to = spdlog::level::trace;
  if (quietDepth == 0) {
    to = level == LIBBPF_WARN ? spdlog::level::info
         : level == LIBBPF_INFO ? spdlog::level::debug
                                : spdlog::level::trace;
  }
  // A verifier log can be thousands of lines; the load error quotes its last
  // ones (describeLoadFailure), the whole of it is for --log-level debug.
  if (message.find(kLogBegin) != std::string::npos && to == spdlog::level::info) {
    to = spdlog::level::debug;
  }
  if (!spdlog::should_log(to)) {
    return 0;
  }
  std::string_view rest = message;
  while (!rest.empty()) {
    size_t nl = rest.find('\n');
    std::string_view line = rest.substr(0, nl);
    if (line.starts_with(kPrefix)) {
      line.remove_prefix(kPrefix.size());
    }
    spdlog::log(to, "libbpf: {}", line);
    rest = nl == std::string_view::npos ? std::string_view{} : rest.substr(nl + 1);
  }
  return 0;
}

}  // namespace

void routeLibbpfLogsToSpdlog() { libbpf_set_print(libbpfPrint); }

std::vector<std::string> lastVerifierLog(size_t maxLines) {
  std::lock_guard lock(verifierMutex);
  size_t skip = verifierTail.size() > maxLines ? verifierTail.size() - maxLines : 0;
  return {verifierTail.begin() + static_cast<std::ptrdiff_t>(skip), verifierTail.end()};
}

void clearVerifierLog() {
  std::lock_guard lock(verifierMutex);
  verifierTail.clear();
}

LibbpfQuietScope::LibbpfQuietScope() { ++quietDepth; }
LibbpfQuietScope::~LibbpfQuietScope() { --quietDepth; }

}  // namespace shadowtap::capture
