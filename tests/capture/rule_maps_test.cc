// Rule set -> rule map contents, and the order of writes on a reload (pure: no
// map is touched, no root needed).

#include "capture/rule_maps.h"

#include <arpa/inet.h>
#include <gtest/gtest.h>

#include <cstring>

namespace shadowtap::capture {
namespace {

PortRule portOnly(uint16_t port, uint32_t id, uint32_t sampleBp = 10000, bool compare = false) {
  PortRule r;
  r.port = port;
  r.ruleId = id;
  r.sampleBp = sampleBp;
  r.compare = compare;
  return r;
}

PortRule narrowed(uint16_t port, uint32_t id, const char* prefix, bool compare = false) {
  PortRule r = portOnly(port, id, 10000, compare);
  std::string error;
  r.destination = model::parseDestinationPrefix(prefix, &error);
  EXPECT_TRUE(r.destination) << error;
  return r;
}

RuleMaps built(const std::vector<PortRule>& rules) {
  RuleMaps maps;
  EXPECT_EQ(buildRuleMaps(rules, &maps), "");
  return maps;
}

bool sameKey(const st_prefix_key& a, const st_prefix_key& b) { return std::memcmp(&a, &b, sizeof(a)) == 0; }

TEST(CaptureRuleMapsTest, PortOnlyRuleIsOneArrayEntry) {
  const RuleMaps m = built({portOnly(8080, 7, 2500, true)});
  ASSERT_EQ(m.ports.size(), 1u);
  const st_rule& r = m.ports.at(8080);
  EXPECT_EQ(r.rule_id, 7u);
  EXPECT_EQ(r.sample_bp, 2500u);
  EXPECT_EQ(r.flags, static_cast<uint32_t>(ST_RULE_F_COMPARE));
  EXPECT_TRUE(m.prefixes.empty());
}

TEST(CaptureRuleMapsTest, PrefixRuleIsATrieEntryAndFlagsItsPort) {
  const RuleMaps m = built({narrowed(80, 3, "198.18.0.0/15"), narrowed(80, 4, "2001:db8::/32", true)});
  ASSERT_EQ(m.ports.size(), 1u);
  EXPECT_EQ(m.ports.at(80).rule_id, 0u) << "no port-only fallback";
  EXPECT_EQ(m.ports.at(80).flags, static_cast<uint32_t>(ST_RULE_F_HAS_PREFIX));
  ASSERT_EQ(m.prefixes.size(), 2u);

  const st_prefix_key& v4 = m.prefixes[0].first;
  EXPECT_EQ(v4.prefixlen, ST_PREFIX_KEY_FIXED_BITS + 15u);
  EXPECT_EQ(v4.port, htons(80));
  EXPECT_EQ(v4.family, ST_FAMILY_IPV4);
  const uint8_t v4addr[16] = {198, 18};
  EXPECT_EQ(std::memcmp(v4.addr, v4addr, 16), 0) << "IPv4 in the first 4 bytes, the rest zero";
  EXPECT_EQ(m.prefixes[0].second.rule_id, 3u);
  EXPECT_EQ(m.prefixes[0].second.flags, 0u);

  const st_prefix_key& v6 = m.prefixes[1].first;
  EXPECT_EQ(v6.prefixlen, ST_PREFIX_KEY_FIXED_BITS + 32u);
  EXPECT_EQ(v6.family, ST_FAMILY_IPV6);
  EXPECT_EQ(v6.addr[0], 0x20);
  EXPECT_EQ(v6.addr[1], 0x01);
  EXPECT_EQ(v6.addr[2], 0x0d);
  EXPECT_EQ(v6.addr[3], 0xb8);
  EXPECT_EQ(m.prefixes[1].second.flags, static_cast<uint32_t>(ST_RULE_F_COMPARE));
}

TEST(CaptureRuleMapsTest, PortOnlyFallbackBesidePrefixRules) {
  const RuleMaps m = built({narrowed(80, 3, "198.18.1.0/24"), portOnly(80, 9, 5000)});
  const st_rule& r = m.ports.at(80);
  EXPECT_EQ(r.rule_id, 9u);
  EXPECT_EQ(r.sample_bp, 5000u);
  EXPECT_EQ(r.flags, static_cast<uint32_t>(ST_RULE_F_HAS_PREFIX));
  EXPECT_EQ(m.prefixes.size(), 1u);
}

TEST(CaptureRuleMapsTest, InvalidSetsAreRefusedWithWhy) {
  struct Case {
    const char* name;
    std::vector<PortRule> rules;
    const char* says;
  };
  PortRule badFamily = narrowed(80, 1, "198.18.0.1");
  badFamily.destination->family = 5;
  PortRule tooLong = narrowed(80, 1, "198.18.0.1");
  tooLong.destination->length = 33;
  const std::vector<Case> cases = {
      {"id 0", {portOnly(80, 0)}, "has id 0"},
      {"two port-only rules", {portOnly(80, 1), portOnly(80, 2)}, "without a destination"},
      {"same prefix twice", {narrowed(80, 1, "198.18.0.0/16"), narrowed(80, 2, "198.18.0.0/16")}, "same destination"},
      {"unknown family", {badFamily}, "invalid destination prefix"},
      {"prefix longer than the address", {tooLong}, "invalid destination prefix"},
  };
  for (const Case& c : cases) {
    RuleMaps m;
    const std::string why = buildRuleMaps(c.rules, &m);
    EXPECT_NE(why.find(c.says), std::string::npos) << c.name << ": " << why;
  }
  // The same prefix on two ports, and two prefixes on one port, are fine.
  RuleMaps ok;
  EXPECT_EQ(buildRuleMaps({narrowed(80, 1, "198.18.0.0/16"), narrowed(81, 2, "198.18.0.0/16"),
                           narrowed(80, 3, "198.18.0.0/24")},
                          &ok),
            "");
}

TEST(CaptureRuleMapsTest, AtMostMaxPrefixRules) {
  std::vector<PortRule> rules;
  for (uint32_t i = 0; i <= ST_MAX_PREFIX_RULES; ++i) {
    PortRule r = portOnly(static_cast<uint16_t>(1 + i / 256), i + 1);
    r.destination = model::DestinationPrefix{4, {198, 18, 0, static_cast<uint8_t>(i % 256)}, 32};
    rules.push_back(r);
  }
  RuleMaps m;
  EXPECT_NE(buildRuleMaps(rules, &m).find("at most"), std::string::npos);
  rules.pop_back();
  RuleMaps fits;
  EXPECT_EQ(buildRuleMaps(rules, &fits), "");
}

TEST(CaptureRuleMapsTest, ReloadWritesEverythingNewBeforeRemovingWhatWent) {
  const RuleMaps had = built({portOnly(80, 1), narrowed(443, 2, "198.18.0.0/16"), narrowed(443, 3, "198.19.0.0/16")});
  const RuleMaps want = built({portOnly(80, 4, 5000), narrowed(443, 3, "198.19.0.0/16"), portOnly(8080, 5)});
  const RuleMapChanges c = diffRuleMaps(had, want);

  // Every wanted entry is (re)written, kept ones included: writing the same
  // value is harmless, and a changed one (port 80's sample) must be written.
  ASSERT_EQ(c.prefixWrites.size(), 1u);
  EXPECT_TRUE(sameKey(c.prefixWrites[0].first, want.prefixes[0].first));
  ASSERT_EQ(c.portWrites.size(), 3u);
  EXPECT_EQ(c.portWrites[0].first, 80u);
  EXPECT_EQ(c.portWrites[0].second.sample_bp, 5000u);
  EXPECT_EQ(c.portWrites[1].first, 443u);
  EXPECT_EQ(c.portWrites[2].first, 8080u);
  // Only what no longer exists goes: 198.18/16 on 443; no port is cleared, as
  // every port of the old set is still in the new one.
  ASSERT_EQ(c.prefixDeletes.size(), 1u);
  EXPECT_TRUE(sameKey(c.prefixDeletes[0], had.prefixes[0].first));
  EXPECT_TRUE(c.portClears.empty());

  const RuleMapChanges back = diffRuleMaps(want, had);
  EXPECT_EQ(back.portClears, std::vector<uint32_t>{8080});
  EXPECT_TRUE(back.prefixDeletes.empty());
}

TEST(CaptureRuleMapsTest, FromNothingAndToNothing) {
  const RuleMaps some = built({portOnly(80, 1), narrowed(80, 2, "198.18.0.0/16")});
  const RuleMapChanges install = diffRuleMaps(RuleMaps{}, some);
  EXPECT_EQ(install.portWrites.size(), 1u);
  EXPECT_EQ(install.prefixWrites.size(), 1u);
  EXPECT_TRUE(install.prefixDeletes.empty());
  EXPECT_TRUE(install.portClears.empty());

  const RuleMapChanges clear = diffRuleMaps(some, RuleMaps{});
  EXPECT_TRUE(clear.portWrites.empty());
  EXPECT_TRUE(clear.prefixWrites.empty());
  EXPECT_EQ(clear.prefixDeletes.size(), 1u);
  EXPECT_EQ(clear.portClears, std::vector<uint32_t>{80});
}

}  // namespace
}  // namespace shadowtap::capture
