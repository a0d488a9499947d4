#pragma once

#include <cstdint>
#include <deque>
#include <memory>
#include <string>
#include <unordered_map>

#include "h2/h2_response_decoder.h"
#include "http/response_framer.h"
#include "model/flow_key.h"
#include "flow/stream_consumer.h"
#include "model/request.h"

namespace shadowtap::compare {

struct PairingLimits {
  http::ResponseLimits framer;  // HTTP/1 framing; its body and header limits apply to HTTP/2 responses too
  h2::H2ResponseLimits h2;     // HTTP/2 decoding; h2.maxUpgradeHeadBytes also bounds the protocol sniff
  size_t maxConnections = 65536;       // connections with requests registered but no response stream yet
  size_t maxEarlyRequests = 64;        // such requests per connection (HTTP/1 and HTTP/2 each)
  uint64_t earlyTimeoutNs = 10'000'000'000ULL;  // how long they wait for the response stream to appear
  // A request that starts more than this many bytes after the previous one ended
  // means the request framer skipped something (a request it did not emit, or a
  // resync) whose response would shift the order. CRLFs between requests are fine.
  uint64_t maxSkippedRequestBytes = 4;
  // HTTP/2 pairs by stream id, in either order.
  size_t maxH2Waiting = 1024;            // registered streams waiting for their response, per connection
  uint64_t h2WaitTimeoutNs = 60'000'000'000ULL;  // then given up (the engine has long expired them)
  size_t maxUnmatchedResponses = 64;     // stream outcomes kept for a registration still to come, per connection
  size_t maxUnmatchedBytes = 4 << 20;    // their header and body bytes, per connection
  uint64_t unmatchedTimeoutNs = 5'000'000'000ULL;  // how long they are kept
};

// Counters of the pairing registry (the framers' and decoders' own are in
// framerStats() and h2Stats()).
//
// Every expect()/expectH2() call is refused, or handed to an HTTP/1 framer (its
// `expected`) or to an HTTP/2 connection (h2Handed), or expires or is dropped
// while no response stream (or no known protocol) exists, or still waits:
//   registered == refused + framerStats.expected + h2Handed + earlyExpired + earlyDropped + earlyWaiting
// Every HTTP/2 exchange handed over ends in one sink call, or still waits:
//   h2Handed == h2Responses + h2NoResponse + h2Waiting
// Every HTTP/2 stream outcome that came before its registration is kept until
// it is matched, dropped (limits, connection end) or expired, or still kept:
//   unmatchedKept == unmatchedMatched + unmatchedDropped + unmatchedExpired + unmatchedWaiting
// Gauges (earlyWaiting, h2Waiting, unmatchedWaiting, connections) are 0 once
// every response stream has ended and expire() has run past the timeouts.
struct PairingStats {
  std::atomic<uint64_t> registered{0};     // expect() and expectH2() calls
  std::atomic<uint64_t> refused{0};        // returned false: this request cannot be paired
  std::atomic<uint64_t> brokenStreams{0};  // HTTP/1 request streams whose order became unknown
  std::atomic<uint64_t> earlyExpired{0};   // waited earlyTimeoutNs with no response stream (onNoResponse)
  std::atomic<uint64_t> earlyDropped{0};   // over maxEarlyRequests / maxConnections, or the response stream
                                           // cannot answer them (other protocol, mid-stream, ended) (onNoResponse)
  std::atomic<uint64_t> overLimit{0};      // response streams not framed: maxConnections reached
  std::atomic<uint64_t> earlyWaiting{0};   // gauge: registered, no response stream (or protocol) yet
  std::atomic<uint64_t> connections{0};    // gauge: connections tracked

  // --- response streams by protocol (sniffed from their first bytes) ---
  std::atomic<uint64_t> streamsHttp1{0};   // HTTP/1 framer (also: mid-stream, and too short to tell)
  std::atomic<uint64_t> streamsH2{0};      // HTTP/2 decoder (prior knowledge, or 101 + "Upgrade: h2c")

