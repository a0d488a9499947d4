#include "record/dry_run_writer.h"

#include <time.h>

#include <nlohmann/json.hpp>

#include "http/host_rewrite.h"

namespace shadowtap::record {
namespace {

int64_t clockNs(clockid_t clock) {
  timespec ts{};
  clock_gettime(clock, &ts);
  return static_cast<int64_t>(ts.tv_sec) * 1'000'000'000 + ts.tv_nsec;
}

int64_t measureRealtimeOffset() {
  // Bracket the realtime read between two monotonic reads to halve the error.
  const int64_t m0 = clockNs(CLOCK_MONOTONIC);
  const int64_t r = clockNs(CLOCK_REALTIME);
  const int64_t m1 = clockNs(CLOCK_MONOTONIC);
  return r - (m0 + (m1 - m0) / 2);
}

}  // namespace

std::string formatRfc3339Utc(int64_t unixNs) {
  int64_t sec = unixNs / 1'000'000'000;
  int64_t ns = unixNs % 1'000'000'000;
  if (ns < 0) {
    ns += 1'000'000'000;
    --sec;
  }
  const time_t t = static_cast<time_t>(sec);
  tm utc{};
  gmtime_r(&t, &utc);
  char buf[64];
  std::snprintf(buf, sizeof(buf), "%04d-%02d-%02dT%02d:%02d:%02d.%06dZ", utc.tm_year + 1900,
                utc.tm_mon + 1, utc.tm_mday, utc.tm_hour, utc.tm_min, utc.tm_sec,
                static_cast<int>(ns / 1000));
  return buf;
}

DryRunWriter::DryRunWriter(std::FILE* out, std::string suffix)
    : DryRunWriter(out, std::move(suffix), measureRealtimeOffset()) {}

DryRunWriter::DryRunWriter(std::FILE* out, std::string suffix, int64_t realtimeOffsetNs)
    : out_(out),
      shadowHost_([suffix = std::move(suffix)](std::string_view host) { return http::appendShadowSuffix(host, suffix); }),
      realtimeOffsetNs_(realtimeOffsetNs) {}

DryRunWriter::DryRunWriter(std::FILE* out, std::function<std::string(std::string_view)> shadowHost)
    : out_(out), shadowHost_(std::move(shadowHost)), realtimeOffsetNs_(measureRealtimeOffset()) {}

std::string DryRunWriter::format(const model::Request& r, const std::vector<Mirror>& mirrors) const {
  nlohmann::ordered_json j;
  j["time"] = formatRfc3339Utc(static_cast<int64_t>(r.tsNs) + realtimeOffsetNs_);
  j["flow"] = r.flow.toString();
  j["rule"] = r.ruleId;
  j["method"] = r.method;
  j["target"] = std::string(r.target());
  j["host"] = std::string(r.authority());
  j["shadow_host"] = mirrors.empty() ? shadowHost_(r.authority()) : mirrors.front().shadowHost;
  j["body_length"] = r.bodyLength;
  j["bytes"] = r.size();
  if (r.isHttp2()) {
    j["protocol"] = "h2";
    j["stream"] = r.streamId;
    j["trailers"] = r.trailers.size();
  }
  if (!mirrors.empty()) {
    nlohmann::ordered_json list = nlohmann::ordered_json::array();
    for (const Mirror& m : mirrors) {
      list.push_back({{"target", m.target}, {"shadow_host", m.shadowHost}});
    }
    j["mirrors"] = std::move(list);
  }
  // Targets and values may hold any byte; never throw on the capture thread.
  return j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

void DryRunWriter::onRequest(model::Request&& request) { writeLine(format(request)); }

void DryRunWriter::print(const model::Request& request, const std::vector<Mirror>& mirrors) {
  writeLine(format(request, mirrors));
}

void DryRunWriter::writeLine(std::string line) {
  line += '\n';
  const bool ok = std::fwrite(line.data(), 1, line.size(), out_) == line.size() &&
                  std::fflush(out_) == 0;
  if (ok) {
    stats_.lines.fetch_add(1, std::memory_order_relaxed);
  } else {
    stats_.writeErrors.fetch_add(1, std::memory_order_relaxed);
    std::clearerr(out_);
  }
}

}  // namespace shadowtap::record
