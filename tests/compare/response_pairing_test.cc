#include "compare/response_pairing.h"

#include <gtest/gtest.h>
#include <nghttp2/nghttp2.h>

#include <utility>

#include "compare_test_util.h"

namespace shadowtap::compare {
namespace {

using test::asBytes;
using test::CollectingSink;
using test::load;

model::FlowKey clientToServer() {
  model::FlowKey k;
  k.saddr = {198, 18, 0, 1};
  k.daddr = {198, 18, 0, 2};
  k.sport = 40000;
  k.dport = 8000;
  return k;
}

model::Request request(const std::string& method, uint64_t offset, size_t size, uint64_t tsNs = 1) {
  model::Request r;
  r.flow = clientToServer();
  r.method = method;
  r.streamOffset = offset;
  r.bytes.assign(size, 'x');
  r.tsNs = tsNs;
  return r;
}

void expectIdentity(const ResponsePairing& p) {
  const PairingStats& s = p.stats();
  EXPECT_EQ(load(s.registered), load(s.refused) + load(p.framerStats().expected) + load(s.h2Handed) +
                                    load(s.earlyExpired) + load(s.earlyDropped) + load(s.earlyWaiting));
  EXPECT_EQ(load(s.h2Handed), load(s.h2Responses) + load(s.h2NoResponse) + load(s.h2Waiting));
  EXPECT_EQ(load(s.unmatchedKept), load(s.unmatchedMatched) + load(s.unmatchedDropped) + load(s.unmatchedExpired) +
                                       load(s.unmatchedWaiting));
}

const std::string kTwoResponses =
    "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nokHTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\n";

TEST(ResponsePairing, RequestsBeforeTheResponseStreamWaitForIt) {
  CollectingSink sink;
  ResponsePairing pairing(sink);
  ASSERT_TRUE(pairing.expect(request("GET", 0, 40), 11));
  ASSERT_TRUE(pairing.expect(request("HEAD", 42, 30), 12));  // 2 CRLF bytes between: fine
  EXPECT_EQ(load(pairing.stats().earlyWaiting), 2u);
  const model::FlowKey egress = ResponsePairing::reverse(clientToServer());
  EXPECT_EQ(egress.sport, 8000);
  EXPECT_EQ(egress.saddr, clientToServer().daddr);
  auto consumer = pairing.create(egress, 1, true);
  ASSERT_NE(consumer, nullptr);
  EXPECT_EQ(load(pairing.stats().earlyWaiting), 0u);
  consumer->onData(asBytes(kTwoResponses), 5);
  ASSERT_EQ(sink.responses.size(), 2u);
  EXPECT_EQ(sink.responses[0].first, 11u);
  EXPECT_EQ(sink.responses[0].second.body, "ok");
  EXPECT_EQ(sink.responses[1].first, 12u);
  EXPECT_EQ(sink.responses[1].second.bodyLength, 0u);  // HEAD
  // Later requests go straight to the framer.
  ASSERT_TRUE(pairing.expect(request("GET", 72, 10), 13));
  consumer->onData(asBytes("HTTP/1.1 500 Oops\r\nContent-Length: 0\r\n\r\n"), 6);
  ASSERT_EQ(sink.responses.size(), 3u);
  EXPECT_EQ(sink.responses[2].second.status, 500);
  EXPECT_EQ(load(pairing.stats().connections), 1u);
  consumer->onEnd(flow::EndReason::kFin);
  EXPECT_EQ(load(pairing.stats().connections), 0u);
  expectIdentity(pairing);
}

TEST(ResponsePairing, ASkippedRequestBreaksTheOrder) {
  CollectingSink sink;
  ResponsePairing pairing(sink);
  auto consumer = pairing.create(ResponsePairing::reverse(clientToServer()), 1, true);
  ASSERT_TRUE(pairing.expect(request("GET", 0, 40), 1));
  // Bytes 40..100 were a request the request framer did not emit (no Host,
  // too large...): the server answers it, so the order is lost.
  EXPECT_FALSE(pairing.expect(request("GET", 100, 40), 2));
  ASSERT_EQ(sink.missing.size(), 1u);
  EXPECT_EQ(sink.missing[0], std::make_pair(uint64_t{1}, http::NoResponse::kUnpairable));
  EXPECT_FALSE(pairing.expect(request("GET", 140, 40), 3));
  EXPECT_EQ(load(pairing.stats().brokenStreams), 1u);
  EXPECT_EQ(load(pairing.stats().refused), 2u);
  consumer->onData(asBytes(kTwoResponses), 1);
  EXPECT_TRUE(sink.responses.empty());
  expectIdentity(pairing);
}

TEST(ResponsePairing, FirstRequestMustStartTheStream) {
  CollectingSink sink;
  ResponsePairing pairing(sink);
  EXPECT_FALSE(pairing.expect(request("GET", 500, 40), 1));  // joined mid-stream
  EXPECT_TRUE(sink.missing.empty());
  expectIdentity(pairing);
}

TEST(ResponsePairing, ARequestAfterAGapBreaksPairing) {
  // Positions do not count gap bytes: the request after a lost one looks
  // contiguous, and only its gap count tells.
  CollectingSink sink;
  ResponsePairing pairing(sink);
  auto consumer = pairing.create(ResponsePairing::reverse(clientToServer()), 1, true);
  ASSERT_TRUE(pairing.expect(request("GET", 0, 40), 1));
  model::Request afterGap = request("GET", 40, 40);
  afterGap.gapsBefore = 1;
  EXPECT_FALSE(pairing.expect(afterGap, 2));
  ASSERT_EQ(sink.missing.size(), 1u);
  EXPECT_EQ(sink.missing[0].second, http::NoResponse::kUnpairable);
  EXPECT_EQ(load(pairing.stats().brokenStreams), 1u);
  EXPECT_FALSE(pairing.expect(request("GET", 80, 40), 3)) << "the order stays lost";
  expectIdentity(pairing);
}

TEST(ResponsePairing, MidStreamResponseStreamRefusesRequests) {
  CollectingSink sink;
  ResponsePairing pairing(sink);
  ASSERT_TRUE(pairing.expect(request("GET", 0, 40), 1));
  auto consumer = pairing.create(ResponsePairing::reverse(clientToServer()), 1, false);
  ASSERT_EQ(sink.missing.size(), 1u);
  EXPECT_FALSE(pairing.expect(request("GET", 40, 40), 2));
  expectIdentity(pairing);
}

TEST(ResponsePairing, EarlyRequestsExpireWithoutAResponseStream) {
  CollectingSink sink;
  PairingLimits limits;
  limits.earlyTimeoutNs = 1000;
  ResponsePairing pairing(sink, limits);
  ASSERT_TRUE(pairing.expect(request("GET", 0, 40, 100), 1));
  pairing.expire(1000);
  EXPECT_TRUE(sink.missing.empty());
  pairing.expire(1101);
  ASSERT_EQ(sink.missing.size(), 1u);
  EXPECT_EQ(sink.missing[0], std::make_pair(uint64_t{1}, http::NoResponse::kStreamEnded));
  EXPECT_EQ(load(pairing.stats().earlyExpired), 1u);
  EXPECT_EQ(load(pairing.stats().connections), 0u);
  expectIdentity(pairing);
}

TEST(ResponsePairing, TooManyEarlyRequestsBreakTheConnection) {
  CollectingSink sink;
  PairingLimits limits;
  limits.maxEarlyRequests = 2;
  ResponsePairing pairing(sink, limits);
  ASSERT_TRUE(pairing.expect(request("GET", 0, 10), 1));
  ASSERT_TRUE(pairing.expect(request("GET", 10, 10), 2));
  EXPECT_FALSE(pairing.expect(request("GET", 20, 10), 3));
  EXPECT_EQ(sink.missing.size(), 2u);
  EXPECT_EQ(load(pairing.stats().earlyDropped), 2u);
  expectIdentity(pairing);
}

TEST(ResponsePairing, ConnectionLimitDeclinesResponseStreams) {
  CollectingSink sink;
  PairingLimits limits;
  limits.maxConnections = 1;
  ResponsePairing pairing(sink, limits);
  auto first = pairing.create(ResponsePairing::reverse(clientToServer()), 1, true);
  ASSERT_NE(first, nullptr);
  model::FlowKey other = ResponsePairing::reverse(clientToServer());
  other.dport = 40001;
  EXPECT_EQ(pairing.create(other, 1, true), nullptr);
  EXPECT_EQ(load(pairing.stats().overLimit), 1u);
}

// ---------------------------------------------------------------------------
// HTTP/2

// Minimal server byte streams: frames by hand, header blocks by nghttp2's deflater.
class H2Bytes {
 public:
  H2Bytes() {
    nghttp2_hd_deflate_new(&deflater_, 4096);
    frame(0x4, 0, 0, "");  // SETTINGS
  }
  ~H2Bytes() { nghttp2_hd_deflate_del(deflater_); }
  void headers(int32_t stream, const std::string& status, bool endStream) {
    nghttp2_nv nv = {(uint8_t*)":status", (uint8_t*)status.data(), 7, status.size(), NGHTTP2_NV_FLAG_NONE};
    std::string block(64, '\0');
    const ssize_t n = nghttp2_hd_deflate_hd(deflater_, reinterpret_cast<uint8_t*>(block.data()), block.size(), &nv, 1);
    block.resize(static_cast<size_t>(n));
    frame(0x1, 0x4 | (endStream ? 1 : 0), stream, block);
  }
  void data(int32_t stream, const std::string& body, bool endStream) { frame(0x0, endStream ? 1 : 0, stream, body); }
  void rst(int32_t stream) { frame(0x3, 0, stream, std::string("\0\0\0\x08", 4)); }
  void goAway(int32_t last) {
    std::string p(8, '\0');
    p[3] = static_cast<char>(last);
    frame(0x7, 0, 0, p);
  }
  // Takes what was written so far.
  std::string take() { return std::exchange(out_, std::string()); }

