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
      {",host=keep", "GET", "api-shadow", V::kMirror},             // no suffix: the host is no guard
      {",host=staging", "GET", "api-shadow:8000", V::kMirror},
      {",host=staging", "GET", "STAGING:8000", V::kAlreadyShadow},  // the literal, any port
      {",host=staging:9000", "GET", "staging:8000", V::kMirror},    // the literal names its port
      {",host=staging:9000", "GET", "staging:9000", V::kAlreadyShadow},
      {",sample=request,percentage=0", "GET", "api", V::kSampledOut},
      {",sample=request,percentage=0", "GET", "api-shadow", V::kAlreadyShadow},  // the guard first
      {",sample=request,percentage=0,methods=GET", "POST", "api", V::kSampledOut},  // then the sample
  };
  for (const VerdictCase& c : cases) {
    SCOPED_TRACE(c.rule + " " + c.method + " " + c.host);
    Router router(ruleWith(c.rule));
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

TEST(RouterTest, HostModesRewriteBothProtocolsAlike) {
  struct Case {
    std::string rule, host, want;
  };
  const Case cases[] = {
      {"", "api:8000", "api-shadow:8000"},
      {",host=suffix,suffix=-m", "api", "api-m"},
      {",host=keep", "api:8000", "api:8000"},
      {",host=staging.svc", "api:8000", "staging.svc:8000"},  // the port kept
      {",host=staging.svc", "api", "staging.svc"},
      {",host=staging.svc:9000", "api:8000", "staging.svc:9000"},
      {",host=[2001:db8::9]", "[2001:db8::2]:80", "[2001:db8::9]:80"},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.rule + " " + c.host);
    const Router router(ruleWith(c.rule));
    model::Request one = http1("GET /x HTTP/1.1\r\nHost: " + c.host + "\r\nAccept: */*\r\n\r\n");
    router.rewrite(one);
    EXPECT_EQ(one.bytes, "GET /x HTTP/1.1\r\nHost: " + c.want + "\r\nAccept: */*\r\n\r\n");
    model::Request two = http2("GET", c.host, "/x");
    router.rewrite(two);
    EXPECT_EQ(two.authority(), c.want);
  }
  // Absolute form: the target's host follows the Host header.
  const Router literal(ruleWith(",host=staging"));
  model::Request abs = http1("GET http://api:81/x HTTP/1.1\r\nHost: api:81\r\n\r\n");
  literal.rewrite(abs);
  EXPECT_EQ(abs.bytes, "GET http://staging:81/x HTTP/1.1\r\nHost: staging:81\r\n\r\n");
}

TEST(RouterTest, KeepModeTakesTheAddedHeadersAsTheShadowMark) {
  Router router(ruleWith(",host=keep,header=x-shadowtap:1,header=x-env:staging"));
  const std::string base = "GET /x HTTP/1.1\r\nHost: api\r\n";
  EXPECT_EQ(router.classify(http1(base + "X-Shadowtap: 1\r\nx-env:  staging\r\n\r\n")),
            Router::Verdict::kAlreadyShadow);
  EXPECT_EQ(router.classify(http1(base + "X-Shadowtap: 1\r\n\r\n")), Router::Verdict::kMirror);  // one of two
  EXPECT_EQ(router.classify(http1(base + "X-Shadowtap: 2\r\nx-env: staging\r\n\r\n")), Router::Verdict::kMirror);
  EXPECT_EQ(router.classify(http2("GET", "api", "/x", {{"x-shadowtap", "1"}, {"x-env", "staging"}})),
            Router::Verdict::kAlreadyShadow);
  // What the router adds is exactly what it then recognises.
  model::Request r = http1(base + "\r\n");
  router.rewrite(r);
  r = http1(r.bytes);
  EXPECT_EQ(router.classify(r), Router::Verdict::kAlreadyShadow);
}

// sample=request: over a run of requests on few connections the share taken is
// the percentage within a request or two (not a binomial spread).
TEST(RouterTest, RequestSamplingTakesTheShareOfRequests) {
  for (double pct : {20.0, 35.0, 50.0, 1.0, 99.0}) {
    Router router(ruleWith(",sample=request,percentage=" + std::to_string(pct)));
    int taken = 0;
    for (int i = 0; i < 500; ++i) {
      model::Request r = i % 2 ? http2("GET", "api", "/x") : http1("GET /x HTTP/1.1\r\nHost: api\r\n\r\n");
      taken += router.classify(r) == Router::Verdict::kMirror;
    }
    EXPECT_NEAR(taken, 5.0 * pct, 2.0) << pct;
  }
  Router all(ruleWith(",sample=request"));
  EXPECT_EQ(all.classify(http2("GET", "api", "/x")), Router::Verdict::kMirror);
}

TEST(RouterTest, HeaderSamplingIsConsistentPerValue) {
  Router router(ruleWith(",sample=header:X-User,percentage=30"));
  int usersIn = 0;
  for (int u = 0; u < 1000; ++u) {
    const std::string user = "user-" + std::to_string(u);
    const bool first = router.classify(http1("GET /a HTTP/1.1\r\nHost: api\r\nx-user: " + user + "\r\n\r\n")) ==
                       Router::Verdict::kMirror;
    // The same user, later, on HTTP/2, is decided the same way.
    const bool again = router.classify(http2("POST", "api", "/b", {{"x-user", user}})) == Router::Verdict::kMirror;
    EXPECT_EQ(first, again) << user;
    usersIn += first;
  }
  EXPECT_NEAR(usersIn, 300, 60);  // a hash: about 30 % of the users
  // No header: decided as the empty value, the same way every time.
  const auto none = router.classify(http1("GET / HTTP/1.1\r\nHost: api\r\n\r\n"));
  EXPECT_EQ(router.classify(http2("GET", "api", "/")), none);
}

TEST(RouterTest, KernelCopiesEverythingWhenTheAgentSamples) {
  EXPECT_EQ(ruleWith(",percentage=25").kernelSampleBasisPoints(), 2500u);
  EXPECT_EQ(ruleWith(",percentage=25,sample=request").kernelSampleBasisPoints(), 10000u);
  EXPECT_EQ(ruleWith(",percentage=25,sample=header:x-user").kernelSampleBasisPoints(), 10000u);
}

TEST(RouterTest, BadModesAreOneClearLine) {
  std::string error;
  for (const char* bad : {",host=a b", ",host=x,host=keep", ",sample=requests", ",sample=header:", ",sample=header:a b"}) {
    EXPECT_FALSE(parseRule(std::string("port=80,mirror=m:80") + bad, RuleDefaults{}, false, &error)) << bad;
    EXPECT_NE(error.find("rule 'port=80,mirror=m:80"), std::string::npos) << error;
  }
}

}  // namespace
}  // namespace shadowtap::rules
