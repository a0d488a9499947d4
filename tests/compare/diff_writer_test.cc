#include "compare/diff_writer.h"

#include <gtest/gtest.h>

#include <cstdio>
#include <nlohmann/json.hpp>

#include "compare_test_util.h"

namespace shadowtap::compare {
namespace {

using nlohmann::json;
using test::load;
using test::makeResponse;

// Collects what a DiffWriter writes, through a memory stream.
struct Captured {
  char* data = nullptr;
  size_t size = 0;
  std::FILE* f = open_memstream(&data, &size);
  ~Captured() {
    if (f != nullptr) {
      std::fclose(f);
    }
    std::free(data);
  }
  std::vector<std::string> lines() {
    std::fflush(f);
    std::vector<std::string> out;
    std::string all(data, size);
    size_t start = 0;
    for (size_t nl; (nl = all.find('\n', start)) != std::string::npos; start = nl + 1) {
      out.push_back(all.substr(start, nl - start));
    }
    return out;
  }
};

struct Pair {
  model::Response primary = makeResponse(200,
                                  {{"Content-Type", "text/plain"},
                                   {"Set-Cookie", "session=SECRET-P"},
                                   {"authorization", "Bearer SECRET-A"}},
                                  "primary body \xff");
  model::Response mirror = makeResponse(500, {{"Content-Type", "text/plain"}, {"Set-Cookie", "session=SECRET-M"}}, "mirror body");
  CompareResult result;
  DiffRecord record() {
    result.endpoint = "GET /users/{n}";
    result.outcome = Outcome::kDifferent;
    result.differences = {{"status", "status", "200", "500", false},
                          {"headers.set-cookie", "headers.set-cookie", "session=SECRET-P", "session=SECRET-M", false},
                          {"headers.authorization", "headers.authorization", "Bearer SECRET-A", std::nullopt, false}};
    result.noisyPaths = {"$.now"};
    DiffRecord r;
    r.ruleId = 2;
    r.method = "GET";
    r.target = "/users/7?x=1";
    r.result = &result;
    r.primary = &primary;
    r.mirror = &mirror;
    return r;
  }
};

TEST(DiffWriter, WritesRedactedLines) {
  Captured out;
  DiffWriter w(out.f, DiffWriterOptions{});
  Pair p;
  w.write(p.record());
  const auto lines = out.lines();
  ASSERT_EQ(lines.size(), 1u);
  EXPECT_EQ(lines[0].find("SECRET"), std::string::npos) << lines[0];
  const json j = json::parse(lines[0]);
  EXPECT_EQ(j["type"], "diff");
  EXPECT_EQ(j["rule"], 2);
  EXPECT_EQ(j["endpoint"], "GET /users/{n}");
  EXPECT_EQ(j["target"], "/users/7?x=1");
  EXPECT_EQ(j["outcome"], "different");
  EXPECT_EQ(j["primary"]["status"], 200);
  EXPECT_EQ(j["primary"]["headers"][1], json::array({"Set-Cookie", "[redacted]"}));
  EXPECT_EQ(j["primary"]["headers"][2], json::array({"authorization", "[redacted]"}));
  EXPECT_EQ(j["primary"]["headers"][0], json::array({"Content-Type", "text/plain"}));
  EXPECT_EQ(j["primary"]["body"], "primary body \xef\xbf\xbd");  // invalid UTF-8 replaced
  EXPECT_EQ(j["mirror"]["status"], 500);
  EXPECT_EQ(j["differences"][0]["primary"], "200");
  EXPECT_EQ(j["differences"][1]["primary"], "[redacted]");
  EXPECT_EQ(j["differences"][1]["mirror"], "[redacted]");
  EXPECT_TRUE(j["differences"][2]["mirror"].is_null());
  EXPECT_EQ(j["noisy_fields"], json::array({"$.now"}));
  EXPECT_FALSE(j.contains("secondary"));
  EXPECT_EQ(load(w.stats().lines), 1u);
}

TEST(DiffWriter, UserNamedHeadersAreRedactedToo) {
  Captured out;
  DiffWriterOptions o;
  o.redactHeaders = {"X-Api-Key"};
  DiffWriter w(out.f, o);
  Pair p;
  p.primary.headers.push_back({"x-api-key", "SECRET-K"});
  w.write(p.record());
  const auto lines = out.lines();
  ASSERT_EQ(lines.size(), 1u);
  EXPECT_EQ(lines[0].find("SECRET"), std::string::npos);
}

TEST(DiffWriter, SkipsEqualAndOptionallyNoisy) {
  Captured out;
  DiffWriterOptions o;
  o.writeNoisy = false;
  DiffWriter w(out.f, o);
  Pair p;
  DiffRecord r = p.record();
  p.result.outcome = Outcome::kEqual;
  w.write(r);
  p.result.outcome = Outcome::kNoisy;
  w.write(r);
  EXPECT_TRUE(out.lines().empty());
  EXPECT_EQ(load(w.stats().equalSkipped), 2u);
}

TEST(DiffWriter, CapsBodiesLinesAndFile) {
  Captured out;
  DiffWriterOptions o;
  o.maxBodyBytes = 4;
  o.maxLineBytes = 1500;
  o.maxFileBytes = 2500;
  DiffWriter w(out.f, o);
  Pair p;
  p.primary.body = std::string(100, 'a');
  p.primary.bodyLength = 100;
  w.write(p.record());
  auto lines = out.lines();
  ASSERT_EQ(lines.size(), 1u);
  json j = json::parse(lines[0]);
  EXPECT_EQ(j["primary"]["body"], "aaaa");
  EXPECT_EQ(j["primary"]["body_length"], 100);
  EXPECT_EQ(j["primary"]["body_truncated"], true);

  // A long header value pushes the line over maxLineBytes: bodies go first.
  o.maxBodyBytes = 4096;
  DiffWriter w2(out.f, o);
  p.primary.body = std::string(1000, 'b');
  w2.write(p.record());
  lines = out.lines();
  ASSERT_EQ(lines.size(), 2u);
  j = json::parse(lines[1]);
  EXPECT_EQ(j["primary"]["body"], "");
  EXPECT_EQ(j["bodies_omitted"], true);
  EXPECT_EQ(load(w2.stats().shrunk), 1u);
  p.primary.headers.push_back({"X-Huge", std::string(2000, 'h')});
  w2.write(p.record());
  EXPECT_EQ(load(w2.stats().tooLong), 1u);
  p.primary.headers.pop_back();
  // 2500 bytes per writer: the next line does not fit.
  w2.write(p.record());
  w2.write(p.record());
  EXPECT_GE(load(w2.stats().fileFull), 1u);
  EXPECT_LE(load(w2.stats().lines) * 700, 2500u);
}

TEST(DiffWriter, SummaryLinesCarryTheEndpointCounters) {
  Captured out;
  DiffWriter w(out.f, DiffWriterOptions{});
  CompareStats stats;
  stats.count(1, "GET /a", Outcome::kEqual);
  stats.count(1, "GET /a", Outcome::kDifferent);
  stats.count(1, "GET /a", Outcome::kNoisy);
  stats.count(2, "POST /b", Outcome::kEqual);
  w.writeSummary(stats);
  const auto lines = out.lines();
  ASSERT_EQ(lines.size(), 2u);
  const json a = json::parse(lines[0]);
  EXPECT_EQ(a, json::parse(R"({"type":"summary","rule":1,"endpoint":"GET /a","compared":3,"equal":1,"different":1,"noisy":1})"));
  EXPECT_EQ(json::parse(lines[1])["endpoint"], "POST /b");
}

}  // namespace
}  // namespace shadowtap::compare
