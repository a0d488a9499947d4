#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "record/kafka_options.h"

namespace shadowtap::record {

// kKafka: not a file; --record kafka://BROKER[,BROKER...]/TOPIC (KafkaRecordWriter).
enum class RecordFormat { kHar, kJsonl, kPcap, kKafka };

// The marker that replaces redacted values, in headers and query parameters.
inline constexpr std::string_view kRedactedMarker = "[REDACTED]";

// Header names redacted unless redaction is turned off (compared case-insensitively).
inline constexpr std::string_view kDefaultRedactedHeaders[] = {"authorization", "proxy-authorization", "cookie",
                                                               "set-cookie"};

// Everything one recorder needs. Built from --record* flags (or a rule's record=).
struct RecordOptions {
  // "dir/traffic.har": files are dir/traffic-<seq>-<UTC time>.har, see RotatingFiles.
  // "kafka://b1:9092,b2:9092/topic": the Kafka recorder (brokers and topic go
  // into `kafka` when the recorder is made).
  std::string path;
  RecordFormat format = RecordFormat::kJsonl;

  // The Kafka recorder's settings (format kKafka).
  KafkaOptions kafka;

  // Redaction (HAR, JSON lines and Kafka): on by default with kDefaultRedactedHeaders;
  // extra header names and query parameter names add to it. redact=false
  // (--record-redact none) records everything as captured.
  bool redact = true;
  std::vector<std::string> redactHeaders;  // extra, any case
  std::vector<std::string> redactQuery;    // query parameter names, exact match
  // pcap stores the captured segments unredacted: with redact=true the pcap
  // recorder refuses to start unless this explicit opt-in is set.
  bool pcapUnredacted = false;

  // false: a body is recorded as its length and SHA-256 only.
  bool keepBodies = true;

  // Rotation: a file is closed once it holds maxFileBytes (the record that
  // crosses the size still goes in) or has been open rotateSeconds (0: never).
  uint64_t maxFileBytes = 64ULL << 20;
  uint32_t rotateSeconds = 0;
  // The oldest closed files (of this stem, also from earlier runs) are deleted
  // while all of them together exceed this. Must be >= maxFileBytes.
  uint64_t maxTotalBytes = 1ULL << 30;

  // Hand-off from the capture thread to the writer thread; beyond either
  // limit a record is dropped and counted.
  size_t queueCapacity = 8192;
  size_t queueBytes = 64ULL << 20;

  // Tests: CLOCK_MONOTONIC ns source and the monotonic->realtime offset.
  std::function<uint64_t()> clock;
  std::optional<int64_t> realtimeOffsetNs;
};

// Format from the file extension: .har, .jsonl (also .ndjson), .pcap; kafka:// is kKafka.
std::optional<RecordFormat> formatFromPath(std::string_view path);
std::string_view formatName(RecordFormat f);

// --record-redact VALUE: "none" turns redaction off; "default" keeps the
// default headers; otherwise a comma-separated list of "header:NAME" or
// "query:NAME" (a bare NAME is a header) added to the defaults. Empty string
// when fine, else one line.
std::string applyRedactSpec(std::string_view spec, RecordOptions& opts);

// Checks options together (format known, sizes, pcap redaction opt-in,
// directory writable; for Kafka the URL). Empty when fine, else one line saying what to do.
std::string checkRecordOptions(const RecordOptions& opts);

}  // namespace shadowtap::record
