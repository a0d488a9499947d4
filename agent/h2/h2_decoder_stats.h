#pragma once

#include <atomic>
#include <cstdint>

namespace shadowtap::h2 {

// Counters of the HTTP/2 decoders, shared by every H2StreamDecoder of one
// factory; written on the capture thread, read anywhere (relaxed).
//
// Every client stream that reached its request HEADERS ends in exactly one
// stream outcome, so once every decoder has ended:
//   streamsOpened == requests + streamsReset + streamsRefused + streamsHeadersTooLarge
//                    + streamsBodyTooLarge + streamsBufferFull + streamsMalformed
//                    + streamsAbandoned
// and every decoder ends in at most one connection failure:
//   connections >= prefaceMismatch + decodeErrors + gaps
struct H2DecoderStats {
  // Connections.
  std::atomic<uint64_t> connections{0};      // decoders created
  std::atomic<uint64_t> upgrades{0};         // ... of them continuing an "Upgrade: h2c" request
  std::atomic<uint64_t> prefaceMismatch{0};  // stream did not start with the client preface: skipped
  std::atomic<uint64_t> decodeErrors{0};     // nghttp2 found a connection error (bad frame, HPACK
                                             // state broken, e.g. joined mid-stream): rest skipped
  std::atomic<uint64_t> gaps{0};             // a hole in the byte stream: HPACK state lost, rest skipped
  std::atomic<uint64_t> goaways{0};          // client sent GOAWAY (normal close)
  std::atomic<uint64_t> bytesDecoded{0};     // fed to nghttp2
  std::atomic<uint64_t> bytesSkipped{0};     // delivered after the connection was given up

  // Stream outcomes (see the identity above).
  std::atomic<uint64_t> streamsOpened{0};           // request HEADERS begun (and the upgraded stream 1)
  std::atomic<uint64_t> requests{0};                // complete (END_STREAM) and emitted
  std::atomic<uint64_t> streamsReset{0};            // client sent RST_STREAM before END_STREAM
  std::atomic<uint64_t> streamsRefused{0};          // beyond maxConcurrentStreams
  std::atomic<uint64_t> streamsHeadersTooLarge{0};  // header or trailer list beyond maxHeaderListBytes
  std::atomic<uint64_t> streamsBodyTooLarge{0};     // body beyond maxStreamBodyBytes
  std::atomic<uint64_t> streamsBufferFull{0};       // connection beyond maxConnectionBufferedBytes
  std::atomic<uint64_t> streamsMalformed{0};        // invalid header field or HTTP messaging rule
                                                    // (nghttp2 reset the stream)
  std::atomic<uint64_t> streamsAbandoned{0};        // in progress when the connection ended,
                                                    // failed or hit a gap

  // Activity.
  std::atomic<uint64_t> trailers{0};        // requests emitted with trailers
  std::atomic<uint64_t> invalidFrames{0};   // frames nghttp2 rejected (stream or connection error)

  // Gauge: bytes held by all decoders (headers and bodies of streams in progress).
  std::atomic<int64_t> bufferedBytes{0};

  uint64_t streamOutcomes() const {
    return requests.load(std::memory_order_relaxed) + streamsReset.load(std::memory_order_relaxed) +
           streamsRefused.load(std::memory_order_relaxed) +
           streamsHeadersTooLarge.load(std::memory_order_relaxed) +
           streamsBodyTooLarge.load(std::memory_order_relaxed) +
           streamsBufferFull.load(std::memory_order_relaxed) + streamsMalformed.load(std::memory_order_relaxed) +
           streamsAbandoned.load(std::memory_order_relaxed);
  }
};

}  // namespace shadowtap::h2
