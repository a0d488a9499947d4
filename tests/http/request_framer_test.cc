#include "http/request_framer.h"

#include <iterator>
#include <random>
#include <string>
#include <string_view>
#include <vector>

#include <gtest/gtest.h>

#include "framer_test_util.h"
#include "http/host_rewrite.h"

namespace shadowtap::http {
namespace {

using test::asBytes;
using test::CollectingSink;
using test::expectIdentities;
using test::snapshot;
using test::StatsSnapshot;
using test::testKey;

// One framer with its own stats and sink.
struct Harness {
  explicit Harness(bool fromStart = true, FramerLimits limits = {})
      : framer(testKey(), 7, fromStart, sink, limits, stats) {}
  void feed(std::string_view s, uint64_t ts = 1) { framer.onData(asBytes(s), ts); }
  void feedEach(std::string_view s, size_t step, uint64_t ts = 1) {
    for (size_t i = 0; i < s.size(); i += step) {
      feed(s.substr(i, step), ts);
    }
  }
  std::vector<std::string> bytes() const {
    std::vector<std::string> out;
    for (const auto& r : sink.requests) {
      out.push_back(r.bytes);
    }
    return out;
  }

  CollectingSink sink;
  HttpStats stats;
  RequestFramer framer;
};

const std::string kGet = "GET /get?a=1 HTTP/1.1\r\nHost: httpbin:8000\r\nAccept: */*\r\n\r\n";
const std::string kPostCl =
    "POST /post HTTP/1.1\r\nHost: httpbin:8000\r\nContent-Length: 11\r\n\r\nhello world";
const std::string kPostChunked =
    "POST /c HTTP/1.1\r\nHOST:  httpbin:8000 \r\nTransfer-Encoding: chunked\r\n\r\n"
    "5;name=val\r\nhello\r\n6\r\n world\r\n0\r\nX-Trailer: t\r\nHost: not-this\r\n\r\n";

TEST(RequestFramer, ContentLength) {
  Harness h;
  h.feed(kPostCl, 42);
  ASSERT_EQ(h.sink.requests.size(), 1u);
  const model::Request& r = h.sink.requests[0];
  EXPECT_EQ(r.bytes, kPostCl);
  EXPECT_EQ(r.authority(), "httpbin:8000");
  EXPECT_EQ(r.method, "POST");
  EXPECT_EQ(r.tsNs, 42u);
  EXPECT_EQ(r.ruleId, 7u);
  EXPECT_EQ(r.flow, testKey());
  EXPECT_EQ(h.framer.bufferedBytes(), 0u);
  EXPECT_EQ(h.stats.requestsParsed, 1u);
  EXPECT_EQ(h.stats.bytesParsed, kPostCl.size());
  EXPECT_EQ(h.stats.unmirroredBytes, 0u);
  expectIdentities(h.stats);
}

TEST(RequestFramer, ChunkedWithExtensionAndTrailers) {
  Harness h;
  h.feed(kPostChunked);
  ASSERT_EQ(h.sink.requests.size(), 1u);
  EXPECT_EQ(h.sink.requests[0].bytes, kPostChunked);
  // Trimmed value of the header, not the trailer.
  EXPECT_EQ(h.sink.requests[0].authority(), "httpbin:8000");
  EXPECT_EQ(h.stats.multipleHost, 0u);
  expectIdentities(h.stats);
}

TEST(RequestFramer, ThreePipelinedRequests) {
  Harness h;
  // Stray CRLF between requests is tolerated by llhttp but belongs to no request.
  h.feed(kGet + kPostCl + "\r\n" + kPostChunked, 5);
  EXPECT_EQ(h.bytes(), (std::vector<std::string>{kGet, kPostCl, kPostChunked}));
  EXPECT_EQ(h.sink.requests[1].method, "POST");
  EXPECT_EQ(h.stats.requestsParsed, 3u);
  EXPECT_EQ(h.stats.unmirroredBytes, 2u);
  expectIdentities(h.stats);
}

TEST(RequestFramer, KeepAliveAcrossCalls) {
  Harness h;
  h.feed(kGet, 100);
  h.feed(kPostCl.substr(0, 10), 200);
  EXPECT_EQ(h.framer.bufferedBytes(), 10u);
  EXPECT_EQ(h.stats.bytesBuffered, 10u);
  EXPECT_EQ(h.stats.requestsInProgress, 1u);
  expectIdentities(h.stats);
  h.feed(kPostCl.substr(10, 30), 300);
  h.feed(kPostCl.substr(40) + kGet.substr(0, 3), 400);
  h.feed(kGet.substr(3), 500);
  ASSERT_EQ(h.bytes(), (std::vector<std::string>{kGet, kPostCl, kGet}));
  EXPECT_EQ(h.sink.requests[0].tsNs, 100u);
  EXPECT_EQ(h.sink.requests[1].tsNs, 200u);  // the call that delivered its first byte
  EXPECT_EQ(h.sink.requests[2].tsNs, 400u);
  EXPECT_EQ(h.framer.bufferedBytes(), 0u);
  EXPECT_EQ(h.stats.bytesBuffered, 0u);
  expectIdentities(h.stats);
}

TEST(RequestFramer, Http10) {
  Harness h;
  const std::string req = "GET /old HTTP/1.0\r\nHost: legacy\r\nConnection: keep-alive\r\n\r\n";
  const std::string req2 = "HEAD /old HTTP/1.0\r\nHost: legacy\r\n\r\n";
  h.feed(req + req2);
  EXPECT_EQ(h.bytes(), (std::vector<std::string>{req, req2}));
  EXPECT_EQ(h.sink.requests[1].method, "HEAD");
  EXPECT_EQ(h.sink.requests[1].authority(), "legacy");
  expectIdentities(h.stats);
}

// llhttp's own rule: nothing after a request that closes the connection is a
// request (the server will not read it either); it is counted as unmirrored.
TEST(RequestFramer, NothingAfterConnectionClose) {
  Harness h;
  const std::string last = "GET /bye HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n";
  h.feed(last + kGet);
  EXPECT_EQ(h.bytes(), (std::vector<std::string>{last}));
  EXPECT_EQ(h.stats.unmirroredBytes, kGet.size());
  EXPECT_EQ(h.stats.parseErrors, 0u);
  expectIdentities(h.stats);
}

// Servers answer these with 400 and close: nothing after them is mirrored.
TEST(RequestFramer, NoHostTwoHostsOrEmptyHostEndTheConnection) {
  const std::string noHost = "GET / HTTP/1.1\r\nAccept: x\r\n\r\n";
  const std::string twoHosts = "GET / HTTP/1.1\r\nHost: a\r\nhost: b\r\n\r\n";
  const std::string emptyHost = "GET / HTTP/1.1\r\nHost:   \r\n\r\n";
  for (const std::string* refused : {&noHost, &twoHosts, &emptyHost}) {
    Harness h;
    h.feed(kGet + *refused + kGet);
    EXPECT_EQ(h.bytes(), (std::vector<std::string>{kGet}));
    EXPECT_EQ(h.stats.noHost + h.stats.multipleHost + h.stats.invalidHost, 1u);
    EXPECT_EQ(h.stats.closedAfterRefused, 1u);
    EXPECT_EQ(h.stats.requestsStarted, 2u);
    EXPECT_EQ(h.stats.unmirroredBytes, refused->size() + kGet.size());
    h.framer.onGap(10);  // closed: no resync either
    h.feed(kGet);
    EXPECT_EQ(h.sink.requests.size(), 1u);
    expectIdentities(h.stats);
  }
}

TEST(RequestFramer, HostLikeHeadersAreNotHost) {
  Harness h;
  const std::string req = "GET / HTTP/1.1\r\nHostname: x\r\nX-Host: y\r\nHos: z\r\nHost: real\r\n\r\n";
  h.feed(req);
  ASSERT_EQ(h.sink.requests.size(), 1u);
  EXPECT_EQ(h.sink.requests[0].authority(), "real");
}

TEST(RequestFramer, ParseErrorGivesUpTheConnection) {
  Harness h;
  const std::string bad = "GET / HTTP/1.1\r\nHost: a\r\nBad\x01Header: 1\r\n\r\n";
  h.feed(kGet + bad + kGet);
  h.feed(kGet);
  EXPECT_EQ(h.bytes(), (std::vector<std::string>{kGet}));
  EXPECT_EQ(h.stats.invalidHeaderName, 1u);
  EXPECT_EQ(h.stats.connectionsAbandoned, 1u);
  EXPECT_EQ(h.stats.droppedByAbandon, 1u);
  EXPECT_EQ(h.stats.unmirroredBytes, bad.size() + 2 * kGet.size());
  h.framer.onGap(10);  // no resync after giving up
  h.feed(kGet);
  EXPECT_EQ(h.sink.requests.size(), 1u);
  EXPECT_EQ(h.stats.resyncs, 0u);
  expectIdentities(h.stats);
}

TEST(RequestFramer, SmugglingShapedRequestIsAbandoned) {
  Harness h;
  h.feed("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n"
         "0\r\n\r\n" + kGet);
  EXPECT_TRUE(h.sink.requests.empty());
  EXPECT_EQ(h.stats.ambiguousLength, 1u);
  expectIdentities(h.stats);
}

TEST(RequestFramer, TooLargeBodyIsSkippedAndNextRequestEmitted) {
  FramerLimits limits;
  limits.maxRequestBytes = 200;
  limits.maxHeaderBytes = 100;
  const std::string big = "POST /big HTTP/1.1\r\nHost: a\r\nContent-Length: 1000\r\n\r\n" + std::string(1000, 'x');
  const std::string small = "GET / HTTP/1.1\r\nHost: a\r\n\r\n";
  for (size_t step : {size_t(1), size_t(7), size_t(64), big.size() + small.size()}) {
    Harness h(true, limits);
    const std::string input = big + small;
    size_t maxBuffered = 0;
    for (size_t i = 0; i < input.size(); i += step) {
      h.feed(std::string_view(input).substr(i, step));
      maxBuffered = std::max(maxBuffered, h.framer.bufferedBytes());
    }
    EXPECT_EQ(h.bytes(), (std::vector<std::string>{small})) << step;
    EXPECT_EQ(h.stats.tooLarge, 1u);
    EXPECT_LE(maxBuffered, limits.maxHeaderBytes) << step;
    EXPECT_EQ(h.stats.unmirroredBytes, big.size());
    expectIdentities(h.stats);
  }
}

TEST(RequestFramer, TooLargeChunkedAndHeaders) {
  FramerLimits limits;
  limits.maxRequestBytes = 300;
  limits.maxHeaderBytes = 120;
  std::string chunked = "POST /c HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n";
  for (int i = 0; i < 20; ++i) {
    chunked += "10\r\n0123456789abcdef\r\n";
  }
  chunked += "0\r\n\r\n";
  const std::string bigHeaders = "GET / HTTP/1.1\r\nHost: a\r\nX-Pad: " + std::string(200, 'p') + "\r\n\r\n";
  // Exactly at the header limit is still fine.
  std::string atLimit = "GET / HTTP/1.1\r\nHost: a\r\nX-Pad: \r\n\r\n";
  atLimit.insert(atLimit.find("X-Pad: ") + 7, std::string(limits.maxHeaderBytes - atLimit.size(), 'q'));
  ASSERT_EQ(atLimit.size(), limits.maxHeaderBytes);
  const std::string input = chunked + bigHeaders + atLimit + kGet;
  for (size_t step : {size_t(1), size_t(13), input.size()}) {
    Harness h(true, limits);
    size_t maxBuffered = 0;
    for (size_t i = 0; i < input.size(); i += step) {
      h.feed(std::string_view(input).substr(i, step));
      maxBuffered = std::max(maxBuffered, h.framer.bufferedBytes());
    }
    EXPECT_EQ(h.bytes(), (std::vector<std::string>{atLimit, kGet})) << step;
    EXPECT_EQ(h.stats.tooLarge, 1u) << step;
    EXPECT_EQ(h.stats.headersTooLarge, 1u) << step;
    EXPECT_LE(maxBuffered, limits.maxRequestBytes) << step;
    expectIdentities(h.stats);
  }
}

// Every way of cutting the input must give the same requests and counters.
std::string richInput() {
  return kGet + kPostCl + "\r\n" + kPostChunked + "QUERY /nohost HTTP/1.0\r\nConnection: keep-alive\r\n\n" +
         "GET /ws HTTP/1.0\r\nHost: [2001:db8::2]:80\r\nConnection: keep-alive\r\n\r\n" +
         "PUT /x HTTP/1.1\r\nHost: a\r\nContent-Length: 0\r\n\r\n" + kGet.substr(0, 20);
}

TEST(RequestFramer, SplitAtEveryByteBoundaryGivesSameResult) {
  const std::string input = richInput();
  Harness whole;
  whole.feed(input);
  const StatsSnapshot expected = snapshot(whole.stats);
  ASSERT_EQ(whole.sink.requests.size(), 6u);
  EXPECT_EQ(expected.http10WithoutHost, 1u);
  EXPECT_EQ(expected.extensionMethod, 1u);
  EXPECT_EQ(expected.toleratedBareLf, 1u);
  EXPECT_EQ(expected.requestsInProgress, 1u);
  expectIdentities(whole.stats);

  for (size_t cut = 1; cut < input.size(); ++cut) {
    Harness h;
    h.feed(std::string_view(input).substr(0, cut));
    h.feed(std::string_view(input).substr(cut));
    ASSERT_EQ(h.bytes(), whole.bytes()) << "cut at " << cut;
    for (size_t i = 0; i < h.sink.requests.size(); ++i) {
      EXPECT_EQ(h.sink.requests[i].hostOffset, whole.sink.requests[i].hostOffset);
      EXPECT_EQ(h.sink.requests[i].hostLength, whole.sink.requests[i].hostLength);
      EXPECT_EQ(h.sink.requests[i].method, whole.sink.requests[i].method);
    }
    ASSERT_EQ(snapshot(h.stats), expected) << "cut at " << cut;
  }

  Harness bytewise;
  bytewise.feedEach(input, 1);
  EXPECT_EQ(bytewise.bytes(), whole.bytes());
  EXPECT_EQ(snapshot(bytewise.stats), expected);

  // And the request in progress is dropped at the end, in every variant.
  whole.framer.onEnd(flow::EndReason::kFin);
  bytewise.framer.onEnd(flow::EndReason::kFin);
  EXPECT_EQ(snapshot(whole.stats), snapshot(bytewise.stats));
  EXPECT_EQ(whole.stats.droppedAtEnd, 1u);
  EXPECT_EQ(whole.stats.bytesBuffered, 0u);
  EXPECT_EQ(whole.stats.bytesIn, whole.stats.bytesParsed + whole.stats.unmirroredBytes);
  expectIdentities(whole.stats);
}

TEST(RequestFramer, RandomCutsGiveSameResult) {
  const std::string input = richInput() + kGet.substr(20) + kPostChunked;
  Harness whole;
  whole.feed(input);
  std::mt19937 rng(12345);
  for (int round = 0; round < 300; ++round) {
    Harness h;
    size_t i = 0;
    while (i < input.size()) {
      const size_t n = 1 + rng() % 40;
      h.feed(std::string_view(input).substr(i, n));
      i += n;
    }
    ASSERT_EQ(h.bytes(), whole.bytes()) << round;
    ASSERT_EQ(snapshot(h.stats), snapshot(whole.stats)) << round;
  }
}

// Requests, fragments, garbage, gaps and joins in random order, cut at random:
// never a crash, counters always add up, memory stays within the limits.
TEST(RequestFramer, RandomInputKeepsIdentitiesAndLimits) {
  FramerLimits limits;
  limits.maxRequestBytes = 512;
  limits.maxHeaderBytes = 256;
  limits.maxResyncScanBytes = 128;
  const std::string requests[] = {
      kGet, kPostCl, kPostChunked,
      "POST /big HTTP/1.1\r\nHost: a\r\nContent-Length: 600\r\n\r\n" + std::string(600, 'b'),
      "GET / HTTP/1.1\r\nHost: a\r\nX: " + std::string(300, 'h') + "\r\n\r\n",
      "QUERY /q HTTP/1.1\nHost: a\nContent-Length: 2\n\nhi",
      "GET /old HTTP/1.0\r\nConnection: keep-alive\r\n\r\n",
      "\r\n"};
  // Servers refuse these and close: the stream ends there, so they are rarer.
  const std::string refused[] = {"GET / HTTP/1.1\r\nA: b\r\n\r\n",
                                 "GET / HTTP/1.1\r\nHost: a\r\nHost: a\r\n\r\n"};
  const std::string fragments[] = {"GET ", "HTTP/1.1\r\n", "Host: x\r\n", "\r\n\r\n", "zzzz",
                                   "5\r\nabcde\r\n", std::string(300, 'a'), "\n"};
  std::mt19937 rng(777);
  HttpStats stats;
  CollectingSink sink;
  for (int round = 0; round < 300; ++round) {
    RequestFramer f(testKey(), 1, rng() % 4 != 0, sink, limits, stats);
    for (int k = 0; k < 30; ++k) {
      const uint32_t r = rng() % 100;
      if (r < 3) {
        f.onGap(1 + rng() % 100);
        continue;
      }
      std::string s = r < 12   ? fragments[rng() % std::size(fragments)]
                      : r < 14 ? refused[rng() % std::size(refused)]
                               : requests[rng() % std::size(requests)];
      if (r < 5) {
        s[rng() % s.size()] = static_cast<char>(rng());
      }
      size_t i = 0;
      while (i < s.size()) {
        const size_t n = 1 + rng() % 64;
        f.onData(asBytes(std::string_view(s).substr(i, n)), k);
        i += n;
        ASSERT_LE(f.bufferedBytes(), limits.maxRequestBytes);
      }
    }
    if (rng() % 2 == 0) {
      f.onData(asBytes("GET /cut-short HTTP/1.1\r\nHo"), 30);
      f.onEnd(flow::EndReason::kRst);
    }
  }
  expectIdentities(stats);
  EXPECT_EQ(stats.bytesBuffered, 0u);
  EXPECT_EQ(stats.requestsInProgress, 0u);
  // The mix reaches every outcome.
  EXPECT_GT(stats.requestsParsed, 1000u);
  EXPECT_GT(stats.noHost, 0u);
  EXPECT_GT(stats.multipleHost, 0u);
  EXPECT_GT(stats.tooLarge, 0u);
  EXPECT_GT(stats.droppedByGap, 0u);
  EXPECT_GT(stats.droppedAtEnd, 0u);
  EXPECT_GT(stats.connectionsAbandoned, 0u);
  EXPECT_GT(stats.closedAfterRefused, 0u);
  EXPECT_GT(stats.toleratedBareLf, 0u);
  EXPECT_GT(stats.extensionMethod, 0u);
  EXPECT_GT(stats.http10WithoutHost, 0u);
  for (const auto& r : sink.requests) {
    ASSERT_LE(r.hostOffset + r.hostLength, r.bytes.size());
    ASSERT_TRUE(r.hostLength > 0 || r.bytes.find(" HTTP/1.0") != std::string::npos) << r.bytes;
    ASSERT_LE(r.bytes.size(), limits.maxRequestBytes);
  }
}

TEST(RequestFramer, MidStreamJoinInsideABody) {
  // The tail of a body (containing an LF and a line that only looks like a
  // request), then a real request.
  const std::string prefix = "dy of an earlier POST\r\nGET /fake HTTP/1.1 trailing\r\nmore\n";
  const std::string input = prefix + kGet + kPostCl;
  for (size_t step : {size_t(1), size_t(2), size_t(5), input.size()}) {
    Harness h(/*fromStart=*/false);
    h.feedEach(input, step, 9);
    EXPECT_EQ(h.bytes(), (std::vector<std::string>{kGet, kPostCl})) << step;
    EXPECT_EQ(h.stats.unmirroredBytes, prefix.size()) << step;
    EXPECT_EQ(h.stats.resyncs, 1u);
    EXPECT_EQ(h.stats.requestsStarted, 2u);
    EXPECT_EQ(h.sink.requests[0].tsNs, 9u);
    expectIdentities(h.stats);
  }
}

TEST(RequestFramer, MidStreamJoinAtARequestStart) {
  Harness h(false);
  h.feed(kGet);
  EXPECT_EQ(h.bytes(), (std::vector<std::string>{kGet}));
  EXPECT_EQ(h.stats.unmirroredBytes, 0u);
}

TEST(RequestFramer, ResyncCandidateLineAcrossCallsKeepsItsTimestamp) {
  Harness h(false);
  h.feed("junk\r\nGET /get?a=1 HT", 10);
  EXPECT_EQ(h.framer.bufferedBytes(), 15u);  // only the candidate line is held
  h.feed("TP/1.1\r\n", 20);
  h.feed(kGet.substr(23), 30);
  ASSERT_EQ(h.bytes(), (std::vector<std::string>{kGet}));
  EXPECT_EQ(h.sink.requests[0].tsNs, 10u);
  EXPECT_EQ(h.stats.unmirroredBytes, 6u);
  expectIdentities(h.stats);
}

TEST(RequestFramer, ResyncScanIsBounded) {
  FramerLimits limits;
  limits.maxResyncScanBytes = 64;
  Harness h(false, limits);
  // A line that starts like a request but never ends.
  h.feed("\nGET /");
  for (int i = 0; i < 100; ++i) {
    h.feed(std::string(50, 'a'));
    EXPECT_LE(h.framer.bufferedBytes(), limits.maxResyncScanBytes);
  }
  // Binary without any LF keeps nothing.
  h.feed(std::string(100000, '\x01'));
  EXPECT_EQ(h.framer.bufferedBytes(), 0u);
  h.feed("\r\n" + kGet);
  EXPECT_EQ(h.bytes(), (std::vector<std::string>{kGet}));
  EXPECT_EQ(h.stats.unmirroredBytes, 1 + 5 + 5000 + 100000 + 2);
  EXPECT_EQ(h.stats.resyncLinesTooLong, 1u);
  expectIdentities(h.stats);
}

TEST(RequestFramer, GapInTheMiddleOfARequest) {
  Harness h;
  const std::string second = "DELETE /d HTTP/1.1\r\nHost: b:1\r\n\r\n";
  h.feed(kGet);
  h.feed(kGet.substr(0, 30));
  h.framer.onGap(20);
  // The rest of the lost request's headers, then the next request.
  h.feed(kGet.substr(50) + second);
  EXPECT_EQ(h.bytes(), (std::vector<std::string>{kGet, second}));
  EXPECT_EQ(h.stats.droppedByGap, 1u);
  EXPECT_EQ(h.stats.gaps, 1u);
  EXPECT_EQ(h.stats.resyncs, 1u);
  EXPECT_EQ(h.stats.unmirroredBytes, 30u + (kGet.size() - 50));
  expectIdentities(h.stats);
}

// Requests are only found at a line start: a request glued to the end of a
// lost body is missed too, and counted.
TEST(RequestFramer, GapInABodyMissesARequestGluedToIt) {
  Harness h;
  h.feed(kPostCl.substr(0, 60));
  h.framer.onGap(3);
  h.feed("world" + kGet + kGet);
  EXPECT_EQ(h.bytes(), (std::vector<std::string>{kGet}));
  EXPECT_EQ(h.stats.droppedByGap, 1u);
  EXPECT_EQ(h.stats.unmirroredBytes, 60u + 5u + kGet.size());
  expectIdentities(h.stats);
}

TEST(RequestFramer, GapBetweenRequests) {
  Harness h;
  h.feed(kGet);
  h.framer.onGap(100);
  h.feed(kGet);
  EXPECT_EQ(h.sink.requests.size(), 2u);
  EXPECT_EQ(h.stats.droppedByGap, 0u);
  expectIdentities(h.stats);
}

TEST(RequestFramer, UpgradeEmitsTheRequestThenStops) {
  Harness h;
  const std::string ws =
      "GET /chat HTTP/1.1\r\nHost: a\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n";
  h.feed(ws + "\x81\x05hello" + kGet);
  h.feed(kGet);
  EXPECT_EQ(h.bytes(), (std::vector<std::string>{ws}));
  EXPECT_EQ(h.stats.upgrade, 1u);
  EXPECT_EQ(h.stats.connectionsAbandoned, 1u);
  expectIdentities(h.stats);
}

TEST(RequestFramer, ConnectIsNotMirrored) {
  Harness h;
  h.feedEach("CONNECT a:443 HTTP/1.1\r\nHost: a:443\r\n\r\n" + kGet, 3);
  EXPECT_TRUE(h.sink.requests.empty());
  EXPECT_EQ(h.stats.connect, 1u);
  EXPECT_EQ(h.stats.upgrade, 0u);
  EXPECT_EQ(h.stats.droppedByAbandon, 1u);
  expectIdentities(h.stats);
}

TEST(RequestFramer, Http2PrefaceStops) {
  for (size_t step : {size_t(1), size_t(100)}) {
    Harness h;
    h.feedEach(std::string("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n") + "\0\0\0\x04" + kGet, step);
    EXPECT_TRUE(h.sink.requests.empty());
    EXPECT_EQ(h.stats.http2, 1u) << step;
    EXPECT_EQ(h.stats.parseErrors, 0u);
    expectIdentities(h.stats);
  }
}

TEST(RequestFramer, TlsStops) {
  Harness h;
  h.feed(std::string_view("\x16\x03\x01\x02\x00\x01", 6));
  h.feed(kGet);
  EXPECT_TRUE(h.sink.requests.empty());
  EXPECT_EQ(h.stats.tls, 1u);
  EXPECT_EQ(h.stats.parseErrors, 0u);
  EXPECT_EQ(h.stats.requestsStarted, 0u);
  EXPECT_EQ(h.stats.unmirroredBytes, 6u + kGet.size());
  expectIdentities(h.stats);
}

TEST(RequestFramer, FoldedHostGivesUpTheConnection) {
  Harness h;
  h.feed("GET / HTTP/1.1\r\nHost: a\r\n b\r\n\r\n" + kGet);
  EXPECT_EQ(h.stats.obsFold, 1u);
  EXPECT_EQ(h.stats.droppedByAbandon, 1u);
  EXPECT_TRUE(h.sink.requests.empty());
  expectIdentities(h.stats);
}

TEST(RequestFramer, DestructionCountsTheRequestInProgress) {
  HttpStats stats;
  CollectingSink sink;
  {
    RequestFramer f(testKey(), 1, true, sink, FramerLimits{}, stats);
    f.onData(asBytes(kPostCl.substr(0, 50)), 1);
    EXPECT_EQ(stats.bytesBuffered, 50u);
  }
  EXPECT_EQ(stats.droppedAtEnd, 1u);
  EXPECT_EQ(stats.bytesBuffered, 0u);
  EXPECT_EQ(stats.requestsInProgress, 0u);
  expectIdentities(stats);
}

// llhttp reports some errors at the byte after the offending one. When a
// segment ends between them, the reason waits for that byte; if it never comes
// (end, gap), the result is the one of the stream fed whole.
TEST(RequestFramer, ErrorAtTheEndOfASegmentWaitsForTheNextByte) {
  const std::string head =
      "POST /c HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n5;n=v\x83";
  for (const char* next : {"\nhello", "Xhello", ""}) {
    Harness whole;
    whole.feed(head + next);
    whole.framer.onEnd(flow::EndReason::kFin);
    Harness cut;
    cut.feed(head);
    EXPECT_EQ(cut.stats.connectionsAbandoned.load(), 0u) << "decided before the next byte";
    expectIdentities(cut.stats);
    if (*next != 0) {
      cut.feed(next);
    }
    cut.framer.onEnd(flow::EndReason::kFin);
    EXPECT_EQ(snapshot(cut.stats), snapshot(whole.stats)) << "next: " << next;
    EXPECT_EQ(whole.stats.connectionsAbandoned.load(), 1u);
    EXPECT_EQ(whole.stats.droppedByAbandon.load(), 1u);
    expectIdentities(cut.stats);
  }
  Harness gap;
  gap.feed(head);
  gap.framer.onGap(10);
  gap.feed("\nhello");
  EXPECT_EQ(gap.stats.connectionsAbandoned.load(), 1u);
  EXPECT_EQ(gap.stats.bareLf.load(), 0u) << "the byte after a gap is not the next one";
  EXPECT_EQ(gap.stats.resyncs.load(), 0u);
  expectIdentities(gap.stats);
}

TEST(RequestFramerFactory, FramersShareTheFactoryStats) {
  CollectingSink sink;
  RequestFramerFactory factory(sink);
  auto a = factory.create(testKey(), 3, true);
  auto b = factory.create(testKey(), 4, false);
  a->onData(asBytes(kGet), 1);
  b->onData(asBytes("xx\r\n" + kGet), 2);
  ASSERT_EQ(sink.requests.size(), 2u);
  EXPECT_EQ(sink.requests[0].ruleId, 3u);
  EXPECT_EQ(sink.requests[1].ruleId, 4u);
  EXPECT_EQ(factory.stats().streams, 2u);
  EXPECT_EQ(factory.stats().requestsParsed, 2u);
  EXPECT_EQ(factory.stats().unmirroredBytes, 4u);
  expectIdentities(factory.stats());
}

TEST(RequestFramer, EmittedRequestRewritesCleanly) {
  Harness h;
  const std::string req =
      "PATCH /p HTTP/1.1\r\nX-A: 1\r\nhOsT:   [2001:db8::2]:8080 \t\r\nX-A: 2\r\n"
      "Content-Length: 21\r\n\r\nHost: [2001:db8::2]\r\n";
  h.feedEach(req, 4);
  ASSERT_EQ(h.sink.requests.size(), 1u);
  std::string expected = req;
  expected.insert(req.find("]:8080") + 1, "-shadow");
  EXPECT_EQ(rewriteRequestHost(h.sink.requests[0], kDefaultShadowSuffix), expected);
}

}  // namespace
}  // namespace shadowtap::http
