#include "record/dry_run_writer.h"

#include <algorithm>
#include <cstdio>
#include <ctime>
#include <string>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

namespace shadowtap::record {
namespace {

model::Request sampleRequest() {
  model::Request r;
  r.flow.saddr = {198, 18, 0, 1};
  r.flow.daddr = {198, 18, 0, 2};
  r.flow.sport = 40000;
  r.flow.dport = 8000;
  r.ruleId = 3;
  r.tsNs = 1'500'000;  // 1.5 ms after the monotonic epoch
  r.method = "POST";
  r.bytes = "POST /p?q=\"1\" HTTP/1.1\r\nHost: httpbin:8000\r\nContent-Length: 5\r\n\r\nhello";
  r.targetOffset = 5;
  r.targetLength = 8;
  r.hostOffset = r.bytes.find("httpbin");
  r.hostLength = 12;
  r.bodyOffset = r.bytes.size() - 5;
  r.bodyLength = 5;
  return r;
}

// Reads back what the writer wrote to a temporary file.
std::string contents(std::FILE* f) {
  std::rewind(f);
  std::string s;
  char buf[512];
  size_t n;
  while ((n = std::fread(buf, 1, sizeof(buf), f)) > 0) {
    s.append(buf, n);
  }
  return s;
}

TEST(DryRunWriter, OneJsonLinePerRequest) {
  std::FILE* f = std::tmpfile();
  ASSERT_NE(f, nullptr);
  // Monotonic 0 is 2024-05-01T12:00:00Z.
  DryRunWriter w(f, "-shadow", int64_t{1714564800} * 1'000'000'000);
  w.onRequest(sampleRequest());
  model::Request second = sampleRequest();
  second.tsNs += 2'000'000'000;
  w.onRequest(std::move(second));
  const std::string out = contents(f);
  std::fclose(f);

  const size_t nl = out.find('\n');
  ASSERT_NE(nl, std::string::npos);
  EXPECT_EQ(out.substr(0, nl),
            R"({"time":"2024-05-01T12:00:00.001500Z","flow":"198.18.0.1:40000->198.18.0.2:8000",)"
            R"("rule":3,"method":"POST","target":"/p?q=\"1\"","host":"httpbin:8000",)"
            R"("shadow_host":"httpbin-shadow:8000","body_length":5,"bytes":70})");
  const auto j2 = nlohmann::json::parse(out.substr(nl + 1));
  EXPECT_EQ(j2["time"], std::string("2024-05-01T12:00:02.001500Z"));
  EXPECT_EQ(out.back(), '\n');
  EXPECT_EQ(std::count(out.begin(), out.end(), '\n'), 2);
  EXPECT_EQ(w.stats().lines, 2u);
  EXPECT_EQ(w.stats().writeErrors, 0u);
}

// A rule with mirrors: the line lists the mirrors the request would go to,
// each with its host there; shadow_host is the first one's.
TEST(DryRunWriter, ListsTheMirrorsARequestWouldGoTo) {
  DryRunWriter w(stdout, "-shadow", 0);
  const auto j = nlohmann::json::parse(
      w.format(sampleRequest(), {{"v2:8000", "httpbin-shadow:8000"}, {"v3:9000", "httpbin:8000"}}));
  EXPECT_EQ(j["shadow_host"], "httpbin-shadow:8000");
  ASSERT_EQ(j["mirrors"].size(), 2u);
  EXPECT_EQ(j["mirrors"][0]["target"], "v2:8000");
  EXPECT_EQ(j["mirrors"][1]["target"], "v3:9000");
  EXPECT_EQ(j["mirrors"][1]["shadow_host"], "httpbin:8000");
  EXPECT_FALSE(nlohmann::json::parse(w.format(sampleRequest())).contains("mirrors")) << "a rule without mirror=";
}

TEST(DryRunWriter, InvalidUtf8AndControlBytesStayOneValidLine) {
  DryRunWriter w(stdout, "-shadow", 0);
  model::Request r = sampleRequest();
  r.bytes = "GET /caf\xe9\n\x01 HTTP/1.1\r\nHost: [2001:db8::1]:80\r\n\r\n";
  r.targetOffset = 4;
  r.targetLength = 7;
  r.hostOffset = r.bytes.find('[');
  r.hostLength = 16;
  r.bodyLength = 0;
  const std::string line = w.format(r);
  EXPECT_EQ(line.find('\n'), std::string::npos);
  const auto j = nlohmann::json::parse(line);
  EXPECT_EQ(j["target"], std::string("/caf\xef\xbf\xbd\n\x01"));  // U+FFFD; escapes decode back
  EXPECT_EQ(j["shadow_host"], std::string("[2001:db8::1]-shadow:80"));
  EXPECT_EQ(j["flow"], std::string("198.18.0.1:40000->198.18.0.2:8000"));
}

TEST(DryRunWriter, WriteErrorsAreCounted) {
  std::FILE* f = std::fopen("/dev/full", "w");
  if (f == nullptr) {
    GTEST_SKIP() << "/dev/full not available";
  }
  DryRunWriter w(f, "-shadow", 0);
  w.onRequest(sampleRequest());
  std::fclose(f);
  EXPECT_EQ(w.stats().lines, 0u);
  EXPECT_EQ(w.stats().writeErrors, 1u);
}

TEST(DryRunWriter, MeasuredOffsetGivesTheCurrentTime) {
  DryRunWriter w(stdout, "-shadow");
  timespec mono{};
  clock_gettime(CLOCK_MONOTONIC, &mono);
  model::Request r = sampleRequest();
  r.tsNs = static_cast<uint64_t>(mono.tv_sec) * 1'000'000'000ULL + static_cast<uint64_t>(mono.tv_nsec);
  const auto j = nlohmann::json::parse(w.format(r));
  const time_t now = time(nullptr);
  const std::string expected = formatRfc3339Utc(int64_t{now} * 1'000'000'000).substr(0, 16);  // to the minute
  const std::string got = j["time"];
  // Within a minute boundary either side is fine; compare the date and hour.
  EXPECT_EQ(got.substr(0, 13), expected.substr(0, 13));
  EXPECT_EQ(got.back(), 'Z');
}

TEST(FormatRfc3339Utc, Epochs) {
  EXPECT_EQ(formatRfc3339Utc(0), "1970-01-01T00:00:00.000000Z");
  EXPECT_EQ(formatRfc3339Utc(-1000), "1969-12-31T23:59:59.999999Z");
  EXPECT_EQ(formatRfc3339Utc(int64_t{951782400} * 1'000'000'000 + 999'999'999), "2000-02-29T00:00:00.999999Z");
}

TEST(DryRunWriter, Http2RequestsGetTheirOwnFields) {
  std::FILE* f = std::tmpfile();
  ASSERT_NE(f, nullptr);
  DryRunWriter w(f, "-shadow", int64_t{1714564800} * 1'000'000'000);
  model::Request r;
  r.flow = sampleRequest().flow;
  r.ruleId = 2;
  r.streamId = 5;
  r.tsNs = 1'500'000;
  r.headers = {{":method", "POST", false},
               {":scheme", "http", false},
               {":authority", "grpc.svc:8080", false},
               {":path", "/helloworld.Greeter/SayHello", false},
               {"te", "trailers", false}};
  r.body = std::string("\0\0\0\0\x03" "abc", 8);
  r.trailers = {{"x-checksum", "42", false}};
  r.finishHttp2();
  w.onRequest(std::move(r));
  const std::string out = contents(f);
  std::fclose(f);
  // Fields: 7+4+4 + 7+4+4 + 10+13+4 + 5+28+4 + 2+8+4 = 108, trailer 10+2+4 = 16, body 8.
  EXPECT_EQ(out,
            R"({"time":"2024-05-01T12:00:00.001500Z","flow":"198.18.0.1:40000->198.18.0.2:8000",)"
            R"("rule":2,"method":"POST","target":"/helloworld.Greeter/SayHello","host":"grpc.svc:8080",)"
            R"("shadow_host":"grpc.svc-shadow:8080","body_length":8,"bytes":132,"protocol":"h2","stream":5,)"
            R"("trailers":1})"
            "\n");
  EXPECT_EQ(w.stats().lines.load(), 1u);
}

}  // namespace
}  // namespace shadowtap::record
