#pragma once

// Keeps libbpf's messages (the verifier log among them, which libbpf prints when a
// load fails) while alive, so that a test can put the verifier's last lines in its
// failure message. Other messages still go to stderr as with libbpf's default
// printer (warnings and info); the whole verifier log (thousands of lines) and
// debug messages only with LIBBPF_DEBUG=1 in the environment.

#include <bpf/libbpf.h>

#include <cstdarg>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

namespace shadowtap::bpftest {

class LibbpfLogCapture {
 public:
  LibbpfLogCapture() {
    text().clear();
    previous_ = libbpf_set_print(&LibbpfLogCapture::print);
  }
  ~LibbpfLogCapture() { libbpf_set_print(previous_); }
  LibbpfLogCapture(const LibbpfLogCapture&) = delete;
  LibbpfLogCapture& operator=(const LibbpfLogCapture&) = delete;

  // For a failure message: the last `verifierLines` lines of the last program load
  // log libbpf printed (the verifier says why it refused at the end) and libbpf's
  // own lines after it; without a load log, libbpf's last lines.
  static std::string loadFailure(size_t verifierLines = 20) {
    std::vector<std::string> lines = split(text());
    size_t begin = lines.size();
    size_t end = lines.size();
    for (size_t i = lines.size(); i-- > 0;) {
      if (end == lines.size() && lines[i].find("-- END PROG LOAD LOG --") != std::string::npos) {
        end = i;
      } else if (end != lines.size() && lines[i].find("-- BEGIN PROG LOAD LOG --") != std::string::npos) {
        begin = i + 1;
        break;
      }
    }
    std::string out;
    if (begin < end) {
      out += "verifier log (last lines):\n";
      for (size_t i = end - begin > verifierLines ? end - verifierLines : begin; i < end; ++i) {
        out += "  " + lines[i] + "\n";
      }
      out += "libbpf:\n";
      for (size_t i = end + 1; i < lines.size(); ++i) {
        out += "  " + lines[i] + "\n";
      }
      return out;
    }
    out += "libbpf (no verifier log):\n";
    for (size_t i = lines.size() > verifierLines ? lines.size() - verifierLines : 0; i < lines.size(); ++i) {
      out += "  " + lines[i] + "\n";
    }
    return out;
  }

 private:
  static std::vector<std::string> split(const std::string& t) {
    std::vector<std::string> lines;
    size_t start = 0;
    while (start < t.size()) {
      size_t end = t.find('\n', start);
      if (end == std::string::npos) {
        end = t.size();
      }
      if (end > start) {
        lines.push_back(t.substr(start, end - start));
      }
      start = end + 1;
    }
    return lines;
  }

  static std::string& text() {
    static std::string t;
    return t;
  }

  static int print(libbpf_print_level level, const char* fmt, va_list args) {
    va_list copy;
    va_copy(copy, args);
    const int n = std::vsnprintf(nullptr, 0, fmt, copy);
    va_end(copy);
    if (n <= 0) {
      return 0;
    }
    std::string line(static_cast<size_t>(n), '\0');
    std::vsnprintf(line.data(), line.size() + 1, fmt, args);  // the whole message, however long
    text() += line;
    static const bool debug = std::getenv("LIBBPF_DEBUG") != nullptr;
    const bool loadLog = line.find("-- BEGIN PROG LOAD LOG --") != std::string::npos;
    if (debug || (level != LIBBPF_DEBUG && !loadLog)) {
      std::fputs(line.c_str(), stderr);
    }
    return n;
  }

  libbpf_print_fn_t previous_ = nullptr;
};

}  // namespace shadowtap::bpftest
