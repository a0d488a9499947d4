#pragma once

#include <atomic>
#include <cstdint>

#include "base/stats_sink.h"

namespace shadowtap::record {

// Counters of one recorder; written by the capture thread (offers, drops) and
// the writer thread, read by anyone (relaxed). Every offered record ends in
// exactly one outcome, so once the recorder is closed:
//   offered == written + dropped + malformed + writeErrors
struct RecordStats {
  std::atomic<uint64_t> offered{0};      // requests (har/jsonl) or segments (pcap) handed to the recorder
  std::atomic<uint64_t> written{0};      // records handed to the file (a HAR entry, a JSON line, a segment);
                                         // Kafka: acknowledged by the brokers
  std::atomic<uint64_t> dropped{0};      // queue to the writer thread full (records or bytes): disk too slow
  std::atomic<uint64_t> malformed{0};    // request that did not split into fields (a framer bug if ever)
  std::atomic<uint64_t> writeErrors{0};  // records lost to a failed open/write/flush (disk full, directory gone);
                                         // Kafka: not delivered (KafkaStats::undelivered has the reasons)

  std::atomic<uint64_t> bytesWritten{0};   // file bytes, headers and trailers included; Kafka: values delivered
  std::atomic<uint64_t> packets{0};        // pcap: packets written (a segment over 64 KiB is split)
  std::atomic<uint64_t> redactedValues{0}; // header and query values replaced by the marker
  // Methods, targets, header and trailer names and values whose bytes are not
  // UTF-8 (obs-text): JSON holds them with U+FFFD in place of those bytes.
  std::atomic<uint64_t> notUtf8Fields{0};
  std::atomic<uint64_t> bodiesOmitted{0};  // non-empty bodies recorded as length + hash only
  // Requests over --max-request-mib (streamed to the mirror): not offered, not recorded.
  std::atomic<uint64_t> streamedNotRecorded{0};
  std::atomic<uint64_t> filesOpened{0};
  std::atomic<uint64_t> rotations{0};      // files closed by size or time (not at exit)
  std::atomic<uint64_t> filesDeleted{0};   // oldest files removed to stay under the disk cap
  std::atomic<uint64_t> bytesDeleted{0};
  std::atomic<uint64_t> flushes{0};

  // Gauges.
  std::atomic<int64_t> queueDepth{0};
  std::atomic<int64_t> queueBytes{0};
  std::atomic<int64_t> diskBytes{0};  // bytes in our files, closed and open
};

// The recorder's counters.
void exportStats(const RecordStats& stats, base::StatsSink& out);

}  // namespace shadowtap::record
