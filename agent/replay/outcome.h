#pragma once

#include <cstdint>

namespace shadowtap::replay {

// How one request handed to a mirror pool ended; every submitted request ends
// in exactly one of these (one MirrorStats counter each). Some only happen with
// one connection kind: HTTP/1 has no stream resets, rejections or connection
// errors apart from its own socket; h2c has no bad or oversized responses.
enum class Outcome : uint8_t {
  kResponse,          // a final response arrived (any status)
  kConnectError,      // the connect it waited on was refused or failed
  kConnectTimeout,    // ... or did not complete within the connect timeout
  kReset,             // HTTP/1: the peer closed or reset before the response was complete;
                      // h2c: the server reset the stream (or refused it after GOAWAY)
  kConnectionError,   // h2c: the connection failed or closed under the stream
  kResponseTimeout,   // no complete response within the response timeout
  kBadResponse,       // HTTP/1: the response is not HTTP/1.x
  kResponseTooLarge,  // HTTP/1: the response passed the byte limit; the connection was closed
  kRejected,          // h2c: nghttp2 would not submit it (e.g. an invalid pseudo-header set)
  kQueueFull,         // refused by submit: the queue was at its count or byte limit
  kDroppedOldest,     // drop policy oldest: pushed out of the full queue by a newer request
  kRateLimited,       // refused by submit: beyond max-rps
  kDroppedShutdown,   // still queued or in flight when stop()'s drain ran out, or submitted after stop()
  // A streamed request (HTTP/1) whose body could not be sent whole: the
  // connection is closed mid-request (or nothing was sent yet), so the mirror
  // never takes a truncated request for a complete one.
  kAbortedGap,        // the capture lost bytes inside the body
  kAbortedCapture,    // the client's stream ended, or its body was refused, before the body was complete
  kAbortedWindow,     // the mirror fell a window (--stream-window-kib) behind the capture
};

const char* describe(Outcome outcome);

}  // namespace shadowtap::replay
