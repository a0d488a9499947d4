// Streamed requests (over maxRequestBytes with a stream window): the head is
// emitted once framed, the body follows through a model::BodyStream, and the
// stream ends once, complete or aborted, for every cut of the input.
#include <cstdio>
#include <map>
#include <string>
#include <string_view>
#include <vector>

#include <gtest/gtest.h>

#include "framer_test_util.h"
#include "http/chunked_body.h"
#include "http/request_framer.h"

namespace shadowtap::http {
namespace {

using End = model::BodyStream::End;
using test::asBytes;
using test::expectIdentities;
using test::testKey;

FramerLimits streamLimits(size_t maxRequest = 64, size_t window = 1 << 20) {
  FramerLimits l;
  l.maxRequestBytes = maxRequest;
  l.maxHeaderBytes = 1024;
  l.streamWindowBytes = window;
  return l;
}

// Keeps the requests (so their streams are wanted) and reads the streams out
// as a mirror connection would.
struct StreamHarness {
  explicit StreamHarness(FramerLimits limits = streamLimits())
      : framer(testKey(), 7, true, sink, limits, stats) {}
  void feed(std::string_view s) {
    framer.onData(asBytes(s), 1);
    drain();
  }
  void drain() {
    for (auto& r : sink.requests) {
      if (r.bodyStream) {
        std::string piece;
        r.bodyStream->take(piece);
        r.bodyStream->release(piece.size());
        bodies[&r - sink.requests.data()] += piece;
      }
    }
  }
  // The request's bytes as the mirror gets them: head (and body framed with
  // it), then the stream's bytes.
  std::string wire(size_t i) { return sink.requests[i].bytes + bodies[i]; }
  End end(size_t i) { return sink.requests[i].bodyStream->end(); }

