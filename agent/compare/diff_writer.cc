#include "compare/diff_writer.h"

#include <time.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include <nlohmann/json.hpp>

#include "base/counters.h"
#include "base/strings.h"

namespace shadowtap::compare {
namespace {

using nlohmann::json;

constexpr const char* kRedacted = "[redacted]";
constexpr std::string_view kAlwaysRedacted[] = {"authorization", "proxy-authorization", "cookie", "set-cookie"};


std::string nowRfc3339() {
  timespec ts{};
  clock_gettime(CLOCK_REALTIME, &ts);
  tm t{};
  gmtime_r(&ts.tv_sec, &t);
  char buf[64];
  std::snprintf(buf, sizeof(buf), "%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ", t.tm_year + 1900, t.tm_mon + 1, t.tm_mday,
                t.tm_hour, t.tm_min, t.tm_sec, ts.tv_nsec / 1'000'000);
  return buf;
}

}  // namespace

std::unique_ptr<DiffWriter> DiffWriter::open(const std::string& path, const DiffWriterOptions& options,
                                             std::string* error) {
  std::FILE* f = std::fopen(path.c_str(), "w");
  if (f == nullptr) {
    *error = "cannot write '" + path + "': " + std::strerror(errno);
    return nullptr;
  }
  auto w = std::make_unique<DiffWriter>(f, options);
  w->owned_ = true;
  return w;
}

DiffWriter::DiffWriter(std::FILE* out, const DiffWriterOptions& options) : out_(out), options_(options) {
  for (std::string_view h : kAlwaysRedacted) {
    redactLower_.emplace_back(h);
  }
  for (const std::string& h : options_.redactHeaders) {
    redactLower_.push_back(base::toLower(h));
  }
}

DiffWriter::~DiffWriter() {
  if (owned_ && out_ != nullptr) {
    std::fclose(out_);
  }
}

bool DiffWriter::redacted(std::string_view name) const {
  const std::string lower = base::toLower(name);
  return std::find(redactLower_.begin(), redactLower_.end(), lower) != redactLower_.end();
}

std::string DiffWriter::format(const DiffRecord& rec, bool withBodies) const {
  const CompareResult& r = *rec.result;
  auto response = [&](const model::Response& resp) {
    json headers = json::array();
    for (const model::HeaderField& h : resp.headers) {
      headers.push_back(json::array({h.name, redacted(h.name) ? std::string(kRedacted) : h.value}));
    }
    json o = {{"status", resp.status}, {"headers", std::move(headers)}};
    if (resp.headersTruncated) {
      o["headers_truncated"] = true;
    }
    const size_t keep = withBodies ? std::min(resp.body.size(), options_.maxBodyBytes) : 0;
    o["body"] = resp.body.substr(0, keep);
    o["body_length"] = resp.bodyLength;
    o["body_truncated"] = keep < resp.bodyLength;
    return o;
  };
  json diffs = json::array();
  for (const Difference& d : r.differences) {
    const bool secret = d.path.starts_with("headers.") && redacted(std::string_view(d.path).substr(8));
    auto value = [&](const std::optional<std::string>& v) -> json {
      if (!v) {
        return nullptr;
      }
      return secret ? std::string(kRedacted) : *v;
    };
    diffs.push_back({{"path", d.path},
                     {"field", d.genericPath},
                     {"primary", value(d.primary)},
                     {"mirror", value(d.mirror)},
                     {"noisy", d.noisy}});
  }
  json line = {{"type", "diff"},
               {"time", nowRfc3339()},
               {"rule", rec.ruleId},
               {"endpoint", r.endpoint},
               {"method", rec.method},
               {"target", rec.target},
               {"outcome", toString(r.outcome)},
               {"json", r.jsonBodies},
               {"differences", std::move(diffs)},
               {"differences_omitted", r.differencesOmitted},
               {"noisy_fields", r.noisyPaths},
               {"primary", response(*rec.primary)},
               {"mirror", response(*rec.mirror)}};
  if (rec.secondary != nullptr) {
    line["secondary"] = response(*rec.secondary);
  }
  if (!withBodies) {
    line["bodies_omitted"] = true;
  }
  return line.dump(-1, ' ', false, json::error_handler_t::replace);
}

void DiffWriter::write(const DiffRecord& rec) {
  const Outcome o = rec.result->outcome;
  if (o == Outcome::kEqual || (o == Outcome::kNoisy && !options_.writeNoisy)) {
    base::bump(stats_.equalSkipped);
    return;
  }
  std::string line = format(rec, true);
  if (line.size() > options_.maxLineBytes) {
    line = format(rec, false);
    if (line.size() > options_.maxLineBytes) {
      base::bump(stats_.tooLong);
      return;
    }
    base::bump(stats_.shrunk);
  }
  if (writeLine(line)) {
    base::bump(stats_.lines);
  }
}

void DiffWriter::writeSummary(const CompareStats& stats) {
  std::vector<std::string> lines;
  stats.forEachEndpoint([&](uint32_t rule, const std::string& endpoint, const CompareCounters& c) {
    auto v = [](const std::atomic<uint64_t>& a) { return a.load(std::memory_order_relaxed); };
    json line = {{"type", "summary"},    {"rule", rule},          {"endpoint", endpoint},
                 {"compared", v(c.compared)}, {"equal", v(c.equal)}, {"different", v(c.different)},
                 {"noisy", v(c.noisy)}};
    lines.push_back(line.dump(-1, ' ', false, json::error_handler_t::replace));
  });
  for (const std::string& l : lines) {
    if (writeLine(l)) {
      base::bump(stats_.summaryLines);
    }
  }
}

bool DiffWriter::writeLine(const std::string& line) {
  std::lock_guard lock(mutex_);
  if (written_ + line.size() + 1 > options_.maxFileBytes) {
    base::bump(stats_.fileFull);
    return false;
  }
  if (std::fwrite(line.data(), 1, line.size(), out_) != line.size() || std::fputc('\n', out_) == EOF ||
      std::fflush(out_) != 0) {
    base::bump(stats_.writeErrors);
    return false;
  }
  written_ += line.size() + 1;
  return true;
}

}  // namespace shadowtap::compare
