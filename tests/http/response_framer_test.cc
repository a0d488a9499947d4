#include "base/strings.h"
#include "http/response_framer.h"

#include <gtest/gtest.h>

#include "response_test_util.h"

namespace shadowtap::http {
namespace {

using shadowtap::test::asBytes;
using shadowtap::test::CollectingSink;
using shadowtap::test::load;

void expectIdentities(const ResponseStats& s) {
  EXPECT_EQ(load(s.expected), load(s.responses) + load(s.unanswered) + load(s.awaiting));
  EXPECT_EQ(load(s.bytesIn), load(s.bytesFramed) + load(s.bytesUnframed) + load(s.bytesHeld));
}

// A pipelined exchange covering the framing cases: a Content-Length body, a HEAD
// response whose Content-Length announces a body that is not there, an interim
// 100 before a chunked response with a trailer, a 204, and a 304 with a length.
const std::vector<std::string> kMethods = {"GET", "HEAD", "POST", "DELETE", "GET"};
const std::string kStream =
    "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nX-Multi: a\r\nX-Multi: b\r\nContent-Length: 5\r\n\r\nhello"
    "HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n"
    "HTTP/1.1 100 Continue\r\n\r\n"
    "HTTP/1.1 103 Early Hints\r\nLink: </a.css>\r\n\r\n"
    "HTTP/1.1 201 Created\r\nTransfer-Encoding: chunked\r\n\r\n4\r\nwiki\r\n5\r\npedia\r\n0\r\nX-Trailer: t\r\n\r\n"
    "HTTP/1.1 204 No Content\r\nServer:   spaced   \r\n\r\n"
    "HTTP/1.1 304 Not Modified\r\nContent-Length: 12\r\nETag: \"x\"\r\n\r\n";

void checkPipelined(const CollectingSink& sink) {
  ASSERT_EQ(sink.responses.size(), 5u);
  ASSERT_TRUE(sink.missing.empty());
  for (size_t i = 0; i < 5; ++i) {
    EXPECT_EQ(sink.responses[i].first, 100 + i);
  }
  const model::Response& a = sink.responses[0].second;
  EXPECT_EQ(a.status, 200);
  ASSERT_EQ(a.headers.size(), 4u);
  EXPECT_EQ(a.headers[0].name, "Content-Type");
  EXPECT_EQ(a.headers[0].value, "text/plain");
  EXPECT_EQ(a.headers[1].value, "a");
  EXPECT_EQ(a.headers[2].value, "b");
  EXPECT_EQ(a.body, "hello");
  EXPECT_EQ(a.bodyLength, 5u);
  EXPECT_EQ(a.bodyHash, base::fnv1a64("hello"));
  EXPECT_FALSE(a.bodyTruncated);

  const model::Response& head = sink.responses[1].second;
  EXPECT_EQ(head.status, 200);
  EXPECT_EQ(head.header("content-length"), "1000");
  EXPECT_EQ(head.bodyLength, 0u);

  const model::Response& created = sink.responses[2].second;
  EXPECT_EQ(created.status, 201);
  EXPECT_EQ(created.body, "wikipedia");
  EXPECT_EQ(created.bodyHash, base::fnv1a64("wikipedia"));
  ASSERT_EQ(created.headers.size(), 1u);  // the trailer is not a header
  EXPECT_FALSE(created.hasHeader("Link"));  // the 103's header stays with the 103

  EXPECT_EQ(sink.responses[3].second.status, 204);
  EXPECT_EQ(sink.responses[3].second.header("server"), "spaced");
  EXPECT_EQ(sink.responses[4].second.status, 304);
  EXPECT_EQ(sink.responses[4].second.header("etag"), "\"x\"");
  EXPECT_EQ(sink.responses[4].second.bodyLength, 0u);
}

TEST(ResponseFramer, PipelinedResponsesAtEveryCut) {
  for (size_t cut = 0; cut <= kStream.size(); ++cut) {
    SCOPED_TRACE("cut at " + std::to_string(cut));
    CollectingSink sink;
    ResponseStats stats;
    {
      ResponseFramer f(true, sink, ResponseLimits{}, stats);
      for (size_t i = 0; i < kMethods.size(); ++i) {
        f.expectResponseTo(kMethods[i], 100 + i);
      }
      f.onData(asBytes(std::string_view(kStream).substr(0, cut)), 1);
      f.onData(asBytes(std::string_view(kStream).substr(cut)), 2);
      f.onEnd(flow::EndReason::kFin);
    }
    checkPipelined(sink);
    EXPECT_EQ(load(stats.interim), 2u);
    EXPECT_EQ(load(stats.bytesFramed), kStream.size());
    EXPECT_EQ(load(stats.awaiting), 0u);
    expectIdentities(stats);
  }
}

TEST(ResponseFramer, ByteByByteWithRequestsToldLate) {
  // Every response arrives before its request is registered: bytes are held
  // until then, and the pairing does not depend on when.
  CollectingSink sink;
  ResponseStats stats;
  ResponseFramer f(true, sink, ResponseLimits{}, stats);
  size_t told = 0;
  for (size_t i = 0; i < kStream.size(); ++i) {
    f.onData(asBytes(std::string_view(kStream).substr(i, 1)), i);
    if (i % 37 == 36 && told < kMethods.size()) {
      f.expectResponseTo(kMethods[told], 100 + told);
      ++told;
    }
    expectIdentities(stats);
  }
  while (told < kMethods.size()) {
    f.expectResponseTo(kMethods[told], 100 + told);
    ++told;
  }
  checkPipelined(sink);
  EXPECT_EQ(load(stats.bytesHeld), 0u);
  EXPECT_EQ(f.bufferedBytes(), 0u);
  f.onEnd(flow::EndReason::kFin);
  expectIdentities(stats);
}

TEST(ResponseFramer, HoldsTheNextResponseUntilItsRequestIsKnown) {
  CollectingSink sink;
  ResponseStats stats;
  ResponseFramer f(true, sink, ResponseLimits{}, stats);
  f.expectResponseTo("GET", 1);
  const std::string two = "HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\naHTTP/1.1 404 Not Found\r\nContent-Length: 1\r\n\r\nb";
  f.onData(asBytes(two), 5);
  ASSERT_EQ(sink.responses.size(), 1u);
  EXPECT_EQ(load(stats.bytesHeld), two.size() - two.find("HTTP/1.1 404"));
  EXPECT_EQ(f.bufferedBytes(), load(stats.bytesHeld));
  expectIdentities(stats);
  f.expectResponseTo("GET", 2);
  ASSERT_EQ(sink.responses.size(), 2u);
  EXPECT_EQ(sink.responses[1].first, 2u);
  EXPECT_EQ(sink.responses[1].second.status, 404);
  EXPECT_EQ(sink.responses[1].second.body, "b");
  EXPECT_EQ(sink.responses[1].second.tsNs, 5u);
  EXPECT_EQ(load(stats.bytesHeld), 0u);
  expectIdentities(stats);
}

TEST(ResponseFramer, SwitchingProtocolsEndsPairing) {
  CollectingSink sink;
  ResponseStats stats;
  ResponseFramer f(true, sink, ResponseLimits{}, stats);
  f.expectResponseTo("GET", 1);
  f.expectResponseTo("GET", 2);
  f.onData(asBytes("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n\x81\x05hello"), 1);
  ASSERT_EQ(sink.responses.size(), 1u);
  EXPECT_EQ(sink.responses[0].second.status, 101);
  ASSERT_EQ(sink.missing.size(), 1u);
  EXPECT_EQ(sink.missing[0], std::make_pair(uint64_t{2}, NoResponse::kUpgrade));
  EXPECT_EQ(load(stats.upgrades), 1u);
  EXPECT_FALSE(f.pairing());
  f.expectResponseTo("GET", 3);
  EXPECT_EQ(sink.missing.back(), std::make_pair(uint64_t{3}, NoResponse::kUpgrade));
  f.onData(asBytes("more frames"), 2);
  EXPECT_EQ(load(stats.bytesUnframed), 7u + 11u);
  expectIdentities(stats);
}

TEST(ResponseFramer, BodyOverTheLimitIsCutButHashedWhole) {
  CollectingSink sink;
  ResponseStats stats;
  ResponseLimits limits;
  limits.maxBodyBytes = 4;
  ResponseFramer f(true, sink, limits, stats);
  f.expectResponseTo("GET", 1);
  f.onData(asBytes("HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabcdef"), 1);
  f.onData(asBytes("ghij"), 2);
  ASSERT_EQ(sink.responses.size(), 1u);
  const model::Response& r = sink.responses[0].second;
  EXPECT_EQ(r.body, "abcd");
  EXPECT_TRUE(r.bodyTruncated);
  EXPECT_EQ(r.bodyLength, 10u);
  EXPECT_EQ(r.bodyHash, base::fnv1a64("abcdefghij"));
  EXPECT_EQ(load(stats.bodiesTruncated), 1u);
}

TEST(ResponseFramer, HeaderSectionOverTheLimitKeepsWholeHeadersOnly) {
  CollectingSink sink;
  ResponseStats stats;
  ResponseLimits limits;
  limits.maxHeaderBytes = 20;
  ResponseFramer f(true, sink, limits, stats);
  f.expectResponseTo("GET", 1);
  f.onData(asBytes("HTTP/1.1 200 OK\r\nA: 1234567\r\nB: 1234567\r\nC: 1234567\r\nContent-Length: 0\r\n\r\n"), 1);
  ASSERT_EQ(sink.responses.size(), 1u);
  const model::Response& r = sink.responses[0].second;
  EXPECT_TRUE(r.headersTruncated);
  ASSERT_EQ(r.headers.size(), 2u);  // A (8 bytes) and B (16); C would make 24
  EXPECT_EQ(r.headers[1].name, "B");
  EXPECT_EQ(r.headers[1].value, "1234567");
  EXPECT_EQ(load(stats.headersTruncated), 1u);
}

TEST(ResponseFramer, BodyUntilCloseIsCompleteOnFinOnly) {
  for (const auto reason : {flow::EndReason::kFin, flow::EndReason::kRst}) {
    CollectingSink sink;
    ResponseStats stats;
    ResponseFramer f(true, sink, ResponseLimits{}, stats);
    f.expectResponseTo("GET", 1);
    f.onData(asBytes("HTTP/1.0 200 OK\r\nContent-Type: text/plain\r\n\r\nuntil the end"), 1);
    EXPECT_TRUE(sink.responses.empty());
    f.onEnd(reason);
    if (reason == flow::EndReason::kFin) {
      ASSERT_EQ(sink.responses.size(), 1u);
      EXPECT_EQ(sink.responses[0].second.body, "until the end");
    } else {
      EXPECT_TRUE(sink.responses.empty());
      ASSERT_EQ(sink.missing.size(), 1u);
      EXPECT_EQ(sink.missing[0].second, NoResponse::kStreamEnded);
      EXPECT_EQ(load(stats.incomplete), 1u);
    }
    expectIdentities(stats);
  }
}

TEST(ResponseFramer, GapEndsPairingForWaitingAndLaterRequests) {
  CollectingSink sink;
  ResponseStats stats;
  ResponseFramer f(true, sink, ResponseLimits{}, stats);
  f.expectResponseTo("GET", 1);
  f.expectResponseTo("GET", 2);
  f.onData(asBytes("HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nabcHTTP/1.1 200 OK\r\nContent-Le"), 1);
  f.onGap(100);
  f.onData(asBytes("ngth: 3\r\n\r\nxyz"), 2);
  f.expectResponseTo("GET", 3);
  ASSERT_EQ(sink.responses.size(), 1u);
  ASSERT_EQ(sink.missing.size(), 2u);
  EXPECT_EQ(sink.missing[0], std::make_pair(uint64_t{2}, NoResponse::kGap));
  EXPECT_EQ(sink.missing[1], std::make_pair(uint64_t{3}, NoResponse::kGap));
  EXPECT_EQ(load(stats.incomplete), 1u);
  expectIdentities(stats);
}

TEST(ResponseFramer, JoinedMidStreamNeverPairs) {
  CollectingSink sink;
  ResponseStats stats;
  ResponseFramer f(false, sink, ResponseLimits{}, stats);
  f.expectResponseTo("GET", 7);
  f.onData(asBytes("HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"), 1);
  EXPECT_TRUE(sink.responses.empty());
  ASSERT_EQ(sink.missing.size(), 1u);
  EXPECT_EQ(sink.missing[0], std::make_pair(uint64_t{7}, NoResponse::kUnpairable));
  EXPECT_EQ(load(stats.midstream), 1u);
  expectIdentities(stats);
}

TEST(ResponseFramer, ParseErrorGivesUp) {
  CollectingSink sink;
  ResponseStats stats;
  ResponseFramer f(true, sink, ResponseLimits{}, stats);
  f.expectResponseTo("GET", 1);
  f.onData(asBytes("HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nokNOT HTTP AT ALL\r\n\r\n"), 1);
  f.expectResponseTo("GET", 2);
  ASSERT_EQ(sink.responses.size(), 1u);
  ASSERT_EQ(sink.missing.size(), 1u);
  EXPECT_EQ(sink.missing[0].second, NoResponse::kParseError);
  EXPECT_EQ(load(stats.parseErrors), 1u);
  expectIdentities(stats);
}

TEST(ResponseFramer, UnexpectedResponsesOverTheHoldLimitGiveUp) {
  CollectingSink sink;
  ResponseStats stats;
  ResponseLimits limits;
  limits.maxHeldBytes = 64;
  ResponseFramer f(true, sink, limits, stats);
  const std::string r = "HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n";
  f.onData(asBytes(r), 1);
  EXPECT_TRUE(f.pairing());
  f.onData(asBytes(r), 2);  // 2 x 47 > 64
  EXPECT_FALSE(f.pairing());
  EXPECT_EQ(load(stats.unexpected), 1u);
  EXPECT_EQ(load(stats.bytesHeld), 0u);
  EXPECT_EQ(f.bufferedBytes(), 0u);
  expectIdentities(stats);
}

TEST(ResponseFramer, TooManyWaitingRequestsGiveUp) {
  CollectingSink sink;
  ResponseStats stats;
  ResponseLimits limits;
  limits.maxAwaiting = 3;
  ResponseFramer f(true, sink, limits, stats);
  for (uint64_t i = 1; i <= 4; ++i) {
    f.expectResponseTo("GET", i);
  }
  EXPECT_EQ(sink.missing.size(), 4u);
  EXPECT_EQ(load(stats.tooManyAwaiting), 1u);
  expectIdentities(stats);
}

TEST(ResponseFramer, EndAnswersEveryWaitingRequest) {
  CollectingSink sink;
  ResponseStats stats;
  {
    ResponseFramer f(true, sink, ResponseLimits{}, stats);
    f.expectResponseTo("GET", 1);
    f.expectResponseTo("GET", 2);
    f.onData(asBytes("HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"), 1);
  }  // destroyed without onEnd: counted as the end of the stream
  ASSERT_EQ(sink.responses.size(), 1u);
  ASSERT_EQ(sink.missing.size(), 1u);
  EXPECT_EQ(sink.missing[0], std::make_pair(uint64_t{2}, NoResponse::kStreamEnded));
  EXPECT_EQ(load(stats.awaiting), 0u);
  expectIdentities(stats);
}

}  // namespace
}  // namespace shadowtap::http
