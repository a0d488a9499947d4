#include <arpa/inet.h>
#include <gtest/gtest.h>

#include <unordered_set>

#include "model/flow_key.h"

namespace shadowtap::flow {
namespace {

TEST(FlowKey, ToStringIpv4) {
  model::FlowKey k;
  k.family = 4;
  k.saddr = {198, 18, 0, 1};
  k.daddr = {198, 18, 0, 2};
  k.sport = 40000;
  k.dport = 8000;
  EXPECT_EQ(k.toString(), "198.18.0.1:40000->198.18.0.2:8000");
}

TEST(FlowKey, ToStringIpv6) {
  model::FlowKey k;
  k.family = 6;
  ASSERT_EQ(inet_pton(AF_INET6, "2001:db8::1", k.saddr.data()), 1);
  ASSERT_EQ(inet_pton(AF_INET6, "2001:db8::2", k.daddr.data()), 1);
  k.sport = 40000;
  k.dport = 80;
  EXPECT_EQ(k.toString(), "[2001:db8::1]:40000->[2001:db8::2]:80");
}

TEST(FlowKey, HashAndEqualitySeparatePorts) {
  model::FlowKey a;
  a.saddr = {198, 18, 0, 1};
  a.daddr = {198, 18, 0, 2};
  a.sport = 1;
  a.dport = 2;
  model::FlowKey b = a;
  b.sport = 2;
  b.dport = 1;
  EXPECT_FALSE(a == b);
  std::unordered_set<model::FlowKey, model::FlowKeyHash> set{a, b, a};
  EXPECT_EQ(set.size(), 2u);
}

}  // namespace
}  // namespace shadowtap::flow
