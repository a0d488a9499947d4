#include "compare/response_pairing.h"

#include <utility>

namespace shadowtap::compare {
namespace {

void add(std::atomic<uint64_t>& counter, uint64_t n = 1) {
  counter.fetch_add(n, std::memory_order_relaxed);
}

void sub(std::atomic<uint64_t>& counter, uint64_t n = 1) {
  counter.fetch_sub(n, std::memory_order_relaxed);
}

}  // namespace

// The egress flow's consumer: a ResponseFramer that tells the registry when the
// response stream ends, so the connection is forgotten.
class ResponsePairing::Consumer final : public flow::StreamConsumer {
 public:
  Consumer(ResponsePairing& owner, const flow::FlowKey& requestFlow, bool fromStart)
      : owner_(owner),
        requestFlow_(requestFlow),
        framer_(fromStart, owner.sink_, owner.limits_.framer, owner.framerStats_) {}
  ~Consumer() override { onEnd(flow::EndReason::kShutdown); }

  void onData(std::span<const uint8_t> bytes, uint64_t tsNs) override { framer_.onData(bytes, tsNs); }
  void onGap(uint64_t bytes) override { framer_.onGap(bytes); }
  void onEnd(flow::EndReason reason) override {
    if (ended_) {
      return;
    }
    ended_ = true;
    framer_.onEnd(reason);
    owner_.onConsumerEnd(requestFlow_, &framer_);
  }
  size_t bufferedBytes() const override { return framer_.bufferedBytes(); }

  ResponseFramer& framer() { return framer_; }

 private:
  ResponsePairing& owner_;
  const flow::FlowKey requestFlow_;
  ResponseFramer framer_;
  bool ended_ = false;
};

flow::FlowKey ResponsePairing::reverse(const flow::FlowKey& key) {
  flow::FlowKey r = key;
  std::swap(r.saddr, r.daddr);
  std::swap(r.sport, r.dport);
  return r;
}

ResponsePairing::ResponsePairing(ResponseSink& sink, PairingLimits limits)
    : sink_(sink), limits_(limits) {}

ResponsePairing::~ResponsePairing() {
  for (auto& [key, conn] : conns_) {
    failEarly(conn, NoResponse::kStreamEnded, stats_.earlyExpired);
  }
}

std::unique_ptr<flow::StreamConsumer> ResponsePairing::create(const flow::FlowKey& key, uint32_t /*ruleId*/,
                                                              bool fromStart) {
  const flow::FlowKey requestFlow = reverse(key);
  auto it = conns_.find(requestFlow);
  if (it == conns_.end()) {
    if (conns_.size() >= limits_.maxConnections) {
      add(stats_.overLimit);
      return nullptr;
    }
    it = conns_.emplace(requestFlow, Conn{}).first;
    publishConnections();
  }
  Conn& conn = it->second;
  auto consumer = std::make_unique<Consumer>(*this, requestFlow, fromStart);
  ResponseFramer& framer = consumer->framer();
  conn.framer = &framer;
  if (conn.broken) {
    framer.breakPairing();
  }
  std::deque<Early> early;
  early.swap(conn.early);
  for (Early& e : early) {
    sub(stats_.earlyWaiting);
    framer.expectResponseTo(e.method, e.id);
  }
  return consumer;
}

bool ResponsePairing::expect(const http::Request& request, uint64_t exchangeId) {
  add(stats_.registered);
  auto it = conns_.find(request.flow);
  if (it == conns_.end()) {
    if (conns_.size() >= limits_.maxConnections) {
      add(stats_.refused);
      return false;
    }
    it = conns_.emplace(request.flow, Conn{}).first;
    publishConnections();
  }
  Conn& conn = it->second;
  // Only an unbroken run of emitted requests from the start of the stream keeps
  // the order: a request the framer skipped still gets a response.
  const uint64_t start = request.streamOffset;
  const bool continuous = conn.seenRequest
                              ? start >= conn.nextOffset && start - conn.nextOffset <= limits_.maxSkippedRequestBytes
                              : start <= limits_.maxSkippedRequestBytes;
  conn.seenRequest = true;
  conn.nextOffset = start + request.bytes.size();
  if (!continuous) {
    markBroken(conn);
  }
  if (conn.broken) {
    add(stats_.refused);
    return false;
  }
  if (conn.framer != nullptr) {
    if (!conn.framer->pairing()) {
      add(stats_.refused);
      return false;
    }
    conn.framer->expectResponseTo(request.method, exchangeId);
    return true;
  }
  if (conn.early.size() >= limits_.maxEarlyRequests) {
    // Dropping one would shift the order of the rest.
    markBroken(conn);
    add(stats_.refused);
    return false;
  }
  if (conn.early.empty()) {
    conn.firstEarlyNs = request.tsNs;
  }
  conn.early.push_back({request.method, exchangeId});
  add(stats_.earlyWaiting);
  return true;
}

void ResponsePairing::requestStreamBroken(const flow::FlowKey& requestFlow) {
  auto it = conns_.find(requestFlow);
  if (it != conns_.end()) {
    markBroken(it->second);
  }
}

void ResponsePairing::markBroken(Conn& conn) {
  if (conn.broken) {
    return;
  }
  conn.broken = true;
  add(stats_.brokenStreams);
  if (conn.framer != nullptr) {
    conn.framer->breakPairing();
  }
  failEarly(conn, NoResponse::kUnpairable, stats_.earlyDropped);
}

void ResponsePairing::expire(uint64_t nowNs) {
  for (auto it = conns_.begin(); it != conns_.end();) {
    Conn& conn = it->second;
    if (conn.framer == nullptr && !conn.early.empty() && nowNs > conn.firstEarlyNs &&
        nowNs - conn.firstEarlyNs > limits_.earlyTimeoutNs) {
      failEarly(conn, NoResponse::kStreamEnded, stats_.earlyExpired);
    }
    if (conn.framer == nullptr && conn.early.empty()) {
      // Nothing waits: forgetting it loses only the offset, and a later request
      // on it then starts past 0, which is treated as broken anyway.
      it = conns_.erase(it);
    } else {
      ++it;
    }
  }
  publishConnections();
}

void ResponsePairing::failEarly(Conn& conn, NoResponse reason, std::atomic<uint64_t>& counter) {
  std::deque<Early> early;
  early.swap(conn.early);
  for (const Early& e : early) {
    sub(stats_.earlyWaiting);
    add(counter);
    sink_.onNoResponse(e.id, reason);
  }
}

void ResponsePairing::onConsumerEnd(const flow::FlowKey& requestFlow, ResponseFramer* framer) {
  auto it = conns_.find(requestFlow);
  if (it != conns_.end() && it->second.framer == framer) {
    // The framer has answered everything it was given; the connection is over.
    conns_.erase(it);
    publishConnections();
  }
}

void ResponsePairing::publishConnections() {
  stats_.connections.store(conns_.size(), std::memory_order_relaxed);
}

}  // namespace shadowtap::compare
