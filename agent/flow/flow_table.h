#pragma once

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <unordered_map>

#include "flow/flow_entry.h"
#include "model/flow_key.h"
#include "flow/flow_limits.h"
#include "flow/flow_stats.h"
#include "flow/intrusive_list.h"
#include "flow/segment.h"
#include "flow/stream_consumer.h"

namespace shadowtap::flow {

// All client-to-server flows of the capture thread: finds the flow of each
// segment, creates and ends flows, and keeps memory within FlowLimits.
//
// Contract:
// - Single-threaded: ingest/expire/shutdown on one thread (the capture thread);
//   stats() may be read from any thread.
// - Time comes from the segments (tsNs) and from expire(nowNs), same clock
//   (CLOCK_MONOTONIC); the table never reads a clock itself.
// - Consumers are called synchronously from ingest/expire/shutdown and must not
//   call back into the table. Every consumer the factory creates gets exactly
//   one onEnd(), at the latest from shutdown() or the destructor.
// - A flow starts with a SYN (fromStart, stream at ISN+1; any SYN payload is at
//   ISN+1) or with a segment carrying payload (mid-stream join, stream at its
//   seq). It ends on FIN reached in order (kFin), RST (kRst; also when a SYN with
//   a new ISN replaces a live flow), idle timeout (kIdle), limits (kEvicted) or
//   shutdown (kShutdown). Before onEnd, whatever is buffered is delivered, holes
//   becoming gaps. Flows ended by FIN/RST linger closed for closedLingerNs: their
//   late segments are counted and ignored; a SYN starts a fresh flow.

class FlowTable {
 public:
  // `factory` must outlive the table.
  FlowTable(const FlowLimits& limits, StreamConsumerFactory& factory);
  // Ends live flows with kShutdown if shutdown() was not called.
  ~FlowTable();
  FlowTable(const FlowTable&) = delete;
  FlowTable& operator=(const FlowTable&) = delete;

  // Hot path: one captured segment of the client-to-server direction.
  void ingest(const Segment& s);
  // Periodic (~100 ms): old holes become gaps, idle flows end, lingering closed
  // flows are forgotten.
  void expire(uint64_t nowNs);
  // Ends every live flow with kShutdown and forgets all flows.
  void shutdown();

  size_t flowCount() const { return live_.size(); }  // live flows
  size_t closedCount() const { return closed_.size(); }
  // Out-of-order bytes plus the consumers' bufferedBytes().
  size_t bufferedBytes() const;
  const FlowStats& stats() const { return stats_; }
  const FlowLimits& limits() const { return limits_; }

 private:
  using Entry = detail::FlowEntry;
  using LruList = detail::IntrusiveList<Entry, &Entry::prev, &Entry::next>;
  using WaitList = detail::IntrusiveList<Entry, &Entry::waitPrev, &Entry::waitNext>;

  Entry* lookup(const model::FlowKey& key);
  // Starts a flow for `s`, in `reuse` (a closed entry) or a new entry. Returns
  // nullptr when the factory declines.
  Entry* startFlow(const Segment& s, Entry* reuse, bool fromStart);
  // A SYN of the connection the live flow already follows (retransmitted or
  // reordered), as opposed to a new connection on the same 4-tuple.
  static bool isOwnSyn(const Entry& e, uint32_t synSeq);
  void endFlow(Entry* e, EndReason reason, bool linger);
  void forget(Entry* e);
  void makeRoom();
  // After anything that may change a flow's buffers: wait list membership,
  // consumer bytes, and end by FIN. Returns false if the flow ended.
  bool settle(Entry* e);
  void refreshConsumerBytes(Entry* e);
  void enforceTotalLimit();

  FlowLimits limits_;
  StreamConsumerFactory& factory_;
  FlowStats stats_;
  std::unordered_map<model::FlowKey, Entry, model::FlowKeyHash> flows_;
  LruList live_;
  LruList closed_;  // front = closed longest ago
  WaitList waiting_;
  Entry* last_ = nullptr;  // last looked-up flow: segments come in bursts per flow
  uint64_t nowNs_ = 0;
  size_t consumerTotal_ = 0;
};

}  // namespace shadowtap::flow
