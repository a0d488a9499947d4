#pragma once

#include <cstdint>
#include <memory>
#include <span>

#include "model/flow_key.h"

namespace shadowtap::flow {

// Why a stream ended.
enum class EndReason {
  kFin,       // the client's FIN was reached in order
  kRst,       // a RST was seen
  kIdle,      // no segment for the idle timeout
  kEvicted,   // dropped to stay within the flow or memory limits
  kShutdown,  // the agent is stopping
};

// Receives the in-order byte stream of one client-to-server direction.
// Created by a StreamConsumerFactory when the flow table first sees a flow.
class StreamConsumer {
 public:
  virtual ~StreamConsumer() = default;

  // The next in-order bytes of the stream; valid only during the call.
  virtual void onData(std::span<const uint8_t> bytes, uint64_t tsNs) = 0;

  // `bytes` bytes of the stream at this position will never be delivered
  // (a hole that was given up on). The consumer must resynchronise.
  virtual void onGap(uint64_t bytes) = 0;

  // The stream ended; no further calls follow.
  virtual void onEnd(EndReason reason) = 0;

  // Bytes the consumer holds on to (a request in progress); counted against the
  // flow table's per-flow and total memory limits.
  virtual size_t bufferedBytes() const = 0;
};

class StreamConsumerFactory {
 public:
  virtual ~StreamConsumerFactory() = default;

  // `fromStart` is true when the flow was first seen with its SYN, false when the
  // agent joined a connection already open (the consumer must find a request start).
  virtual std::unique_ptr<StreamConsumer> create(const model::FlowKey& key, uint32_t ruleId,
                                                 bool fromStart) = 0;
};

}  // namespace shadowtap::flow