  test::CollectingSink sink;
  HttpStats stats;
  RequestFramer framer;
  std::map<size_t, std::string> bodies;
};

void expectStreamIdentity(const HttpStats& s) {
  EXPECT_EQ(s.requestsStreamed.load(), s.streamsCompleted + s.streamsAbortedGap + s.streamsAbortedEnd +
                                           s.streamsAbortedRefused + s.streamsOverflowed + s.streamsLetGo +
                                           s.streamsInProgress);
}

std::string clRequest(size_t bodySize) {
  std::string body;
  for (size_t i = 0; i < bodySize; ++i) {
    body += static_cast<char>('a' + i % 26);
  }
  return "POST /upload HTTP/1.1\r\nHost: svc:8000\r\nContent-Length: " + std::to_string(bodySize) + "\r\n\r\n" +
         body;
}

std::string chunkedRequest() {
  std::string r = "POST /c HTTP/1.1\r\nHost: svc:8000\r\nTransfer-Encoding: chunked\r\n\r\n";
  for (int i = 1; i <= 12; ++i) {
    const std::string data(static_cast<size_t>(i * 7), static_cast<char>('A' + i));
    char size[16];
    std::snprintf(size, sizeof(size), "%x", static_cast<unsigned>(data.size()));
    r += std::string(size) + (i % 3 == 0 ? ";ext=1" : "") + "\r\n" + data + "\r\n";
  }
  return r + "0\r\nX-Trailer: t\r\n\r\n";
}

const std::string kGet = "GET /next HTTP/1.1\r\nHost: svc:8000\r\n\r\n";

// The stream (head + body) the mirror gets is the request's bytes, and the
// GET after it is framed as usual, for every cut into two and three pieces.
void checkEveryCut(const std::string& big) {
  const std::string input = big + kGet;
  for (size_t a = 0; a <= input.size(); ++a) {
    for (size_t b = a; b <= input.size(); b += (a % 5 == 0 ? 1 : 37)) {
      StreamHarness h;
      h.feed(std::string_view(input).substr(0, a));
      h.feed(std::string_view(input).substr(a, b - a));
      h.feed(std::string_view(input).substr(b));
      ASSERT_EQ(h.sink.requests.size(), 2u) << a << "," << b;
      ASSERT_TRUE(h.sink.requests[0].isStreamed()) << a << "," << b;
      EXPECT_EQ(h.wire(0), big) << a << "," << b;
      EXPECT_EQ(h.end(0), End::kComplete);
      EXPECT_EQ(h.sink.requests[0].authority(), "svc:8000");
      EXPECT_EQ(h.sink.requests[1].bytes, kGet);
      EXPECT_FALSE(h.sink.requests[1].isStreamed());
      EXPECT_EQ(h.stats.requestsStreamed, 1u);
      EXPECT_EQ(h.stats.streamsCompleted, 1u);
      EXPECT_EQ(h.stats.bytesParsed, input.size());
      expectIdentities(h.stats);
      expectStreamIdentity(h.stats);
      h.framer.onEnd(flow::EndReason::kFin);
      EXPECT_EQ(h.stats.streamsInProgress, 0u);
    }
  }
}

TEST(RequestFramerStream, ContentLengthEveryCut) {
  const std::string big = clRequest(300);
  checkEveryCut(big);
  StreamHarness h;
  h.feed(big);
  EXPECT_EQ(h.sink.requests[0].bodyLength, 300u);
  EXPECT_EQ(h.sink.requests[0].bodyOffset, big.size() - 300);
}

TEST(RequestFramerStream, ChunkedEveryCut) { checkEveryCut(chunkedRequest()); }

TEST(RequestFramerStream, ContentLengthHeadEmittedBeforeTheBody) {
  const std::string big = clRequest(1000);
  const size_t head = big.size() - 1000;
  StreamHarness h;
  h.feed(std::string_view(big).substr(0, head));
  ASSERT_EQ(h.sink.requests.size(), 1u);
  EXPECT_EQ(h.sink.requests[0].bytes, big.substr(0, head));
  EXPECT_EQ(h.end(0), End::kOpen);
  EXPECT_EQ(h.stats.streamsInProgress, 1u);
  h.feed(std::string_view(big).substr(head, 500));
  EXPECT_EQ(h.end(0), End::kOpen);
  h.feed(std::string_view(big).substr(head + 500));
  EXPECT_EQ(h.wire(0), big);
  EXPECT_EQ(h.end(0), End::kComplete);
}

TEST(RequestFramerStream, SmallRequestsStayWhole) {
  StreamHarness h(streamLimits(4096));
  const std::string r = clRequest(300);
  h.feed(r);
  ASSERT_EQ(h.sink.requests.size(), 1u);
  EXPECT_FALSE(h.sink.requests[0].isStreamed());
  EXPECT_EQ(h.sink.requests[0].bytes, r);
  EXPECT_EQ(h.stats.requestsStreamed, 0u);
}

TEST(RequestFramerStream, WithoutAWindowLargeRequestsAreSkipped) {
  StreamHarness h(streamLimits(64, 0));
  h.feed(clRequest(300) + kGet);
  ASSERT_EQ(h.sink.requests.size(), 1u);
  EXPECT_EQ(h.sink.requests[0].bytes, kGet);
  EXPECT_EQ(h.stats.tooLarge, 1u);
  EXPECT_EQ(h.stats.requestsStreamed, 0u);
  expectIdentities(h.stats);
}

// A gap inside the body aborts the stream (never completes it); the framer
// resynchronises on the next request.
TEST(RequestFramerStream, GapInsideTheBodyAborts) {
  for (const std::string& big : {clRequest(1000), chunkedRequest()}) {
    StreamHarness h;
    h.feed(std::string_view(big).substr(0, big.size() - 200));
    ASSERT_EQ(h.sink.requests.size(), 1u);
    h.framer.onGap(100);
    EXPECT_EQ(h.end(0), End::kGap);
    EXPECT_EQ(h.stats.streamsAbortedGap, 1u);
    EXPECT_EQ(h.stats.streamsInProgress, 0u);
    h.feed(kGet);  // after the gap, at a line start
    ASSERT_EQ(h.sink.requests.size(), 2u);
    EXPECT_EQ(h.sink.requests[1].bytes, kGet);
    expectIdentities(h.stats);
    expectStreamIdentity(h.stats);
  }
}

TEST(RequestFramerStream, StreamEndInsideTheBodyAborts) {
  StreamHarness h;
  const std::string big = clRequest(1000);
  h.feed(std::string_view(big).substr(0, 400));
  h.framer.onEnd(flow::EndReason::kRst);
  EXPECT_EQ(h.end(0), End::kIncomplete);
  EXPECT_EQ(h.stats.streamsAbortedEnd, 1u);
  expectIdentities(h.stats);
  expectStreamIdentity(h.stats);
}

TEST(RequestFramerStream, MalformedChunkLineAbortsAndAbandons) {
  StreamHarness h;
  std::string big = chunkedRequest();
  const size_t at = big.find("\r\n1c\r\n");  // a later chunk's size line
  ASSERT_NE(at, std::string::npos);
  big.replace(at + 2, 4, "1c\n");  // its CRLF becomes a bare LF
  for (size_t i = 0; i < big.size(); i += 30) {
    h.feed(std::string_view(big).substr(i, 30));
  }
  ASSERT_EQ(h.sink.requests.size(), 1u);
  EXPECT_EQ(h.end(0), End::kIncomplete);
  EXPECT_EQ(h.stats.streamsAbortedRefused, 1u);
  EXPECT_EQ(h.stats.connectionsAbandoned, 1u);
  expectIdentities(h.stats);
  expectStreamIdentity(h.stats);
}

// Nobody keeps the request (sampled out, dropped): the body is framed, not kept.
TEST(RequestFramerStream, StreamNobodyWantsIsLetGo) {
  struct DroppingSink : model::RequestSink {
    void onRequest(model::Request&&) override { ++n; }
    int n = 0;
  } sink;
  HttpStats stats;
  RequestFramer framer(testKey(), 7, true, sink, streamLimits(), stats);
  const std::string input = clRequest(1000) + kGet;
  for (size_t i = 0; i < input.size(); i += 100) {
    framer.onData(asBytes(std::string_view(input).substr(i, 100)), 1);
  }
  EXPECT_EQ(sink.n, 2);
  EXPECT_EQ(stats.streamsLetGo, 1u);
  EXPECT_EQ(stats.bytesStreamed, 0u);
  EXPECT_EQ(framer.bufferedBytes(), 0u);
  expectIdentities(stats);
  expectStreamIdentity(stats);
}

TEST(RequestFramerStream, ConsumerCancelLetsGo) {
  StreamHarness h;
  const std::string big = clRequest(1000);
  h.feed(std::string_view(big).substr(0, 300));
  h.sink.requests[0].bodyStream->cancel();
  h.feed(big.substr(300) + kGet);
  EXPECT_EQ(h.stats.streamsLetGo, 1u);
  ASSERT_EQ(h.sink.requests.size(), 2u);
  expectIdentities(h.stats);
  expectStreamIdentity(h.stats);
}

// The consumer does not read: the window fills and the stream ends as overflow.
TEST(RequestFramerStream, WindowOverflowAborts) {
  test::CollectingSink sink;
  HttpStats stats;
  RequestFramer framer(testKey(), 7, true, sink, streamLimits(64, 256), stats);
  const std::string big = clRequest(1000);
  for (size_t i = 0; i < big.size(); i += 50) {
    framer.onData(asBytes(std::string_view(big).substr(i, 50)), 1);
    EXPECT_LE(framer.bufferedBytes(), 256u);
  }
  ASSERT_EQ(sink.requests.size(), 1u);
  EXPECT_EQ(sink.requests[0].bodyStream->end(), End::kOverflow);
  EXPECT_EQ(stats.streamsOverflowed, 1u);
  expectIdentities(stats);
  expectStreamIdentity(stats);
}

TEST(RequestFramerStream, RefusedHeadIsNotStreamed) {
  StreamHarness h;
  h.feed("POST / HTTP/1.1\r\nContent-Length: 500\r\n\r\n" + std::string(500, 'x') + kGet);
  EXPECT_TRUE(h.sink.requests.empty());
  EXPECT_EQ(h.stats.noHost, 1u);
  EXPECT_EQ(h.stats.closedAfterRefused, 1u);
  expectIdentities(h.stats);
}

// The incremental check agrees with the whole-body check for every cut.
TEST(ChunkedBodyChecker, AgreesWithTheWholeBodyForEveryCut) {
  const std::vector<std::string> bodies = {
      "5\r\nhello\r\n0\r\n\r\n", "5;a=b\r\nhello\r\n0\r\nT: 1\r\n\r\n", "5\nhello\r\n0\r\n\r\n",
      "5\r\nhello\n0\r\n\r\n",   "5\r\nhell\r\n0\r\n\r\n",              "0\r\n\r\nX",
      "\r\n0\r\n\r\n",           "5\r\nhello\r\n0\r\nT: 1\n\r\n",        "A\r\n0123456789\r\n0\r\n\r\n",
      "5\r\nhel\rlo\r\n0\r\n\r\n"};
  for (const std::string& body : bodies) {
    const bool whole = isWellFormedChunkedBody(body);
    for (size_t cut = 0; cut <= body.size(); ++cut) {
      ChunkedBodyChecker c;
      const bool ok = c.feed(std::string_view(body).substr(0, cut)) && c.feed(std::string_view(body).substr(cut));
      EXPECT_EQ(ok && c.complete(), whole) << body << " cut " << cut;
    }
  }
  EXPECT_TRUE(isWellFormedChunkedBody(bodies[0]));
  EXPECT_FALSE(isWellFormedChunkedBody(bodies[2]));
}

}  // namespace
}  // namespace shadowtap::http
