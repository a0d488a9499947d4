// Rule matching in the kernel: several rules per port, narrowed by IPv4/IPv6
// destination prefixes (longest prefix wins, the port-only rule is the fallback),
// each with its own rule id and sampling share. Run for the TC and the XDP program.

#include <optional>
#include <string>
#include <vector>

#include "capture_fixture.h"

namespace shadowtap::bpftest {
namespace {

constexpr uint16_t kWeb = 8080;
constexpr uint16_t kPrefixOnlyPort = 9090;

Ip6Addr addr6(std::initializer_list<uint8_t> prefix, uint8_t last) {
  Ip6Addr a{};
  size_t i = 0;
  for (uint8_t b : prefix) {
    a[i++] = b;
  }
  a[15] = last;
  return a;
}

struct Probe {
  std::string name;
  bool v6;
  Ip4Addr dst4{};
  Ip6Addr dst6{};
  uint16_t dport;
  std::optional<uint32_t> ruleId;  // nullopt: must not match
  bool byPrefix;
};

class CaptureRulesTest : public CaptureFixture, public ::testing::WithParamInterface<bool> {
 protected:
  bool useXdp() const override { return GetParam(); }

  void SetUp() override {
    CaptureFixture::SetUp();
    if (IsSkipped() || HasFatalFailure()) {
      return;
    }
    const Ip4Addr net1{198, 18, 1, 0};
    const Ip4Addr net1hi{198, 18, 1, 128};
    const Ip4Addr host2{198, 18, 2, 2};
    const Ip6Addr doc = addr6({0x20, 0x01, 0x0d, 0xb8}, 0);
    const Ip6Addr doc1 = addr6({0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 1}, 0);
    setRule(kWeb, 7, ST_SAMPLE_SCALE);                                                  // fallback
    setPrefixRule(kWeb, ST_FAMILY_IPV4, net1, 24, 20, ST_SAMPLE_SCALE);                // 198.18.1.0/24
    setPrefixRule(kWeb, ST_FAMILY_IPV4, net1hi, 25, 21, ST_SAMPLE_SCALE);              // 198.18.1.128/25
    setPrefixRule(kWeb, ST_FAMILY_IPV6, doc, 32, 30, ST_SAMPLE_SCALE);                 // 2001:db8::/32
    setPrefixRule(kWeb, ST_FAMILY_IPV6, doc1, 64, 31, ST_SAMPLE_SCALE);                // 2001:db8:0:1::/64
    setPrefixRule(kPrefixOnlyPort, ST_FAMILY_IPV4, host2, 32, 40, ST_SAMPLE_SCALE);    // one host only
    setPrefixRule(kPrefixOnlyPort, ST_FAMILY_IPV4, Ip4Addr{198, 19, 0, 0}, 16, 41, 0); // never sampled
  }

  Bytes frame(const Probe& p) {
    const Bytes payload = {'G', 'E', 'T', ' '};
    const Bytes l4 = tcp(40000, p.dport, 1, 1, ST_TCP_ACK | ST_TCP_PSH, payload);
    if (p.v6) {
      return ethernet(kEthIpv6, ipv6(kProtoTcp, addr6({0x20, 0x01, 0x0d, 0xb8}, 1), p.dst6, l4));
    }
    return ethernet(kEthIpv4, ipv4(kProtoTcp, Ip4Addr{198, 18, 0, 1}, p.dst4, l4));
  }
};

TEST_P(CaptureRulesTest, LongestPrefixWinsPortRuleIsTheFallback) {
  const std::vector<Probe> probes = {
      {"v4_outside_prefixes_falls_back", false, {198, 18, 0, 2}, {}, kWeb, 7, false},
      {"v4_in_24", false, {198, 18, 1, 5}, {}, kWeb, 20, true},
      {"v4_in_25_beats_24", false, {198, 18, 1, 200}, {}, kWeb, 21, true},
      {"v4_network_address_of_25", false, {198, 18, 1, 128}, {}, kWeb, 21, true},
      {"v6_in_32", true, {}, addr6({0x20, 0x01, 0x0d, 0xb8}, 2), kWeb, 30, true},
      {"v6_in_64_beats_32", true, {}, addr6({0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 1}, 5), kWeb, 31, true},
      {"v6_outside_falls_back", true, {}, addr6({0x20, 0x01, 0x0d, 0xb9}, 1), kWeb, 7, false},
      {"prefix_only_port_host", false, {198, 18, 2, 2}, {}, kPrefixOnlyPort, 40, true},
      {"prefix_only_port_other_host_no_match", false, {198, 18, 2, 3}, {}, kPrefixOnlyPort, std::nullopt, false},
      {"prefix_only_port_v6_no_match", true, {}, addr6({0x20, 0x01, 0x0d, 0xb8}, 2), kPrefixOnlyPort, std::nullopt,
       false},
      {"unruled_port", false, {198, 18, 1, 5}, {}, 7070, std::nullopt, false},
  };
  for (const Probe& p : probes) {
    SCOPED_TRACE(p.name);
    const Counters before = counters();
    runUnchanged(frame(p));
    const std::vector<Record> recs = drain();
    const Counters after = counters();
    EXPECT_EQ(after[ST_CNT_SEEN] - before[ST_CNT_SEEN], 1u);
    EXPECT_EQ(after[ST_CNT_MATCHED] - before[ST_CNT_MATCHED], p.ruleId ? 1u : 0u);
    EXPECT_EQ(after[ST_CNT_PREFIX_MATCHED] - before[ST_CNT_PREFIX_MATCHED], p.byPrefix ? 1u : 0u);
    if (!p.ruleId) {
      EXPECT_TRUE(recs.empty());
      continue;
    }
    ASSERT_EQ(recs.size(), 1u);
    EXPECT_EQ(recs[0].hdr.rule_id, *p.ruleId);
    EXPECT_EQ(recs[0].payload, (Bytes{'G', 'E', 'T', ' '}));
  }
}

TEST_P(CaptureRulesTest, EachRuleHasItsOwnSample) {
  // 198.19.0.0/16 on port 9090 samples 0 %: matched, then sampled out.
  const Probe p{"zero_sample", false, {198, 19, 3, 4}, {}, kPrefixOnlyPort, 41, true};
  const Counters before = counters();
  runUnchanged(frame(p));
  EXPECT_TRUE(drain().empty());
  const Counters after = counters();
  EXPECT_EQ(after[ST_CNT_MATCHED] - before[ST_CNT_MATCHED], 1u);
  EXPECT_EQ(after[ST_CNT_PREFIX_MATCHED] - before[ST_CNT_PREFIX_MATCHED], 1u);
  EXPECT_EQ(after[ST_CNT_SAMPLED_OUT] - before[ST_CNT_SAMPLED_OUT], 1u);
  EXPECT_EQ(after[ST_CNT_COPIED] - before[ST_CNT_COPIED], 0u);
}

INSTANTIATE_TEST_SUITE_P(Programs, CaptureRulesTest, ::testing::Values(false, true),
                         [](const auto& info) { return info.param ? "xdp" : "tc"; });

}  // namespace
}  // namespace shadowtap::bpftest