  // --- HTTP/2 exchanges ---
  std::atomic<uint64_t> h2Handed{0};       // expectH2() requests given to an HTTP/2 connection
  std::atomic<uint64_t> h2Responses{0};    // ... answered (onResponse)
  std::atomic<uint64_t> h2NoResponse{0};   // ... reset, above a GOAWAY, connection ended/broke, waited too long
  std::atomic<uint64_t> h2WaitExpired{0};  // ... of which waited h2WaitTimeoutNs (diagnostic)
  std::atomic<uint64_t> h2Waiting{0};      // gauge
  std::atomic<uint64_t> unmatchedKept{0};      // stream outcomes before their registration
  std::atomic<uint64_t> unmatchedMatched{0};   // ... then registered (delivered at once)
  std::atomic<uint64_t> unmatchedDropped{0};   // ... over the limits, or the connection ended
  std::atomic<uint64_t> unmatchedExpired{0};   // ... kept unmatchedTimeoutNs without a registration
  std::atomic<uint64_t> unmatchedWaiting{0};   // gauge
};

// Pairs requests with the primary's responses across the two directions of a
// connection. It is the StreamConsumerFactory of the egress (server-to-client)
// flow table: create() is called with the egress flow's key (source = server).
// The request side calls expect() for every HTTP/1 request it framed on a
// compared rule, in order, and expectH2() for every HTTP/2 request stream, with
// the request's client-to-server flow key.
//
// The protocol of a response stream seen from its start is sniffed from its
// first bytes: a SETTINGS frame header on stream 0 (prior-knowledge h2c), or an
// "HTTP/1.1 101" head with "Upgrade: h2c", means HTTP/2 (h2::H2ResponseDecoder);
// anything else is HTTP/1 (http::ResponseFramer). A stream joined mid-way is HTTP/1
// and unpairable (HPACK state is unknown for HTTP/2).
//
// Requests registered before the response stream (or its protocol) is known
// wait here (bounded, expired by expire()); every registered request for which
// expect()/expectH2() returned true ends in exactly one sink call.
// Single-threaded (the capture thread).
class ResponsePairing final : public flow::StreamConsumerFactory {
 public:
  // `sink` must outlive the pairing and every framer it created.
  explicit ResponsePairing(http::ResponseSink& sink, PairingLimits limits = {});
  ~ResponsePairing() override;
  ResponsePairing(const ResponsePairing&) = delete;
  ResponsePairing& operator=(const ResponsePairing&) = delete;

  // `key` is the egress direction (server -> client).
  std::unique_ptr<flow::StreamConsumer> create(const model::FlowKey& key, uint32_t ruleId,
                                               bool fromStart) override;

  // Registers `request` (client -> server, as framed) under `exchangeId`. False
  // when it can never be paired (the request stream skipped bytes before it,
  // the response stream joined mid-way or broke): no sink call follows then.
  bool expect(const model::Request& request, uint64_t exchangeId);

  // Registers HTTP/2 client stream `streamId` (odd) of the connection whose
  // client-to-server direction is `requestFlow` under `exchangeId`. Pairs by
  // stream id: the response may have completed already (kept a short time) or
  // come later. False when it can never be paired (not a client stream id,
  // registered twice, the connection is HTTP/1, mid-stream, failed, above a
  // GOAWAY, or over the limits): no sink call follows then.
  bool expectH2(const model::FlowKey& requestFlow, int32_t streamId, uint64_t exchangeId);

  // Periodic: requests waiting longer than earlyTimeoutNs for a response stream
  // that never appeared get onNoResponse(kStreamEnded); HTTP/2 requests waiting
  // longer than h2WaitTimeoutNs get onNoResponse(kUnpairable); unmatched HTTP/2
  // outcomes older than unmatchedTimeoutNs are dropped. HTTP/2 entries carry no
  // capture time: their age counts from the first expire() call that sees them.
  // expire(UINT64_MAX) is the final sweep: everything waiting here ends.
  void expire(uint64_t nowNs);

  const PairingStats& stats() const { return stats_; }
  const http::ResponseStats& framerStats() const { return framerStats_; }
  const h2::H2ResponseStats& h2Stats() const { return h2Stats_; }

  static model::FlowKey reverse(const model::FlowKey& key);

 private:
  class Consumer;
  struct Early {
    std::string method;
    uint64_t id;
  };
  struct EarlyH2 {
    int32_t streamId;
    uint64_t id;
    uint64_t stampNs;  // 0: not seen by expire() yet
  };
  struct Conn {
    Consumer* consumer = nullptr;
    bool broken = false;
    bool seenRequest = false;
    uint64_t nextOffset = 0;  // request stream position after the last registered request
    uint64_t firstEarlyNs = 0;
    std::deque<Early> early;
    std::deque<EarlyH2> h2Early;
  };

  void onConsumerEnd(const model::FlowKey& requestFlow, Consumer* consumer);
  // The consumer of `requestFlow` found its protocol: HTTP/2 early requests go
  // to it, or get onNoResponse(reason) when it is HTTP/1.
  void onProtocolKnown(const model::FlowKey& requestFlow, Consumer* consumer, bool h2, http::NoResponse reason);
  void failEarly(Conn& conn, http::NoResponse reason, std::atomic<uint64_t>& counter);
  void failEarlyH2(Conn& conn, http::NoResponse reason, std::atomic<uint64_t>& counter);
  void markBroken(Conn& conn);
  void publishConnections();

  http::ResponseSink& sink_;
  const PairingLimits limits_;
  PairingStats stats_;
  http::ResponseStats framerStats_;
  h2::H2ResponseStats h2Stats_;
  std::unordered_map<model::FlowKey, Conn, model::FlowKeyHash> conns_;
};

}  // namespace shadowtap::compare
