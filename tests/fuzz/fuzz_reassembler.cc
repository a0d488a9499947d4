// libFuzzer target: the flow table (reassembly, limits, expiry) fed arbitrary
// segment sequences of three connections. Input: 5-byte records
//   [op][seq delta lo][seq delta hi][length][ms to advance]
// op bits 0-1: connection 0-2, or 3 = housekeeping (expire / shutdown);
// 0x04 SYN, 0x08 FIN, 0x10 RST, 0x20 length x16, 0x40 the factory declines.
// Payload bytes are a function of their sequence number, so every delivered
// byte can be checked against the sequence number it must have come from.
// Invariants: delivered bytes are exactly the bytes given for their position
// (never more than given), FlowStats identities, every consumer ends once and
// is never called after that, memory stays within the limits.
#include <cstdint>
#include <memory>
#include <vector>

#include "flow/flow_table.h"
#include "fuzz_check.h"

using namespace shadowtap::flow;

namespace {

constexpr uint32_t kBase[3] = {0xffffff00u, 1000u, 0x7ffffff0u};

uint8_t payloadByte(uint32_t seq, unsigned conn) {
  return static_cast<uint8_t>(((seq * 2654435761u) >> 24) ^ conn);
}

struct Tracker {
  unsigned conn = 0;
  uint32_t startSeq = 0;
  uint64_t offset = 0;  // stream offset reached (delivered + gaps)
  uint64_t delivered = 0;
  uint64_t gapBytes = 0;
  int ends = 0;
};

class CheckingConsumer : public StreamConsumer {
 public:
  explicit CheckingConsumer(Tracker* t) : t_(t) {}
  void onData(std::span<const uint8_t> bytes, uint64_t) override {
    FUZZ_CHECK(t_->ends == 0);
    FUZZ_CHECK(!bytes.empty());
    for (size_t i = 0; i < bytes.size(); ++i) {
      const uint32_t seq = t_->startSeq + static_cast<uint32_t>(t_->offset + i);
      FUZZ_CHECK(bytes[i] == payloadByte(seq, t_->conn));
    }
    t_->offset += bytes.size();
    t_->delivered += bytes.size();
  }
  void onGap(uint64_t bytes) override {
    FUZZ_CHECK(t_->ends == 0);
    FUZZ_CHECK(bytes > 0);
    t_->offset += bytes;
    t_->gapBytes += bytes;
  }
  void onEnd(EndReason) override {
    FUZZ_CHECK(t_->ends == 0);
    ++t_->ends;
  }
  // Pretend to hold some bytes, so that the total limit also sees consumers.
  size_t bufferedBytes() const override { return t_->ends == 0 ? (t_->offset * 7) % 512 : 0; }

