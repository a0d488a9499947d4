#pragma once

#include <cstddef>
#include <cstdint>
#include <limits>
#include <map>
#include <span>
#include <vector>

#include "flow/flow_limits.h"
#include "flow/flow_stats.h"
#include "flow/stream_consumer.h"

namespace shadowtap::flow {

// Reassembles one direction of one TCP connection into the in-order byte stream
// handed to a StreamConsumer.
//
// Sequence numbers are compared with 32-bit serial arithmetic relative to the
// delivery point and turned into 64-bit stream offsets, so wraparound past 2^32
// is invisible above this class. Out-of-order bytes are copied and kept, without
// overlap, until the hole before them fills or is given up (onGap). Overlap
// policy: the first-received copy of a byte wins; later copies are trimmed and
// counted as retransmitBytes.
//
// The reassembler counts its outcomes in the shared FlowStats (see flow_stats.h)
// but does not count `segments`/`payloadBytes`; the caller does.
class Reassembler {
 public:
  enum class Outcome {
    kEmpty,       // no payload
    kInOrder,     // some bytes delivered at once
    kOutOfOrder,  // some bytes buffered, none delivered
    kRetransmit,  // every byte was already delivered or buffered
    kTooFar,      // starts more than kMaxAheadBytes ahead; dropped
    kBeyondFin,   // every byte lies after the FIN; dropped
  };
  enum class GapReason { kTimeout, kFlowLimit, kTotalLimit, kAtEnd };

  // `limits` and `stats` must outlive the reassembler.
  Reassembler(const FlowLimits& limits, FlowStats& stats);
  ~Reassembler();
  Reassembler(const Reassembler&) = delete;
  Reassembler& operator=(const Reassembler&) = delete;

  // Starts a new stream whose first byte has sequence number `startSeq`.
  // Buffered bytes of a previous stream must have been flushed (or are dropped).
  void start(uint32_t startSeq, StreamConsumer* consumer);
  // Forgets the stream and frees its buffers; no consumer call.
  void stop();

  // Adds the payload of a segment whose first byte has sequence number `seq`.
  // `payload` is only read during the call.
  Outcome insert(uint32_t seq, std::span<const uint8_t> payload, uint64_t tsNs);
  // The FIN occupies sequence number `finSeq` (the segment's seq + payload length):
  // the stream ends when delivery reaches it. The first FIN wins.
  void setFin(uint32_t finSeq, uint64_t tsNs);

  // Delivery reached the FIN.
  bool finished() const { return finished_; }
  // Something waits behind a hole: out-of-order bytes, or a FIN not reached yet.
  bool waiting() const { return !chunks_.empty() || (hasFin_ && !finished_); }
  // Capture time of the oldest thing waiting; UINT64_MAX when nothing waits.
  uint64_t waitingSinceNs();

  // Gives up the first hole: onGap(hole size), then delivers what follows it.
  // Returns false when there is no hole to give up.
  bool giveUpFirstHole(GapReason reason);
  // Gives up holes while the oldest waiting thing is at least gapTimeoutNs old.
  void expireHoles(uint64_t nowNs);
  // The stream ends now: gives up every hole (kAtEnd) so that everything
  // buffered is delivered, including a final hole up to a known FIN.
  void flush();

  size_t bufferedBytes() const { return bufferedBytes_; }
  size_t bufferedSegments() const { return chunks_.size(); }
  // Stream offset of the next byte to deliver (bytes delivered + gap bytes).
  uint64_t deliveredOffset() const { return nextOffset_; }
  uint32_t nextSeq() const { return nextSeq_; }

 private:
  Outcome place(int64_t start, int64_t end, const uint8_t* data, uint64_t tsNs, uint64_t duplicate);
  struct Chunk {
    uint64_t tsNs;
    std::vector<uint8_t> bytes;
  };

  void deliver(const uint8_t* data, size_t size, uint64_t tsNs);
  // Delivers chunks that became contiguous with the delivery point.
  void drain();
  // Buffers [start, end) minus what is already buffered; returns bytes buffered
  // and adds bytes trimmed to `duplicate`.
  size_t store(uint64_t start, uint64_t end, const uint8_t* data, uint64_t tsNs,
               uint64_t& duplicate);
  void enforceFlowLimit();
  void dropBeyondFin();
  void releaseChunk(std::map<uint64_t, Chunk>::iterator it);

  const FlowLimits& limits_;
  FlowStats& stats_;
  StreamConsumer* consumer_ = nullptr;
  uint32_t nextSeq_ = 0;     // sequence number of the next byte to deliver
  uint64_t nextOffset_ = 0;  // its stream offset
  bool hasFin_ = false;
  bool finished_ = false;
  uint64_t finOffset_ = 0;
  uint64_t finTsNs_ = 0;
  // Out-of-order bytes by stream offset; never overlapping, all after nextOffset_.
  std::map<uint64_t, Chunk> chunks_;
  size_t bufferedBytes_ = 0;
  uint64_t oldestTsNs_ = std::numeric_limits<uint64_t>::max();
  bool oldestStale_ = false;  // a chunk left; oldestTsNs_ must be recomputed
};

}  // namespace shadowtap::flow
