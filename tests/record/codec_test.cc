#include "record/codec.h"

#include <gtest/gtest.h>

#include <limits>

#include "record/recorded_request.h"

namespace shadowtap::record {
namespace {

TEST(Codec, Base64RoundTripAndVectors) {
  EXPECT_EQ(base64Encode(""), "");
  EXPECT_EQ(base64Encode("f"), "Zg==");
  EXPECT_EQ(base64Encode("fo"), "Zm8=");
  EXPECT_EQ(base64Encode("foo"), "Zm9v");
  EXPECT_EQ(base64Encode("foobar"), "Zm9vYmFy");
  std::string all;
  for (int i = 0; i < 256; ++i) {
    all += static_cast<char>(i);
  }
  for (size_t n = 0; n <= all.size(); n += 37) {
    EXPECT_EQ(base64Decode(base64Encode(all.substr(0, n))), all.substr(0, n));
  }
  EXPECT_FALSE(base64Decode("Zg="));
  EXPECT_FALSE(base64Decode("Z=g="));
  EXPECT_FALSE(base64Decode("Zm9v!A=="));
}

TEST(Codec, Sha256KnownAnswers) {
  EXPECT_EQ(sha256Hex(""), "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
  EXPECT_EQ(sha256Hex("abc"), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
  EXPECT_EQ(sha256Hex("abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq"),
            "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1");
  // Incremental updates across block boundaries give the same digest.
  std::string million(1'000'000, 'a');
  Sha256 s;
  for (size_t i = 0; i < million.size(); i += 999) {
    s.update(std::string_view(million).substr(i, 999));
  }
  EXPECT_EQ(s.hexDigest(), "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0");
}

TEST(Codec, Utf8Validation) {
  EXPECT_TRUE(isValidUtf8("plain ascii"));
  EXPECT_TRUE(isValidUtf8("caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80"));
  EXPECT_FALSE(isValidUtf8("caf\xe9"));
  EXPECT_FALSE(isValidUtf8("\xc0\xaf"));          // overlong
  EXPECT_FALSE(isValidUtf8("\xed\xa0\x80"));      // surrogate
  EXPECT_FALSE(isValidUtf8("\xf4\x90\x80\x80"));  // > U+10FFFF
  EXPECT_FALSE(isValidUtf8("\xe2\x82"));          // cut
}

TEST(Codec, Rfc3339) {
  EXPECT_EQ(parseRfc3339("2024-05-01T12:00:00.001500Z"), int64_t{1714564800} * 1'000'000'000 + 1'500'000);
  EXPECT_EQ(parseRfc3339("2024-05-01T14:00:00+02:00"), int64_t{1714564800} * 1'000'000'000);
  EXPECT_EQ(parseRfc3339("1970-01-01T00:00:00Z"), 0);
  EXPECT_FALSE(parseRfc3339("2024-05-01 12:00"));
  EXPECT_FALSE(parseRfc3339("2024-05-01T12:00:00"));
  EXPECT_FALSE(parseRfc3339("2024-13-01T12:00:00Z"));
}

TEST(Codec, Rfc3339FieldOutOfRangeIsRejectedNotRolledOver) {
  EXPECT_FALSE(parseRfc3339("2024-02-30T12:00:00Z"));  // not March 1
  EXPECT_FALSE(parseRfc3339("2023-02-29T12:00:00Z"));
  EXPECT_EQ(parseRfc3339("2024-02-29T00:00:00Z"), int64_t{1709164800} * 1'000'000'000);  // a leap year
  EXPECT_FALSE(parseRfc3339("2100-02-29T00:00:00Z"));  // not one
  EXPECT_TRUE(parseRfc3339("2000-02-29T00:00:00Z"));   // one again
  EXPECT_FALSE(parseRfc3339("2024-04-31T00:00:00Z"));
  EXPECT_FALSE(parseRfc3339("2024-00-10T00:00:00Z"));
  EXPECT_FALSE(parseRfc3339("2024-05-00T00:00:00Z"));
  EXPECT_FALSE(parseRfc3339("2024-05-01T24:00:00Z"));
  EXPECT_FALSE(parseRfc3339("2024-05-01T12:60:00Z"));
  EXPECT_FALSE(parseRfc3339("2024-05-01T12:00:61Z"));
  EXPECT_EQ(parseRfc3339("2016-12-31T23:59:60Z"), int64_t{1483228800} * 1'000'000'000);  // leap second
  EXPECT_FALSE(parseRfc3339("2024-05-01T12:00:00+24:00"));
  EXPECT_FALSE(parseRfc3339("2024-05-01T12:00:00+01:60"));
  EXPECT_FALSE(parseRfc3339("2024-05-01T12:00:00+99:99"));
}

TEST(Codec, Rfc3339OutsideInt64NanosecondsIsRejected) {
  constexpr int64_t kMax = std::numeric_limits<int64_t>::max();
  constexpr int64_t kMin = std::numeric_limits<int64_t>::min();
  EXPECT_FALSE(parseRfc3339("0001-01-01T00:00:00Z"));  // Go's zero time
  EXPECT_FALSE(parseRfc3339("9999-12-31T23:59:59Z"));
  EXPECT_EQ(parseRfc3339("2262-04-11T23:47:16.854775807Z"), kMax);
  EXPECT_FALSE(parseRfc3339("2262-04-11T23:47:16.854775808Z"));
  EXPECT_FALSE(parseRfc3339("2262-04-11T23:47:17Z"));
  EXPECT_EQ(parseRfc3339("1677-09-21T00:12:43.145224192Z"), kMin);
  EXPECT_FALSE(parseRfc3339("1677-09-21T00:12:43.145224191Z"));
  EXPECT_FALSE(parseRfc3339("1677-09-21T00:12:42Z"));
  // The offset moves a time in range out of it.
  EXPECT_FALSE(parseRfc3339("2262-04-11T23:47:16-01:00"));
}

}  // namespace
}  // namespace shadowtap::record
