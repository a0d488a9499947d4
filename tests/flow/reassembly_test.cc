// Byte-exactness of reassembly through FlowTable: the same stream cut at every
// position, reordered in every permutation, duplicated, overlapping, wrapped.
#include <gtest/gtest.h>

#include <algorithm>
#include <numeric>
#include <random>
#include <string>
#include <vector>

#include "flow/flow_table.h"
#include "recording_consumer.h"

namespace shadowtap::flow {
namespace {

using testing::expectConsumersMatchStats;
using testing::expectIdentities;
using testing::makeKey;
using testing::RecordingFactory;
using testing::SegmentBuilder;

const std::string kRequests =
    "GET /a HTTP/1.1\r\nHost: httpbin:8000\r\n\r\n"
    "POST /b HTTP/1.1\r\nHost: httpbin:8000\r\nContent-Length: 5\r\n\r\nhello"
    "GET /c HTTP/1.1\r\nHost: x\r\n\r\n";

FlowLimits smallTable() {
  FlowLimits l;
  l.maxFlows = 8;
  return l;
}

struct Piece {
  uint32_t offset;  // stream offset
  uint32_t size;
};

// Cuts [0, total) at the given positions (sorted, unique, within (0, total)).
std::vector<Piece> cut(size_t total, const std::vector<size_t>& cuts) {
  std::vector<Piece> pieces;
  size_t from = 0;
  for (size_t c : cuts) {
    pieces.push_back({uint32_t(from), uint32_t(c - from)});
    from = c;
  }
  pieces.push_back({uint32_t(from), uint32_t(total - from)});
  return pieces;
}

// Runs one connection: SYN with `isn`, then `pieces` in `order`, the last
// stream piece carrying FIN when `withFin`. Checks the delivered stream.
int gCases = 0;  // cases run, so a loop that silently runs nothing fails

void runCase(uint32_t isn, const std::vector<Piece>& pieces, const std::vector<size_t>& order,
             bool withFin) {
  ++gCases;
  RecordingFactory factory;
  FlowTable table(smallTable(), factory);
  SegmentBuilder b;
  const model::FlowKey key = makeKey(40000);
  table.ingest(b.syn(key, isn));
  uint64_t ts = 2;
  for (size_t i : order) {
    const Piece& p = pieces[i];
    const bool fin = withFin && i == pieces.size() - 1;
    table.ingest(b.data(key, isn + 1 + p.offset, std::string_view(kRequests).substr(p.offset, p.size),
                        ts++, fin ? kTcpFin : 0));
  }
  ASSERT_EQ(factory.records.size(), 1u);
  const auto& r = factory.last();
  EXPECT_TRUE(r.fromStart);
  EXPECT_EQ(r.data, kRequests);
  EXPECT_TRUE(r.gaps.empty());
  if (withFin) {
    EXPECT_EQ(r.ends, 1);
    EXPECT_EQ(r.reason, EndReason::kFin);
    EXPECT_EQ(table.flowCount(), 0u);
  } else {
    EXPECT_EQ(r.ends, 0);
    EXPECT_EQ(table.bufferedBytes(), 0u);
  }
  EXPECT_EQ(table.stats().deliveredBytes.load(), kRequests.size());
  EXPECT_EQ(table.stats().retransmitBytes.load(), 0u);
  expectIdentities(table);
  table.shutdown();
  expectIdentities(table);
  expectConsumersMatchStats(table, factory);
}

TEST(Reassembly, EveryCutPositionBothOrders) {
  gCases = 0;
  for (size_t c = 1; c < kRequests.size(); ++c) {
    const auto pieces = cut(kRequests.size(), {c});
    SCOPED_TRACE("cut " + std::to_string(c));
    runCase(1000, pieces, {0, 1}, true);
    runCase(1000, pieces, {1, 0}, true);
    runCase(1000, pieces, {1, 0}, false);
  }
  EXPECT_EQ(gCases, int(3 * (kRequests.size() - 1)));
}

TEST(Reassembly, EveryPairOfCutsEveryPermutation) {
  const size_t n = kRequests.size();
  gCases = 0;
  int expected = 0;
  for (size_t c1 = 1; c1 < n; ++c1) {
    for (size_t c2 = c1 + 1; c2 < n; ++c2) {
      const auto pieces = cut(n, {c1, c2});
      std::vector<size_t> order = {0, 1, 2};
      expected += 6;
      do {
        SCOPED_TRACE("cuts " + std::to_string(c1) + "," + std::to_string(c2));
        runCase(0xFFFFFFF0u + uint32_t(c1 % 32), pieces, order, (c1 + c2) % 2 == 0);
      } while (std::next_permutation(order.begin(), order.end()));
    }
  }
  EXPECT_EQ(gCases, expected);
  EXPECT_EQ(gCases, int(6 * (n - 1) * (n - 2) / 2));
}

TEST(Reassembly, FiveSegmentsAllPermutationsAcrossWrap) {
  std::mt19937 rng(42);
  const size_t n = kRequests.size();
  gCases = 0;
  for (int round = 0; round < 12; ++round) {
    std::vector<size_t> all(n - 1);
    std::iota(all.begin(), all.end(), 1);
    std::shuffle(all.begin(), all.end(), rng);
    std::vector<size_t> cuts(all.begin(), all.begin() + 4);
    std::sort(cuts.begin(), cuts.end());
    const auto pieces = cut(n, cuts);
    // ISNs that put the 2^32 wrap before, inside and after the stream.
    const uint32_t isn = round % 3 == 0 ? 0xFFFFFFFFu - uint32_t(cuts[round % 4])
                                        : (round % 3 == 1 ? 0xFFFFFFF0u : 7u);
    std::vector<size_t> order = {0, 1, 2, 3, 4};
    do {
      SCOPED_TRACE("round " + std::to_string(round));
      runCase(isn, pieces, order, round % 2 == 0);
    } while (std::next_permutation(order.begin(), order.end()));
  }
  EXPECT_EQ(gCases, 12 * 120);
}

// Random segments of random sizes, overlapping, duplicated and reordered; the
// stream must come out exact and the duplicates counted.
TEST(Reassembly, RandomOverlapsAndDuplicates) {
  std::mt19937 rng(7);
  const size_t n = kRequests.size();
  for (int round = 0; round < 300; ++round) {
    RecordingFactory factory;
    FlowTable table(smallTable(), factory);
    SegmentBuilder b;
    const model::FlowKey key = makeKey(40001);
    const uint32_t isn = rng();
    table.ingest(b.syn(key, isn));
    // Cover the stream with segments, then add random overlapping copies.
    std::vector<Piece> segs;
    for (size_t off = 0; off < n;) {
      const size_t len = std::min<size_t>(n - off, 1 + rng() % 20);
      segs.push_back({uint32_t(off), uint32_t(len)});
      off += len;
    }
    const size_t extra = rng() % 10;
    for (size_t i = 0; i < extra; ++i) {
      const size_t off = rng() % n;
      const size_t len = std::min<size_t>(n - off, 1 + rng() % 30);
      segs.push_back({uint32_t(off), uint32_t(len)});
    }
    std::shuffle(segs.begin(), segs.end(), rng);
    uint64_t sent = 0;
    for (const Piece& p : segs) {
      table.ingest(b.data(key, isn + 1 + p.offset, std::string_view(kRequests).substr(p.offset, p.size)));
      sent += p.size;
    }
    const auto& r = factory.last();
    ASSERT_EQ(r.data, kRequests) << "round " << round;
    EXPECT_TRUE(r.gaps.empty());
    EXPECT_EQ(table.stats().retransmitBytes.load(), sent - n);
    EXPECT_EQ(table.bufferedBytes(), 0u);
    expectIdentities(table);
  }
}

}  // namespace
}  // namespace shadowtap::flow
