#pragma once

#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include <gtest/gtest.h>

#include <memory>

#include "model/request.h"
#include "record/record_options.h"
#include "record/record_writer.h"

namespace shadowtap::record::testing {

// A fresh directory under /tmp, removed with everything in it.
class TempDir {
 public:
  TempDir() {
    char tmpl[] = "/tmp/st-record-XXXXXX";
    path_ = mkdtemp(tmpl);
  }
  ~TempDir() {
    std::error_code ec;
    std::filesystem::remove_all(path_, ec);
  }
  const std::string& path() const { return path_; }
  // Our files for "stem" + ext, oldest (lowest sequence) first.
  std::vector<std::string> files(const std::string& stem, const std::string& ext) const {
    std::vector<std::string> out;
    for (const auto& de : std::filesystem::directory_iterator(path_)) {
      const std::string name = de.path().filename().string();
      if (name.starts_with(stem + "-") && name.ends_with(ext)) {
        out.push_back(de.path().string());
      }
    }
    std::sort(out.begin(), out.end());
    return out;
  }

 private:
  std::string path_;
};

inline std::string slurp(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// A framed request as the framer would hand it over.
inline model::Request makeRequest(std::string bytes, uint64_t tsNs = 1'500'000, uint16_t sport = 40000) {
  model::Request r;
  r.flow.saddr = {198, 18, 0, 1};
  r.flow.daddr = {198, 18, 0, 2};
  r.flow.sport = sport;
  r.flow.dport = 8000;
  r.ruleId = 1;
  r.tsNs = tsNs;
  r.bytes = std::move(bytes);
  const size_t sp = r.bytes.find(' ');
  r.method = r.bytes.substr(0, sp);
  r.targetOffset = sp + 1;
  r.targetLength = r.bytes.find(' ', sp + 1) - sp - 1;
  const size_t host = r.bytes.find("Host: ");
  if (host != std::string::npos) {
    r.hostOffset = host + 6;
    r.hostLength = r.bytes.find("\r\n", host) - r.hostOffset;
  }
  r.bodyOffset = r.bytes.find("\r\n\r\n") + 4;
  r.bodyLength = r.bytes.size() - r.bodyOffset;
  return r;
}

// Monotonic 0 is 2024-05-01T12:00:00Z in the writers' tests.
inline constexpr int64_t kMay1 = int64_t{1714564800} * 1'000'000'000;

// Options for a recording at `dir`/`name`, the format from its extension.
inline RecordOptions optionsFor(const TempDir& dir, const std::string& name) {
  RecordOptions o;
  o.path = dir.path() + "/" + name;
  o.format = *formatFromPath(name);
  o.realtimeOffsetNs = kMay1;
  return o;
}

// The started recorder for `o` (a test failure, and null, when it cannot start).
inline std::unique_ptr<RecordWriter> make(RecordOptions o) {
  std::string error;
  auto w = makeRecordWriter(std::move(o), &error);
  EXPECT_NE(w, nullptr) << error;
  return w;
}

}  // namespace shadowtap::record::testing
