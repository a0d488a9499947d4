#include "replay/target.h"

#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>

namespace shadowtap::replay {
namespace {

uint16_t portOf(const sockaddr_storage& addr) {
  if (addr.ss_family == AF_INET6) {
    return ntohs(reinterpret_cast<const sockaddr_in6*>(&addr)->sin6_port);
  }
  return ntohs(reinterpret_cast<const sockaddr_in*>(&addr)->sin_port);
}

bool isLoopback(const sockaddr_storage& addr) {
  if (addr.ss_family == AF_INET6) {
    const auto* in6 = reinterpret_cast<const sockaddr_in6*>(&addr);
    return IN6_IS_ADDR_LOOPBACK(&in6->sin6_addr);
  }
  const auto* in = reinterpret_cast<const sockaddr_in*>(&addr);
  return (ntohl(in->sin_addr.s_addr) >> 24) == 127;
}

TEST(ResolveTarget, Localhost) {
  ResolveResult r = resolveTarget("localhost:80");
  ASSERT_TRUE(r.error.empty()) << r.error;
  ASSERT_FALSE(r.addrs.empty());
  for (const auto& addr : r.addrs) {
    EXPECT_TRUE(isLoopback(addr)) << formatAddress(addr);
    EXPECT_EQ(portOf(addr), 80);
  }
}

TEST(ResolveTarget, BracketedIpv6) {
  ResolveResult r = resolveTarget("[::1]:8080");
  ASSERT_TRUE(r.error.empty()) << r.error;
  ASSERT_EQ(r.addrs.size(), 1u);
  EXPECT_EQ(r.addrs[0].ss_family, AF_INET6);
  EXPECT_EQ(formatAddress(r.addrs[0]), "[::1]:8080");
}

TEST(ResolveTarget, Ipv4Literal) {
  ResolveResult r = resolveTarget("127.0.0.1:65535");
  ASSERT_TRUE(r.error.empty()) << r.error;
  ASSERT_EQ(r.addrs.size(), 1u);
  EXPECT_EQ(formatAddress(r.addrs[0]), "127.0.0.1:65535");
}

struct BadInput {
  const char* input;
  const char* mentions;  // the error must say what is wrong
};

class ResolveTargetBad : public ::testing::TestWithParam<BadInput> {};

TEST_P(ResolveTargetBad, ClearError) {
  ResolveResult r = resolveTarget(GetParam().input);
  EXPECT_TRUE(r.addrs.empty());
  ASSERT_FALSE(r.error.empty());
  EXPECT_NE(r.error.find(GetParam().mentions), std::string::npos) << r.error;
  // ...and how to fix it.
  EXPECT_NE(r.error.find("expected host:port"), std::string::npos) << r.error;
}

INSTANTIATE_TEST_SUITE_P(
    Inputs, ResolveTargetBad,
    ::testing::Values(BadInput{"nohost", "no port"}, BadInput{"host:99999", "out of range 1-65535"},
                      BadInput{"host:0", "out of range 1-65535"}, BadInput{"host:", "empty port"},
                      BadInput{":80", "empty host"}, BadInput{"", "empty"}, BadInput{"host:http", "not a number"},
                      BadInput{"host:80x", "not a number"}, BadInput{"::1:80", "in brackets"},
                      BadInput{"[::1:80", "missing ']'"}, BadInput{"[::1]80", "missing ':port'"},
                      BadInput{"[]:80", "empty host"}));

}  // namespace
}  // namespace shadowtap::replay
