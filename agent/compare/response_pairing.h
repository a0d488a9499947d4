#pragma once

#include <cstdint>
#include <deque>
#include <memory>
#include <string>
#include <unordered_map>

#include "compare/response_framer.h"
#include "flow/flow_key.h"
#include "flow/stream_consumer.h"
#include "http/request.h"

namespace shadowtap::compare {

struct PairingLimits {
  ResponseLimits framer;
  size_t maxConnections = 65536;       // connections with requests registered but no response stream yet
  size_t maxEarlyRequests = 64;        // such requests per connection
  uint64_t earlyTimeoutNs = 10'000'000'000ULL;  // how long they wait for the response stream to appear
  // A request that starts more than this many bytes after the previous one ended
  // means the request framer skipped something (a request it did not emit, or a
  // resync) whose response would shift the order. CRLFs between requests are fine.
  uint64_t maxSkippedRequestBytes = 4;
};

// Counters of the pairing registry (the framers' own are in framerStats()).
// Every expect() call is refused, or handed to a framer (its `expected`), or
// expires or is dropped while no response stream exists, or still waits:
//   registered == refused + framerStats.expected + earlyExpired + earlyDropped + earlyWaiting
struct PairingStats {
  std::atomic<uint64_t> registered{0};     // expect() calls
  std::atomic<uint64_t> refused{0};        // expect() returned false: this request cannot be paired
  std::atomic<uint64_t> brokenStreams{0};  // request streams whose order became unknown
  std::atomic<uint64_t> earlyExpired{0};   // waited earlyTimeoutNs with no response stream (onNoResponse)
  std::atomic<uint64_t> earlyDropped{0};   // over maxEarlyRequests / maxConnections (onNoResponse)
  std::atomic<uint64_t> overLimit{0};      // response streams not framed: maxConnections reached
  std::atomic<uint64_t> earlyWaiting{0};   // gauge: registered, no response stream yet
  std::atomic<uint64_t> connections{0};    // gauge: connections tracked
};

// Pairs requests with the primary's responses across the two directions of a
// connection. It is the StreamConsumerFactory of the egress (server-to-client)
// flow table: create() is called with the egress flow's key (source = server).
// The request side calls expect() for every request it framed on a compared
// rule, in order, with the request's client-to-server flow key.
//
// Requests registered before the response stream is seen wait here (bounded,
// expired by expire()); every registered request for which expect() returned
// true ends in exactly one sink call. Single-threaded (the capture thread).
class ResponsePairing final : public flow::StreamConsumerFactory {
 public:
  // `sink` must outlive the pairing and every framer it created.
  explicit ResponsePairing(ResponseSink& sink, PairingLimits limits = {});
  ~ResponsePairing() override;
  ResponsePairing(const ResponsePairing&) = delete;
  ResponsePairing& operator=(const ResponsePairing&) = delete;

  // `key` is the egress direction (server -> client).
  std::unique_ptr<flow::StreamConsumer> create(const flow::FlowKey& key, uint32_t ruleId,
                                               bool fromStart) override;

  // Registers `request` (client -> server, as framed) under `exchangeId`. False
  // when it can never be paired (the request stream skipped bytes before it,
  // the response stream joined mid-way or broke): no sink call follows then.
  bool expect(const http::Request& request, uint64_t exchangeId);

  // The request direction of this connection lost bytes (a gap): pairing stops
  // for the connection. `requestFlow` is client -> server.
  void requestStreamBroken(const flow::FlowKey& requestFlow);

  // Periodic: requests waiting longer than earlyTimeoutNs for a response stream
  // that never appeared get onNoResponse(kStreamEnded).
  void expire(uint64_t nowNs);

  const PairingStats& stats() const { return stats_; }
  const ResponseStats& framerStats() const { return framerStats_; }

  static flow::FlowKey reverse(const flow::FlowKey& key);

 private:
  class Consumer;
  struct Early {
    std::string method;
    uint64_t id;
  };
  struct Conn {
    ResponseFramer* framer = nullptr;
    bool broken = false;
    bool seenRequest = false;
    uint64_t nextOffset = 0;  // request stream position after the last registered request
    uint64_t firstEarlyNs = 0;
    std::deque<Early> early;
  };

  void onConsumerEnd(const flow::FlowKey& requestFlow, ResponseFramer* framer);
  void failEarly(Conn& conn, NoResponse reason, std::atomic<uint64_t>& counter);
  void markBroken(Conn& conn);
  void publishConnections();

  ResponseSink& sink_;
  const PairingLimits limits_;
  PairingStats stats_;
  ResponseStats framerStats_;
  std::unordered_map<flow::FlowKey, Conn, flow::FlowKeyHash> conns_;
};

}  // namespace shadowtap::compare
