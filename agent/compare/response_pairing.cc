#include "compare/response_pairing.h"

#include <algorithm>
#include <limits>
#include <string_view>
#include <utility>
#include <vector>

#include "base/counters.h"
#include "compare/response_pairing_consumer.h"

namespace shadowtap::compare {

model::FlowKey ResponsePairing::reverse(const model::FlowKey& key) {
  model::FlowKey r = key;
  std::swap(r.saddr, r.daddr);
  std::swap(r.sport, r.dport);
  return r;
}

ResponsePairing::ResponsePairing(http::ResponseSink& sink, PairingLimits limits)
    : sink_(sink), limits_(limits) {}

ResponsePairing::~ResponsePairing() {
  for (auto& [key, conn] : conns_) {
    failEarly(conn, http::NoResponse::kStreamEnded, stats_.earlyExpired);
    failEarlyH2(conn, http::NoResponse::kStreamEnded, stats_.earlyExpired);
  }
}

std::unique_ptr<flow::StreamConsumer> ResponsePairing::create(const model::FlowKey& key, uint32_t /*ruleId*/,
                                                              bool fromStart) {
  const model::FlowKey requestFlow = reverse(key);
  auto it = conns_.find(requestFlow);
  if (it == conns_.end()) {
    if (conns_.size() >= limits_.maxConnections) {
      base::bump(stats_.overLimit);
      return nullptr;
    }
    it = conns_.emplace(requestFlow, Conn{}).first;
    publishConnections();
  }
  Conn& conn = it->second;
  auto consumer = std::make_unique<Consumer>(*this, requestFlow, fromStart);
  http::ResponseFramer& framer = consumer->framer();
  conn.consumer = consumer.get();
  if (!fromStart) {
    // HTTP/2 cannot be decoded without the HPACK state from the start.
    failEarlyH2(conn, http::NoResponse::kUnpairable, stats_.earlyDropped);
  }
  if (conn.broken) {
    framer.breakPairing();
  }
  std::deque<Early> early;
  early.swap(conn.early);
  for (Early& e : early) {
    base::subtract(stats_.earlyWaiting);
    framer.expectResponseTo(e.method, e.id);
  }
  return consumer;
}

bool ResponsePairing::expect(const model::Request& request, uint64_t exchangeId) {
  base::bump(stats_.registered);
  auto it = conns_.find(request.flow);
  if (it == conns_.end()) {
    if (conns_.size() >= limits_.maxConnections) {
      base::bump(stats_.refused);
      return false;
    }
    it = conns_.emplace(request.flow, Conn{}).first;
    publishConnections();
  }
  Conn& conn = it->second;
  // Only an unbroken run of emitted requests from the start of the stream keeps
  // the order: a request the framer skipped, or one lost in a gap (positions
  // do not count gap bytes), still gets a response.
  const uint64_t start = request.streamOffset;
  const bool continuous =
      request.gapsBefore == 0 &&
      (conn.seenRequest ? start >= conn.nextOffset && start - conn.nextOffset <= limits_.maxSkippedRequestBytes
                        : start <= limits_.maxSkippedRequestBytes);
  conn.seenRequest = true;
  conn.nextOffset = start + request.bytes.size();
  if (!continuous) {
    markBroken(conn);
  }
  if (conn.broken) {
    base::bump(stats_.refused);
    return false;
  }
  if (conn.consumer != nullptr) {
    http::ResponseFramer& framer = conn.consumer->framer();
    if (!framer.pairing()) {
      base::bump(stats_.refused);
      return false;
    }
    framer.expectResponseTo(request.method, exchangeId);
    return true;
  }
  if (conn.early.size() >= limits_.maxEarlyRequests) {
    // Dropping one would shift the order of the rest.
    markBroken(conn);
    base::bump(stats_.refused);
    return false;
  }
  if (conn.early.empty()) {
    conn.firstEarlyNs = request.tsNs;
  }
  conn.early.push_back({request.method, exchangeId});
  base::bump(stats_.earlyWaiting);
  return true;
}

bool ResponsePairing::expectH2(const model::FlowKey& requestFlow, int32_t streamId, uint64_t exchangeId) {
  base::bump(stats_.registered);
  if (streamId <= 0 || streamId % 2 == 0) {
    base::bump(stats_.refused);  // not a client-initiated stream
    return false;
  }
  auto it = conns_.find(requestFlow);
  if (it == conns_.end()) {
    if (conns_.size() >= limits_.maxConnections) {
      base::bump(stats_.refused);
      return false;
    }
    it = conns_.emplace(requestFlow, Conn{}).first;
    publishConnections();
  }
  Conn& conn = it->second;
  if (conn.consumer != nullptr && conn.consumer->proto() != Consumer::Proto::kSniff) {
    if (!conn.consumer->expectH2(streamId, exchangeId)) {
      base::bump(stats_.refused);
      return false;
    }
    return true;
  }
  // No response stream yet, or its protocol is not known yet.
  const bool duplicate = std::any_of(conn.h2Early.begin(), conn.h2Early.end(),
                                     [&](const EarlyH2& e) { return e.streamId == streamId; });
  if (duplicate || conn.h2Early.size() >= limits_.maxEarlyRequests) {
    // Pairing is by id: refusing this one leaves the others intact.
    base::bump(stats_.refused);
    return false;
  }
  conn.h2Early.push_back({streamId, exchangeId, 0});
  base::bump(stats_.earlyWaiting);
  return true;
}

void ResponsePairing::onProtocolKnown(const model::FlowKey& requestFlow, Consumer* consumer, bool h2,
                                      http::NoResponse reason) {
  auto it = conns_.find(requestFlow);
  if (it == conns_.end() || it->second.consumer != consumer) {
    return;
  }
  Conn& conn = it->second;
  if (!h2) {
    failEarlyH2(conn, reason, stats_.earlyDropped);
    return;
  }
  std::deque<EarlyH2> early;
  early.swap(conn.h2Early);
  for (const EarlyH2& e : early) {
    base::subtract(stats_.earlyWaiting);
    if (!consumer->expectH2(e.streamId, e.id)) {
      // Cannot happen on a fresh decoder within the limits, but an exchange
      // promised a sink call must get one.
      base::bump(stats_.earlyDropped);
      sink_.onNoResponse(e.id, http::NoResponse::kUnpairable);
    }
  }
}

void ResponsePairing::markBroken(Conn& conn) {
  if (conn.broken) {
    return;
  }
  conn.broken = true;
  base::bump(stats_.brokenStreams);
  if (conn.consumer != nullptr) {
    conn.consumer->framer().breakPairing();
  }
  failEarly(conn, http::NoResponse::kUnpairable, stats_.earlyDropped);
}

void ResponsePairing::expire(uint64_t nowNs) {
  for (auto it = conns_.begin(); it != conns_.end();) {
    Conn& conn = it->second;
    if (conn.consumer == nullptr && !conn.early.empty() && nowNs > conn.firstEarlyNs &&
        nowNs - conn.firstEarlyNs > limits_.earlyTimeoutNs) {
      failEarly(conn, http::NoResponse::kStreamEnded, stats_.earlyExpired);
    }
    if (conn.consumer == nullptr) {
      // Each entry ages from the first sweep that saw it.
      std::deque<EarlyH2> keep;
      for (EarlyH2& e : conn.h2Early) {
        if (aged(e.stampNs, nowNs, limits_.earlyTimeoutNs)) {
          base::subtract(stats_.earlyWaiting);
          base::bump(stats_.earlyExpired);
          sink_.onNoResponse(e.id, http::NoResponse::kStreamEnded);
        } else {
          if (e.stampNs == 0) {
            e.stampNs = stampOf(nowNs);
          }
          keep.push_back(e);
        }
      }
      conn.h2Early.swap(keep);
    } else if (conn.consumer->proto() == Consumer::Proto::kH2) {
      conn.consumer->expireH2(nowNs);
    }
    if (conn.consumer == nullptr && conn.early.empty() && conn.h2Early.empty()) {
      // Nothing waits: forgetting it loses only the offset, and a later request
      // on it then starts past 0, which is treated as broken anyway.
      it = conns_.erase(it);
    } else {
      ++it;
    }
  }
  publishConnections();
}

void ResponsePairing::failEarly(Conn& conn, http::NoResponse reason, std::atomic<uint64_t>& counter) {
  std::deque<Early> early;
  early.swap(conn.early);
  for (const Early& e : early) {
    base::subtract(stats_.earlyWaiting);
    base::bump(counter);
    sink_.onNoResponse(e.id, reason);
  }
}

void ResponsePairing::failEarlyH2(Conn& conn, http::NoResponse reason, std::atomic<uint64_t>& counter) {
  std::deque<EarlyH2> early;
  early.swap(conn.h2Early);
  for (const EarlyH2& e : early) {
    base::subtract(stats_.earlyWaiting);
    base::bump(counter);
    sink_.onNoResponse(e.id, reason);
  }
}

void ResponsePairing::onConsumerEnd(const model::FlowKey& requestFlow, Consumer* consumer) {
  auto it = conns_.find(requestFlow);
  if (it != conns_.end() && it->second.consumer == consumer) {
    // The consumer has answered everything it was given; the connection is over.
    conns_.erase(it);
    publishConnections();
  }
}

void ResponsePairing::publishConnections() {
  stats_.connections.store(conns_.size(), std::memory_order_relaxed);
}

}  // namespace shadowtap::compare
