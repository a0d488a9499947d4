#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>

#include "model/flow_key.h"
#include "flow/reassembler.h"
#include "flow/stream_consumer.h"

namespace shadowtap::flow::detail {

// One tracked flow, live or lingering after its end. Internal to FlowTable; it
// lives in the table's hash map (nodes never move) and is threaded through the
// table's intrusive lists.
struct FlowEntry {
  FlowEntry(const model::FlowKey& k, const FlowLimits& limits, FlowStats& stats)
      : key(k), reassembler(limits, stats) {}

  model::FlowKey key;
  // Live LRU (front = most recent) while live, closed FIFO while lingering.
  FlowEntry* prev = nullptr;
  FlowEntry* next = nullptr;
  // The table's list of flows with something waiting behind a hole.
  FlowEntry* waitPrev = nullptr;
  FlowEntry* waitNext = nullptr;
  bool inWaitList = false;
  bool closed = false;
  bool hasIsn = false;  // created by a SYN
  uint32_t isn = 0;
  uint32_t startSeq = 0;  // sequence number of the stream's first byte
  uint32_t ruleId = 0;
  uint64_t lastSeenNs = 0;   // live: last segment; closed: time of the end
  size_t consumerBytes = 0;  // consumer->bufferedBytes() when last asked
  std::unique_ptr<StreamConsumer> consumer;
  Reassembler reassembler;
};

}  // namespace shadowtap::flow::detail