 private:
  Tracker* t_;
};

struct Factory : StreamConsumerFactory {
  std::unique_ptr<StreamConsumer> create(const shadowtap::model::FlowKey& key, uint32_t, bool fromStart) override {
    FUZZ_CHECK(current != nullptr && key == current->key);
    if (decline) {
      return nullptr;
    }
    auto t = std::make_unique<Tracker>();
    t->conn = key.sport - 40000;
    const bool syn = (current->flags & kTcpSyn) != 0;
    FUZZ_CHECK(fromStart == syn);
    t->startSeq = syn ? current->seq + 1 : current->seq;
    trackers.push_back(std::move(t));
    return std::make_unique<CheckingConsumer>(trackers.back().get());
  }
  const Segment* current = nullptr;
  bool decline = false;
  std::vector<std::unique_ptr<Tracker>> trackers;
};

uint64_t v(const std::atomic<uint64_t>& a) { return a.load(std::memory_order_relaxed); }

void checkStats(const FlowTable& table, const Factory& factory, const FlowLimits& limits) {
  const FlowStats& s = table.stats();
  FUZZ_CHECK(v(s.segments) == v(s.inOrderSegments) + v(s.outOfOrderSegments) +
                                  v(s.retransmitSegments) + v(s.tooFarSegments) +
                                  v(s.beyondFinSegments) + v(s.lateSegments) +
                                  v(s.noPayloadIgnored) + v(s.controlSegments) +
                                  v(s.declinedSegments));
  FUZZ_CHECK(v(s.payloadBytes) == v(s.deliveredBytes) + v(s.retransmitBytes) + v(s.tooFarBytes) +
                                      v(s.beyondFinBytes) + v(s.lateBytes) + v(s.declinedBytes) +
                                      v(s.outOfOrderBytes));
  FUZZ_CHECK(v(s.flowsCreated) == v(s.liveFlows) + v(s.endedFin) + v(s.endedRst) +
                                      v(s.endedIdle) + v(s.endedEvicted) + v(s.endedShutdown));
  FUZZ_CHECK(v(s.endedEvicted) == v(s.flowsEvicted) + v(s.flowsEvictedMemory));
  FUZZ_CHECK(v(s.gaps) == v(s.gapsTimeout) + v(s.gapsFlowLimit) + v(s.gapsTotalLimit) +
                              v(s.gapsAtEnd));
  FUZZ_CHECK(v(s.liveFlows) == table.flowCount());
  FUZZ_CHECK(v(s.closedFlows) == table.closedCount());
  FUZZ_CHECK(table.flowCount() + table.closedCount() <= limits.maxFlows);
  FUZZ_CHECK(v(s.flowsCreated) == factory.trackers.size());
  uint64_t delivered = 0;
  uint64_t gapBytes = 0;
  uint64_t open = 0;
  for (const auto& t : factory.trackers) {
    delivered += t->delivered;
    gapBytes += t->gapBytes;
    open += t->ends == 0 ? 1 : 0;
  }
  FUZZ_CHECK(delivered == v(s.deliveredBytes));
  FUZZ_CHECK(delivered <= v(s.payloadBytes));
  FUZZ_CHECK(gapBytes == v(s.gapBytes));
  FUZZ_CHECK(open == v(s.liveFlows));
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  FlowLimits limits;
  limits.maxFlows = 2;
  limits.maxFlowBufferBytes = 1024;
  limits.maxFlowBufferSegments = 8;
  limits.maxTotalBufferBytes = 2048;
  limits.idleTimeoutNs = 500'000'000;
  limits.gapTimeoutNs = 50'000'000;
  limits.closedLingerNs = 200'000'000;

  Factory factory;
  std::vector<uint8_t> payload;
  uint64_t now = 1'000'000'000;
  {
    FlowTable table(limits, factory);
    for (size_t i = 0; i + 5 <= size; i += 5) {
      const uint8_t op = data[i];
      const int16_t delta = static_cast<int16_t>(data[i + 1] | (data[i + 2] << 8));
      size_t len = data[i + 3];
      now += uint64_t{data[i + 4]} * 1'000'000;
      const unsigned conn = op & 3u;
      if (conn == 3) {
        if (data[i + 1] % 4 == 0) {
          table.shutdown();
        } else {
          table.expire(now);
        }
        checkStats(table, factory, limits);
        continue;
      }
      if ((op & 0x20) != 0) {
        len *= 16;
      }
      Segment s;
      s.key.saddr = {198, 18, 0, 1};
      s.key.daddr = {198, 18, 0, 2};
      s.key.sport = static_cast<uint16_t>(40000 + conn);
      s.key.dport = 8000;
      s.seq = kBase[conn] + static_cast<uint32_t>(static_cast<int32_t>(delta));
      s.flags = static_cast<uint8_t>(kTcpAck | ((op & 0x04) ? kTcpSyn : 0) |
                                     ((op & 0x08) ? kTcpFin : 0) | ((op & 0x10) ? kTcpRst : 0));
      s.ruleId = 1;
      s.tsNs = now;
      const uint32_t dataSeq = (s.flags & kTcpSyn) != 0 ? s.seq + 1 : s.seq;
      payload.resize(len);
      for (size_t k = 0; k < len; ++k) {
        payload[k] = payloadByte(dataSeq + static_cast<uint32_t>(k), conn);
      }
      s.payload = {payload.data(), payload.size()};
      factory.current = &s;
      factory.decline = (op & 0x40) != 0;
      table.ingest(s);
      factory.current = nullptr;
      checkStats(table, factory, limits);
      FUZZ_CHECK(table.bufferedBytes() <= limits.maxTotalBufferBytes);
    }
    table.shutdown();
    checkStats(table, factory, limits);
    FUZZ_CHECK(v(table.stats().outOfOrderBytes) == 0);
    FUZZ_CHECK(v(table.stats().liveFlows) == 0);
  }
  for (const auto& t : factory.trackers) {
    FUZZ_CHECK(t->ends == 1);
  }
  return 0;
}
