#include "http/host_rewrite.h"

#include <string>
#include <string_view>
#include <vector>

#include <gtest/gtest.h>

namespace shadowtap::http {
namespace {

struct Vector {
  std::string_view in;
  std::string_view out;
};

TEST(AppendShadowSuffix, EnvoyVectors) {
  const Vector vectors[] = {
      {"httpbin:8000", "httpbin-shadow:8000"},
      {"cluster1", "cluster1-shadow"},
      {"[::1]:80", "[::1]-shadow:80"},
      {"[::1]", "[::1]-shadow"},
      {"[2001:db8::1]:8080", "[2001:db8::1]-shadow:8080"},
      {"[2001:db8::1]", "[2001:db8::1]-shadow"},
      {"httpbin.default.svc.cluster.local:8000", "httpbin.default.svc.cluster.local-shadow:8000"},
      {"198.18.0.2:80", "198.18.0.2-shadow:80"},
      {"198.18.0.2", "198.18.0.2-shadow"},
      {"HTTPBIN:8000", "HTTPBIN-shadow:8000"},
      {"host:", "host-shadow:"},
      // Envoy splits an unbracketed IPv6 address at its last ':' too.
      {"::1", ":-shadow:1"},
      {"", "-shadow"},
      // No loop guard here: that is hostHasSuffix's job.
      {"httpbin-shadow:8000", "httpbin-shadow-shadow:8000"},
  };
  for (const auto& v : vectors) {
    EXPECT_EQ(appendShadowSuffix(v.in, kDefaultShadowSuffix), v.out) << v.in;
  }
}

TEST(AppendShadowSuffix, SuffixIsConfigurable) {
  EXPECT_EQ(appendShadowSuffix("httpbin:8000", "-mirror"), "httpbin-mirror:8000");
  EXPECT_EQ(appendShadowSuffix("[::1]:80", ".canary"), "[::1].canary:80");
  EXPECT_EQ(appendShadowSuffix("httpbin:8000", ""), "httpbin:8000");
}

TEST(HostPortStart, FollowsEnvoy) {
  EXPECT_EQ(hostPortStart("a:80"), 1u);
  EXPECT_EQ(hostPortStart("a"), std::string_view::npos);
  EXPECT_EQ(hostPortStart("[::1]"), std::string_view::npos);
  EXPECT_EQ(hostPortStart("[::1]:80"), 5u);
  EXPECT_EQ(hostPortStart(""), std::string_view::npos);
}

TEST(HostHasSuffix, DetectsAlreadySuffixed) {
  EXPECT_TRUE(hostHasSuffix("httpbin-shadow:8000", "-shadow"));
  EXPECT_TRUE(hostHasSuffix("httpbin-shadow", "-shadow"));
  EXPECT_TRUE(hostHasSuffix("HTTPBIN-SHADOW:8000", "-shadow"));
  EXPECT_TRUE(hostHasSuffix("[::1]-shadow:80", "-shadow"));
  EXPECT_TRUE(hostHasSuffix("[::1]-shadow", "-shadow"));
  EXPECT_TRUE(hostHasSuffix("-shadow", "-shadow"));
  EXPECT_TRUE(hostHasSuffix("a-mirror:1", "-mirror"));

  EXPECT_FALSE(hostHasSuffix("httpbin:8000", "-shadow"));
  EXPECT_FALSE(hostHasSuffix("httpbin", "-shadow"));
  EXPECT_FALSE(hostHasSuffix("shadow", "-shadow"));
  EXPECT_FALSE(hostHasSuffix("[::1]:80", "-shadow"));
  EXPECT_FALSE(hostHasSuffix("httpbin-shadow.example:80", "-shadow"));
  EXPECT_FALSE(hostHasSuffix("a-shadow:1", "-mirror"));
  EXPECT_FALSE(hostHasSuffix("", "-shadow"));
  EXPECT_FALSE(hostHasSuffix("httpbin", ""));
  // The port is not part of the host.
  EXPECT_FALSE(hostHasSuffix("httpbin:8000-shadow", "-shadow"));
}

TEST(HostHasSuffix, RoundTripsWithAppend) {
  for (std::string_view h : {"a", "a:1", "[::1]", "[::1]:443", "x.y.z:65535"}) {
    EXPECT_FALSE(hostHasSuffix(h, kDefaultShadowSuffix)) << h;
    EXPECT_TRUE(hostHasSuffix(appendShadowSuffix(h, kDefaultShadowSuffix), kDefaultShadowSuffix)) << h;
  }
}

// A model::Request whose host span is found by looking for `host` in `bytes`.
model::Request makeRequest(std::string bytes, std::string_view host) {
  model::Request r;
  r.bytes = std::move(bytes);
  r.hostOffset = r.bytes.find(host);
  r.hostLength = host.size();
  return r;
}

TEST(RewriteRequestHost, ChangesOnlyTheHostPart) {
  const std::string before =
      "POST /anything HTTP/1.1\r\n"
      "X-Dup: 1\r\n"
      "hOsT: \t httpbin:8000  \r\n"
      "X-Dup: 2\r\n"
      "Content-Length: 23\r\n"
      "\r\n"
      "Host: httpbin:8000\r\nabc";
  const model::Request r = makeRequest(before, "httpbin:8000");
  ASSERT_EQ(r.hostOffset, before.find("httpbin:8000"));
  const std::string expected =
      "POST /anything HTTP/1.1\r\n"
      "X-Dup: 1\r\n"
      "hOsT: \t httpbin-shadow:8000  \r\n"
      "X-Dup: 2\r\n"
      "Content-Length: 23\r\n"
      "\r\n"
      "Host: httpbin:8000\r\nabc";
  EXPECT_EQ(rewriteRequestHost(r, "-shadow"), expected);
  EXPECT_EQ(rewriteRequestHost(r, "-m"), std::string(expected).replace(expected.find("-shadow"), 7, "-m"));
}

TEST(RewriteRequestHost, IPv6AndNoPort) {
  EXPECT_EQ(rewriteRequestHost(makeRequest("GET / HTTP/1.1\r\nHost: [2001:db8::2]:80\r\n\r\n",
                                           "[2001:db8::2]:80"),
                               "-shadow"),
            "GET / HTTP/1.1\r\nHost: [2001:db8::2]-shadow:80\r\n\r\n");
  EXPECT_EQ(rewriteRequestHost(makeRequest("GET / HTTP/1.1\r\nHost: [::1]\r\n\r\n", "[::1]"), "-shadow"),
            "GET / HTTP/1.1\r\nHost: [::1]-shadow\r\n\r\n");
  EXPECT_EQ(rewriteRequestHost(makeRequest("GET / HTTP/1.1\r\nHost: cluster1\r\n\r\n", "cluster1"),
                               "-shadow"),
            "GET / HTTP/1.1\r\nHost: cluster1-shadow\r\n\r\n");
}

// Issue 17: an HTTP/1.0 request without Host gets one, as its first header
// line, naming where it was sent (or its absolute-form target), with the suffix.
model::Request http10WithoutHost(std::string bytes, uint8_t family = 4, uint16_t port = 8000) {
  model::Request r;
  r.bytes = std::move(bytes);
  r.targetOffset = r.bytes.find(' ') + 1;
  r.targetLength = r.bytes.find(' ', r.targetOffset) - r.targetOffset;
  r.flow.family = family;
  if (family == 4) {
    r.flow.daddr = {198, 18, 0, 2};
  } else {
    r.flow.daddr = {0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2};
  }
  r.flow.dport = port;
  return r;
}

TEST(RewriteRequestHost, Http10WithoutHostGetsOneFromTheDestination) {
  EXPECT_EQ(rewriteRequestHost(http10WithoutHost("GET /a HTTP/1.0\r\nAccept: */*\r\n\r\n"), "-shadow"),
            "GET /a HTTP/1.0\r\nHost: 198.18.0.2-shadow:8000\r\nAccept: */*\r\n\r\n");
  EXPECT_EQ(rewriteRequestHost(http10WithoutHost("GET /a HTTP/1.0\n\n", 6, 80), "-shadow"),
            "GET /a HTTP/1.0\nHost: [2001:db8::2]-shadow\r\n\n");
  EXPECT_EQ(rewriteRequestHost(http10WithoutHost("POST / HTTP/1.0\r\nContent-Length: 2\r\n\r\nhi"), ""),
            "POST / HTTP/1.0\r\nHost: 198.18.0.2:8000\r\nContent-Length: 2\r\n\r\nhi");
}

TEST(RewriteRequestHost, Http10WithoutHostAbsoluteFormTakesTheTargetsHost) {
  model::Request r = http10WithoutHost("GET http://app:81/x HTTP/1.0\r\n\r\n");
  r.targetHostOffset = r.bytes.find("app:81");
  r.targetHostLength = 6;
  EXPECT_EQ(rewriteRequestHost(r, "-shadow"), "GET http://app-shadow:81/x HTTP/1.0\r\nHost: app-shadow:81\r\n\r\n");
}

TEST(DestinationAuthority, AddressAndPortAsAHostValue) {
  model::FlowKey k;
  k.daddr = {198, 18, 0, 2};
  k.dport = 8000;
  EXPECT_EQ(destinationAuthority(k), "198.18.0.2:8000");
  k.dport = 80;
  EXPECT_EQ(destinationAuthority(k), "198.18.0.2");
  k.family = 6;
  k.daddr = {0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2};
  k.dport = 443;
  EXPECT_EQ(destinationAuthority(k), "[2001:db8::2]:443");
}

// The in-place rewrite the pipeline uses: the same bytes as rewriteRequestHost
// for a Host alone, a Host and an absolute-form target, IPv6, no port, no Host,
// an empty suffix; with and without room in the buffer.
TEST(TakeRewrittenRequest, SameBytesAsTheCopyingRewrite) {
  std::vector<model::Request> cases;
  cases.push_back(makeRequest("POST /a HTTP/1.1\r\nHost: httpbin:8000\r\nContent-Length: 5\r\n\r\nhello",
                              "httpbin:8000"));
  cases.push_back(makeRequest("GET / HTTP/1.1\r\nHost: [2001:db8::2]:80\r\n\r\n", "[2001:db8::2]:80"));
  cases.push_back(makeRequest("GET / HTTP/1.1\r\nHost: cluster1\r\n\r\n", "cluster1"));
  model::Request abs = makeRequest("GET http://api:81/x HTTP/1.1\r\nHost: api:81\r\n\r\nbody", "api:81");
  abs.targetHostOffset = abs.bytes.find("api:81");
  abs.targetHostLength = 6;
  abs.hostOffset = abs.bytes.rfind("api:81");
  cases.push_back(abs);
  cases.push_back(http10WithoutHost("GET / HTTP/1.0\r\nX: y\r\n\r\n"));
  cases.push_back(http10WithoutHost("GET / HTTP/1.0\r\n\r\n", 6, 65535));
  model::Request absNone = http10WithoutHost("GET http://api:81/x HTTP/1.0\r\n\r\nbody");
  absNone.targetHostOffset = absNone.bytes.find("api:81");
  absNone.targetHostLength = 6;
  cases.push_back(absNone);
  for (const model::Request& r : cases) {
    for (std::string_view suffix : {std::string_view("-shadow"), std::string_view(""),
                                    std::string_view("-a-very-long-suffix-that-does-not-fit-in-the-slack-at-all-"
                                                     "because-it-is-much-longer-than-64-bytes")}) {
      SCOPED_TRACE(r.bytes + " / " + std::string(suffix));
      const std::string want = rewriteRequestHost(r, suffix);
      model::Request tight = r;
      tight.bytes.shrink_to_fit();
      model::Request roomy = r;
      roomy.bytes.reserve(r.bytes.size() + kRewriteSlack);
      const char* before = roomy.bytes.data();
      EXPECT_EQ(takeRewrittenRequest(std::move(tight), suffix), want);
      const std::string got = takeRewrittenRequest(std::move(roomy), suffix);
      EXPECT_EQ(got, want);
      if (want.size() - r.bytes.size() <= kRewriteSlack) {
        EXPECT_EQ(got.data(), before) << "rewritten in place, no new buffer";
      }
      EXPECT_TRUE(roomy.bytes.empty());
      EXPECT_EQ(roomy.method, r.method);
    }
  }
}

}  // namespace
}  // namespace shadowtap::http
