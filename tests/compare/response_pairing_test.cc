#include "compare/response_pairing.h"

#include <gtest/gtest.h>

#include "compare_test_util.h"

namespace shadowtap::compare {
namespace {

using test::asBytes;
using test::CollectingSink;
using test::load;

flow::FlowKey clientToServer() {
  flow::FlowKey k;
  k.saddr = {198, 18, 0, 1};
  k.daddr = {198, 18, 0, 2};
  k.sport = 40000;
  k.dport = 8000;
  return k;
}

http::Request request(const std::string& method, uint64_t offset, size_t size, uint64_t tsNs = 1) {
  http::Request r;
  r.flow = clientToServer();
  r.method = method;
  r.streamOffset = offset;
  r.bytes.assign(size, 'x');
  r.tsNs = tsNs;
  return r;
}

void expectIdentity(const ResponsePairing& p) {
  const PairingStats& s = p.stats();
  EXPECT_EQ(load(s.registered), load(s.refused) + load(p.framerStats().expected) + load(s.earlyExpired) +
                                    load(s.earlyDropped) + load(s.earlyWaiting));
}

const std::string kTwoResponses =
    "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nokHTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\n";

TEST(ResponsePairing, RequestsBeforeTheResponseStreamWaitForIt) {
  CollectingSink sink;
  ResponsePairing pairing(sink);
  ASSERT_TRUE(pairing.expect(request("GET", 0, 40), 11));
  ASSERT_TRUE(pairing.expect(request("HEAD", 42, 30), 12));  // 2 CRLF bytes between: fine
  EXPECT_EQ(load(pairing.stats().earlyWaiting), 2u);
  const flow::FlowKey egress = ResponsePairing::reverse(clientToServer());
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
  EXPECT_EQ(sink.missing[0], std::make_pair(uint64_t{1}, NoResponse::kUnpairable));
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

TEST(ResponsePairing, RequestGapBreaksPairing) {
  CollectingSink sink;
  ResponsePairing pairing(sink);
  auto consumer = pairing.create(ResponsePairing::reverse(clientToServer()), 1, true);
  ASSERT_TRUE(pairing.expect(request("GET", 0, 40), 1));
  pairing.requestStreamBroken(clientToServer());
  ASSERT_EQ(sink.missing.size(), 1u);
  EXPECT_EQ(sink.missing[0].second, NoResponse::kUnpairable);
  EXPECT_FALSE(pairing.expect(request("GET", 40, 40), 2));
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
  EXPECT_EQ(sink.missing[0], std::make_pair(uint64_t{1}, NoResponse::kStreamEnded));
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
  flow::FlowKey other = ResponsePairing::reverse(clientToServer());
  other.dport = 40001;
  EXPECT_EQ(pairing.create(other, 1, true), nullptr);
  EXPECT_EQ(load(pairing.stats().overLimit), 1u);
}

}  // namespace
}  // namespace shadowtap::compare
