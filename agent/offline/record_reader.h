#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "record/recorded_request.h"

namespace shadowtap::offline {

// What one recording file held. `error` set (one line) means the file could
// not be used at all (unreadable, neither HAR nor JSON lines).
struct ReadResult {
  enum class Format { kUnknown, kHar, kJsonl };
  Format format = Format::kUnknown;
  std::vector<record::RecordedRequest> requests;
  uint64_t malformed = 0;  // records (lines, entries) that did not parse or lacked a field; skipped
  // JSON lines: skipped lines that were records (an object with method and
  // target) rather than something else; part of `malformed`.
  uint64_t recordsSkipped = 0;
  // Cut by a crash: a HAR file without its closing "]}}", or JSON lines whose
  // last line is partial (no line end, not JSON); read up to the last complete record.
  bool cut = false;
  // Why the first skipped record was skipped ("line 3: header 2 value
  // contains CR, LF or NUL"); empty when none was.
  std::string firstMalformed;
  std::string error;
};

// The largest recording file readRecordFile reads (it holds the whole file,
// and its requests, in memory).
inline constexpr uint64_t kMaxRecordFileBytes = uint64_t{1} << 30;

// Reads a HAR 1.2 or JSON lines recording, telling them apart by content: a
// JSON document with "log" is HAR; a shadowtap HAR cut by a crash (its head
// line, then one entry per line, without the closing line) is read entry by
// entry up to the last complete one; anything else is read as JSON lines.
// HAR files from other tools (browsers) are accepted too: the target comes
// from the URL, and in HTTP/1 entries :authority becomes Host when there is
// none. HTTP/2 entries (HAR httpVersion, JSON lines "version" or
// "http_version" one of HTTP/2, HTTP/2.0, h2, h2c in any case) come back as
// records with httpVersion record::kHttp2Version, every field in order with
// pseudo-headers, trailers and never-index flags, passed through
// record::normalizeH2 (so browser entries without :path/:scheme are sendable).
// A record whose method, target, version or a field holds CR, LF or NUL
// (record::unsendableReason) is skipped as malformed. A HAR entry with a
// bodySize but no postData comes back with bodyKept false. `error` for a path
// that is not a regular file or holds more than kMaxRecordFileBytes.
ReadResult readRecordFile(const std::string& path);
ReadResult parseRecordText(std::string_view text);

// One HAR entry (as JSON text). nullopt with *why when it lacks a required
// field.
std::optional<record::RecordedRequest> parseHarEntryText(std::string_view entry, std::string* why);

}  // namespace shadowtap::offline
