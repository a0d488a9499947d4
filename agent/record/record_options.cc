#include "record/record_options.h"

#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>

#include "base/strings.h"

namespace shadowtap::record {
namespace {

bool endsWith(std::string_view s, std::string_view suffix) {
  return s.size() >= suffix.size() && s.substr(s.size() - suffix.size()) == suffix;
}

}  // namespace

std::optional<RecordFormat> formatFromPath(std::string_view path) {
  if (isKafkaTarget(path)) {
    return RecordFormat::kKafka;
  }
  if (endsWith(path, ".har")) {
    return RecordFormat::kHar;
  }
  if (endsWith(path, ".jsonl") || endsWith(path, ".ndjson")) {
    return RecordFormat::kJsonl;
  }
  if (endsWith(path, ".pcap")) {
    return RecordFormat::kPcap;
  }
  return std::nullopt;
}

std::string_view formatName(RecordFormat f) {
  switch (f) {
    case RecordFormat::kHar:
      return "har";
    case RecordFormat::kJsonl:
      return "jsonl";
    case RecordFormat::kPcap:
      return "pcap";
    case RecordFormat::kKafka:
      return "kafka";
  }
  return "?";
}

std::string applyRedactSpec(std::string_view spec, RecordOptions& opts) {
  spec = base::trimOws(spec);
  if (spec == "none") {
    opts.redact = false;
    opts.redactHeaders.clear();
    opts.redactQuery.clear();
    return "";
  }
  opts.redact = true;
  if (spec == "default" || spec.empty()) {
    return "";
  }
  while (!spec.empty()) {
    const size_t comma = spec.find(',');
    std::string_view item = base::trimOws(spec.substr(0, comma));
    spec = comma == std::string_view::npos ? std::string_view() : spec.substr(comma + 1);
    if (item.empty()) {
      continue;
    }
    if (item == "none") {
      return "--record-redact: 'none' cannot be combined with other items";
    }
    if (item.starts_with("query:")) {
      item.remove_prefix(6);
      if (item.empty()) {
        return "--record-redact: 'query:' needs a parameter name";
      }
      opts.redactQuery.emplace_back(item);
      continue;
    }
    if (item.starts_with("header:")) {
      item.remove_prefix(7);
    }
    if (item.empty() || item.find_first_of(" \t:=") != std::string_view::npos) {
      return "--record-redact: '" + std::string(item) +
             "' is not a header name (use header:NAME, query:NAME, default or none)";
    }
    opts.redactHeaders.emplace_back(item);
  }
  return "";
}

std::string checkRecordOptions(const RecordOptions& opts) {
  const std::string what = "--record " + opts.path + ": ";
  if (opts.path.empty()) {
    return "--record: empty path";
  }
  const auto f = formatFromPath(opts.path);
  if (!f) {
    return what + "unknown format; the file name must end in .har, .jsonl or .pcap (or write kafka://BROKER/TOPIC)";
  }
  if (*f != opts.format) {
    return what + "the extension does not match the format";
  }
  if (opts.maxFileBytes == 0) {
    return what + "--record-max-file-mib must be at least 1";
  }
  if (opts.maxTotalBytes < opts.maxFileBytes) {
    return what + "--record-max-total-mib must be at least --record-max-file-mib";
  }
  if (opts.queueCapacity == 0 || opts.queueBytes == 0) {
    return what + "the record queue limits must be positive";
  }
  if (opts.format == RecordFormat::kKafka) {
    KafkaOptions k;
    return parseKafkaTarget(opts.path, k);
  }
  if (opts.format == RecordFormat::kPcap && opts.redact && !opts.pcapUnredacted) {
    return what +
           "pcap stores the captured segments unredacted (Authorization, Cookie, ...); pass "
           "--record-redact none or --record-pcap-unredacted to accept that, or record .har/.jsonl";
  }
  std::filesystem::path dir = std::filesystem::path(opts.path).parent_path();
  if (dir.empty()) {
    dir = ".";
  }
  std::error_code ec;
  if (!std::filesystem::is_directory(dir, ec)) {
    return what + "directory " + dir.string() + " does not exist";
  }
  if (access(dir.c_str(), W_OK) != 0) {
    return what + "directory " + dir.string() + " is not writable: " + std::strerror(errno);
  }
  return "";
}

}  // namespace shadowtap::record
