#pragma once

#include <atomic>
#include <cstdint>
#include <cstdio>
#include <functional>
#include <string>
#include <vector>

#include "model/request.h"

namespace shadowtap::record {

// `--dry-run`: instead of mirroring, print each request that would be mirrored
// as one JSON line, for live debugging:
//   {"time":"2024-05-01T12:00:00.123456Z","flow":"198.18.0.1:40000->198.18.0.2:8000",
//    "rule":1,"method":"GET","target":"/get","host":"httpbin:8000",
//    "shadow_host":"httpbin-shadow:8000","body_length":0,"bytes":78}
// An HTTP/2 request gets the same fields (method and target from :method and
// :path, host from :authority) plus "protocol":"h2", its "stream" id and the
// number of "trailers"; "bytes" is then its fields (name + value + 4 each, as
// HTTP/1 would carry them) plus the body.
// A rule with mirrors adds "mirrors": the targets the request would go to, each
// with what its host would become (several mirrors decide on their own, so a
// line lists those whose share the request is in), and "shadow_host" is the
// first one's:
//   "mirrors":[{"target":"v2:8000","shadow_host":"httpbin-shadow:8000"},
//              {"target":"v3:8000","shadow_host":"httpbin:8000"}]
// Strings are JSON-escaped; bytes that are not UTF-8 become U+FFFD. Each line is
// flushed, so `| jq` shows requests as they come. Runs on the capture thread.
class DryRunWriter final : public model::RequestSink {
 public:
  struct Stats {
    std::atomic<uint64_t> lines{0};
    std::atomic<uint64_t> writeErrors{0};  // short write or flush failure (EPIPE, disk full)
  };

  // Request times are CLOCK_MONOTONIC; the offset to CLOCK_REALTIME is measured
  // once here, so a clock step later shifts no line relative to another.
  DryRunWriter(std::FILE* out, std::string suffix);
  // "shadow_host" is shadowHost(host): what the rule's host mode makes of it.
  DryRunWriter(std::FILE* out, std::function<std::string(std::string_view)> shadowHost);
  // For tests: realtime ns = monotonic ns + realtimeOffsetNs.
  DryRunWriter(std::FILE* out, std::string suffix, int64_t realtimeOffsetNs);

  // One mirror a request would go to, and its host there.
  struct Mirror {
    std::string target;
    std::string shadowHost;
  };

  void onRequest(model::Request&& request) override;
  // The line for a request that would go to `mirrors` (empty: a rule without
  // mirror=, whose shadow host the constructor's function gives).
  void print(const model::Request& request, const std::vector<Mirror>& mirrors);

  // The line for `request`, without the newline.
  std::string format(const model::Request& request, const std::vector<Mirror>& mirrors = {}) const;

  const Stats& stats() const { return stats_; }

 private:
  std::FILE* out_;
  std::function<std::string(std::string_view)> shadowHost_;
  int64_t realtimeOffsetNs_;
  Stats stats_;

  void writeLine(std::string line);
};

// RFC 3339 UTC with microseconds: "2024-05-01T12:00:00.123456Z".
std::string formatRfc3339Utc(int64_t unixNs);

}  // namespace shadowtap::record