 private:
  void frame(uint8_t type, uint8_t flags, int32_t stream, const std::string& payload) {
    out_ += static_cast<char>(payload.size() >> 16);
    out_ += static_cast<char>(payload.size() >> 8);
    out_ += static_cast<char>(payload.size());
    out_ += static_cast<char>(type);
    out_ += static_cast<char>(flags);
    out_ += static_cast<char>(stream >> 24);
    out_ += static_cast<char>(stream >> 16);
    out_ += static_cast<char>(stream >> 8);
    out_ += static_cast<char>(stream);
    out_ += payload;
  }
  nghttp2_hd_deflater* deflater_ = nullptr;
  std::string out_;
};

const model::FlowKey kEgress = ResponsePairing::reverse(clientToServer());

TEST(ResponsePairingH2, PairsByStreamIdInEitherOrder) {
  CollectingSink sink;
  ResponsePairing pairing(sink);
  H2Bytes h2;
  auto consumer = pairing.create(kEgress, 1, true);
  ASSERT_TRUE(pairing.expectH2(clientToServer(), 1, 101));  // protocol not known yet: waits
  EXPECT_EQ(load(pairing.stats().earlyWaiting), 1u);
  h2.headers(1, "200", false);
  h2.headers(3, "404", false);
  h2.data(3, "gone", true);  // completes before stream 3 is registered
  consumer->onData(asBytes(h2.take()), 7);
  EXPECT_EQ(consumer->bufferedBytes(), 4u);  // the unmatched body
  EXPECT_EQ(load(pairing.stats().streamsH2), 1u);
  EXPECT_EQ(load(pairing.stats().earlyWaiting), 0u);
  EXPECT_EQ(load(pairing.stats().unmatchedWaiting), 1u);
  ASSERT_TRUE(pairing.expectH2(clientToServer(), 3, 103));  // delivered at once
  ASSERT_EQ(sink.responses.size(), 1u);
  EXPECT_EQ(sink.responses[0].first, 103u);
  EXPECT_EQ(sink.responses[0].second.status, 404);
  EXPECT_EQ(sink.responses[0].second.body, "gone");
  EXPECT_EQ(consumer->bufferedBytes(), 0u);
  ASSERT_TRUE(pairing.expectH2(clientToServer(), 5, 105));  // response still to come
  h2.data(1, "body", true);
  h2.headers(5, "201", true);
  consumer->onData(asBytes(h2.take()), 8);
  ASSERT_EQ(sink.responses.size(), 3u);
  EXPECT_EQ(sink.responses[1].first, 101u);
  EXPECT_EQ(sink.responses[1].second.body, "body");
  EXPECT_EQ(sink.responses[1].second.tsNs, 7u);
  EXPECT_EQ(sink.responses[2].first, 105u);
  // HTTP/1 requests, duplicates and even ids cannot be paired here.
  EXPECT_FALSE(pairing.expect(request("GET", 0, 10), 200));
  EXPECT_FALSE(pairing.expectH2(clientToServer(), 4, 201));
  ASSERT_TRUE(pairing.expectH2(clientToServer(), 7, 107));
  EXPECT_FALSE(pairing.expectH2(clientToServer(), 7, 108));
  consumer->onEnd(flow::EndReason::kFin);
  ASSERT_EQ(sink.missing.size(), 1u);
  EXPECT_EQ(sink.missing[0], std::make_pair(uint64_t{107}, http::NoResponse::kStreamEnded));
  EXPECT_EQ(load(pairing.stats().h2Responses), 3u);
  EXPECT_EQ(load(pairing.stats().h2NoResponse), 1u);
  EXPECT_EQ(load(pairing.stats().refused), 3u);
  EXPECT_EQ(load(pairing.stats().connections), 0u);
  EXPECT_EQ(load(pairing.h2Stats().responses), 3u);
  expectIdentity(pairing);
}

TEST(ResponsePairingH2, RequestsBeforeTheResponseStreamWait) {
  CollectingSink sink;
  ResponsePairing pairing(sink);
  ASSERT_TRUE(pairing.expectH2(clientToServer(), 1, 1));
  ASSERT_TRUE(pairing.expectH2(clientToServer(), 3, 3));
  EXPECT_FALSE(pairing.expectH2(clientToServer(), 3, 4));  // twice
  EXPECT_EQ(load(pairing.stats().earlyWaiting), 2u);
  auto consumer = pairing.create(kEgress, 1, true);
  H2Bytes h2;
  h2.headers(3, "200", true);
  h2.rst(1);
  h2.headers(1, "200", false);
  h2.rst(1);
  const std::string bytes = h2.take();
  for (char c : bytes) {  // byte by byte: the sniff waits for 9 bytes
    consumer->onData(asBytes(std::string_view(&c, 1)), 1);
  }
  ASSERT_EQ(sink.responses.size(), 1u);
  EXPECT_EQ(sink.responses[0].first, 3u);
  ASSERT_EQ(sink.missing.size(), 1u);
  EXPECT_EQ(sink.missing[0], std::make_pair(uint64_t{1}, http::NoResponse::kStreamEnded));
  expectIdentity(pairing);
}

TEST(ResponsePairingH2, UpgradedConnectionAnswersStreamOne) {
  CollectingSink sink;
  ResponsePairing pairing(sink);
  auto consumer = pairing.create(kEgress, 1, true);
  ASSERT_TRUE(pairing.expectH2(clientToServer(), 1, 9));
  H2Bytes h2;
  h2.headers(1, "200", false);
  h2.data(1, "hello", true);
  const std::string bytes =
      "HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nupgrade:  H2C \r\n\r\n" + h2.take();
  consumer->onData(asBytes(bytes.substr(0, 20)), 1);  // the head in two parts
  consumer->onData(asBytes(bytes.substr(20)), 2);
  ASSERT_EQ(sink.responses.size(), 1u);
  EXPECT_EQ(sink.responses[0].first, 9u);
  EXPECT_EQ(sink.responses[0].second.body, "hello");
  EXPECT_EQ(load(pairing.h2Stats().upgraded), 1u);
  EXPECT_EQ(load(pairing.framerStats().bytesIn), 0u);
  expectIdentity(pairing);
}

TEST(ResponsePairingH2, OtherUpgradesStayHttp1) {
  CollectingSink sink;
  ResponsePairing pairing(sink);
  auto consumer = pairing.create(kEgress, 1, true);
  ASSERT_TRUE(pairing.expect(request("GET", 0, 40), 1));
  ASSERT_TRUE(pairing.expectH2(clientToServer(), 1, 2));  // waits for the protocol
  consumer->onData(asBytes("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n\r\n\x81\x05hello"), 1);
  ASSERT_EQ(sink.responses.size(), 1u);
  EXPECT_EQ(sink.responses[0].first, 1u);
  EXPECT_EQ(sink.responses[0].second.status, 101);
  ASSERT_EQ(sink.missing.size(), 1u);
  EXPECT_EQ(sink.missing[0], std::make_pair(uint64_t{2}, http::NoResponse::kUnpairable));
  EXPECT_EQ(load(pairing.stats().streamsHttp1), 1u);
  EXPECT_EQ(load(pairing.framerStats().upgrades), 1u);
  EXPECT_FALSE(pairing.expectH2(clientToServer(), 3, 3));
  expectIdentity(pairing);
}

TEST(ResponsePairingH2, Http1RequestsOnAnH2ConnectionGetNoResponse) {
  CollectingSink sink;
  ResponsePairing pairing(sink);
  auto consumer = pairing.create(kEgress, 1, true);
  ASSERT_TRUE(pairing.expect(request("GET", 0, 40), 1));
  H2Bytes h2;
  consumer->onData(asBytes(h2.take()), 1);
  ASSERT_EQ(sink.missing.size(), 1u);
  EXPECT_EQ(sink.missing[0], std::make_pair(uint64_t{1}, http::NoResponse::kUnpairable));
  expectIdentity(pairing);
}

TEST(ResponsePairingH2, GapAndGoAway) {
  CollectingSink sink;
  ResponsePairing pairing(sink);
  auto consumer = pairing.create(kEgress, 1, true);
  H2Bytes h2;
  h2.headers(1, "200", false);
  h2.goAway(3);
  consumer->onData(asBytes(h2.take()), 1);
  ASSERT_TRUE(pairing.expectH2(clientToServer(), 1, 1));
  ASSERT_TRUE(pairing.expectH2(clientToServer(), 3, 3));
  EXPECT_FALSE(pairing.expectH2(clientToServer(), 5, 5));  // above the GOAWAY
  consumer->onGap(10);
  ASSERT_EQ(sink.missing.size(), 2u);
  EXPECT_EQ(sink.missing[0], std::make_pair(uint64_t{1}, http::NoResponse::kGap));
  EXPECT_EQ(sink.missing[1], std::make_pair(uint64_t{3}, http::NoResponse::kGap));
  EXPECT_FALSE(pairing.expectH2(clientToServer(), 7, 7));  // decoding stopped
  EXPECT_EQ(load(pairing.h2Stats().gaps), 1u);
  expectIdentity(pairing);
}

TEST(ResponsePairingH2, MidStreamConnectionCannotPair) {
  CollectingSink sink;
  ResponsePairing pairing(sink);
  ASSERT_TRUE(pairing.expectH2(clientToServer(), 1, 1));
  auto consumer = pairing.create(kEgress, 1, false);
  ASSERT_EQ(sink.missing.size(), 1u);
  EXPECT_EQ(sink.missing[0], std::make_pair(uint64_t{1}, http::NoResponse::kUnpairable));
  EXPECT_FALSE(pairing.expectH2(clientToServer(), 3, 3));
  EXPECT_EQ(load(pairing.stats().earlyDropped), 1u);
  expectIdentity(pairing);
}

TEST(ResponsePairingH2, UnmatchedResponsesAreBoundedAndExpire) {
  CollectingSink sink;
  PairingLimits limits;
  limits.maxUnmatchedResponses = 2;
  limits.unmatchedTimeoutNs = 1000;
  limits.h2WaitTimeoutNs = 5000;
  ResponsePairing pairing(sink, limits);
  auto consumer = pairing.create(kEgress, 1, true);
  H2Bytes h2;
  h2.headers(1, "200", true);
  h2.headers(3, "200", true);
  h2.headers(5, "200", true);  // drops stream 1's
  consumer->onData(asBytes(h2.take()), 1);
  EXPECT_EQ(load(pairing.stats().unmatchedDropped), 1u);
  EXPECT_EQ(load(pairing.stats().unmatchedWaiting), 2u);
  ASSERT_TRUE(pairing.expectH2(clientToServer(), 3, 3));
  EXPECT_EQ(sink.responses.size(), 1u);
  ASSERT_TRUE(pairing.expectH2(clientToServer(), 1, 1));  // its response was dropped: waits
  pairing.expire(10'000);                                   // stamps
  EXPECT_EQ(load(pairing.stats().unmatchedWaiting), 1u);
  pairing.expire(11'500);  // stream 5's outcome is old now
  EXPECT_EQ(load(pairing.stats().unmatchedExpired), 1u);
  EXPECT_TRUE(sink.missing.empty());
  pairing.expire(15'500);  // stream 1 waited too long
  ASSERT_EQ(sink.missing.size(), 1u);
  EXPECT_EQ(sink.missing[0], std::make_pair(uint64_t{1}, http::NoResponse::kUnpairable));
  EXPECT_EQ(load(pairing.stats().h2WaitExpired), 1u);
  EXPECT_EQ(load(pairing.stats().unmatchedWaiting), 0u);
  expectIdentity(pairing);
}

TEST(ResponsePairingH2, EarlyRequestsExpireAndAreBounded) {
  CollectingSink sink;
  PairingLimits limits;
  limits.earlyTimeoutNs = 1000;
  limits.maxEarlyRequests = 2;
  ResponsePairing pairing(sink, limits);
  ASSERT_TRUE(pairing.expectH2(clientToServer(), 1, 1));
  ASSERT_TRUE(pairing.expectH2(clientToServer(), 3, 3));
  EXPECT_FALSE(pairing.expectH2(clientToServer(), 5, 5));
  pairing.expire(100);  // stamps
  EXPECT_TRUE(sink.missing.empty());
  pairing.expire(1200);
  EXPECT_EQ(sink.missing.size(), 2u);
  EXPECT_EQ(load(pairing.stats().earlyExpired), 2u);
  EXPECT_EQ(load(pairing.stats().connections), 0u);
  // The final sweep ends what has not aged yet.
  ASSERT_TRUE(pairing.expectH2(clientToServer(), 7, 7));
  pairing.expire(UINT64_MAX);
  EXPECT_EQ(sink.missing.size(), 3u);
  EXPECT_EQ(load(pairing.stats().earlyWaiting), 0u);
  expectIdentity(pairing);
}

TEST(ResponsePairingH2, StreamEndingBeforeItsProtocolIsKnown) {
  CollectingSink sink;
  ResponsePairing pairing(sink);
  auto consumer = pairing.create(kEgress, 1, true);
  ASSERT_TRUE(pairing.expectH2(clientToServer(), 1, 1));
  consumer->onData(asBytes(std::string("\x00\x00", 2)), 1);
  consumer->onEnd(flow::EndReason::kFin);
  ASSERT_EQ(sink.missing.size(), 1u);
  EXPECT_EQ(sink.missing[0], std::make_pair(uint64_t{1}, http::NoResponse::kStreamEnded));
  EXPECT_EQ(load(pairing.stats().earlyDropped), 1u);
  EXPECT_EQ(load(pairing.framerStats().bytesIn), 2u);  // given to the HTTP/1 framer
  expectIdentity(pairing);
}

}  // namespace
}  // namespace shadowtap::compare
