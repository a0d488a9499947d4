// HTTP/2 recordings read back and replayed over h2c, alone and mixed with HTTP/1.
#include <gtest/gtest.h>

#include <chrono>
#include <thread>

#include "replay/mirror_pool.h"
#include "h2_test_server.h"
#include "offline/record_reader.h"
#include "offline/replay_command.h"
#include "offline/replay_run.h"
#include "record/h2_record.h"
#include "record/record_writer.h"
#include "record_test_util.h"

namespace shadowtap::offline {
namespace {

using record::testing::kMay1;
using record::testing::makeRequest;
using record::testing::slurp;
using record::testing::TempDir;

model::Request h2Request(uint64_t tsNs, std::string path, std::string body, bool trailers) {
  model::Request r;
  r.flow.saddr = {198, 18, 0, 1};
  r.flow.daddr = {198, 18, 0, 2};
  r.flow.sport = 40000;
  r.flow.dport = 50051;
  r.ruleId = 1;
  r.tsNs = tsNs;
  r.headers = {{":method", body.empty() ? "GET" : "POST", false},
               {":scheme", "http", false},
               {":authority", "svc:50051", false},
               {":path", std::move(path), false},
               {"content-type", "application/grpc", false},
               {"authorization", "Bearer abc", true},
               {"x-dup", "1", false},
               {"x-dup", "2", false}};
  r.body = std::move(body);
  if (trailers) {
    r.trailers = {{"x-checksum", "c1", false}, {"x-sig", "s", true}};
  }
  r.finishHttp2();
  return r;
}

const std::string kHttp1Post =
    "POST /h1/a HTTP/1.1\r\nHost: web:8000\r\nContent-Length: 3\r\nX-Dup: a\r\nX-Dup: b\r\n\r\nabc";
const std::string kHttp1Get = "GET /h1/b?q=1 HTTP/1.1\r\nHost: web:8000\r\n\r\n";

// One recording, HTTP/1 and HTTP/2 interleaved (the order of capture).
struct Mixed {
  std::vector<model::Request> h2;  // as captured
  std::string path;               // the file
};

Mixed recordMixed(const TempDir& dir, const std::string& name, const std::string& redact) {
  record::RecordOptions o = record::testing::optionsFor(dir, name);
  EXPECT_EQ(record::applyRedactSpec(redact, o), "");
  auto w = record::testing::make(o);
  Mixed m;
  m.h2.push_back(h2Request(1'000'000, "/pkg.Svc/Call", std::string("\x00\x00\x00\x00\x02\xff\x01", 7), true));
  m.h2.push_back(h2Request(3'000'000, "/get?x=1", "", false));
  m.h2.push_back(h2Request(5'000'000, "/pkg.Svc/Other", "text body", false));
  w->record(m.h2[0]);
  w->record(makeRequest(kHttp1Post, 2'000'000));
  w->record(m.h2[1]);
  w->record(makeRequest(kHttp1Get, 4'000'000));
  w->record(m.h2[2]);
  w->close();
  EXPECT_EQ(w->stats().written, 5u);
  m.path = dir.files(name.substr(0, name.find('.')), name.substr(name.find('.'))).at(0);
  return m;
}

class H2RoundTrip : public ::testing::TestWithParam<std::string> {};

TEST_P(H2RoundTrip, WriteThenReadGivesTheSameRequests) {
  TempDir dir;
  const Mixed m = recordMixed(dir, GetParam(), "none");
  ReadResult rr = readRecordFile(m.path);
  ASSERT_EQ(rr.error, "");
  EXPECT_EQ(rr.malformed, 0u);
  ASSERT_EQ(rr.requests.size(), 5u);
  const size_t h2Index[] = {0, 2, 4};
  for (size_t k = 0; k < 3; ++k) {
    const record::RecordedRequest& got = rr.requests[h2Index[k]];
    EXPECT_TRUE(got.isHttp2()) << k;
    // Identical to what the writer made of the captured request...
    EXPECT_EQ(got, record::fromH2Request(m.h2[k], kMay1, true)) << k;
    // ... and the request rebuilt from it is the captured one.
    const model::Request back = record::buildH2Request(got, "");
    EXPECT_EQ(back.headers, m.h2[k].headers) << k;
    EXPECT_EQ(back.trailers, m.h2[k].trailers) << k;
    EXPECT_EQ(back.body, m.h2[k].body) << k;
  }
  EXPECT_EQ(rr.requests[0].target, "/pkg.Svc/Call");
  EXPECT_EQ(rr.requests[0].unixNs, kMay1 + 1'000'000);
  EXPECT_EQ(rr.requests[0].flow, "198.18.0.1:40000->198.18.0.2:50051");
  EXPECT_EQ(rr.requests[0].neverIndexTrailers, std::vector<uint32_t>{1});
  // HTTP/1 entries stay HTTP/1, byte for byte.
  EXPECT_EQ(rr.requests[1].httpVersion, "HTTP/1.1");
  EXPECT_EQ(record::buildRequestBytes(rr.requests[1], ""), kHttp1Post);
  EXPECT_EQ(record::buildRequestBytes(rr.requests[3], ""), kHttp1Get);
  EXPECT_TRUE(rr.requests[1].trailers.empty());
}

TEST_P(H2RoundTrip, RedactedValuesComeBackAsTheMarkerWithTheirFlags) {
  TempDir dir;
  const Mixed m = recordMixed(dir, GetParam(), "header:x-sig,query:x");
  ReadResult rr = readRecordFile(m.path);
  ASSERT_EQ(rr.requests.size(), 5u);
  const model::Request a = record::buildH2Request(rr.requests[0], "-shadow");
  EXPECT_EQ(a.header("authorization"), "[REDACTED]");
  EXPECT_TRUE(a.headers[5].neverIndex);
  EXPECT_EQ(a.header(":authority"), "svc-shadow:50051");
  EXPECT_EQ(a.trailers[1], (model::HeaderField{"x-sig", "[REDACTED]", true}));
  EXPECT_EQ(a.trailers[0], (model::HeaderField{"x-checksum", "c1", false}));
  const model::Request g = record::buildH2Request(rr.requests[2], "");
  EXPECT_EQ(g.header(":path"), "/get?x=[REDACTED]");
  EXPECT_EQ(rr.requests[2].target, "/get?x=[REDACTED]");
}

INSTANTIATE_TEST_SUITE_P(Formats, H2RoundTrip, ::testing::Values("m.har", "m.jsonl"));

TEST(H2Reader, OtherSpellingsAndHandWrittenLines) {
  // JSON lines from another tool: "http_version", no pseudo-headers.
  ReadResult rr = parseRecordText(
      R"({"time":"2024-05-01T12:00:00Z","method":"GET","target":"/a?b=1","http_version":"h2",)"
      R"("headers":[["Host","svc:1"],["Connection","close"],["X-A","1"]],"trailers":[["X-T","2"]]})"
      "\n"
      R"({"time":"2024-05-01T12:00:00Z","method":"GET","target":"/","version":"HTTP/2",)"
      R"("headers":[[":method","GET"]],"headers_never_index":[5]})");
  ASSERT_EQ(rr.requests.size(), 1u);
  EXPECT_EQ(rr.malformed, 1u);  // the never-index index is past the fields
  const model::Request r = record::buildH2Request(rr.requests[0], "-shadow");
  const std::vector<model::HeaderField> expected = {{":method", "GET", false},  {":scheme", "http", false},
                                                 {":authority", "svc-shadow:1", false}, {":path", "/a?b=1", false},
                                                 {"host", "svc-shadow:1", false}, {"x-a", "1", false}};
  EXPECT_EQ(r.headers, expected);
  EXPECT_EQ(r.trailers, (std::vector<model::HeaderField>{{"x-t", "2", false}}));

  for (const char* v : {"HTTP/2", "h2", "HTTP/2.0", "http/2.0", "H2C"}) {
    EXPECT_TRUE(record::isHttp2Version(v)) << v;
  }
  for (const char* v : {"HTTP/1.1", "h3", "HTTP/2.1", ""}) {
    EXPECT_FALSE(record::isHttp2Version(v)) << v;
  }
}

class Http1Collector final : public replay::MirrorSink {
 public:
  bool submit(model::Request&& job) override {
    jobs.push_back(std::move(job));
    return true;
  }
  std::vector<model::Request> jobs;
};

bool waitFor(const std::function<bool()>& done) {
  for (int i = 0; i < 500 && !done(); ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  return done();
}

// What the mirror must receive for a captured request: only :authority changed.
std::vector<model::HeaderField> shadowHeaders(const model::Request& r) {
  std::vector<model::HeaderField> out = r.headers;
  for (auto& f : out) {
    if (f.name == ":authority") {
      f.value = "svc-shadow:50051";
    }
  }
  return out;
}

TEST(H2Replay, MixedRecordingEachRequestWithItsOwnProtocol) {
  TempDir dir;
  const Mixed m = recordMixed(dir, "mix.har", "none");
  ReadResult rr = readRecordFile(m.path);
  ASSERT_EQ(rr.requests.size(), 5u);

  h2::test::H2TestServer server;
  // A real h2c server on loopback behind the pool the command uses.
  replay::MirrorPoolOptions po;
  po.protocol = model::Protocol::kHttp2;
  po.addrs = {server.address()};
  po.maxConnections = 1;
  replay::MirrorPool pool(po);
  ASSERT_TRUE(pool.start());
  Http1Collector h1sink;
  ReplayPlan plan;
  plan.speed = 0;
  plan.passes = 2;
  plan.requests = rr.requests;
  SteadyClock clock;
  std::atomic<bool> stop{false};
  RunCounters c;
  runPlan(plan, h1sink, &pool, clock, stop, nullptr, nullptr, c);
  EXPECT_EQ(c.submitted, 10u);
  EXPECT_EQ(c.h2Submitted, 6u);
  EXPECT_EQ(c.refused, 0u);
  EXPECT_EQ(c.passes, 2u);
  ASSERT_TRUE(waitFor([&] { return server.requestCount() == 6; })) << server.requestCount();
  pool.stop(std::chrono::milliseconds(2000));
  EXPECT_EQ(pool.stats().submitted, 6u);
  EXPECT_EQ(pool.stats().responses, 6u);
  EXPECT_EQ(pool.stats().responses2xx, 6u);
  EXPECT_EQ(pool.stats().errors(), 0u);

  // The server records a stream when it ends, so a short one may overtake a
  // long one: compare by :path (each recorded request twice, one per pass).
  std::vector<model::Request> got = server.requests();
  ASSERT_EQ(got.size(), 6u);
  auto byPath = [](const model::Request& a, const model::Request& b) { return a.target() < b.target(); };
  std::stable_sort(got.begin(), got.end(), byPath);
  std::vector<model::Request> want = {m.h2[0], m.h2[0], m.h2[1], m.h2[1], m.h2[2], m.h2[2]};
  std::stable_sort(want.begin(), want.end(), byPath);
  for (size_t i = 0; i < got.size(); ++i) {
    EXPECT_EQ(got[i].headers, shadowHeaders(want[i])) << i;
    EXPECT_EQ(got[i].body, want[i].body) << i;
    EXPECT_EQ(got[i].trailers, want[i].trailers) << i;
  }
  // The HTTP/1 entries went the HTTP/1 way, Host suffixed.
  ASSERT_EQ(h1sink.jobs.size(), 4u);
  EXPECT_EQ(h1sink.jobs[0].bytes,
            "POST /h1/a HTTP/1.1\r\nHost: web-shadow:8000\r\nContent-Length: 3\r\nX-Dup: a\r\nX-Dup: b\r\n\r\nabc");
  EXPECT_EQ(h1sink.jobs[1].bytes, "GET /h1/b?q=1 HTTP/1.1\r\nHost: web-shadow:8000\r\n\r\n");
}

TEST(H2Replay, WithoutAnHttp2SinkHttp2RequestsAreRefused) {
  Http1Collector h1sink;
  ReplayPlan plan;
  plan.speed = 0;
  plan.requests = {record::fromH2Request(h2Request(0, "/", "", false), 0, true)};
  SteadyClock clock;
  std::atomic<bool> stop{false};
  RunCounters c;
  runPlan(plan, h1sink, clock, stop, nullptr, nullptr, c);
  EXPECT_EQ(c.submitted, 1u);
  EXPECT_EQ(c.refused, 1u);
  EXPECT_TRUE(h1sink.jobs.empty());
}

int runCli(std::vector<std::string> args) {
  std::vector<char*> argv;
  for (auto& a : args) {
    argv.push_back(a.data());
  }
  return runReplayCommand(static_cast<int>(argv.size()), argv.data());
}

// The value on the first summary row labelled `label` after the line
// `section` ("": from the top).
std::string summaryValue(const std::string& t, const std::string& section, const std::string& label) {
  size_t pos = 0;
  if (!section.empty()) {
    pos = t.find("\n" + section + "\n");
    if (pos == std::string::npos) {
      return "missing section";
    }
    pos += section.size() + 2;
  }
  while (pos < t.size()) {
    const size_t eol = t.find('\n', pos);
    std::string line = t.substr(pos, eol - pos);
    pos = eol == std::string::npos ? t.size() : eol + 1;
    line = line.substr(std::min(line.size(), line.find_first_not_of(' ')));
    if (line.starts_with(label + "  ")) {
      std::string v = line.substr(label.size());
      return v.substr(v.find_first_not_of(' '));
    }
  }
  return "missing";
}

TEST(H2Replay, CommandReplaysAnHttp2RecordingOverH2c) {
  TempDir dir;
  auto w = record::testing::make(record::testing::optionsFor(dir, "only.jsonl"));
  ASSERT_NE(w, nullptr);
  for (int i = 0; i < 20; ++i) {
    model::Request r = h2Request(1'000'000 + i * 1000, "/n/" + std::to_string(i), i % 2 ? "b" : "", i % 3 == 0);
    if (i == 7) {
      r.headers.push_back({"x-respond-status", "503", false});
    }
    w->record(std::move(r));
  }
  w->close();
  ASSERT_EQ(w->stats().written, 20u);
  const std::string file = dir.files("only", ".jsonl").at(0);

  h2::test::H2TestServer server;
  testing::internal::CaptureStdout();
  const int rc = runCli({"replay", file, "--mirror", "127.0.0.1:" + std::to_string(server.port()), "--speed", "0",
                         "--path-prefix", "/n/", "--method", "get", "--method", "POST", "--timeout-ms", "2000"});
  const std::string out = testing::internal::GetCapturedStdout();
  ASSERT_EQ(rc, 0) << out;
  EXPECT_EQ(summaryValue(out, "", "requests read"), "20") << out;
  EXPECT_EQ(summaryValue(out, "", "of them HTTP/2"), "20") << out;
  EXPECT_EQ(summaryValue(out, "", "sent to the replayer"), "0") << out;
  EXPECT_EQ(summaryValue(out, "HTTP/2 (h2c)", "sent to the HTTP/2 pool"), "20") << out;
  EXPECT_EQ(summaryValue(out, "HTTP/2 (h2c)", "2xx"), "19") << out;
  EXPECT_EQ(summaryValue(out, "HTTP/2 (h2c)", "5xx"), "1") << out;
  EXPECT_EQ(summaryValue(out, "HTTP/2 (h2c)", "errors"), "0") << out;
  const std::vector<model::Request> got = server.requests();
  ASSERT_EQ(got.size(), 20u);
  std::vector<std::string> paths;
  for (const auto& r : got) {
    EXPECT_EQ(r.header(":authority"), "svc-shadow:50051");
    EXPECT_EQ(r.header("authorization"), "[REDACTED]");  // recorded with the default redaction
    EXPECT_TRUE(r.headers[5].neverIndex);
    paths.emplace_back(r.header(":path"));
  }
  std::sort(paths.begin(), paths.end());
  EXPECT_EQ(paths.front(), "/n/0");
}

TEST(H2Replay, ProgressAddsUpBothProtocolsAndSummaryHasAnHttp2Section) {
  replay::MirrorStats rs;
  rs.responses2xx = 6;
  rs.responses5xx = 1;
  rs.errorsReset = 2;
  rs.queueFull = 1;
  replay::MirrorStats hs;
  hs.submitted = 9;
  hs.responses = 6;
  hs.responses2xx = 4;
  hs.responses4xx = 2;
  hs.grpcError = 1;
  hs.errorsResponseTimeout = 2;
  hs.queueFull = 1;
  hs.inFlight = 3;
  EXPECT_EQ(formatProgress(10, 20, 2.0, rs, &hs),
            "replay 2.0s sent 10/20 (5.0 req/s) | 2xx 10 3xx 0 4xx 2 5xx 1 | errors 4 | dropped 2 | in flight 3");
  ReplaySummary s;
  s.requestsRead = 19;
  s.http2Read = 9;
  const std::string t = formatSummary(s, rs, &hs);
  EXPECT_EQ(summaryValue(t, "", "of them HTTP/2"), "9") << t;
  EXPECT_EQ(summaryValue(t, "", "2xx"), "6") << t;
  EXPECT_EQ(summaryValue(t, "HTTP/2 (h2c)", "sent to the HTTP/2 pool"), "9") << t;
  EXPECT_EQ(summaryValue(t, "HTTP/2 (h2c)", "2xx"), "4") << t;
  EXPECT_EQ(summaryValue(t, "HTTP/2 (h2c)", "4xx"), "2") << t;
  EXPECT_EQ(summaryValue(t, "HTTP/2 (h2c)", "grpc-status not 0"), "1") << t;
  EXPECT_EQ(summaryValue(t, "HTTP/2 (h2c)", "errors"), "2") << t;
  EXPECT_EQ(summaryValue(t, "HTTP/2 (h2c)", "response timeout"), "2") << t;
  EXPECT_EQ(summaryValue(t, "HTTP/2 (h2c)", "dropped"), "1") << t;
  EXPECT_EQ(formatSummary(s, rs).find("HTTP/2 (h2c)"), std::string::npos);
}

}  // namespace
}  // namespace shadowtap::offline
