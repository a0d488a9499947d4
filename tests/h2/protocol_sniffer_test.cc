#include "h2/protocol_sniffer.h"

#include <gtest/gtest.h>

#include <algorithm>

#include "h2_wire.h"

namespace shadowtap::h2 {
namespace {

using test::RequestSpec;
using test::WireClient;

struct Sinks : model::RequestSink {
  std::vector<model::Request> h2;
  std::vector<model::Request> http1;
  void onRequest(model::Request&& r) override { (r.isHttp2() ? h2 : http1).push_back(std::move(r)); }
};

model::FlowKey keyOf(uint16_t sport) {
  model::FlowKey k{};
  k.family = 4;
  k.sport = sport;
  k.dport = 8080;
  return k;
}

// One stream through a fresh factory, fed in slices of `slice` bytes (0: whole).
struct Sniffing {
  Sinks sinks;
  ProtocolSnifferFactory factory{sinks};
  std::unique_ptr<flow::StreamConsumer> c;

  explicit Sniffing(bool fromStart = true) { c = factory.create(keyOf(40000), 5, fromStart); }
  void feed(const std::string& bytes, size_t slice = 0) {
    const auto* p = reinterpret_cast<const uint8_t*>(bytes.data());
    slice = slice == 0 ? bytes.size() : slice;
    for (size_t off = 0; off < bytes.size(); off += slice) {
      c->onData({p + off, std::min(slice, bytes.size() - off)}, 100 + off);
    }
  }
  void end() {
    c->onEnd(flow::EndReason::kFin);
    EXPECT_EQ(c->bufferedBytes(), 0u);
    c.reset();
    const SnifferStats& s = factory.stats();
    EXPECT_EQ(s.connections.load(), s.prefaceH2.load() + s.http1.load() + s.midstream.load());
    EXPECT_EQ(s.upgradesSeen.load(), s.upgradesAccepted.load() + s.upgradesDeclined.load());
    EXPECT_EQ(s.heldBytes.load(), 0);
    const H2DecoderStats& d = factory.decoders().stats();
    EXPECT_EQ(d.streamsOpened.load(), d.streamOutcomes());
  }
};

std::vector<model::HeaderField> post(const std::string& path) {
  return {{":method", "POST", false},     {":scheme", "http", false},  {":authority", "api:8080", false},
          {":path", path, false},         {"content-type", "application/grpc", false},
          {"te", "trailers", false}};
}

// SETTINGS payload: MAX_CONCURRENT_STREAMS=100, INITIAL_WINDOW_SIZE=65535.
const std::string kSettingsPayload("\x00\x03\x00\x00\x00\x64\x00\x04\x00\x00\xff\xff", 12);
const std::string kUpgradeRequest =
    "GET /first HTTP/1.1\r\nHost: web:80\r\nConnection: Upgrade, HTTP2-Settings\r\n"
    "Upgrade: h2c\r\nHTTP2-Settings: AAMAAABkAAQAAP__\r\n\r\n";

TEST(ProtocolSniffer, PriorKnowledgeGoesToTheDecoderAtEveryCut) {
  WireClient w;
  RequestSpec a{post("/svc/A"), std::string(40000, 'x'), {{"grpc-status", "0", false}}, 1000};
  RequestSpec b{post("/svc/B"), "hello"};
  w.submit(a);
  w.submit(b);
  w.pump();
  const std::string& bytes = w.captured();
  for (size_t slice : {size_t(0), size_t(1), size_t(2), size_t(7), size_t(23), size_t(24), size_t(25), size_t(500)}) {
    SCOPED_TRACE(slice);
    Sniffing r;
    r.feed(bytes, slice);
    ASSERT_EQ(r.sinks.h2.size(), 2u);
    // Emitted at END_STREAM: the short stream B completes first.
    std::sort(r.sinks.h2.begin(), r.sinks.h2.end(),
              [](const model::Request& x, const model::Request& y) { return x.streamId < y.streamId; });
    EXPECT_EQ(r.sinks.h2[0].headers, a.headers);
    EXPECT_TRUE(r.sinks.h2[0].body == a.body);
    EXPECT_EQ(r.sinks.h2[0].trailers, a.trailers);
    EXPECT_EQ(r.sinks.h2[0].ruleId, 5u);
    EXPECT_EQ(r.sinks.h2[1].body, "hello");
    EXPECT_TRUE(r.sinks.http1.empty());
    EXPECT_EQ(r.factory.stats().prefaceH2.load(), 1u);
    EXPECT_EQ(r.factory.framers().stats().streams.load(), 0u);  // no framer was made
    r.end();
  }
}

TEST(ProtocolSniffer, Http1IsReplayedToTheFramerAtEveryCut) {
  const std::string bytes = "PUT /a HTTP/1.1\r\nHost: h\r\nContent-Length: 3\r\n\r\nabcGET /b HTTP/1.1\r\nHost: h\r\n\r\n";
  for (size_t slice = 1; slice <= bytes.size(); ++slice) {
    SCOPED_TRACE(slice);
    Sniffing r;
    r.feed(bytes, slice);
    ASSERT_EQ(r.sinks.http1.size(), 2u);
    EXPECT_EQ(r.sinks.http1[0].bytes + r.sinks.http1[1].bytes, bytes);
    EXPECT_EQ(r.sinks.http1[0].tsNs, 100u);
    EXPECT_TRUE(r.sinks.h2.empty());
    EXPECT_EQ(r.factory.stats().http1.load(), 1u);
    r.end();
  }
}

TEST(ProtocolSniffer, AlmostThePrefaceIsHttp1) {
  // "PRI * HTTP/2.0" with anything else after it is no preface; the framer
  // then refuses the request line.
  Sniffing r;
  r.feed("PRI * HTTP/2.0\r\n\r\nXX\r\n\r\n");
  EXPECT_TRUE(r.sinks.h2.empty());
  EXPECT_EQ(r.factory.stats().http1.load(), 1u);
  r.end();
}

TEST(ProtocolSniffer, ShortStreamsAndGapsEndAsHttp1) {
  {
    Sniffing r;
    r.feed("PRI * HT");
    EXPECT_EQ(r.c->bufferedBytes(), 8u);
    EXPECT_EQ(r.factory.stats().heldBytes.load(), 8);
    r.end();  // the held bytes go to the framer, which counts them
    EXPECT_EQ(r.factory.stats().http1.load(), 1u);
    EXPECT_EQ(r.factory.framers().stats().streams.load(), 1u);
  }
  {
    Sniffing r;
    r.feed("PRI *");
    r.c->onGap(100);
    r.feed("GET / HTTP/1.1\r\nHost: h\r\n\r\n");
    EXPECT_EQ(r.sinks.http1.size(), 1u);  // resynchronised after the gap
    EXPECT_TRUE(r.sinks.h2.empty());
    r.end();
  }
  {
    Sniffing r;  // empty stream
    r.end();
    EXPECT_EQ(r.factory.stats().http1.load(), 1u);
  }
}

TEST(ProtocolSniffer, MidstreamJoinStaysWithTheFramer) {
  WireClient w;
  w.submit({post("/x"), "body"});
  w.pump();
  Sniffing r(false);
  r.feed(w.captured());
  EXPECT_TRUE(r.sinks.h2.empty());
  EXPECT_TRUE(r.sinks.http1.empty());
  EXPECT_EQ(r.factory.stats().midstream.load(), 1u);
  EXPECT_EQ(r.factory.decoders().stats().connections.load(), 0u);
  r.end();
}

TEST(ProtocolSniffer, AcceptedUpgradeIsDecodedWithStreamOneAtEveryCut) {
  WireClient w(true, {}, &kSettingsPayload);
  RequestSpec second{post("/svc/Second"), std::string(3000, 'q'), {}, 1000};
  EXPECT_EQ(w.submit(second), 3);
  w.pump();
  // An HTTP/1 request before the upgrade one is mirrored as HTTP/1.
  const std::string before = "GET /plain HTTP/1.1\r\nHost: web:80\r\n\r\n";
  const std::string bytes = before + kUpgradeRequest + w.captured();
  for (size_t slice = 1; slice <= bytes.size(); slice += (slice < 200 ? 1 : 97)) {
    SCOPED_TRACE(slice);
    Sniffing r;
    r.feed(bytes, slice);
    ASSERT_EQ(r.sinks.http1.size(), 1u);
    EXPECT_EQ(r.sinks.http1[0].bytes, before);
    ASSERT_EQ(r.sinks.h2.size(), 2u);
    EXPECT_EQ(r.sinks.h2[0].streamId, 1);
    EXPECT_EQ(r.sinks.h2[0].target(), "/first");
    EXPECT_EQ(r.sinks.h2[0].authority(), "web:80");
    EXPECT_EQ(r.sinks.h2[1].streamId, 3);
    EXPECT_EQ(r.sinks.h2[1].headers, second.headers);
    EXPECT_TRUE(r.sinks.h2[1].body == second.body);
    EXPECT_EQ(r.factory.stats().upgradesAccepted.load(), 1u);
    EXPECT_EQ(r.factory.decoders().stats().upgrades.load(), 1u);
    EXPECT_EQ(r.factory.decoders().stats().decodeErrors.load(), 0u);
    r.end();
  }
}

// An upgrade request with a chunked body, through the framer: its body and
// trailers become stream 1's (a size in 16 digits, as llhttp takes it).
TEST(ProtocolSniffer, ChunkedUpgradeRequestBecomesStreamOne) {
  WireClient w(true, {}, &kSettingsPayload);
  w.pump();
  const std::string upgrade =
      "POST /up HTTP/1.1\r\nHost: web:80\r\nConnection: Upgrade, HTTP2-Settings\r\nUpgrade: h2c\r\n"
      "HTTP2-Settings: AAMAAABkAAQAAP__\r\nTransfer-Encoding: chunked\r\n\r\n"
      "0000000000000003\r\nabc\r\n2;x=y\r\nde\r\n0\r\nX-Sum: 9\r\n\r\n";
  Sniffing r;
  r.feed(upgrade + w.captured());
  EXPECT_TRUE(r.sinks.http1.empty());
  ASSERT_EQ(r.sinks.h2.size(), 1u);
  EXPECT_EQ(r.sinks.h2[0].streamId, 1);
  EXPECT_EQ(r.sinks.h2[0].body, "abcde");
  EXPECT_EQ(r.sinks.h2[0].trailers, (std::vector<model::HeaderField>{{"x-sum", "9", false}}));
  EXPECT_EQ(r.factory.stats().upgradesAccepted.load(), 1u);
  r.end();
}

TEST(ProtocolSniffer, DeclinedUpgradeIsMirroredAsHttp1AndTheConnectionGoesOn) {
  // The server answered the upgrade request in HTTP/1 (we do not see it); the
  // client goes on with HTTP/1 on the same connection: every request is framed,
  // with its real stream offset, at every cut.
  const std::string next = "GET /again HTTP/1.1\r\nHost: web\r\n\r\n";
  const std::string post = "POST /third HTTP/1.1\r\nHost: web\r\nContent-Length: 5\r\n\r\nhello";
  const std::string all = kUpgradeRequest + next + post;
  for (size_t slice = 0; slice <= all.size(); slice += (slice < 30 ? 1 : 17)) {
    SCOPED_TRACE(slice);
    Sniffing r;
    r.feed(all, slice);
    r.end();
    ASSERT_EQ(r.sinks.http1.size(), 3u);
    EXPECT_EQ(r.sinks.http1[0].bytes, kUpgradeRequest);
    EXPECT_EQ(r.sinks.http1[1].bytes, next);
    EXPECT_EQ(r.sinks.http1[2].bytes, post);
    EXPECT_EQ(r.sinks.http1[0].streamOffset, 0u);
    EXPECT_EQ(r.sinks.http1[1].streamOffset, kUpgradeRequest.size());
    EXPECT_EQ(r.sinks.http1[2].streamOffset, kUpgradeRequest.size() + next.size());
    EXPECT_TRUE(r.sinks.h2.empty());
    EXPECT_EQ(r.factory.stats().upgradesDeclined.load(), 1u);
    const http::HttpStats& h = r.factory.framers().stats();
    EXPECT_EQ(h.bytesIn.load(), h.bytesParsed.load() + h.unmirroredBytes.load() + h.bytesBuffered.load());
  }
  {
    // The connection ends right after the upgrade request: released too.
    Sniffing r;
    r.feed(kUpgradeRequest);
    EXPECT_TRUE(r.sinks.http1.empty());
    EXPECT_EQ(r.c->bufferedBytes(), kUpgradeRequest.size());
    r.end();
    ASSERT_EQ(r.sinks.http1.size(), 1u);
    EXPECT_EQ(r.factory.stats().upgradesDeclined.load(), 1u);
  }
  {
    // A gap right after the upgrade request: declined, and the new framer
    // resynchronises on the next request line.
    Sniffing r;
    r.feed(kUpgradeRequest);
    r.c->onGap(100);
    r.feed(next);
    r.end();
    ASSERT_EQ(r.sinks.http1.size(), 2u);
    EXPECT_EQ(r.sinks.http1[1].bytes, next);
    EXPECT_EQ(r.factory.stats().upgradesDeclined.load(), 1u);
  }
}

TEST(ProtocolSniffer, UpgradeRequestsOfOtherFlowsPassThrough) {
  // A request the factory gets outside any sniffer's feeding is just forwarded.
  Sinks sinks;
  ProtocolSnifferFactory f(sinks);
  model::Request r;
  r.bytes = kUpgradeRequest;
  f.onRequest(std::move(r));
  EXPECT_EQ(sinks.http1.size(), 1u);
}

}  // namespace
}  // namespace shadowtap::h2
