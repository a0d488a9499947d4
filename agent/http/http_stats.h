#pragma once

#include <atomic>
#include <cstdint>

#include "base/stats_sink.h"

namespace shadowtap::http {

// Counters of the HTTP framing stage, shared by all framers of one factory.
// Written with relaxed atomics on the capture thread, read by the stats printer.
//
// Identities (exact once the capture thread is quiescent; gauges included):
//   requestsStarted == requestsParsed + noHost + multipleHost + invalidHost + tooLarge
//                      + headersTooLarge + droppedByGap + droppedAtEnd + droppedByAbandon
//                      + requestsInProgress
//   requestsStreamed == streamsCompleted + streamsAbortedGap + streamsAbortedEnd
//                       + streamsAbortedRefused + streamsOverflowed + streamsLetGo
//                       + streamsInProgress
//   bytesIn == bytesParsed + unmirroredBytes + bytesBuffered
//   connectionsAbandoned == parseErrors + upgrade + connect + http2 + tls
//                           + ambiguousLength + conflictingLength + invalidLength + obsFold
//                           + bareLf + bareCr + transferCoding + asteriskForm
//                           + invalidHeaderName + invalidHeaderValue
//                           + invalidRequestLine + requestLineTooLong
// When every stream has ended, the two gauges are 0. The policy behind the
// reasons (what is refused, what is mirrored though not canonical) is
// docs/http1.md.
struct HttpStats {
  // --- streams ---
  std::atomic<uint64_t> streams{0};  // framers created
  std::atomic<uint64_t> gaps{0};     // onGap calls
  std::atomic<uint64_t> resyncs{0};  // searches for a request start (mid-stream join, gap)
  // Resync candidate lines longer than the scan limit, skipped (unmirrored).
  // Diagnostic: a line spanning several segments may be counted more than once.
  std::atomic<uint64_t> resyncLinesTooLong{0};
  // A request said the connection closes after it (Connection: close, HTTP/1.0
  // without keep-alive): what follows is not read by the server, nor by us.
  std::atomic<uint64_t> closedByRequest{0};
  // A request servers must answer with 400 (HTTP/1.1 without Host, several Host
  // fields, an invalid Host): they close the connection after it, so the rest
  // is not read by the server, nor mirrored.
  std::atomic<uint64_t> closedAfterRefused{0};

  // Streams given up for good, by reason; the rest of such a stream is
  // unmirroredBytes and a gap never resynchronises it (it could be an attack).
  std::atomic<uint64_t> connectionsAbandoned{0};
  std::atomic<uint64_t> parseErrors{0};  // any other llhttp error
  std::atomic<uint64_t> upgrade{0};      // Connection: upgrade + Upgrade (WebSocket, h2c)
  std::atomic<uint64_t> connect{0};      // CONNECT: a tunnel follows
  std::atomic<uint64_t> http2{0};        // HTTP/2 prior-knowledge preface
  std::atomic<uint64_t> tls{0};          // stream starts with a TLS record (0x16)
  // Ambiguous or hostile framing (RFC 9112 / request smuggling shapes).
  std::atomic<uint64_t> ambiguousLength{0};     // Content-Length with Transfer-Encoding,
                                                // or Transfer-Encoding in HTTP/1.0
  std::atomic<uint64_t> conflictingLength{0};   // more than one Content-Length
  std::atomic<uint64_t> invalidLength{0};       // bad Content-Length / Transfer-Encoding / chunk size
  std::atomic<uint64_t> obsFold{0};             // a header value folded over lines
  std::atomic<uint64_t> bareLf{0};              // a chunk line or trailer ended by a bare LF
  std::atomic<uint64_t> bareCr{0};              // a CR not followed by LF (head or chunked body)
  std::atomic<uint64_t> transferCoding{0};      // Transfer-Encoding other than one field "chunked"
  std::atomic<uint64_t> asteriskForm{0};        // "*" target with a method other than OPTIONS
  std::atomic<uint64_t> invalidHeaderName{0};   // empty, or a character outside token
  std::atomic<uint64_t> invalidHeaderValue{0};  // a control character in a value
  std::atomic<uint64_t> invalidRequestLine{0};  // bad method, target or version (incl. HTTP/0.9, 2.0)
  std::atomic<uint64_t> requestLineTooLong{0};  // over maxRequestLineBytes

  // --- requests: every request begun ends in exactly one of these ---
  std::atomic<uint64_t> requestsStarted{0};
  std::atomic<uint64_t> requestsParsed{0};    // emitted to the sink
  std::atomic<uint64_t> noHost{0};            // no Host header (HTTP/1.1)
  std::atomic<uint64_t> multipleHost{0};      // more than one Host header
  std::atomic<uint64_t> invalidHost{0};       // one Host, but empty; or an empty target authority
  std::atomic<uint64_t> tooLarge{0};          // whole request over maxRequestBytes
  std::atomic<uint64_t> headersTooLarge{0};   // header section over maxHeaderBytes
  std::atomic<uint64_t> droppedByGap{0};      // in progress when bytes went missing
  std::atomic<uint64_t> droppedAtEnd{0};      // in progress when the stream ended
  std::atomic<uint64_t> droppedByAbandon{0};  // in progress (or CONNECT/PRI) when given up
  std::atomic<uint64_t> requestsInProgress{0};  // gauge

  // --- streamed requests (over maxRequestBytes, streamWindowBytes > 0): each
  // is counted in requestsParsed when its head is emitted, and its body stream
  // ends in exactly one of these ---
  std::atomic<uint64_t> requestsStreamed{0};
  std::atomic<uint64_t> streamsCompleted{0};       // every body byte handed over
  std::atomic<uint64_t> streamsAbortedGap{0};      // the capture lost bytes inside the body
  std::atomic<uint64_t> streamsAbortedEnd{0};      // the client's stream ended inside the body
  std::atomic<uint64_t> streamsAbortedRefused{0};  // the body's framing was refused (connection abandoned)
  std::atomic<uint64_t> streamsOverflowed{0};      // the consumer fell a window behind
  std::atomic<uint64_t> streamsLetGo{0};           // no consumer wanted it (sampled out, dropped, mirror failed)
  std::atomic<uint64_t> streamsInProgress{0};      // gauge
  std::atomic<uint64_t> bytesStreamed{0};          // body bytes handed to streams (in bytesParsed)

  // --- emitted requests that vary from the canonical form, by variation ---
  // Mirrored as common servers serve them; a request may count under several.
  std::atomic<uint64_t> toleratedBareLf{0};        // a head line ended by LF alone
  std::atomic<uint64_t> extensionMethod{0};        // a method llhttp 8.1 does not know (QUERY, ...)
  std::atomic<uint64_t> http10WithoutHost{0};      // HTTP/1.0 without Host (the rewrite adds one)
  std::atomic<uint64_t> ignoredHeaderName{0};      // a header name nginx ignores the line for ("X@y")

  // --- bytes: every delivered byte is emitted, unmirrored or buffered ---
  std::atomic<uint64_t> bytesIn{0};          // delivered by onData
  std::atomic<uint64_t> bytesParsed{0};      // inside emitted requests
  std::atomic<uint64_t> unmirroredBytes{0};  // skipped, dropped, or after abandonment
  std::atomic<uint64_t> bytesBuffered{0};    // gauge: sum of bufferedBytes()
};

// The request framers' counters.
void exportStats(const HttpStats& stats, base::StatsSink& out);

}  // namespace shadowtap::http
