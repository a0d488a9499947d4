#include "h2/request_edit.h"

#include <gtest/gtest.h>

namespace shadowtap::h2 {
namespace {

model::Request req(std::vector<model::HeaderField> headers) {
  model::Request r;
  r.headers = std::move(headers);
  r.body = "body";
  r.trailers = {{"x-t", "v", false}};
  r.finishHttp2();
  return r;
}

TEST(RewriteAuthority, SuffixBeforePortLikeHost) {
  model::Request r = req({{":method", "GET", false},
                     {":authority", "greeter:50051", false},
                     {":path", "/", false},
                     {"authorization", "secret", true}});
  const model::Request before = r;
  EXPECT_EQ(rewriteAuthority(r, "-shadow"), 1);
  EXPECT_EQ(r.authority(), "greeter-shadow:50051");
  ASSERT_EQ(r.headers.size(), before.headers.size());
  for (size_t i = 0; i < r.headers.size(); ++i) {
    if (i != 1) {
      EXPECT_EQ(r.headers[i], before.headers[i]);
    }
  }
  EXPECT_TRUE(r.headers[1].name == ":authority" && !r.headers[1].neverIndex);
  EXPECT_EQ(r.body, before.body);
  EXPECT_EQ(r.trailers, before.trailers);
}

TEST(RewriteAuthority, Ipv6AndNoPort) {
  model::Request a = req({{":authority", "[::1]:80", false}});
  rewriteAuthority(a, "-shadow");
  EXPECT_EQ(a.authority(), "[::1]-shadow:80");
  model::Request b = req({{":authority", "svc", false}});
  rewriteAuthority(b, "-m");
  EXPECT_EQ(b.authority(), "svc-m");
}

TEST(RewriteAuthority, HostWhenNoAuthority) {
  model::Request r = req({{":method", "GET", false}, {":path", "/", false}, {"host", "web:8080", false}});
  EXPECT_EQ(rewriteAuthority(r, "-shadow"), 1);
  EXPECT_EQ(r.header("host"), "web-shadow:8080");
  EXPECT_EQ(r.authority(), "web-shadow:8080");
}

TEST(RewriteAuthority, BothKeptInAgreement) {
  model::Request r = req({{":authority", "a:1", false}, {"host", "a:1", false}});
  EXPECT_EQ(rewriteAuthority(r, "-shadow"), 2);
  EXPECT_EQ(r.headers[0].value, "a-shadow:1");
  EXPECT_EQ(r.headers[1].value, "a-shadow:1");
}

TEST(RewriteAuthority, NoneOrEmptyLeftAlone) {
  model::Request r = req({{":method", "GET", false}, {":authority", "", false}});
  const model::Request before = r;
  EXPECT_EQ(rewriteAuthority(r, "-shadow"), 0);
  EXPECT_EQ(r.headers, before.headers);
}

}  // namespace
}  // namespace shadowtap::h2
