#pragma once

#include <atomic>
#include <cstdint>

namespace shadowtap::http {

// Counters of the HTTP framing stage, shared by all framers of one factory.
// Written with relaxed atomics on the capture thread, read by the stats printer.
//
// Identities (exact once the capture thread is quiescent; gauges included):
//   requestsStarted == requestsParsed + noHost + multipleHost + invalidHost + tooLarge
//                      + droppedByGap + droppedAtEnd + droppedByAbandon + requestsInProgress
//   bytesIn == bytesParsed + unmirroredBytes + bytesBuffered
//   connectionsAbandoned == parseErrors + upgrade + http2 + tls
// When every stream has ended, the two gauges are 0.
struct HttpStats {
  // --- streams ---
  std::atomic<uint64_t> streams{0};  // framers created
  std::atomic<uint64_t> gaps{0};     // onGap calls
  std::atomic<uint64_t> resyncs{0};  // searches for a request start (mid-stream join, gap)
  // Streams given up for good, by reason; the rest of such a stream is unmirroredBytes.
  std::atomic<uint64_t> connectionsAbandoned{0};
  std::atomic<uint64_t> parseErrors{0};  // llhttp error: no resync, could be smuggling
  std::atomic<uint64_t> upgrade{0};      // CONNECT or Connection: upgrade
  std::atomic<uint64_t> http2{0};        // HTTP/2 prior-knowledge preface
  std::atomic<uint64_t> tls{0};          // stream starts with a TLS record (0x16)

  // --- requests: every request llhttp began ends in exactly one of these ---
  std::atomic<uint64_t> requestsStarted{0};
  std::atomic<uint64_t> requestsParsed{0};    // emitted to the sink
  std::atomic<uint64_t> noHost{0};            // no Host header
  std::atomic<uint64_t> multipleHost{0};      // more than one Host header
  std::atomic<uint64_t> invalidHost{0};       // one Host, but empty or folded over lines
  std::atomic<uint64_t> tooLarge{0};          // over maxRequestBytes or maxHeaderBytes
  std::atomic<uint64_t> droppedByGap{0};      // in progress when bytes went missing
  std::atomic<uint64_t> droppedAtEnd{0};      // in progress when the stream ended
  std::atomic<uint64_t> droppedByAbandon{0};  // in progress (or CONNECT/PRI) when given up
  std::atomic<uint64_t> requestsInProgress{0};  // gauge

  // --- bytes: every delivered byte is emitted, unmirrored or buffered ---
  std::atomic<uint64_t> bytesIn{0};          // delivered by onData
  std::atomic<uint64_t> bytesParsed{0};      // inside emitted requests
  std::atomic<uint64_t> unmirroredBytes{0};  // skipped, dropped, or after abandonment
  std::atomic<uint64_t> bytesBuffered{0};    // gauge: sum of bufferedBytes()
};

}  // namespace shadowtap::http
