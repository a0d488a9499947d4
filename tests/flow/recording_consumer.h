#pragma once

#include <gtest/gtest.h>

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "flow/flow_table.h"
#include "flow/segment.h"
#include "flow/stream_consumer.h"

namespace shadowtap::flow::testing {

// What one consumer saw. Owned by the factory so it survives the consumer.
struct Record {
  model::FlowKey key;
  uint32_t ruleId = 0;
  bool fromStart = false;
  std::string data;       // bytes delivered, in order
  std::string withGaps;   // same, with each gap byte shown as '~'
  std::vector<uint64_t> gaps;
  std::vector<uint64_t> dataTs;  // tsNs of each onData call
  uint64_t gapBytes = 0;
  int ends = 0;
  std::optional<EndReason> reason;
  bool callAfterEnd = false;
  size_t buffered = 0;  // what bufferedBytes() reports; tests set it
};

class RecordingConsumer : public StreamConsumer {
 public:
  explicit RecordingConsumer(std::shared_ptr<Record> r) : r_(std::move(r)) {}
  void onData(std::span<const uint8_t> bytes, uint64_t tsNs) override {
    r_->callAfterEnd |= r_->ends > 0;
    EXPECT_FALSE(bytes.empty());
    r_->data.append(reinterpret_cast<const char*>(bytes.data()), bytes.size());
    r_->withGaps.append(reinterpret_cast<const char*>(bytes.data()), bytes.size());
    r_->dataTs.push_back(tsNs);
  }
  void onGap(uint64_t bytes) override {
    r_->callAfterEnd |= r_->ends > 0;
    EXPECT_GT(bytes, 0u);
    r_->gaps.push_back(bytes);
    r_->gapBytes += bytes;
    // Small gaps are drawn byte for byte so tests can compare whole streams.
    if (bytes <= 4096) {
      r_->withGaps.append(bytes, '~');
    } else {
      r_->withGaps += "[gap " + std::to_string(bytes) + "]";
    }
  }
  void onEnd(EndReason reason) override {
    r_->callAfterEnd |= r_->ends > 0;
    ++r_->ends;
    r_->reason = reason;
  }
  size_t bufferedBytes() const override { return r_->buffered; }

 private:
  std::shared_ptr<Record> r_;
};

class RecordingFactory : public StreamConsumerFactory {
 public:
  std::unique_ptr<StreamConsumer> create(const model::FlowKey& key, uint32_t ruleId,
                                         bool fromStart) override {
    if (decline) {
      return nullptr;
    }
    auto r = std::make_shared<Record>();
    r->key = key;
    r->ruleId = ruleId;
    r->fromStart = fromStart;
    records.push_back(r);
    return std::make_unique<RecordingConsumer>(r);
  }

  Record& last() { return *records.back(); }

  bool decline = false;
  std::vector<std::shared_ptr<Record>> records;
};

inline model::FlowKey makeKey(uint16_t sport, uint8_t lastOctet = 1) {
  model::FlowKey k;
  k.family = 4;
  k.saddr = {198, 18, 0, lastOctet};
  k.daddr = {198, 18, 0, 2};
  k.sport = sport;
  k.dport = 8000;
  return k;
}

// Builds segments whose payload storage lives as long as the builder, while
// Segment itself only borrows it (as in production).
class SegmentBuilder {
 public:
  Segment make(const model::FlowKey& key, uint32_t seq, std::string_view payload, uint8_t flags,
               uint64_t tsNs) {
    store_.push_back(std::make_unique<std::string>(payload));
    Segment s;
    s.key = key;
    s.seq = seq;
    s.flags = flags | kTcpAck;
    s.ruleId = 7;
    s.tsNs = tsNs;
    const std::string& p = *store_.back();
    s.payload = std::span<const uint8_t>(reinterpret_cast<const uint8_t*>(p.data()), p.size());
    return s;
  }
  Segment syn(const model::FlowKey& key, uint32_t isn, uint64_t tsNs = 1) {
    Segment s = make(key, isn, "", kTcpSyn, tsNs);
    s.flags = kTcpSyn;
    return s;
  }
  Segment data(const model::FlowKey& key, uint32_t seq, std::string_view payload, uint64_t tsNs = 1,
               uint8_t flags = 0) {
    return make(key, seq, payload, flags, tsNs);
  }

 private:
  std::vector<std::unique_ptr<std::string>> store_;
};

// The identities documented in flow_stats.h.
inline void expectIdentities(const FlowTable& table) {
  const FlowStats& s = table.stats();
  auto v = [](const std::atomic<uint64_t>& a) { return a.load(); };
  EXPECT_EQ(v(s.segments), v(s.inOrderSegments) + v(s.outOfOrderSegments) +
                               v(s.retransmitSegments) + v(s.tooFarSegments) +
                               v(s.beyondFinSegments) + v(s.lateSegments) +
                               v(s.noPayloadIgnored) + v(s.controlSegments) +
                               v(s.declinedSegments));
  EXPECT_EQ(v(s.payloadBytes), v(s.deliveredBytes) + v(s.retransmitBytes) + v(s.tooFarBytes) +
                                   v(s.beyondFinBytes) + v(s.lateBytes) + v(s.declinedBytes) +
                                   v(s.outOfOrderBytes));
  EXPECT_EQ(v(s.flowsCreated), v(s.liveFlows) + v(s.endedFin) + v(s.endedRst) +
                                   v(s.endedIdle) + v(s.endedEvicted) + v(s.endedShutdown));
  EXPECT_EQ(v(s.endedEvicted), v(s.flowsEvicted) + v(s.flowsEvictedMemory));
  EXPECT_EQ(v(s.gaps), v(s.gapsTimeout) + v(s.gapsFlowLimit) + v(s.gapsTotalLimit) +
                           v(s.gapsAtEnd));
  EXPECT_EQ(v(s.liveFlows), table.flowCount());
  EXPECT_EQ(v(s.closedFlows), table.closedCount());
  EXPECT_LE(v(s.flowsReplaced), v(s.endedRst));
}

// Sum over all consumers of bytes delivered and gap bytes equals the table's
// counters (every consumer the factory made is accounted).
inline void expectConsumersMatchStats(const FlowTable& table, const RecordingFactory& f) {
  uint64_t data = 0;
  uint64_t gapBytes = 0;
  uint64_t gaps = 0;
  for (const auto& r : f.records) {
    data += r->data.size();
    gapBytes += r->gapBytes;
    gaps += r->gaps.size();
    EXPECT_FALSE(r->callAfterEnd);
    EXPECT_LE(r->ends, 1);
  }
  EXPECT_EQ(data, table.stats().deliveredBytes.load());
  EXPECT_EQ(gapBytes, table.stats().gapBytes.load());
  EXPECT_EQ(gaps, table.stats().gaps.load());
}

}  // namespace shadowtap::flow::testing
