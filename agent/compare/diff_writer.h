#pragma once

#include <atomic>
#include <cstdint>
#include <cstdio>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "compare/compare_stats.h"
#include "compare/comparator.h"
#include "model/response.h"

namespace shadowtap::compare {

struct DiffWriterOptions {
  size_t maxBodyBytes = 4096;        // of each response's body in a line
  size_t maxLineBytes = 64 << 10;    // a longer line loses its bodies, then is skipped
  uint64_t maxFileBytes = 256 << 20; // lines beyond are counted, not written
  bool writeNoisy = true;            // also write pairs whose differences are all noise
  // Header values replaced by "[redacted]" (case-insensitive), in addition to
  // Authorization, Proxy-Authorization, Cookie and Set-Cookie.
  std::vector<std::string> redactHeaders;
};

// One compared pair, as handed to the writer.
struct DiffRecord {
  uint32_t ruleId = 0;
  std::string_view method;
  std::string_view target;
  const CompareResult* result = nullptr;
  const model::Response* primary = nullptr;
  const model::Response* mirror = nullptr;
  const model::Response* secondary = nullptr;  // may be null
};

// Writes differing pairs as JSON lines, the input of `shadowtap report`:
//   {"type":"diff","time":"2024-05-01T12:00:00.123Z","rule":1,"endpoint":"GET /users/{n}",
//    "method":"GET","target":"/users/7","outcome":"different","json":true,
//    "differences":[{"path":"$.name","field":"$.name","primary":"\"a\"","mirror":"\"b\"","noisy":false}],
//    "differences_omitted":0,"noisy_fields":["$.timestamp"],
//    "primary":{"status":200,"headers":[["Content-Type","application/json"]],
//               "body":"...","body_length":42,"body_truncated":false},
//    "mirror":{...},"secondary":{...}}
// and, from writeSummary(), one line per endpoint with its counters:
//   {"type":"summary","rule":1,"endpoint":"GET /users/{n}","compared":10,"equal":7,"different":2,"noisy":1}
// Credentials never reach the file: the redacted headers' values, in the
// responses and in the differences, are replaced. Bodies are cut to
// maxBodyBytes (invalid UTF-8 becomes U+FFFD). Thread-safe; each line is flushed.
class DiffWriter {
 public:
  struct Stats {
    std::atomic<uint64_t> lines{0};         // diff lines written
    std::atomic<uint64_t> summaryLines{0};
    std::atomic<uint64_t> equalSkipped{0};  // not written: equal (or noisy with writeNoisy off)
    std::atomic<uint64_t> shrunk{0};        // written without bodies to fit maxLineBytes
    std::atomic<uint64_t> tooLong{0};       // not written: over maxLineBytes even without bodies
    std::atomic<uint64_t> fileFull{0};      // not written: maxFileBytes reached
    std::atomic<uint64_t> writeErrors{0};
  };

  // Opens (truncates) `path`; nullptr with `error` set when it cannot.
  static std::unique_ptr<DiffWriter> open(const std::string& path, const DiffWriterOptions& options,
                                          std::string* error);
  // Writes to `out`, which it does not close.
  DiffWriter(std::FILE* out, const DiffWriterOptions& options);
  ~DiffWriter();
  DiffWriter(const DiffWriter&) = delete;
  DiffWriter& operator=(const DiffWriter&) = delete;

  void write(const DiffRecord& record);
  void writeSummary(const CompareStats& stats);

  // The line for `record` without the newline, "" when it is not written.
  std::string format(const DiffRecord& record, bool withBodies) const;
  bool redacted(std::string_view headerName) const;
  const Stats& stats() const { return stats_; }

 private:
  bool writeLine(const std::string& line);

  std::FILE* out_;
  bool owned_ = false;
  DiffWriterOptions options_;
  std::vector<std::string> redactLower_;
  std::mutex mutex_;
  uint64_t written_ = 0;
  Stats stats_;
};

}  // namespace shadowtap::compare
