#include "rules/request_transform.h"

#include <gtest/gtest.h>

namespace shadowtap::rules {
namespace {

Rule ruleWith(const std::string& keys) {
  std::string error;
  auto r = parseRule("port=80,mirror=m:80" + keys, RuleDefaults{}, false, &error);
  EXPECT_TRUE(r) << error;
  return r.value_or(Rule{});
}

TEST(RequestTransformTest, NoSwitchesLeavesEverythingAlone) {
  RequestTransform t(ruleWith(""));
  EXPECT_FALSE(t.changesHeaders());
  EXPECT_TRUE(t.allows("POST"));
  EXPECT_TRUE(t.allows("BREW"));
  const std::string req = "POST /x HTTP/1.1\r\nHost: a-shadow\r\nAuthorization: x\r\nContent-Length: 2\r\n\r\nhi";
  EXPECT_EQ(t.apply(req), req);
}

TEST(RequestTransformTest, MethodAllowList) {
  RequestTransform t(ruleWith(",methods=GET|head"));
  EXPECT_TRUE(t.allows("GET"));
  EXPECT_TRUE(t.allows("HEAD"));
  EXPECT_FALSE(t.allows("POST"));
  EXPECT_FALSE(t.allows("get"));  // methods are case-sensitive on the wire
}

TEST(RequestTransformTest, DropsAndAddsHeadersKeepingTheRestByteIdentical) {
  RequestTransform t(ruleWith(",drop-header=authorization,drop-header=Cookie,header=x-shadowtap:1,header=X-B:two words"));
  const std::string req =
      "POST /x?a=1 HTTP/1.1\r\nHost: a-shadow:80\r\nAUTHORIZATION: Bearer s\r\nx-keep:  spaced \r\n"
      "Cookie: a=1\r\n folded continuation\r\nAccept: */*\r\nContent-Length: 11\r\n\r\nbody\r\n\r\nmore";
  const std::string want =
      "POST /x?a=1 HTTP/1.1\r\nHost: a-shadow:80\r\nx-keep:  spaced \r\n"
      "Accept: */*\r\nContent-Length: 11\r\nx-shadowtap: 1\r\nX-B: two words\r\n\r\nbody\r\n\r\nmore";
  EXPECT_EQ(t.apply(req), want);
}

TEST(RequestTransformTest, HeaderNamePrefixIsNotAMatch) {
  RequestTransform t(ruleWith(",drop-header=auth"));
  const std::string req = "GET / HTTP/1.1\r\nAuthorization: x\r\nauth : y\r\nHost: h\r\n\r\n";
  EXPECT_EQ(t.apply(req), "GET / HTTP/1.1\r\nAuthorization: x\r\nHost: h\r\n\r\n");
}

TEST(RequestTransformTest, BareLineFeedsAreKept) {
  RequestTransform t(ruleWith(",header=x-a:1"));
  EXPECT_EQ(t.apply("GET / HTTP/1.1\nHost: h\n\n"), "GET / HTTP/1.1\nHost: h\nx-a: 1\n\n");
}

TEST(RequestTransformTest, IncompleteHeadIsReturnedUnchanged) {
  RequestTransform t(ruleWith(",header=x-a:1,drop-header=b"));
  for (const std::string req : {"GET / HTTP/1.1", "GET / HTTP/1.1\r\nHost: h\r\nb: 1\r\n", ""}) {
    EXPECT_EQ(t.apply(req), req);
  }
}

TEST(RequestTransformTest, ChunkedBodyIsNotTouched) {
  RequestTransform t(ruleWith(",drop-header=x-drop"));
  const std::string body = "5\r\nx-dro\r\n0\r\nx-drop: trailer\r\n\r\n";
  const std::string req = "POST / HTTP/1.1\r\nHost: h\r\nX-Drop: 1\r\nTransfer-Encoding: chunked\r\n\r\n" + body;
  EXPECT_EQ(t.apply(req), "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n" + body);
}

}  // namespace
}  // namespace shadowtap::rules
