#pragma once

#include <atomic>
#include <cstdint>

namespace shadowtap::http {

// Counters of response framing, shared by the framers of one factory (or one
// test). Written with relaxed atomics on the capture thread, read anywhere.
//
// Identities (exact once the capture thread is quiescent):
//   expected == responses + unanswered + awaiting
//   bytesIn  == bytesFramed + bytesUnframed + bytesHeld
// where bytesHeld is a gauge (held while no request is known, or while a
// response is in progress) and `awaiting` is a gauge of requests whose response
// has not come yet. When every stream has ended both gauges are 0.
struct ResponseStats {
  // --- streams ---
  std::atomic<uint64_t> streams{0};     // framers created
  std::atomic<uint64_t> midstream{0};   // joined after the connection started: cannot pair, ignored
  std::atomic<uint64_t> gaps{0};        // onGap calls (pairing lost for the rest of the stream)
  std::atomic<uint64_t> parseErrors{0}; // llhttp refused the stream (rest ignored)
  std::atomic<uint64_t> upgrades{0};    // 101 Switching Protocols: another protocol follows
  std::atomic<uint64_t> unexpected{0};  // response bytes with no request to pair them with, over the hold limit
  std::atomic<uint64_t> tooManyAwaiting{0};  // more pipelined requests than the limit (stream given up)

  // --- requests told with expectResponseTo(): each ends in exactly one of these ---
  std::atomic<uint64_t> expected{0};
  std::atomic<uint64_t> responses{0};   // final response framed and emitted
  std::atomic<uint64_t> unanswered{0};  // the stream ended, broke or was given up first
  std::atomic<uint64_t> awaiting{0};    // gauge

  // --- responses (diagnostic) ---
  std::atomic<uint64_t> interim{0};           // 1xx other than 101, skipped
  std::atomic<uint64_t> bodiesTruncated{0};   // body over maxBodyBytes (kept a prefix)
  std::atomic<uint64_t> headersTruncated{0};  // header section over maxHeaderBytes
  std::atomic<uint64_t> incomplete{0};        // a response was in progress when the stream ended or broke

  // --- bytes ---
  std::atomic<uint64_t> bytesIn{0};
  std::atomic<uint64_t> bytesFramed{0};    // parsed by llhttp while pairing was possible
  std::atomic<uint64_t> bytesUnframed{0};  // ignored: after a gap, error, upgrade, mid-stream join
  std::atomic<uint64_t> bytesHeld{0};      // gauge: waiting for the request they answer
};

}  // namespace shadowtap::http
