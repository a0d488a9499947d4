// Flow lifecycle, limits and counters of FlowTable.
#include <gtest/gtest.h>

#include <random>
#include <string>

#include "flow/flow_table.h"
#include "recording_consumer.h"

namespace shadowtap::flow {
namespace {

using testing::expectConsumersMatchStats;
using testing::expectIdentities;
using testing::makeKey;
using testing::RecordingFactory;
using testing::SegmentBuilder;

constexpr uint64_t kMs = 1'000'000;
constexpr uint64_t kSec = 1'000'000'000;

class FlowTableTest : public ::testing::Test {
 protected:
  void TearDown() override {
    expectIdentities(table());
    table().shutdown();
    expectIdentities(table());
    expectConsumersMatchStats(table(), factory_);
    EXPECT_EQ(table().stats().outOfOrderBytes.load(), 0u);
  }

  FlowTable& table() {
    if (!table_) {
      table_ = std::make_unique<FlowTable>(limits_, factory_);
    }
    return *table_;
  }
  const FlowStats& stats() { return table().stats(); }
  void in(const Segment& s) { table().ingest(s); }

  FlowLimits limits_;
  RecordingFactory factory_;
  SegmentBuilder b_;
  std::unique_ptr<FlowTable> table_;
  const model::FlowKey key_ = makeKey(40000);
};

TEST_F(FlowTableTest, SynThenDataThenFin) {
  in(b_.syn(key_, 1000, 1));
  ASSERT_EQ(factory_.records.size(), 1u);
  EXPECT_TRUE(factory_.last().fromStart);
  EXPECT_EQ(factory_.last().ruleId, 7u);
  in(b_.data(key_, 1001, "GET / HTTP/1.1\r\n", 2));
  in(b_.data(key_, 1017, "\r\n", 3, kTcpFin));
  const auto& r = factory_.last();
  EXPECT_EQ(r.data, "GET / HTTP/1.1\r\n\r\n");
  EXPECT_EQ(r.dataTs, (std::vector<uint64_t>{2, 3}));
  EXPECT_EQ(r.reason, EndReason::kFin);
  EXPECT_EQ(table().flowCount(), 0u);
  EXPECT_EQ(table().closedCount(), 1u);
  EXPECT_EQ(stats().flowsCreated.load(), 1u);
  EXPECT_EQ(stats().flowsMidstream.load(), 0u);
  EXPECT_EQ(stats().controlSegments.load(), 1u);
  EXPECT_EQ(stats().inOrderSegments.load(), 2u);
  EXPECT_EQ(stats().endedFin.load(), 1u);
}

TEST_F(FlowTableTest, PureAckOfUnknownFlowCreatesNothing) {
  in(b_.data(key_, 5, "", 1));
  in(b_.data(key_, 5, "", 2, kTcpFin));
  in(b_.data(key_, 5, "", 3, kTcpRst));
  EXPECT_TRUE(factory_.records.empty());
  EXPECT_EQ(table().flowCount(), 0u);
  EXPECT_EQ(stats().noPayloadIgnored.load(), 3u);
}

TEST_F(FlowTableTest, MidstreamJoin) {
  in(b_.data(key_, 5000, "abc", 1));
  in(b_.data(key_, 5003, "def", 2));
  in(b_.data(key_, 4990, "0123456789", 3));  // before the join point: a retransmit
  in(b_.data(key_, 5004, "xxXYZ", 4));       // straddles the delivery point
  ASSERT_EQ(factory_.records.size(), 1u);
  const auto& r = factory_.last();
  EXPECT_FALSE(r.fromStart);
  EXPECT_EQ(r.ruleId, 7u);
  EXPECT_EQ(r.data, "abcdefXYZ");
  EXPECT_EQ(stats().flowsMidstream.load(), 1u);
  EXPECT_EQ(stats().retransmitBytes.load(), 12u);
  EXPECT_EQ(stats().retransmitSegments.load(), 1u);
}

TEST_F(FlowTableTest, LateSynOfMidstreamFlowIsIgnored) {
  in(b_.data(key_, 5001, "abc", 1));
  in(b_.syn(key_, 5000, 2));  // reordered SYN of the same connection
  in(b_.data(key_, 5004, "d", 3));
  ASSERT_EQ(factory_.records.size(), 1u);
  EXPECT_EQ(factory_.last().data, "abcd");
  EXPECT_EQ(stats().synRetransmits.load(), 1u);
}

TEST_F(FlowTableTest, ExactRetransmitsAreTrimmedAndCounted) {
  in(b_.syn(key_, 0, 1));
  in(b_.data(key_, 1, "hello", 2));
  in(b_.data(key_, 1, "hello", 3));
  in(b_.syn(key_, 0, 4));  // retransmitted SYN
  in(b_.data(key_, 6, "world", 5));
  in(b_.data(key_, 6, "world", 6));
  EXPECT_EQ(factory_.last().data, "helloworld");
  EXPECT_EQ(factory_.records.size(), 1u);
  EXPECT_EQ(stats().retransmitBytes.load(), 10u);
  EXPECT_EQ(stats().retransmitSegments.load(), 2u);
  EXPECT_EQ(stats().synRetransmits.load(), 1u);
}

// First-received bytes win: overlapping copies with different content never
// replace what was received first.
TEST_F(FlowTableTest, OverlapsFirstReceivedWins) {
  in(b_.syn(key_, 99, 1));
  // stream offsets: 10..20 arrive first
  in(b_.data(key_, 110, "KLMNOPQRST", 2));
  // overlaps its front from the left (5..15) and its back from the right (15..25)
  in(b_.data(key_, 105, "fghijxxxxx", 3));
  in(b_.data(key_, 115, "yyyyyuvwxy", 4));
  // covers all of that (8..25): nothing new
  in(b_.data(key_, 108, "zzzzzzzzzzzzzzzzz", 5));
  EXPECT_EQ(stats().outOfOrderSegments.load(), 3u);
  EXPECT_EQ(stats().retransmitSegments.load(), 1u);
  EXPECT_TRUE(factory_.last().data.empty());
  // in order: delivers 0..5, its 5..8 lose against the buffered copy
  in(b_.data(key_, 100, "abcdeQQQ", 6));
  EXPECT_EQ(factory_.last().data, "abcdefghijKLMNOPQRSTuvwxy");
  EXPECT_EQ(stats().retransmitBytes.load(), 5u + 5u + 17u + 3u);
  // a copy straddling the delivery point and the end is trimmed on both sides
  in(b_.data(key_, 120, "#####!", 7));
  EXPECT_EQ(factory_.last().data, "abcdefghijKLMNOPQRSTuvwxy!");
}

TEST_F(FlowTableTest, WraparoundAcrossTwoToThe32) {
  in(b_.syn(key_, 0xFFFFFFF0u, 1));
  // stream offset 0 is seq 0xFFFFFFF1; 15 bytes reach 0xFFFFFFFF, then 0.
  in(b_.data(key_, 0x00000005u, "TAIL", 2));  // offset 20, out of order across the wrap
  in(b_.data(key_, 0xFFFFFFF1u, "0123456789abcdefghij", 3));
  in(b_.data(key_, 0x00000009u, "!", 4, kTcpFin));
  EXPECT_EQ(factory_.last().data, "0123456789abcdefghijTAIL!");
  EXPECT_EQ(factory_.last().reason, EndReason::kFin);
}

TEST_F(FlowTableTest, FinBeforeMissingDataThenData) {
  in(b_.syn(key_, 0, 1));
  in(b_.data(key_, 1, "aaa", 2));
  in(b_.data(key_, 7, "ccc", 3, kTcpFin));  // FIN at 10, bytes 4..7 missing
  EXPECT_EQ(factory_.last().ends, 0);
  EXPECT_EQ(table().flowCount(), 1u);
  in(b_.data(key_, 4, "bbb", 4));
  EXPECT_EQ(factory_.last().data, "aaabbbccc");
  EXPECT_EQ(factory_.last().reason, EndReason::kFin);
  EXPECT_EQ(table().flowCount(), 0u);
}

TEST_F(FlowTableTest, BareFinBeforeMissingDataEndsByGapTimeout) {
  limits_.gapTimeoutNs = 100 * kMs;
  in(b_.syn(key_, 0, 1));
  in(b_.data(key_, 1, "aaa", 2));
  in(b_.data(key_, 10, "", 3, kTcpFin));  // FIN at 10 with nothing buffered: 6 bytes missing
  table().expire(3 + 99 * kMs);
  EXPECT_EQ(factory_.last().ends, 0);
  table().expire(3 + 100 * kMs);
  EXPECT_EQ(factory_.last().gaps, (std::vector<uint64_t>{6}));
  EXPECT_EQ(factory_.last().reason, EndReason::kFin);
  EXPECT_EQ(stats().gapsTimeout.load(), 1u);
}

TEST_F(FlowTableTest, DataBeyondFinIsDropped) {
  in(b_.syn(key_, 0, 1));
  in(b_.data(key_, 5, "efgh", 2));            // offsets 4..8, buffered
  in(b_.data(key_, 1, "abc", 3, kTcpFin));    // FIN at offset 3: the buffered bytes are beyond
  EXPECT_EQ(factory_.last().data, "abc");
  EXPECT_EQ(factory_.last().reason, EndReason::kFin);
  EXPECT_EQ(stats().beyondFinBytes.load(), 4u);
}

TEST_F(FlowTableTest, RstDeliversInOrderThenGapsThenEnds) {
  in(b_.syn(key_, 0, 1));
  in(b_.data(key_, 1, "abc", 2));
  in(b_.data(key_, 7, "ghi", 3));  // hole of 3 (offsets 3..6)
  in(b_.data(key_, 10, "", 4, kTcpRst));
  const auto& r = factory_.last();
  EXPECT_EQ(r.withGaps, "abc~~~ghi");
  EXPECT_EQ(r.gaps, (std::vector<uint64_t>{3}));
  EXPECT_EQ(r.reason, EndReason::kRst);
  EXPECT_EQ(stats().gapsAtEnd.load(), 1u);
  EXPECT_EQ(stats().endedRst.load(), 1u);
  // Late retransmissions after the RST are counted and ignored.
  in(b_.data(key_, 4, "def", 5));
  in(b_.data(key_, 1, "", 6));
  EXPECT_EQ(stats().lateSegments.load(), 2u);
  EXPECT_EQ(stats().lateBytes.load(), 3u);
  EXPECT_EQ(factory_.records.size(), 1u);
}

TEST_F(FlowTableTest, IdleTimeoutViaExpire) {
  limits_.idleTimeoutNs = 10 * kSec;
  const model::FlowKey other = makeKey(40001);
  in(b_.syn(key_, 0, 1 * kSec));
  in(b_.data(other, 50, "x", 5 * kSec));
  table().expire(10 * kSec);
  EXPECT_EQ(table().flowCount(), 2u);
  table().expire(11 * kSec);
  EXPECT_EQ(table().flowCount(), 1u);
  EXPECT_EQ(factory_.records[0]->reason, EndReason::kIdle);
  EXPECT_EQ(factory_.records[1]->ends, 0);
  // An idle-ended flow does not linger: new data joins mid-stream at once.
  in(b_.data(key_, 1, "again", 12 * kSec));
  EXPECT_EQ(factory_.records.size(), 3u);
  EXPECT_FALSE(factory_.last().fromStart);
  table().expire(15 * kSec);
  EXPECT_EQ(factory_.records[1]->reason, EndReason::kIdle);
  EXPECT_EQ(stats().endedIdle.load(), 2u);
}

TEST_F(FlowTableTest, GapTimeoutInExpireDeliversBytesAfterHole) {
  limits_.gapTimeoutNs = 1 * kSec;
  in(b_.syn(key_, 0, 1));
  in(b_.data(key_, 1, "0123", 10));
  in(b_.data(key_, 11, "ABCD", 20));   // hole 4..10 (6 bytes)
  in(b_.data(key_, 20, "WXYZ", 30));   // hole 14..19 (5 bytes)
  table().expire(20 + kSec - 1);
  EXPECT_TRUE(factory_.last().gaps.empty());
  table().expire(20 + kSec);  // oldest waiting segment (ts 20) is 1 s old
  EXPECT_EQ(factory_.last().withGaps, "0123~~~~~~ABCD");
  table().expire(30 + kSec);
  EXPECT_EQ(factory_.last().withGaps, "0123~~~~~~ABCD~~~~~WXYZ");
  EXPECT_EQ(factory_.last().gaps, (std::vector<uint64_t>{6, 5}));
  EXPECT_EQ(stats().gapsTimeout.load(), 2u);
  EXPECT_EQ(stats().gapBytes.load(), 11u);
  // Stream continues after the gaps; a late fill of a given-up hole is a retransmit.
  in(b_.data(key_, 24, "!", 40));
  in(b_.data(key_, 5, "456789", 41));
  EXPECT_EQ(factory_.last().data, "0123ABCDWXYZ!");
  EXPECT_EQ(stats().retransmitBytes.load(), 6u);
}

TEST_F(FlowTableTest, GapTimeoutCheckedOnIngest) {
  limits_.gapTimeoutNs = 1 * kSec;
  in(b_.syn(key_, 0, 1));
  in(b_.data(key_, 5, "efgh", 10));  // hole of 4
  in(b_.data(key_, 9, "ijkl", 10 + kSec));
  EXPECT_EQ(factory_.last().withGaps, "~~~~efghijkl");
  EXPECT_EQ(stats().gapsTimeout.load(), 1u);
}

TEST_F(FlowTableTest, PerFlowBufferLimitMakesGap) {
  limits_.maxFlowBufferBytes = 10;
  in(b_.syn(key_, 0, 1));
  in(b_.data(key_, 3, "cdef", 2));      // hole 0..2, 4 buffered
  in(b_.data(key_, 9, "ijklmn", 3));    // hole 6..8, 10 buffered: at the limit
  EXPECT_TRUE(factory_.last().gaps.empty());
  in(b_.data(key_, 17, "qr", 4));       // 12 buffered: first hole goes
  EXPECT_EQ(factory_.last().withGaps, "~~cdef");
  EXPECT_EQ(stats().gapsFlowLimit.load(), 1u);
  EXPECT_EQ(stats().outOfOrderBytes.load(), 8u);
  in(b_.data(key_, 7, "ghxxxxxx", 5));  // fills hole 6..8; 9..14 buffered copy wins
  EXPECT_EQ(factory_.last().withGaps, "~~cdefghijklmn");
  EXPECT_EQ(stats().outOfOrderBytes.load(), 2u);
}

TEST_F(FlowTableTest, PerFlowSegmentLimitMakesGap) {
  limits_.maxFlowBufferSegments = 2;
  in(b_.syn(key_, 0, 1));
  in(b_.data(key_, 3, "c", 2));
  in(b_.data(key_, 5, "e", 3));
  EXPECT_TRUE(factory_.last().gaps.empty());
  in(b_.data(key_, 7, "g", 4));
  EXPECT_EQ(factory_.last().withGaps, "~~c");
  EXPECT_EQ(stats().gapsFlowLimit.load(), 1u);
}

TEST_F(FlowTableTest, TotalLimitForcesFlowHoldingMostFirst) {
  limits_.maxTotalBufferBytes = 20;
  const model::FlowKey small = makeKey(40001);
  in(b_.syn(key_, 0, 1));
  in(b_.syn(small, 0, 1));
  in(b_.data(small, 2, "bc", 2));            // small: 2 buffered
  in(b_.data(key_, 3, "cdefghijklmn", 3));   // big: 12 buffered
  EXPECT_EQ(table().bufferedBytes(), 14u);
  in(b_.data(key_, 20, "tuvwxyz", 4));       // big: 19, total 21 > 20
  // The big flow gives up its first hole, which delivers 12 and leaves 7.
  EXPECT_EQ(factory_.records[0]->withGaps, "~~cdefghijklmn");
  EXPECT_TRUE(factory_.records[1]->gaps.empty());
  EXPECT_EQ(table().bufferedBytes(), 9u);
  EXPECT_EQ(stats().gapsTotalLimit.load(), 1u);
}

TEST_F(FlowTableTest, TotalLimitCountsConsumersAndEvictsBiggest) {
  limits_.maxTotalBufferBytes = 100;
  const model::FlowKey other = makeKey(40001);
  in(b_.data(key_, 1, "a", 1));
  in(b_.data(other, 1, "b", 1));
  factory_.records[0]->buffered = 60;  // consumers hold partial requests
  factory_.records[1]->buffered = 30;
  in(b_.data(key_, 2, "a", 2));
  in(b_.data(other, 2, "b", 2));
  EXPECT_EQ(table().bufferedBytes(), 90u);
  EXPECT_EQ(table().flowCount(), 2u);
  factory_.records[1]->buffered = 50;
  in(b_.data(other, 3, "b", 3));  // 110 > 100: the flow holding 60 goes
  EXPECT_EQ(factory_.records[0]->reason, EndReason::kEvicted);
  EXPECT_EQ(factory_.records[1]->ends, 0);
  EXPECT_EQ(table().bufferedBytes(), 50u);
  EXPECT_EQ(stats().flowsEvictedMemory.load(), 1u);
  EXPECT_EQ(stats().consumerBytes.load(), 50u);
}

TEST_F(FlowTableTest, MaxFlowsEvictsLeastRecentlyUsed) {
  limits_.maxFlows = 2;
  const model::FlowKey k1 = makeKey(1), k2 = makeKey(2), k3 = makeKey(3);
  in(b_.data(k1, 1, "a", 1));
  in(b_.data(k2, 1, "b", 2));
  in(b_.data(k1, 2, "a", 3));  // k1 is now the most recent
  in(b_.data(k3, 1, "c", 4));  // evicts k2
  ASSERT_EQ(factory_.records.size(), 3u);
  EXPECT_EQ(factory_.records[1]->reason, EndReason::kEvicted);
  EXPECT_EQ(factory_.records[0]->ends, 0);
  EXPECT_EQ(table().flowCount(), 2u);
  EXPECT_EQ(stats().flowsEvicted.load(), 1u);
  // k2 comes back as a new mid-stream flow, evicting k1.
  in(b_.data(k2, 2, "b", 5));
  EXPECT_EQ(factory_.records[0]->reason, EndReason::kEvicted);
  ASSERT_EQ(factory_.records.size(), 4u);
  EXPECT_EQ(factory_.records[3]->data, "b");
}

TEST_F(FlowTableTest, MaxFlowsForgetsClosedFlowsBeforeEvictingLive) {
  limits_.maxFlows = 2;
  const model::FlowKey k1 = makeKey(1), k2 = makeKey(2), k3 = makeKey(3);
  in(b_.data(k1, 1, "a", 1));
  in(b_.data(k2, 1, "b", 2, kTcpFin));  // k2 closed, lingering
  EXPECT_EQ(table().closedCount(), 1u);
  in(b_.data(k3, 1, "c", 3));
  EXPECT_EQ(factory_.records[0]->ends, 0);
  EXPECT_EQ(table().flowCount(), 2u);
  EXPECT_EQ(table().closedCount(), 0u);
  EXPECT_EQ(stats().closedEvicted.load(), 1u);
  EXPECT_EQ(stats().flowsEvicted.load(), 0u);
}

TEST_F(FlowTableTest, ClosedFlowLingersThenIsForgotten) {
  limits_.closedLingerNs = 5 * kSec;
  in(b_.syn(key_, 0, 1 * kSec));
  in(b_.data(key_, 1, "abc", 1 * kSec, kTcpFin));
  EXPECT_EQ(factory_.last().reason, EndReason::kFin);
  in(b_.data(key_, 1, "abc", 2 * kSec, kTcpFin));  // late retransmit
  EXPECT_EQ(stats().lateSegments.load(), 1u);
  table().expire(6 * kSec - 1);
  EXPECT_EQ(table().closedCount(), 1u);
  table().expire(6 * kSec);
  EXPECT_EQ(table().closedCount(), 0u);
  EXPECT_EQ(stats().closedForgotten.load(), 1u);
  // Forgotten: the same bytes now start a mid-stream flow.
  in(b_.data(key_, 1, "abc", 7 * kSec));
  EXPECT_EQ(factory_.records.size(), 2u);
  EXPECT_FALSE(factory_.last().fromStart);
}

TEST_F(FlowTableTest, SynOnClosedFlowStartsFreshFlow) {
  in(b_.syn(key_, 0, 1));
  in(b_.data(key_, 1, "one", 2, kTcpFin));
  in(b_.syn(key_, 1000, 3));
  in(b_.data(key_, 1001, "two", 4));
  ASSERT_EQ(factory_.records.size(), 2u);
  EXPECT_EQ(factory_.records[0]->data, "one");
  EXPECT_EQ(factory_.records[1]->data, "two");
  EXPECT_TRUE(factory_.records[1]->fromStart);
  EXPECT_EQ(table().flowCount(), 1u);
  EXPECT_EQ(table().closedCount(), 0u);
}

TEST_F(FlowTableTest, SynWithNewIsnReplacesLiveFlow) {
  in(b_.syn(key_, 0, 1));
  in(b_.data(key_, 1, "one", 2));
  in(b_.data(key_, 9, "zzz", 3));  // buffered behind a hole
  in(b_.syn(key_, 5000, 4));
  ASSERT_EQ(factory_.records.size(), 2u);
  EXPECT_EQ(factory_.records[0]->withGaps, "one~~~~~zzz");
  EXPECT_EQ(factory_.records[0]->reason, EndReason::kRst);
  EXPECT_EQ(factory_.records[1]->ends, 0);
  EXPECT_EQ(stats().flowsReplaced.load(), 1u);
  in(b_.data(key_, 5001, "two", 5));
  EXPECT_EQ(factory_.records[1]->data, "two");
}

TEST_F(FlowTableTest, SynPayloadStartsAfterIsn) {
  Segment s = b_.data(key_, 100, "GET", 1, kTcpSyn);
  in(s);
  in(b_.data(key_, 104, " /", 2));
  EXPECT_EQ(factory_.last().data, "GET /");
  EXPECT_TRUE(factory_.last().fromStart);
}

TEST_F(FlowTableTest, TooFarAheadIsDropped) {
  in(b_.syn(key_, 0, 1));
  in(b_.data(key_, 1 + (1u << 30) + 1, "far", 2));
  in(b_.data(key_, 1 + (1u << 30), "ok", 3));  // exactly 1 GiB ahead is kept
  EXPECT_EQ(stats().tooFarSegments.load(), 1u);
  EXPECT_EQ(stats().tooFarBytes.load(), 3u);
  EXPECT_EQ(stats().outOfOrderBytes.load(), 2u);
}

TEST_F(FlowTableTest, DeclinedFlowsAreCounted) {
  factory_.decline = true;
  in(b_.data(key_, 1, "abc", 1));
  in(b_.syn(key_, 0, 2));
  EXPECT_EQ(table().flowCount(), 0u);
  EXPECT_EQ(stats().flowsDeclined.load(), 2u);
  EXPECT_EQ(stats().declinedBytes.load(), 3u);
  factory_.decline = false;
  in(b_.data(key_, 4, "d", 3));
  EXPECT_EQ(factory_.last().data, "d");
}

TEST_F(FlowTableTest, ShutdownEndsEveryLiveFlow) {
  in(b_.data(makeKey(1), 1, "a", 1));
  in(b_.data(makeKey(2), 1, "b", 1));
  in(b_.data(makeKey(2), 5, "f", 1));  // buffered: delivered after a gap at shutdown
  in(b_.data(makeKey(3), 1, "c", 1, kTcpFin));
  table().shutdown();
  EXPECT_EQ(factory_.records[0]->reason, EndReason::kShutdown);
  EXPECT_EQ(factory_.records[1]->withGaps, "b~~~f");
  EXPECT_EQ(factory_.records[1]->reason, EndReason::kShutdown);
  EXPECT_EQ(factory_.records[2]->reason, EndReason::kFin);
  EXPECT_EQ(stats().endedShutdown.load(), 2u);
  EXPECT_EQ(table().flowCount(), 0u);
  EXPECT_EQ(table().closedCount(), 0u);
}

// Many flows interleaved with every kind of event; the identities must hold.
TEST_F(FlowTableTest, CountersAddUpUnderMixedTraffic) {
  limits_.maxFlows = 16;
  limits_.maxFlowBufferBytes = 64;
  limits_.gapTimeoutNs = 50 * kMs;
  limits_.idleTimeoutNs = 500 * kMs;
  limits_.closedLingerNs = 200 * kMs;
  std::mt19937 rng(1);
  uint64_t ts = 1;
  for (int i = 0; i < 20000; ++i) {
    const model::FlowKey k = makeKey(uint16_t(1 + rng() % 40));
    const uint32_t seq = rng() % 400;
    const std::string payload(rng() % 24, char('a' + rng() % 26));
    uint8_t flags = 0;
    const uint32_t roll = rng() % 100;
    if (roll < 3) {
      flags = kTcpSyn;
    } else if (roll < 5) {
      flags = kTcpFin;
    } else if (roll < 6) {
      flags = kTcpRst;
    }
    in(b_.data(k, seq, flags == kTcpSyn ? "" : payload, ts, flags));
    ts += rng() % (2 * kMs);
    if (i % 50 == 0) {
      table().expire(ts);
    }
    if (i % 1000 == 0) {
      expectIdentities(table());
    }
  }
  EXPECT_GT(stats().gaps.load(), 0u);
  EXPECT_GT(stats().flowsEvicted.load() + stats().closedEvicted.load(), 0u);
  EXPECT_GT(stats().lateSegments.load(), 0u);
  EXPECT_GT(stats().retransmitBytes.load(), 0u);
}

}  // namespace
}  // namespace shadowtap::flow
