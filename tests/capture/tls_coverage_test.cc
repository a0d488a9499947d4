// --tls coverage (issue 18 item 4): TLS connections on the wire are judged
// after the wait: covered when plaintext of the same 4-tuple came (in either
// order), missed by reason otherwise, each counted once and named by server;
// the table is bounded and forgets.

#include "capture/tls_coverage.h"

#include <gtest/gtest.h>

#include <vector>

namespace shadowtap::capture {
namespace {

constexpr uint64_t kSec = 1'000'000'000ULL;

std::vector<std::pair<std::string, TlsCoverage::Missed>> missed;
void record(const model::FlowKey& key, TlsCoverage::Missed why) { missed.emplace_back(key.toString(), why); }

model::FlowKey key(uint16_t sport, model::FlowSource source = model::FlowSource::kWire) {
  model::FlowKey k;
  k.saddr = {198, 18, 0, 1};
  k.daddr = {198, 18, 0, 2};
  k.sport = sport;
  k.dport = 8443;
  k.source = source;
  return k;
}

const std::vector<uint8_t> kHello = {0x16, 0x03, 0x01, 0x00, 0x80, 0x01, 0x00};
const std::vector<uint8_t> kAppData = {0x17, 0x03, 0x03, 0x00, 0x20, 0xaa};
const std::vector<uint8_t> kHttp = {'G', 'E', 'T', ' '};

flow::Segment seg(const model::FlowKey& k, uint64_t ts, const std::vector<uint8_t>& payload, uint8_t flags = 0) {
  flow::Segment s;
  s.key = k;
  s.tsNs = ts;
  s.payload = payload;
  s.flags = flags;
  return s;
}

class TlsCoverageTest : public ::testing::Test {
 protected:
  void SetUp() override { missed.clear(); }
  TlsCoverageStats stats;
};

TEST_F(TlsCoverageTest, PlaintextInEitherOrderCovers) {
  TlsCoverage c(stats, &record, 3 * kSec);
  c.observe(seg(key(1000), 1 * kSec, kHello));
  c.observe(seg(key(1000, model::FlowSource::kTls), 1 * kSec + 5, {}, flow::kTcpSyn));
  c.observe(seg(key(1001, model::FlowSource::kTls), 1 * kSec, {}, flow::kTcpSyn));  // probes first
  c.observe(seg(key(1001), 1 * kSec + 9, kHello));
  c.judge(2 * kSec);
  EXPECT_EQ(stats.covered.load(), 0u) << "not before the wait";
  c.judge(5 * kSec);
  EXPECT_EQ(stats.covered.load(), 2u);
  EXPECT_EQ(stats.noPlaintext.load() + stats.joinedLate.load(), 0u);
  EXPECT_TRUE(missed.empty());
  c.judge(6 * kSec);
  EXPECT_EQ(stats.covered.load(), 2u) << "judged once";
}

TEST_F(TlsCoverageTest, MissedConnectionsAreCountedByReasonAndNamed) {
  TlsCoverage c(stats, &record, 3 * kSec);
  c.observe(seg(key(2000), 1 * kSec, kHello));         // a static TLS library: hello, never plaintext
  c.observe(seg(key(2000), 1 * kSec + 1, kAppData));
  c.observe(seg(key(2001), 1 * kSec, kAppData));       // first seen mid-stream
  c.observe(seg(key(2002), 1 * kSec, kHttp));          // not TLS: not tracked
  EXPECT_EQ(c.entries(), 2u);
  c.judge(4 * kSec);
  EXPECT_EQ(stats.noPlaintext.load(), 1u);
  EXPECT_EQ(stats.joinedLate.load(), 1u);
  ASSERT_EQ(missed.size(), 2u);
  const auto servers = stats.servers();
  ASSERT_EQ(servers.size(), 1u);
  EXPECT_EQ(servers.begin()->first, "198.18.0.2:8443");
  EXPECT_EQ(servers.begin()->second, 2u);
}

TEST_F(TlsCoverageTest, PlaintextOnlyAndEndedConnectionsAreForgotten) {
  TlsCoverage c(stats, &record, 3 * kSec, 10 * kSec);
  c.observe(seg(key(3000, model::FlowSource::kTls), 1 * kSec, {}, flow::kTcpSyn));  // no wire capture at all
  c.observe(seg(key(3001), 1 * kSec, kHello));
  c.observe(seg(key(3001, model::FlowSource::kTls), 1 * kSec, {}, flow::kTcpSyn));
  c.judge(4 * kSec);
  EXPECT_EQ(c.entries(), 1u) << "plaintext without wire: nothing to account for";
  c.observe(seg(key(3001), 5 * kSec, {}, flow::kTcpFin));
  EXPECT_EQ(c.entries(), 0u) << "a judged connection goes at its FIN";
  c.observe(seg(key(3002), 5 * kSec, kHello));
  c.observe(seg(key(3002, model::FlowSource::kTls), 5 * kSec, {}, flow::kTcpSyn));
  c.judge(9 * kSec);
  EXPECT_EQ(c.entries(), 1u);
  c.judge(16 * kSec);
  EXPECT_EQ(c.entries(), 0u) << "forgotten after forgetNs without wire TLS records";
  EXPECT_EQ(stats.covered.load(), 2u);
}

TEST_F(TlsCoverageTest, TheTableIsBoundedAndCountsWhatItCannotHold) {
  TlsCoverage c(stats, &record, 3 * kSec, 10 * kSec, 2);
  for (uint16_t p = 0; p < 5; ++p) {
    c.observe(seg(key(4000 + p), 1 * kSec, kHello));
  }
  EXPECT_EQ(c.entries(), 2u);
  EXPECT_EQ(stats.untracked.load(), 3u);
}

TEST(TlsCoverageStats, ServersAreBoundedWithTheRestAsOther) {
  TlsCoverageStats s;
  for (size_t i = 0; i < TlsCoverageStats::kMaxServers + 5; ++i) {
    s.countServer("198.18.0." + std::to_string(i) + ":443");
  }
  const auto servers = s.servers();
  EXPECT_EQ(servers.size(), TlsCoverageStats::kMaxServers + 1);
  EXPECT_EQ(servers.at("other"), 5u);
}

}  // namespace
}  // namespace shadowtap::capture
