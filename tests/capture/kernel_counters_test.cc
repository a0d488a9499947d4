// The kernel's counters by name, and the ring reader's poll pacing (pure).

#include "capture/kernel_counters.h"

#include <gtest/gtest.h>

#include <vector>

#include "capture/ring_reader.h"
#include "shadowtap/capture_abi.h"

namespace shadowtap::capture {
namespace {

TEST(CaptureKernelCountersTest, EachIndexHasItsName) {
  std::vector<uint64_t> values(ST_CNT_MAX);
  for (size_t i = 0; i < values.size(); ++i) {
    values[i] = 100 + i;  // distinct, so a swapped pair shows
  }
  const KernelCounters k = nameKernelCounters(values.data(), values.size());
  EXPECT_EQ(k.seen, 100u + ST_CNT_SEEN);
  EXPECT_EQ(k.notIp, 100u + ST_CNT_NOT_IP);
  EXPECT_EQ(k.notTcp, 100u + ST_CNT_NOT_TCP);
  EXPECT_EQ(k.malformed, 100u + ST_CNT_MALFORMED);
  EXPECT_EQ(k.ipv4Fragment, 100u + ST_CNT_IP_FRAGMENT);
  EXPECT_EQ(k.matched, 100u + ST_CNT_MATCHED);
  EXPECT_EQ(k.sampledOut, 100u + ST_CNT_SAMPLED_OUT);
  EXPECT_EQ(k.copied, 100u + ST_CNT_COPIED);
  EXPECT_EQ(k.copiedBytes, 100u + ST_CNT_COPIED_BYTES);
  EXPECT_EQ(k.ringbufFull, 100u + ST_CNT_RINGBUF_FULL);
  EXPECT_EQ(k.truncated, 100u + ST_CNT_TRUNCATED);
  EXPECT_EQ(k.ipv6ExtensionUnsupported, 100u + ST_CNT_IPV6_EXT_SKIPPED);
  EXPECT_EQ(k.ipv6Fragment, 100u + ST_CNT_IPV6_FRAGMENT);
  EXPECT_EQ(k.vlanTooDeep, 100u + ST_CNT_VLAN_TOO_DEEP);
  EXPECT_EQ(k.prefixMatched, 100u + ST_CNT_PREFIX_MATCHED);
  EXPECT_EQ(k.wakeups, 100u + ST_CNT_WAKEUPS);
  EXPECT_EQ(k.egressSeen, 100u + ST_CNT_EGRESS_SEEN);
  EXPECT_EQ(k.egressMatched, 100u + ST_CNT_EGRESS_MATCHED);
  EXPECT_EQ(k.egressSampledOut, 100u + ST_CNT_EGRESS_SAMPLED_OUT);
  EXPECT_EQ(k.egressCopied, 100u + ST_CNT_EGRESS_COPIED);
  EXPECT_EQ(k.egressCopiedBytes, 100u + ST_CNT_EGRESS_COPIED_BYTES);
}

TEST(CaptureKernelCountersTest, FewerOrMoreValuesThanNames) {
  const std::vector<uint64_t> two = {7, 8};
  const KernelCounters k = nameKernelCounters(two.data(), two.size());
  EXPECT_EQ(k.seen, 7u);
  EXPECT_EQ(k.notIp, 8u);
  EXPECT_EQ(k.egressCopiedBytes, 0u);
  std::vector<uint64_t> more(ST_CNT_MAX + 3, 1);
  EXPECT_EQ(nameKernelCounters(more.data(), more.size()).egressCopiedBytes, 1u);
}

TEST(CaptureRingReaderTest, PollsFastWhileRecordsFlowAndBacksOffWhenQuiet) {
  const PollPacing pacing{true, 2000, 50000};
  EXPECT_EQ(nextPollIntervalUs(5, 16000, pacing), 2000u);
  EXPECT_EQ(nextPollIntervalUs(0, 2000, pacing), 4000u);
  EXPECT_EQ(nextPollIntervalUs(0, 32000, pacing), 50000u);
  EXPECT_EQ(nextPollIntervalUs(0, 50000, pacing), 50000u);
  EXPECT_EQ(nextPollIntervalUs(-1, 2000, pacing), 4000u) << "an error reads no record";
  // Never faster than 100 us, and the idle interval is never below the base.
  EXPECT_EQ(nextPollIntervalUs(1, 2000, PollPacing{true, 10, 50000}), 100u);
  EXPECT_EQ(nextPollIntervalUs(0, 5000, PollPacing{true, 5000, 1000}), 5000u);
}

}  // namespace
}  // namespace shadowtap::capture
