#include "http/chunked_body.h"

#include <string>
#include <utility>
#include <vector>

#include <gtest/gtest.h>

namespace shadowtap::http {
namespace {

using Fields = std::vector<model::HeaderField>;

TEST(DecodeChunkedBody, JoinsTheChunksData) {
  // Data is counted, not scanned: CR, LF, NUL and hex digits inside it are data.
  const std::string lineEnds("a\r\n0\r\n\r\n\0b", 10);
  const std::vector<std::pair<std::string, std::string>> cases = {
      {"3\r\nabc\r\n2\r\nde\r\nA\r\n0123456789\r\n0\r\n\r\n", "abcde0123456789"},
      {"a\r\n" + lineEnds + "\r\n0\r\n\r\n", lineEnds},
      // Sizes in either case, with leading zeros.
      {"b\r\n0123456789a\r\n000000000000000000001\r\nB\r\n0000\r\n\r\n", "0123456789aB"},
      // Extensions are skipped.
      {"5;ext=1\r\nhello\r\n1;a=\"b;c\";d\r\n!\r\n0;last\r\n\r\n", "hello!"},
      {"0\r\n\r\n", ""},
  };
  for (const auto& [body, data] : cases) {
    const auto d = decodeChunkedBody(body);
    ASSERT_TRUE(d) << body;
    EXPECT_EQ(d->data, data) << body;
    EXPECT_TRUE(d->trailers.empty()) << body;
  }
}

TEST(DecodeChunkedBody, Trailers) {
  const auto d = decodeChunkedBody("5\r\nhello\r\n0\r\nX-Sum: 9\r\nX-Empty:\r\nX-Pad:\t a b \t\r\nnot a field\r\n\r\n");
  ASSERT_TRUE(d);
  EXPECT_EQ(d->data, "hello");
  // Names as sent, values without the OWS around them; a line without a colon is left out.
  const Fields want = {{"X-Sum", "9", false}, {"X-Empty", "", false}, {"X-Pad", "a b", false}};
  EXPECT_EQ(d->trailers, want);
}

TEST(DecodeChunkedBody, Rejects) {
  const std::vector<std::string> bad = {
      "",                                      // nothing
      "5\nhello\r\n0\r\n\r\n",                 // bare LF after a size
      "5\r\nhello\n0\r\n\r\n",                 // bare LF after data
      "5\r\nhello\r\n0\n\r\n",                 // bare LF after the last size
      "5\r\nhello\r\n0\r\nT: 1\n\r\n",         // bare LF after a trailer
      "5;a\nb\r\nhello\r\n0\r\n\r\n",          // bare LF in an extension
      "5;a\rb\r\nhello\r\n0\r\n\r\n",          // CR without LF in an extension
      "5\r\nhello\r\n0\r\n",                   // no final CRLF
      "5\r\nhello\r\n0\r\nT: 1\r\n",           // no final CRLF after a trailer
      "5\r\nhello\r\n",                        // no last chunk
      "5\r\nhell\r\n0\r\n\r\n",                // data shorter than its size
      "5\r\nhello!\r\n0\r\n\r\n",              // data longer than its size
      "zz\r\nhello\r\n0\r\n\r\n",              // not hex
      "\r\n0\r\n\r\n",                         // no size
      " 5\r\nhello\r\n0\r\n\r\n",              // space before the size
      "x5\r\nhello\r\n0\r\n\r\n",              // a letter before the size
      "10000000000000000\r\nx\r\n0\r\n\r\n",   // 2^64: overflows
      "fffffffffffffffff\r\nx\r\n0\r\n\r\n",   // 17 digits: overflows
      "0\r\n\r\nX",                            // bytes after the end
      "0\r\n\r\n\r\n",                         // a CRLF after the end
      "5\r\nhello\r\n0\r\n\r\nGET / HTTP/1.1\r\n\r\n",  // a request after the end
  };
  for (const std::string& body : bad) {
    EXPECT_FALSE(decodeChunkedBody(body)) << body;
    EXPECT_FALSE(isWellFormedChunkedBody(body)) << body;
  }
}

// A cut body is not a body: every strict prefix of a whole one is refused,
// and the whole one decodes to its data and trailers.
TEST(DecodeChunkedBody, EveryCutOfAWholeBodyIsRefused) {
  struct Whole {
    std::string body;
    std::string data;
    size_t trailers;
  };
  const std::vector<Whole> bodies = {{"5\r\nhello\r\n0\r\n\r\n", "hello", 0},
                                     {"5;a=b\r\nhello\r\n1\r\n!\r\n0\r\nT: 1\r\nU: 2\r\n\r\n", "hello!", 2},
                                     {"0\r\n\r\n", "", 0}};
  for (const Whole& w : bodies) {
    for (size_t len = 0; len < w.body.size(); ++len) {
      EXPECT_FALSE(decodeChunkedBody(std::string_view(w.body).substr(0, len))) << w.body << " cut at " << len;
    }
    const auto whole = decodeChunkedBody(w.body);
    ASSERT_TRUE(whole) << w.body;
    EXPECT_EQ(whole->data, w.data);
    EXPECT_EQ(whole->trailers.size(), w.trailers);
  }
}

TEST(EndsInChunked, LastCodingIsChunked) {
  for (const char* v : {"chunked", "CHUNKED", "Chunked", " chunked ", "\tchunked\t", "gzip, chunked", "gzip,chunked",
                        "gzip,\tchunked", "chunked, chunked", "gzip , deflate ,  chunked  "}) {
    EXPECT_TRUE(endsInChunked(v)) << v;
  }
}

TEST(EndsInChunked, LastCodingIsNotChunked) {
  for (const char* v : {"", " ", "gzip", "chunked, gzip", "chunked,", "chunked ,", "gzip chunked", "xchunked",
                        "chunkedx", "chunked;q=1", "\"chunked\"", "chunk ed"}) {
    EXPECT_FALSE(endsInChunked(v)) << v;
  }
}

}  // namespace
}  // namespace shadowtap::http
