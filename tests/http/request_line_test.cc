#include "http/request_line.h"

#include <string>

#include <gtest/gtest.h>

namespace shadowtap::http {
namespace {

constexpr size_t kCap = 1024;

TEST(MatchRequestLine, CompleteLines) {
  EXPECT_EQ(matchRequestLine("GET / HTTP/1.1\r\n", kCap), LineMatch::kMatch);
  EXPECT_EQ(matchRequestLine("POST /a?b=c HTTP/1.0\r\nHost: x\r\n", kCap), LineMatch::kMatch);
  EXPECT_EQ(matchRequestLine("PROPFIND /dav HTTP/1.1\r\n", kCap), LineMatch::kMatch);
  EXPECT_EQ(matchRequestLine("M-SEARCH * HTTP/1.1\r\n", kCap), LineMatch::kMatch);
  EXPECT_EQ(matchRequestLine("CONNECT a:443 HTTP/1.1\r\n", kCap), LineMatch::kMatch);
}

TEST(MatchRequestLine, Rejects) {
  for (const char* s : {"get / HTTP/1.1\r\n", "FOO / HTTP/1.1\r\n", "GET  / HTTP/1.1\r\n",
                        "GET / HTTP/2.0\r\n", "GET / HTTP/1.1\n", "GET / HTTP/1.2\r\n",
                        "GET /\x01 HTTP/1.1\r\n", "PRI * HTTP/2.0\r\n", "HTTP/1.1 200 OK\r\n",
                        "GET / HTTP/1.1 \r\n", " GET / HTTP/1.1\r\n", "\x16\x03\x01"}) {
    EXPECT_EQ(matchRequestLine(s, kCap), LineMatch::kNoMatch) << s;
  }
}

TEST(MatchRequestLine, EveryPrefixOfAValidLineNeedsMore) {
  const std::string line = "DELETE /x/y HTTP/1.1\r\n";
  for (size_t n = 0; n < line.size(); ++n) {
    EXPECT_EQ(matchRequestLine(std::string_view(line).substr(0, n), kCap), LineMatch::kNeedMore) << n;
  }
}

TEST(MatchRequestLine, PrefixOfNoMethodIsRejectedEarly) {
  EXPECT_EQ(matchRequestLine("GX", kCap), LineMatch::kNoMatch);
  EXPECT_EQ(matchRequestLine("Z", kCap), LineMatch::kNoMatch);
  EXPECT_EQ(matchRequestLine("GE", kCap), LineMatch::kNeedMore);
}

TEST(MatchRequestLine, LongerThanCapNeverMatches) {
  const std::string line = "GET /" + std::string(100, 'a') + " HTTP/1.1\r\n";
  EXPECT_EQ(matchRequestLine(line, line.size()), LineMatch::kMatch);
  EXPECT_EQ(matchRequestLine(line, line.size() - 1), LineMatch::kTooLong);
  EXPECT_EQ(matchRequestLine(std::string_view(line).substr(0, 50), 50), LineMatch::kTooLong);
  EXPECT_EQ(matchRequestLine(std::string_view(line).substr(0, 49), 50), LineMatch::kNeedMore);
}

}  // namespace
}  // namespace shadowtap::http
