#include "h2/h2_stream_decoder.h"

#include <gtest/gtest.h>

#include <random>

#include "h2_wire.h"

namespace shadowtap::h2 {
namespace {

using test::FrameInfo;
using test::RequestSpec;
using test::WireClient;

struct Collector : model::RequestSink {
  std::vector<model::Request> requests;
  void onRequest(model::Request&& r) override { requests.push_back(std::move(r)); }
};

std::vector<model::HeaderField> get(const std::string& path, const std::string& authority = "svc:8080") {
  return {{":method", "GET", false},
          {":scheme", "http", false},
          {":authority", authority, false},
          {":path", path, false},
          {"user-agent", "test/1", false}};
}

std::vector<model::HeaderField> grpc(const std::string& method) {
  return {{":method", "POST", false},          {":scheme", "http", false},
          {":authority", "greeter:50051", false}, {":path", "/helloworld.Greeter/" + method, false},
          {"content-type", "application/grpc", false}, {"te", "trailers", false},
          {"grpc-timeout", "1S", false}};
}

std::string pattern(size_t n, int seed = 0) {
  std::string s(n, '\0');
  for (size_t i = 0; i < n; ++i) {
    s[i] = static_cast<char>((i * 131 + static_cast<size_t>(seed) * 7 + i / 251) & 0xff);
  }
  return s;
}

struct Decoding {
  H2DecoderStats stats;
  Collector sink;
  std::unique_ptr<H2StreamDecoder> decoder;
  explicit Decoding(const H2DecoderLimits& limits = {}, std::optional<H2cUpgrade> upgrade = std::nullopt) {
    decoder = std::make_unique<H2StreamDecoder>(model::FlowKey{}, 7, sink, limits, stats, std::move(upgrade));
  }
  void feed(const std::string& bytes, size_t slice = 0) {
    const auto* p = reinterpret_cast<const uint8_t*>(bytes.data());
    if (slice == 0) {
      slice = bytes.size();
    }
    for (size_t off = 0; off < bytes.size(); off += slice) {
      decoder->onData({p + off, std::min(slice, bytes.size() - off)}, 1000 + off);
    }
  }
  void end() { decoder->onEnd(flow::EndReason::kFin); }
  void expectIdentity() const {
    EXPECT_EQ(stats.streamsOpened.load(), stats.streamOutcomes());
    EXPECT_EQ(stats.bufferedBytes.load(), 0);
  }
};

// Every counter but bytesDecoded/bytesSkipped (how those split after a
// connection error depends on where the chunk carrying it ended): their sum.
std::vector<uint64_t> counters(const H2DecoderStats& s) {
  std::vector<uint64_t> v;
  for (const std::atomic<uint64_t>* c :
       {&s.connections, &s.upgrades, &s.prefaceMismatch, &s.decodeErrors, &s.gaps, &s.goaways, &s.streamsOpened,
        &s.requests, &s.streamsReset, &s.streamsRefused, &s.streamsHeadersTooLarge, &s.streamsBodyTooLarge,
        &s.streamsBufferFull, &s.streamsMalformed, &s.streamsAbandoned, &s.trailers, &s.invalidFrames}) {
    v.push_back(c->load());
  }
  v.push_back(s.bytesDecoded.load() + s.bytesSkipped.load());
  return v;
}

// Decodes `bytes` whole, cut in two at every position, and byte by byte;
// every run must emit the same requests and end with the same counters.
// Returns the whole run, ended.
std::unique_ptr<Decoding> expectCutIndependent(const std::string& bytes, const H2DecoderLimits& limits = {});

void expectSame(const model::Request& got, const RequestSpec& want) {
  EXPECT_EQ(got.headers, want.headers);
  EXPECT_EQ(got.body, want.body);
  EXPECT_EQ(got.trailers, want.trailers);
}

std::unique_ptr<Decoding> expectCutIndependent(const std::string& bytes, const H2DecoderLimits& limits) {
  auto whole = std::make_unique<Decoding>(limits);
  whole->feed(bytes);
  whole->end();
  whole->expectIdentity();
  auto check = [&](Decoding& r, const std::string& how) {
    r.end();
    r.expectIdentity();
    EXPECT_EQ(counters(r.stats), counters(whole->stats)) << how;
    EXPECT_EQ(r.stats.bytesDecoded.load() + r.stats.bytesSkipped.load(), bytes.size()) << how;
    ASSERT_EQ(r.sink.requests.size(), whole->sink.requests.size()) << how;
    for (size_t i = 0; i < r.sink.requests.size(); ++i) {
      EXPECT_EQ(r.sink.requests[i].streamId, whole->sink.requests[i].streamId) << how;
      EXPECT_EQ(r.sink.requests[i].headers, whole->sink.requests[i].headers) << how;
      EXPECT_EQ(r.sink.requests[i].body, whole->sink.requests[i].body) << how;
      EXPECT_EQ(r.sink.requests[i].trailers, whole->sink.requests[i].trailers) << how;
    }
  };
  for (size_t cut = 1; cut < bytes.size(); ++cut) {
    Decoding r(limits);
    r.feed(bytes.substr(0, cut));
    r.feed(bytes.substr(cut));
    check(r, "cut at " + std::to_string(cut));
  }
  Decoding bytewise(limits);
  bytewise.feed(bytes, 1);
  check(bytewise, "byte by byte");
  return whole;
}

TEST(H2StreamDecoder, UnaryGet) {
  WireClient c;
  RequestSpec spec{get("/a?b=1")};
  c.submit(spec);
  c.pump();
  Decoding r;
  r.feed(c.captured());
  r.end();
  ASSERT_EQ(r.sink.requests.size(), 1u);
  expectSame(r.sink.requests[0], spec);
  EXPECT_EQ(r.sink.requests[0].streamId, 1);
  EXPECT_EQ(r.sink.requests[0].ruleId, 7u);
  EXPECT_EQ(r.sink.requests[0].authority(), "svc:8080");
  EXPECT_EQ(r.stats.requests.load(), 1u);
  EXPECT_EQ(r.stats.decodeErrors.load(), 0u);
  EXPECT_EQ(r.stats.bytesDecoded.load(), c.captured().size());
  r.expectIdentity();
}

TEST(H2StreamDecoder, BodySplitOverManyDataFrames) {
  WireClient c;
  RequestSpec spec{grpc("SayHello"), pattern(10000), {}, 700};
  c.submit(spec);
  c.pump();
  size_t dataFrames = 0;
  for (const FrameInfo& f : test::frames(c.captured())) {
    dataFrames += f.type == NGHTTP2_DATA ? 1 : 0;
  }
  EXPECT_GE(dataFrames, 14u);
  Decoding r;
  r.feed(c.captured());
  ASSERT_EQ(r.sink.requests.size(), 1u);
  expectSame(r.sink.requests[0], spec);
  r.end();
  r.expectIdentity();
}

TEST(H2StreamDecoder, TrailersAndNeverIndexedFields) {
  WireClient c;
  RequestSpec spec{grpc("Stream"), pattern(300), {{"x-checksum", "abc123", false}, {"x-secret", "s", true}}};
  spec.headers.push_back({"authorization", "Bearer xyz", true});
  c.submit(spec);
  c.pump();
  Decoding r;
  r.feed(c.captured());
  ASSERT_EQ(r.sink.requests.size(), 1u);
  expectSame(r.sink.requests[0], spec);
  EXPECT_TRUE(r.sink.requests[0].headers.back().neverIndex);
  EXPECT_EQ(r.stats.trailers.load(), 1u);
  r.end();
  r.expectIdentity();
}

TEST(H2StreamDecoder, TrailersWithoutBody) {
  WireClient c;
  RequestSpec spec{grpc("Empty"), "", {{"grpc-status", "0", false}}};
  c.submit(spec);
  c.pump();
  Decoding r;
  r.feed(c.captured());
  ASSERT_EQ(r.sink.requests.size(), 1u);
  expectSame(r.sink.requests[0], spec);
}

TEST(H2StreamDecoder, HeaderBlockWithContinuation) {
  WireClient c;
  RequestSpec spec{get("/big")};
  spec.headers.push_back({"x-large", std::string(40000, 'q'), false});
  spec.headers.push_back({"x-after", "1", false});
  c.submit(spec);
  c.pump();
  size_t continuations = 0;
  for (const FrameInfo& f : test::frames(c.captured())) {
    continuations += f.type == NGHTTP2_CONTINUATION ? 1 : 0;
  }
  EXPECT_GE(continuations, 2u);
  Decoding r;
  r.feed(c.captured());
  ASSERT_EQ(r.sink.requests.size(), 1u);
  expectSame(r.sink.requests[0], spec);
}

TEST(H2StreamDecoder, ManyConcurrentStreamsInterleaved) {
  WireClient c;
  std::vector<RequestSpec> specs;
  for (int i = 0; i < 60; ++i) {
    RequestSpec s{grpc("M" + std::to_string(i)), pattern(3000 + static_cast<size_t>(i) * 37, i), {}, 500};
    if (i % 3 == 0) {
      s.trailers = {{"x-n", std::to_string(i), false}};
    }
    specs.push_back(s);
  }
  for (const auto& s : specs) {
    c.submit(s);
  }
  c.pump();
  // DATA frames of different streams alternate on the wire.
  int32_t last = 0;
  size_t switches = 0;
  for (const FrameInfo& f : test::frames(c.captured())) {
    if (f.type == NGHTTP2_DATA) {
      switches += f.streamId != last ? 1 : 0;
      last = f.streamId;
    }
  }
  EXPECT_GT(switches, 120u);
  Decoding r;
  r.feed(c.captured(), 1000);
  ASSERT_EQ(r.sink.requests.size(), specs.size());
  for (const model::Request& got : r.sink.requests) {
    expectSame(got, specs[static_cast<size_t>(got.streamId - 1) / 2]);
  }
  r.end();
  r.expectIdentity();
}

TEST(H2StreamDecoder, LargeFramesAfterServerSettingsAck) {
  // The real server allows 1 MiB frames and windows; the client uses them only
  // after its SETTINGS ACK, which applies the decoder's own permissive SETTINGS.
  test::ServerSettings big{1 << 20, 4 << 20, 100};
  WireClient c(true, big);
  c.pump();  // settings exchange first, as on a real connection
  RequestSpec spec{grpc("Upload"), pattern(3 << 20)};
  c.submit(spec);
  c.pump();
  uint32_t largest = 0;
  for (const FrameInfo& f : test::frames(c.captured())) {
    largest = std::max(largest, f.type == NGHTTP2_DATA ? f.length : 0);
  }
  EXPECT_GT(largest, 16384u);
  Decoding r;
  r.feed(c.captured(), 4096);
  ASSERT_EQ(r.sink.requests.size(), 1u);
  EXPECT_EQ(r.sink.requests[0].body, spec.body);
  EXPECT_EQ(r.stats.decodeErrors.load(), 0u);
}

TEST(H2StreamDecoder, ManySequentialStreamsOnOneConnection) {
  WireClient c;
  Decoding r;
  size_t fed = 0;
  for (int i = 0; i < 3000; ++i) {
    c.submit({get("/n/" + std::to_string(i)), i % 2 ? "x" : ""});
    c.pump();
    r.feed(c.captured().substr(fed));
    fed = c.captured().size();
  }
  EXPECT_EQ(r.sink.requests.size(), 3000u);
  EXPECT_EQ(r.sink.requests.back().target(), "/n/2999");
  EXPECT_EQ(r.stats.decodeErrors.load(), 0u);
  r.end();
  r.expectIdentity();
}

TEST(H2StreamDecoder, RstStreamDropsOnlyThatStream) {
  WireClient c;
  RequestSpec open{grpc("Cancelled"), pattern(100), {}, 0, false};
  const int32_t a = c.submit(open);
  RequestSpec done{get("/ok")};
  c.submit(done);
  c.pump();
  c.rst(a);
  c.ping();
  c.pump();
  Decoding r;
  r.feed(c.captured());
  ASSERT_EQ(r.sink.requests.size(), 1u);
  expectSame(r.sink.requests[0], done);
  EXPECT_EQ(r.stats.streamsReset.load(), 1u);
  r.end();
  r.expectIdentity();
}

TEST(H2StreamDecoder, EveryByteBoundaryGivesTheSameRequests) {
  WireClient c;
  RequestSpec a{grpc("A"), pattern(200), {{"x-t", "1", false}}, 64};
  RequestSpec b{get("/second")};
  c.submit(a);
  c.submit(b);
  c.pump();
  const std::string& bytes = c.captured();
  Decoding whole;
  whole.feed(bytes);
  ASSERT_EQ(whole.sink.requests.size(), 2u);
  for (size_t cut = 1; cut < bytes.size(); ++cut) {
    Decoding r;
    r.feed(bytes.substr(0, cut));
    r.feed(bytes.substr(cut));
    ASSERT_EQ(r.sink.requests.size(), 2u) << "cut " << cut;
    for (size_t i = 0; i < 2; ++i) {
      EXPECT_EQ(r.sink.requests[i].headers, whole.sink.requests[i].headers) << "cut " << cut;
      EXPECT_EQ(r.sink.requests[i].body, whole.sink.requests[i].body) << "cut " << cut;
      EXPECT_EQ(r.sink.requests[i].trailers, whole.sink.requests[i].trailers) << "cut " << cut;
    }
  }
  Decoding bytewise;
  bytewise.feed(bytes, 1);
  ASSERT_EQ(bytewise.sink.requests.size(), 2u);
  EXPECT_EQ(bytewise.sink.requests[0].headers, whole.sink.requests[0].headers);
  EXPECT_EQ(bytewise.sink.requests[1].body, whole.sink.requests[1].body);
  EXPECT_EQ(whole.sink.requests[1].body, a.body);
  EXPECT_EQ(bytewise.stats.bytesDecoded.load(), bytes.size());
}

TEST(H2StreamDecoder, GarbageIsCountedAndSkipped) {
  std::string junk = "GET / HTTP/1.1\r\nHost: x\r\n\r\n";
  Decoding r;
  r.feed(junk);
  EXPECT_EQ(r.stats.prefaceMismatch.load(), 1u);
  EXPECT_TRUE(r.decoder->skipping());
  r.feed(junk);
  EXPECT_EQ(r.stats.bytesSkipped.load(), 2 * junk.size());
  EXPECT_TRUE(r.sink.requests.empty());

  // Preface, then random bytes.
  std::mt19937 rng(1);
  std::string bad(NGHTTP2_CLIENT_MAGIC);
  for (int i = 0; i < 500; ++i) {
    bad.push_back(static_cast<char>(rng()));
  }
  // A DATA frame (8 bytes of payload) where the client's SETTINGS must come first.
  bad[24] = 0;
  bad[24 + 1] = 0;
  bad[24 + 2] = 8;
  bad[24 + 3] = 0;
  Decoding g;
  g.feed(bad, 7);
  // Acted on where that frame ends: the rest is skipped.
  EXPECT_EQ(g.stats.decodeErrors.load(), 1u);
  EXPECT_TRUE(g.decoder->skipping());
  EXPECT_EQ(g.stats.bytesDecoded.load(), 24u + 9 + 8);
  EXPECT_EQ(g.stats.bytesSkipped.load(), bad.size() - (24 + 9 + 8));
  EXPECT_TRUE(g.sink.requests.empty());
  g.end();
  g.expectIdentity();

  // The same error in a frame longer than the stream: counted at the end.
  bad[24 + 1] = 0x40;
  Decoding longFrame;
  longFrame.feed(bad, 7);
  EXPECT_EQ(longFrame.stats.decodeErrors.load(), 0u);
  longFrame.end();
  EXPECT_EQ(longFrame.stats.decodeErrors.load(), 1u);
  longFrame.expectIdentity();
  expectCutIndependent(bad);
}

TEST(H2StreamDecoder, JoinedMidStreamHpackStateIsMissing) {
  // Requests that reuse dynamic-table entries, seen without the start.
  WireClient c;
  for (int i = 0; i < 5; ++i) {
    RequestSpec s{grpc("Same")};
    s.headers.push_back({"x-session", "long-value-that-gets-indexed-0123456789", false});
    c.submit(s);
    c.pump();
  }
  const std::vector<FrameInfo> fs = test::frames(c.captured());
  // Offset of the last HEADERS frame.
  size_t off = 24;
  size_t lastHeaders = 0;
  for (const FrameInfo& f : fs) {
    if (f.type == NGHTTP2_HEADERS) {
      lastHeaders = off;
    }
    off += 9 + f.length;
  }
  // Preface and the client's SETTINGS, then HEADERS whose indexed fields refer
  // to dynamic-table entries this decoder never saw: HPACK decoding fails.
  ASSERT_EQ(fs[0].type, NGHTTP2_SETTINGS);
  Decoding r;
  r.feed(c.captured().substr(0, 24 + 9 + fs[0].length) + c.captured().substr(lastHeaders));
  EXPECT_EQ(r.stats.decodeErrors.load(), 1u);
  EXPECT_TRUE(r.sink.requests.empty());
  r.feed("more");
  EXPECT_EQ(r.stats.bytesSkipped.load(), 4u);

  // Without the preface at all (the flow was joined late): counted, skipped.
  Decoding late;
  late.feed(c.captured().substr(lastHeaders));
  EXPECT_EQ(late.stats.prefaceMismatch.load(), 1u);
}

TEST(H2StreamDecoder, GapAbandonsTheConnection) {
  WireClient c;
  c.submit({grpc("Slow"), pattern(1000), {}, 0, false});
  c.pump();
  Decoding r;
  r.feed(c.captured());
  EXPECT_EQ(r.decoder->bufferedBytes() > 1000, true);
  r.decoder->onGap(100);
  EXPECT_EQ(r.stats.gaps.load(), 1u);
  EXPECT_EQ(r.stats.streamsAbandoned.load(), 1u);
  EXPECT_EQ(r.decoder->bufferedBytes(), 0u);
  r.feed("abc");
  EXPECT_EQ(r.stats.bytesSkipped.load(), 3u);
  r.end();
  r.expectIdentity();
}

TEST(H2StreamDecoder, EndAbandonsStreamsInProgress) {
  WireClient c;
  c.submit({grpc("Open"), pattern(10), {}, 0, false});
  c.submit({get("/done")});
  c.pump();
  Decoding r;
  r.feed(c.captured());
  r.end();
  EXPECT_EQ(r.sink.requests.size(), 1u);
  EXPECT_EQ(r.stats.streamsAbandoned.load(), 1u);
  r.expectIdentity();
}

TEST(H2StreamDecoder, ConcurrentStreamLimitRefusesAndKeepsHpackInSync) {
  WireClient c;
  for (int i = 0; i < 4; ++i) {
    RequestSpec s{grpc("Open" + std::to_string(i)), pattern(10), {}, 0, false};
    s.headers.push_back({"x-shared", "indexed-" + std::to_string(i), false});
    c.submit(s);
  }
  RequestSpec later{grpc("Later")};
  later.headers.push_back({"x-shared", "indexed-3", false});  // refers to a refused stream's entry
  c.pump();
  H2DecoderLimits limits;
  limits.maxConcurrentStreams = 2;
  Decoding r(limits);
  r.feed(c.captured());
  EXPECT_EQ(r.stats.streamsRefused.load(), 2u);
  // Streams 1 and 3 end; then a new one fits and decodes with the shared table.
  c.rst(1);
  c.rst(3);
  c.submit(later);
  c.pump();
  Decoding r2(limits);
  r2.feed(c.captured());
  ASSERT_EQ(r2.sink.requests.size(), 1u);
  expectSame(r2.sink.requests[0], later);
  EXPECT_EQ(r2.stats.streamsReset.load(), 2u);
  r2.end();
  r2.expectIdentity();
}

TEST(H2StreamDecoder, HeaderAndBodyLimits) {
  WireClient c;
  RequestSpec bigHeaders{get("/h")};
  bigHeaders.headers.push_back({"x-big", std::string(5000, 'h'), false});
  RequestSpec bigBody{grpc("B"), pattern(5000), {}, 1000};
  RequestSpec fine{get("/fine")};
  c.submit(bigHeaders);
  c.submit(bigBody);
  c.submit(fine);
  c.pump();
  H2DecoderLimits limits;
  limits.maxHeaderListBytes = 4096;
  limits.maxStreamBodyBytes = 4096;
  Decoding r(limits);
  r.feed(c.captured());
  ASSERT_EQ(r.sink.requests.size(), 1u);
  expectSame(r.sink.requests[0], fine);
  EXPECT_EQ(r.stats.streamsHeadersTooLarge.load(), 1u);
  EXPECT_EQ(r.stats.streamsBodyTooLarge.load(), 1u);
  r.end();
  r.expectIdentity();
}

TEST(H2StreamDecoder, ConnectionBufferLimit) {
  WireClient c;
  for (int i = 0; i < 3; ++i) {
    c.submit({grpc("P" + std::to_string(i)), pattern(3000), {}, 0, false});
  }
  c.pump();
  H2DecoderLimits limits;
  limits.maxConnectionBufferedBytes = 7000;
  Decoding r(limits);
  r.feed(c.captured());
  EXPECT_EQ(r.stats.streamsBufferFull.load(), 1u);
  EXPECT_LE(r.decoder->bufferedBytes(), 7000u);
  r.end();
  r.expectIdentity();
}

TEST(H2StreamDecoder, LimitCrossedFirstInADataFrameDecidesHoweverItIsCut) {
  // Stream 3's one DATA frame (150 bytes) crosses the connection buffer limit
  // at its 51st byte and its body limit (100) at its 101st: buffer full, also
  // when the frame arrives whole (both limits crossed in one piece).
  WireClient c;
  c.submit({get("/open"), pattern(10), {}, 0, false});
  c.submit({grpc("B"), pattern(150)});
  c.pump();
  const std::string& bytes = c.captured();
  size_t off = 24;
  size_t lastData = 0;
  for (const FrameInfo& f : test::frames(bytes)) {
    if (f.type == NGHTTP2_DATA && f.streamId == 3) {
      lastData = off;
      ASSERT_EQ(f.length, 150u);
    }
    off += 9 + f.length;
  }
  Decoding before;
  before.feed(bytes.substr(0, lastData));
  H2DecoderLimits limits;
  limits.maxStreamBodyBytes = 100;
  limits.maxConnectionBufferedBytes = before.decoder->bufferedBytes() + 50;
  std::unique_ptr<Decoding> r = expectCutIndependent(bytes, limits);
  EXPECT_EQ(r->stats.streamsBufferFull.load(), 1u);
  EXPECT_EQ(r->stats.streamsBodyTooLarge.load(), 0u);
  EXPECT_EQ(r->stats.streamsAbandoned.load(), 1u);  // stream 1, still open at the end
  EXPECT_TRUE(r->sink.requests.empty());
}

TEST(H2StreamDecoder, MalformedStreamsAreCounted) {
  WireClient c;
  RequestSpec upper{get("/u")};
  upper.headers.push_back({"x(bad)", "1", false});  // not a token
  RequestSpec badLength{grpc("L"), "12345"};
  badLength.headers.push_back({"content-length", "9", false});
  RequestSpec fine{get("/fine")};
  c.submit(upper);
  c.submit(badLength);
  c.submit(fine);
  c.pump();
  Decoding r;
  r.feed(c.captured());
  ASSERT_EQ(r.sink.requests.size(), 1u);
  expectSame(r.sink.requests[0], fine);
  EXPECT_EQ(r.stats.streamsMalformed.load(), 2u);
  r.end();
  r.expectIdentity();
}

TEST(H2StreamDecoder, ClientGoawayEndsTheConnectionCleanly) {
  WireClient c;
  c.submit({get("/last")});
  c.pump();
  c.goaway();
  c.pump();
  std::unique_ptr<Decoding> r = expectCutIndependent(c.captured());
  ASSERT_EQ(r->sink.requests.size(), 1u);
  EXPECT_EQ(r->sink.requests[0].streamId, 1);
  EXPECT_EQ(r->stats.goaways.load(), 1u);
  EXPECT_EQ(r->stats.decodeErrors.load(), 0u);
}

TEST(H2StreamDecoder, StreamOpenedAfterClientGoawayIsIgnored) {
  // nghttp2 queues GOAWAY before the HEADERS submitted earlier. With no stream
  // left after a client GOAWAY, a server ignores new streams; so does the
  // decoder, and not only when the GOAWAY arrived in the same chunk as some
  // frame that still had an answer pending (the old behaviour).
  WireClient c;
  c.submit({get("/late")});
  c.goaway();
  c.pump();
  const std::vector<FrameInfo> fs = test::frames(c.captured());
  ASSERT_GE(fs.size(), 3u);
  ASSERT_EQ(fs[1].type, NGHTTP2_GOAWAY);
  ASSERT_EQ(fs[2].type, NGHTTP2_HEADERS);
  std::unique_ptr<Decoding> r = expectCutIndependent(c.captured());
  EXPECT_TRUE(r->sink.requests.empty());
  EXPECT_EQ(r->stats.goaways.load(), 1u);
  EXPECT_EQ(r->stats.streamsOpened.load(), 0u);
  EXPECT_EQ(r->stats.decodeErrors.load(), 0u);
}

TEST(H2StreamDecoder, RegressDataAfterEndStreamDoesNotDependOnCut) {
  // tests/fuzz/findings/h2_decode_error_depends_on_cut (fuzz_h2, small
  // limits): SETTINGS, HEADERS with END_STREAM on stream 1, then DATA on
  // stream 1. The finished stream is reset (to forget it) by a RST_STREAM that
  // takes effect when our output is drained. Drained only between onData()
  // calls, the DATA was a connection error (stream half-closed) when it came
  // in the same chunk, and ignored (stream gone) when cut before it.
  const uint8_t finding[] = {
      0x00, 0x00, 0x2a, 0x04, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x01, 0x00, 0x00, 0x10, 0x00, 0x00, 0x02, 0x00,
      0x00, 0x00, 0x01, 0x00, 0x04, 0x00, 0x00, 0xff, 0xff, 0x00, 0x05, 0x00, 0x00, 0x40, 0x00, 0x00, 0x08, 0x00,
      0x00, 0x00, 0x00, 0x00, 0x03, 0x00, 0x00, 0x13, 0x64, 0x00, 0x06, 0x00, 0x01, 0x00, 0x00, 0x00, 0x00, 0x12,
      0x01, 0x05, 0x00, 0x00, 0x00, 0x01, 0x42, 0x83, 0xd7, 0xc3, 0x7f, 0x86, 0x41, 0x86, 0x47, 0x72, 0x5c, 0x78,
      0x0f, 0x03, 0x44, 0x82, 0x62, 0xcf, 0x00, 0x01, 0x2c, 0x00, 0x00, 0x00, 0x00, 0x00, 0x01, 0x78, 0x78, 0x78,
      0x78, 0x78, 0x78, 0x78, 0x78, 0x08, 0x78, 0x00, 0x78, 0x78, 0x00, 0x00, 0x00, 0x05, 0x00, 0x00, 0x40, 0x00};
  const std::string bytes =
      std::string(NGHTTP2_CLIENT_MAGIC) + std::string(reinterpret_cast<const char*>(finding), sizeof(finding));
  H2DecoderLimits limits;  // the fuzz target's small limits
  limits.maxConcurrentStreams = 2;
  limits.maxHeaderListBytes = 300;
  limits.maxStreamBodyBytes = 100;
  limits.maxConnectionBufferedBytes = 400;
  limits.maxHeaderTableBytes = 256;
  limits.maxContinuations = 2;
  std::unique_ptr<Decoding> r = expectCutIndependent(bytes, limits);
  EXPECT_EQ(r->stats.streamsOpened.load(), 1u);
  EXPECT_EQ(r->stats.decodeErrors.load(), 0u);
}

TEST(H2StreamDecoder, ClientWithoutServerAnswers) {
  // Bytes of a client that never heard the server (no ACK at all): still decoded.
  WireClient c(false);
  RequestSpec spec{grpc("X"), pattern(20000), {}, 4000};
  c.submit(spec);
  c.pump();
  Decoding r;
  r.feed(c.captured());
  ASSERT_EQ(r.sink.requests.size(), 1u);
  EXPECT_EQ(r.sink.requests[0].body.size(), 20000u);
}

}  // namespace
}  // namespace shadowtap::h2
