#include "rules/router.h"

#include <gtest/gtest.h>

#include <span>
#include <string>
#include <vector>

#include "http/header_edit.h"
#include "http/request_framer.h"

namespace shadowtap::rules {
namespace {

Rule ruleWith(const std::string& keys) {
  std::string error;
  auto r = parseRule("port=80,mirror=m:80" + keys, RuleDefaults{}, false, &error);
  EXPECT_TRUE(r) << error;
  return r.value_or(Rule{});
}

// The rule's HTTP/1 header switches, as the router builds them.
http::HeaderEdit editOf(const Rule& rule) { return http::HeaderEdit(rule.dropHeaders, rule.headers); }

TEST(RequestTransformTest, NoSwitchesLeavesEverythingAlone) {
  const Rule rule = ruleWith("");
  http::HeaderEdit t = editOf(rule);
  EXPECT_FALSE(t.changesHeaders());
  EXPECT_TRUE(Router(rule).allows("POST"));
  EXPECT_TRUE(Router(rule).allows("BREW"));
  const std::string req = "POST /x HTTP/1.1\r\nHost: a-shadow\r\nAuthorization: x\r\nContent-Length: 2\r\n\r\nhi";
  EXPECT_EQ(t.apply(req), req);
}

TEST(RequestTransformTest, MethodAllowList) {
  Router t(ruleWith(",methods=GET|head"));
  EXPECT_TRUE(t.allows("GET"));
  EXPECT_TRUE(t.allows("HEAD"));
  EXPECT_FALSE(t.allows("POST"));
  EXPECT_FALSE(t.allows("get"));  // methods are case-sensitive on the wire
}

TEST(RequestTransformTest, DropsAndAddsHeadersKeepingTheRestByteIdentical) {
  http::HeaderEdit t = editOf(ruleWith(",drop-header=authorization,drop-header=Cookie,header=x-shadowtap:1,header=X-B:two words"));
  const std::string req =
      "POST /x?a=1 HTTP/1.1\r\nHost: a-shadow:80\r\nAUTHORIZATION: Bearer s\r\nx-keep:  spaced \r\n"
      "Cookie: a=1\r\n folded continuation\r\nAccept: */*\r\nContent-Length: 11\r\n\r\nbody\r\n\r\nmore";
  const std::string want =
      "POST /x?a=1 HTTP/1.1\r\nHost: a-shadow:80\r\nx-keep:  spaced \r\n"
      "Accept: */*\r\nContent-Length: 11\r\nx-shadowtap: 1\r\nX-B: two words\r\n\r\nbody\r\n\r\nmore";
  EXPECT_EQ(t.apply(req), want);
}

TEST(RequestTransformTest, HeaderNamePrefixIsNotAMatch) {
  http::HeaderEdit t = editOf(ruleWith(",drop-header=auth"));
  const std::string req = "GET / HTTP/1.1\r\nAuthorization: x\r\nauth : y\r\nHost: h\r\n\r\n";
  EXPECT_EQ(t.apply(req), "GET / HTTP/1.1\r\nAuthorization: x\r\nHost: h\r\n\r\n");
}

TEST(RequestTransformTest, BareLineFeedsAreKept) {
  http::HeaderEdit t = editOf(ruleWith(",header=x-a:1"));
  EXPECT_EQ(t.apply("GET / HTTP/1.1\nHost: h\n\n"), "GET / HTTP/1.1\nHost: h\nx-a: 1\n\n");
}

TEST(RequestTransformTest, IncompleteHeadIsReturnedUnchanged) {
  http::HeaderEdit t = editOf(ruleWith(",header=x-a:1,drop-header=b"));
  for (const std::string req : {"GET / HTTP/1.1", "GET / HTTP/1.1\r\nHost: h\r\nb: 1\r\n", ""}) {
    EXPECT_EQ(t.apply(req), req);
  }
}

TEST(RequestTransformTest, ChunkedBodyIsNotTouched) {
  http::HeaderEdit t = editOf(ruleWith(",drop-header=x-drop"));
  const std::string body = "5\r\nx-dro\r\n0\r\nx-drop: trailer\r\n\r\n";
  const std::string req = "POST / HTTP/1.1\r\nHost: h\r\nX-Drop: 1\r\nTransfer-Encoding: chunked\r\n\r\n" + body;
  EXPECT_EQ(t.apply(req), "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n" + body);
}

// One rule, one behaviour for both protocols: the same request as HTTP/1
// (framed from its wire bytes, as the agent does) and as HTTP/2 fields.
struct Sink : model::RequestSink {
  std::vector<model::Request> got;
  void onRequest(model::Request&& r) override { got.push_back(std::move(r)); }
};

model::Request http1(const std::string& wire) {
  Sink sink;
  http::RequestFramerFactory framers(sink);
  auto framer = framers.create(model::FlowKey{}, 1, true);
  framer->onData(std::span(reinterpret_cast<const uint8_t*>(wire.data()), wire.size()), 1);
  EXPECT_EQ(sink.got.size(), 1u) << wire;
  return sink.got.empty() ? model::Request{} : std::move(sink.got[0]);
}

model::Request http2(const std::string& method, const std::string& authority, const std::string& path,
                     std::vector<model::HeaderField> extra = {}) {
  model::Request r;
  r.headers = {{":method", method}, {":scheme", "http"}, {":authority", authority}, {":path", path}};
  r.headers.insert(r.headers.end(), extra.begin(), extra.end());
  r.body = "hi";
  r.finishHttp2();
  return r;
}

struct VerdictCase {
  std::string rule;
  std::string method;
  std::string host;
  Router::Verdict want;
};

TEST(RouterTest, VerdictsAreTheSameForBothProtocols) {
  using V = Router::Verdict;
  const VerdictCase cases[] = {
      {"", "GET", "api:80", V::kMirror},
      {"", "GET", "api-shadow:80", V::kAlreadyShadow},
      {"", "GET", "API-SHADOW", V::kAlreadyShadow},  // case-insensitive, no port
      {",suffix=-m", "GET", "api-shadow", V::kMirror},
      {",suffix=-m", "GET", "api-m:8080", V::kAlreadyShadow},
      {",methods=GET|HEAD", "POST", "api", V::kMethodFiltered},
      {",methods=GET|HEAD", "HEAD", "api", V::kMirror},
      {",methods=GET", "POST", "api-shadow", V::kAlreadyShadow},  // the loop guard comes first
  };
  for (const VerdictCase& c : cases) {
    SCOPED_TRACE(c.rule + " " + c.method + " " + c.host);
    const Router router(ruleWith(c.rule));
    const std::string body = c.method == "POST" ? "Content-Length: 2\r\n\r\nhi" : "\r\n";
    EXPECT_EQ(router.classify(http1(c.method + " /x HTTP/1.1\r\nHost: " + c.host + "\r\n" + body)), c.want);
    EXPECT_EQ(router.classify(http2(c.method, c.host, "/x")), c.want);
  }
}

TEST(RouterTest, RewriteGivesBothProtocolsTheSameHostAndHeaderSwitches) {
  const Router router(ruleWith(",drop-header=authorization,header=x-shadowtap:1"));
  model::Request one = http1(
      "POST /x HTTP/1.1\r\nHost: api:8000\r\nAuthorization: s\r\nContent-Length: 2\r\n\r\nhi");
  router.rewrite(one);
  EXPECT_EQ(one.bytes,
            "POST /x HTTP/1.1\r\nHost: api-shadow:8000\r\nContent-Length: 2\r\nx-shadowtap: 1\r\n\r\nhi");
  EXPECT_EQ(one.method, "POST");

  model::Request two = http2("POST", "api:8000", "/x", {{"authorization", "s", true}, {"accept", "*/*"}});
  router.rewrite(two);
  const std::vector<model::HeaderField> want = {{":method", "POST"},        {":scheme", "http"},
                                                {":authority", "api-shadow:8000"}, {":path", "/x"},
                                                {"accept", "*/*"},          {"x-shadowtap", "1"}};
  EXPECT_EQ(two.headers, want);
  EXPECT_EQ(two.body, "hi");
}

TEST(RouterTest, AbsoluteFormTargetGetsTheSuffixToo) {
  const Router router(ruleWith(""));
  model::Request r = http1("GET http://api:81/x HTTP/1.1\r\nHost: api:81\r\n\r\n");
  router.rewrite(r);
  EXPECT_EQ(r.bytes, "GET http://api-shadow:81/x HTTP/1.1\r\nHost: api-shadow:81\r\n\r\n");
}

}  // namespace
}  // namespace shadowtap::rules
