#include "h2/h2c_upgrade.h"

#include <gtest/gtest.h>

#include "h2/h2_stream_decoder.h"
#include "h2/preface.h"
#include "h2_wire.h"

namespace shadowtap::h2 {
namespace {

// Builds an model::Request the way the HTTP/1 framer would for `raw`.
model::Request framed(const std::string& raw) {
  model::Request r;
  r.bytes = raw;
  r.method = raw.substr(0, raw.find(' '));
  r.targetOffset = raw.find(' ') + 1;
  r.targetLength = raw.find(' ', r.targetOffset) - r.targetOffset;
  const size_t host = raw.find("Host: ");
  if (host != std::string::npos) {
    r.hostOffset = host + 6;
    r.hostLength = raw.find("\r\n", r.hostOffset) - r.hostOffset;
  }
  r.bodyOffset = raw.find("\r\n\r\n") + 4;
  return r;
}

// SETTINGS payload: MAX_CONCURRENT_STREAMS=100, INITIAL_WINDOW_SIZE=65535.
const std::string kSettingsPayload("\x00\x03\x00\x00\x00\x64\x00\x04\x00\x00\xff\xff", 12);
const std::string kSettingsB64 = "AAMAAABkAAQAAP__";

TEST(Base64Url, Decodes) {
  std::string out;
  ASSERT_TRUE(decodeBase64Url(kSettingsB64, out));
  EXPECT_EQ(out, kSettingsPayload);
  ASSERT_TRUE(decodeBase64Url("aGk=", out));
  EXPECT_EQ(out, "hi");
  EXPECT_FALSE(decodeBase64Url("a+b/", out));
  EXPECT_FALSE(decodeBase64Url("abcde", out));
}

TEST(H2cUpgrade, ConvertsTheRequestToStreamOne) {
  const std::string raw =
      "POST /submit?x=1 HTTP/1.1\r\nHost: api:8080\r\nConnection: Upgrade, HTTP2-Settings, Keep-Alive\r\n"
      "Upgrade: h2c\r\nHTTP2-Settings: " + kSettingsB64 +
      "\r\nKeep-Alive: 5\r\nX-Trace: abc\r\nTE: trailers\r\nContent-Length: 5\r\n\r\nhello";
  H2cUpgrade u;
  ASSERT_EQ(parseH2cUpgrade(framed(raw), u), UpgradeParse::kUpgrade);
  EXPECT_EQ(u.settingsPayload, kSettingsPayload);
  EXPECT_FALSE(u.headRequest);
  const std::vector<model::HeaderField> want = {{":method", "POST", false},   {":scheme", "http", false},
                                         {":authority", "api:8080", false}, {":path", "/submit?x=1", false},
                                         {"x-trace", "abc", false},      {"te", "trailers", false},
                                         {"content-length", "5", false}};
  EXPECT_EQ(u.request.headers, want);
  EXPECT_EQ(u.request.body, "hello");
  EXPECT_EQ(u.request.streamId, 1);
}

TEST(H2cUpgrade, ChunkedBodyAndAbsoluteTarget) {
  const std::string raw =
      "PUT http://api:8080/p HTTP/1.1\r\nHost: api:8080\r\nConnection: Upgrade, HTTP2-Settings\r\n"
      "Upgrade: h2c\r\nHTTP2-Settings: \r\nTransfer-Encoding: chunked\r\n\r\n"
      "3\r\nabc\r\n2;x=y\r\nde\r\n0\r\nX-Sum: 9\r\n\r\n";
  H2cUpgrade u;
  ASSERT_EQ(parseH2cUpgrade(framed(raw), u), UpgradeParse::kUpgrade);
  EXPECT_EQ(u.request.target(), "/p");
  EXPECT_EQ(u.request.body, "abcde");
  ASSERT_EQ(u.request.trailers.size(), 1u);
  EXPECT_EQ(u.request.trailers[0], (model::HeaderField{"x-sum", "9", false}));
  EXPECT_EQ(u.request.header("transfer-encoding"), "");
}

// The body is judged as the framer judges it (http::isWellFormedChunkedBody).
TEST(H2cUpgrade, ChunkedBodyMustBeOneWholeChunkedBody) {
  const std::string head =
      "POST / HTTP/1.1\r\nHost: a\r\nConnection: Upgrade, HTTP2-Settings\r\nUpgrade: h2c\r\nHTTP2-Settings: \r\n"
      "Transfer-Encoding: chunked\r\n\r\n";
  H2cUpgrade u;
  // A size in 16 digits, as llhttp takes it.
  ASSERT_EQ(parseH2cUpgrade(framed(head + "0000000000000003\r\nabc\r\n0\r\n\r\n"), u), UpgradeParse::kUpgrade);
  EXPECT_EQ(u.request.body, "abc");
  EXPECT_TRUE(u.request.trailers.empty());
  for (const char* body : {"3\r\nabc\r\n0\r\nX-Sum: 9\r\n", "3\r\nabc\r\n0\r\n", "0\r\n\r\nX", "3\nabc\r\n0\r\n\r\n",
                           " 3\r\nabc\r\n0\r\n\r\n"}) {
    EXPECT_EQ(parseH2cUpgrade(framed(head + body), u), UpgradeParse::kInvalid) << body;
  }
}

// RFC 9112 6.3: with a last coding other than chunked the body has no length;
// a coding before chunked would be lost with the header, which HTTP/2 drops:
// only chunked alone is upgraded (the framer passes nothing else).
TEST(H2cUpgrade, TransferEncodingMustBeChunkedAlone) {
  const std::string head =
      "POST / HTTP/1.1\r\nHost: a\r\nConnection: Upgrade, HTTP2-Settings\r\nUpgrade: h2c\r\nHTTP2-Settings: \r\n";
  const std::string body = "3\r\nabc\r\n0\r\n\r\n";
  H2cUpgrade u;
  for (const char* te : {"chunked, gzip", "gzip, Chunked", "gzip", "chunked\r\nTransfer-Encoding: chunked"}) {
    EXPECT_EQ(parseH2cUpgrade(framed(head + "Transfer-Encoding: " + te + "\r\n\r\n" + body), u),
              UpgradeParse::kInvalid)
        << te;
  }
  ASSERT_EQ(parseH2cUpgrade(framed(head + "Transfer-Encoding: Chunked \r\n\r\n" + body), u), UpgradeParse::kUpgrade);
  EXPECT_EQ(u.request.body, "abc");
}

TEST(H2cUpgrade, NotAndInvalid) {
  H2cUpgrade u;
  EXPECT_EQ(parseH2cUpgrade(framed("GET / HTTP/1.1\r\nHost: a\r\n\r\n"), u), UpgradeParse::kNotUpgrade);
  EXPECT_EQ(parseH2cUpgrade(framed("GET / HTTP/1.1\r\nHost: a\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n"), u),
            UpgradeParse::kNotUpgrade);
  // No HTTP2-Settings / not named in Connection / two of them / bad base64 / HTTP/1.0.
  EXPECT_EQ(parseH2cUpgrade(framed("GET / HTTP/1.1\r\nHost: a\r\nUpgrade: h2c\r\nConnection: Upgrade\r\n\r\n"), u),
            UpgradeParse::kInvalid);
  EXPECT_EQ(parseH2cUpgrade(framed("GET / HTTP/1.1\r\nHost: a\r\nUpgrade: h2c\r\nConnection: Upgrade\r\n"
                                   "HTTP2-Settings: " + kSettingsB64 + "\r\n\r\n"),
                            u),
            UpgradeParse::kInvalid);
  EXPECT_EQ(parseH2cUpgrade(framed("GET / HTTP/1.1\r\nHost: a\r\nUpgrade: h2c\r\nConnection: Upgrade, HTTP2-Settings\r\n"
                                   "HTTP2-Settings: a\r\nHTTP2-Settings: b\r\n\r\n"),
                            u),
            UpgradeParse::kInvalid);
  EXPECT_EQ(parseH2cUpgrade(framed("GET / HTTP/1.1\r\nHost: a\r\nUpgrade: h2c\r\nConnection: Upgrade, HTTP2-Settings\r\n"
                                   "HTTP2-Settings: a*b\r\n\r\n"),
                            u),
            UpgradeParse::kInvalid);
  EXPECT_EQ(parseH2cUpgrade(framed("GET / HTTP/1.0\r\nHost: a\r\nUpgrade: h2c\r\nConnection: Upgrade, HTTP2-Settings\r\n"
                                   "HTTP2-Settings: " + kSettingsB64 + "\r\n\r\n"),
                            u),
            UpgradeParse::kInvalid);
}

struct Collector : model::RequestSink {
  std::vector<model::Request> requests;
  void onRequest(model::Request&& r) override { requests.push_back(std::move(r)); }
};

TEST(H2cUpgrade, DecoderEmitsStreamOneThenTheClientsStreams) {
  const std::string raw = "GET /first HTTP/1.1\r\nHost: web:80\r\nConnection: Upgrade, HTTP2-Settings\r\n"
                          "Upgrade: h2c\r\nHTTP2-Settings: " + kSettingsB64 + "\r\n\r\n";
  H2cUpgrade u;
  ASSERT_EQ(parseH2cUpgrade(framed(raw), u), UpgradeParse::kUpgrade);

  // The client's bytes after the (unseen) 101.
  test::WireClient c(true, {}, &kSettingsPayload);
  test::RequestSpec second{{{":method", "GET", false},
                            {":scheme", "http", false},
                            {":authority", "web:80", false},
                            {":path", "/second", false}}};
  EXPECT_EQ(c.submit(second), 3);
  c.rst(1);  // the client may still refer to stream 1
  c.pump();
  const auto* p = reinterpret_cast<const uint8_t*>(c.captured().data());
  ASSERT_EQ(matchPreface({p, 5}), PrefaceMatch::kNeedMore);
  ASSERT_EQ(matchPreface({p, c.captured().size()}), PrefaceMatch::kYes);

  H2DecoderStats stats;
  Collector sink;
  H2StreamDecoder d(model::FlowKey{}, 3, sink, {}, stats, std::move(u));
  d.onData({p, 10}, 1);
  EXPECT_TRUE(sink.requests.empty());  // preface not confirmed yet
  d.onData({p + 10, c.captured().size() - 10}, 2);
  ASSERT_EQ(sink.requests.size(), 2u);
  EXPECT_EQ(sink.requests[0].streamId, 1);
  EXPECT_EQ(sink.requests[0].target(), "/first");
  EXPECT_EQ(sink.requests[0].authority(), "web:80");
  EXPECT_EQ(sink.requests[0].ruleId, 3u);
  EXPECT_EQ(sink.requests[1].streamId, 3);
  EXPECT_EQ(sink.requests[1].headers, second.headers);
  EXPECT_EQ(stats.upgrades.load(), 1u);
  EXPECT_EQ(stats.decodeErrors.load(), 0u);
  d.onEnd(flow::EndReason::kFin);
  EXPECT_EQ(stats.streamsOpened.load(), stats.streamOutcomes());
}

TEST(H2cUpgrade, DeclinedUpgradeIsNoPreface) {
  const std::string next = "GET /again HTTP/1.1\r\nHost: web\r\n\r\n";
  EXPECT_EQ(matchPreface({reinterpret_cast<const uint8_t*>(next.data()), next.size()}), PrefaceMatch::kNo);
  EXPECT_EQ(matchPreface({}), PrefaceMatch::kNeedMore);
}

}  // namespace
}  // namespace shadowtap::h2
