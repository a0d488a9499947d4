#include "flow/reassembler.h"

#include <algorithm>
#include <cassert>

namespace shadowtap::flow {

using detail::bump;
using detail::drop;

Reassembler::Reassembler(const FlowLimits& limits, FlowStats& stats)
    : limits_(limits), stats_(stats) {}

Reassembler::~Reassembler() { stop(); }

void Reassembler::start(uint32_t startSeq, StreamConsumer* consumer) {
  stop();
  consumer_ = consumer;
  nextSeq_ = startSeq;
  nextOffset_ = 0;
}

void Reassembler::stop() {
  // Bytes still buffered here were never delivered; callers flush() first when
  // they must be accounted for. Keep the gauge right either way.
  if (bufferedBytes_ > 0) {
    drop(stats_.outOfOrderBytes, bufferedBytes_);
  }
  chunks_.clear();
  bufferedBytes_ = 0;
  oldestTsNs_ = std::numeric_limits<uint64_t>::max();
  oldestStale_ = false;
  hasFin_ = false;
  finished_ = false;
  finOffset_ = 0;
  finTsNs_ = 0;
  consumer_ = nullptr;
}

Reassembler::Outcome Reassembler::insert(uint32_t seq, std::span<const uint8_t> payload,
                                         uint64_t tsNs) {
  const size_t len = payload.size();
  if (len == 0) {
    return Outcome::kEmpty;
  }
  // Serial arithmetic: the distance from the delivery point is taken modulo 2^32
  // and read as signed, so it is right across the wrap as long as the segment is
  // within 2 GiB of the delivery point.
  const int64_t rel = static_cast<int32_t>(seq - nextSeq_);
  if (rel > static_cast<int64_t>(kMaxAheadBytes)) {
    bump(stats_.tooFarSegments);
    bump(stats_.tooFarBytes, len);
    return Outcome::kTooFar;
  }
  const int64_t next = static_cast<int64_t>(nextOffset_);
  int64_t start = next + rel;
  int64_t end = start + static_cast<int64_t>(len);
  const uint8_t* data = payload.data();

  uint64_t beyondFin = 0;
  if (hasFin_ && end > static_cast<int64_t>(finOffset_)) {
    const int64_t cut = end - std::max(start, static_cast<int64_t>(finOffset_));
    beyondFin = static_cast<uint64_t>(cut);
    end -= cut;
    bump(stats_.beyondFinBytes, beyondFin);
    if (end <= start) {
      bump(stats_.beyondFinSegments);
      return Outcome::kBeyondFin;
    }
  }

  uint64_t duplicate = 0;
  if (end <= next) {
    duplicate = static_cast<uint64_t>(end - start);
    bump(stats_.retransmitBytes, duplicate);
    bump(stats_.retransmitSegments);
    return Outcome::kRetransmit;
  }
  if (start < next) {
    duplicate += static_cast<uint64_t>(next - start);
    data += next - start;
    start = next;
  }

  return place(start, end, data, tsNs, duplicate);
}

// Delivers what continues the stream at once (up to the first buffered
// chunk, whose bytes win), stores the rest, and counts the segment.
Reassembler::Outcome Reassembler::place(int64_t start, int64_t end, const uint8_t* data, uint64_t tsNs,
                                        uint64_t duplicate) {
  const int64_t next = static_cast<int64_t>(nextOffset_);
  size_t delivered = 0;
  if (start == next) {
    // Bytes already buffered win over this copy, so deliver only up to the first
    // buffered chunk; the rest goes through store() and drain() below.
    int64_t stop = end;
    if (!chunks_.empty()) {
      stop = std::min(end, static_cast<int64_t>(chunks_.begin()->first));
    }
    delivered = static_cast<size_t>(stop - start);
    deliver(data, delivered, tsNs);
    data += delivered;
    start = stop;
  }
  size_t buffered = 0;
  if (start < end) {
    buffered = store(static_cast<uint64_t>(start), static_cast<uint64_t>(end), data, tsNs,
                     duplicate);
  }
  if (delivered > 0) {
    drain();
  }
  if (duplicate > 0) {
    bump(stats_.retransmitBytes, duplicate);
  }
  if (buffered > 0) {
    enforceFlowLimit();
  }

  if (delivered > 0) {
    bump(stats_.inOrderSegments);
    return Outcome::kInOrder;
  }
  if (buffered > 0) {
    bump(stats_.outOfOrderSegments);
    return Outcome::kOutOfOrder;
  }
  // Here duplicate > 0: a non-empty range after nextOffset_ was all buffered.
  bump(stats_.retransmitSegments);
  return Outcome::kRetransmit;
}

void Reassembler::setFin(uint32_t finSeq, uint64_t tsNs) {
  if (hasFin_) {
    return;
  }
  const int64_t rel = static_cast<int32_t>(finSeq - nextSeq_);
  if (rel > static_cast<int64_t>(kMaxAheadBytes)) {
    return;  // as bogus as a too-far segment; idle timeout ends the flow
  }
  hasFin_ = true;
  finTsNs_ = tsNs;
  // A FIN before the delivery point contradicts bytes already delivered; the
  // stream cannot be longer than what we have, so it ends here.
  finOffset_ = rel <= 0 ? nextOffset_ : nextOffset_ + static_cast<uint64_t>(rel);
  dropBeyondFin();
  if (nextOffset_ >= finOffset_) {
    finished_ = true;
  }
}

uint64_t Reassembler::waitingSinceNs() {
  uint64_t since = std::numeric_limits<uint64_t>::max();
  if (!chunks_.empty()) {
    if (oldestStale_) {
      oldestTsNs_ = std::numeric_limits<uint64_t>::max();
      for (const auto& [offset, chunk] : chunks_) {
        oldestTsNs_ = std::min(oldestTsNs_, chunk.tsNs);
      }
      oldestStale_ = false;
    }
    since = oldestTsNs_;
  }
  if (hasFin_ && !finished_) {
    since = std::min(since, finTsNs_);
  }
  return since;
}

bool Reassembler::giveUpFirstHole(GapReason reason) {
  uint64_t holeEnd = 0;
  if (!chunks_.empty()) {
    holeEnd = chunks_.begin()->first;
  } else if (hasFin_ && nextOffset_ < finOffset_) {
    holeEnd = finOffset_;
  } else {
    return false;
  }
  assert(holeEnd > nextOffset_);
  const uint64_t hole = holeEnd - nextOffset_;
  consumer_->onGap(hole);
  nextOffset_ = holeEnd;
  nextSeq_ += static_cast<uint32_t>(hole);
  bump(stats_.gaps);
  bump(stats_.gapBytes, hole);
  switch (reason) {
    case GapReason::kTimeout:
      bump(stats_.gapsTimeout);
      break;
    case GapReason::kFlowLimit:
      bump(stats_.gapsFlowLimit);
      break;
    case GapReason::kTotalLimit:
      bump(stats_.gapsTotalLimit);
      break;
    case GapReason::kAtEnd:
      bump(stats_.gapsAtEnd);
      break;
  }
  drain();
  return true;
}

void Reassembler::expireHoles(uint64_t nowNs) {
  while (waiting()) {
    const uint64_t since = waitingSinceNs();
    if (nowNs < since || nowNs - since < limits_.gapTimeoutNs) {
      return;
    }
    giveUpFirstHole(GapReason::kTimeout);
  }
}

void Reassembler::flush() {
  while (giveUpFirstHole(GapReason::kAtEnd)) {
  }
}

void Reassembler::deliver(const uint8_t* data, size_t size, uint64_t tsNs) {
  consumer_->onData(std::span<const uint8_t>(data, size), tsNs);
  nextOffset_ += size;
  nextSeq_ += static_cast<uint32_t>(size);
  bump(stats_.deliveredBytes, size);
}

void Reassembler::drain() {
  while (!chunks_.empty() && chunks_.begin()->first == nextOffset_) {
    auto it = chunks_.begin();
    deliver(it->second.bytes.data(), it->second.bytes.size(), it->second.tsNs);
    releaseChunk(it);
  }
  assert(chunks_.empty() || chunks_.begin()->first > nextOffset_);
  if (hasFin_ && nextOffset_ >= finOffset_) {
    finished_ = true;
  }
}

size_t Reassembler::store(uint64_t start, uint64_t end, const uint8_t* data, uint64_t tsNs,
                          uint64_t& duplicate) {
  size_t buffered = 0;
  const bool wasEmpty = chunks_.empty();
  auto add = [&](std::map<uint64_t, Chunk>::iterator hint, uint64_t from, uint64_t to) {
    const size_t n = static_cast<size_t>(to - from);
    chunks_.emplace_hint(hint, from, Chunk{tsNs, std::vector<uint8_t>(data, data + n)});
    data += n;
    buffered += n;
  };
  auto skip = [&](uint64_t n) {
    duplicate += n;
    data += n;
    start += n;
  };

  auto it = chunks_.upper_bound(start);
  if (it != chunks_.begin()) {
    const auto prev = std::prev(it);
    const uint64_t prevEnd = prev->first + prev->second.bytes.size();
    if (prevEnd > start) {
      skip(std::min(prevEnd, end) - start);
    }
  }
  while (start < end) {
    if (it == chunks_.end() || it->first >= end) {
      add(it, start, end);
      break;
    }
    if (it->first > start) {
      const uint64_t to = it->first;
      add(it, start, to);
      start = to;
    }
    const uint64_t chunkEnd = it->first + it->second.bytes.size();
    skip(std::min(chunkEnd, end) - start);
    ++it;
  }

  if (buffered > 0) {
    bufferedBytes_ += buffered;
    bump(stats_.outOfOrderBytes, buffered);
    if (wasEmpty) {
      oldestTsNs_ = tsNs;
      oldestStale_ = false;
    } else if (!oldestStale_) {
      oldestTsNs_ = std::min(oldestTsNs_, tsNs);
    }
  }
  return buffered;
}

void Reassembler::enforceFlowLimit() {
  while (bufferedBytes_ > limits_.maxFlowBufferBytes ||
         chunks_.size() > limits_.maxFlowBufferSegments) {
    if (!giveUpFirstHole(GapReason::kFlowLimit)) {
      break;
    }
  }
}

void Reassembler::dropBeyondFin() {
  while (!chunks_.empty()) {
    auto last = std::prev(chunks_.end());
    const uint64_t chunkEnd = last->first + last->second.bytes.size();
    if (chunkEnd <= finOffset_) {
      break;
    }
    if (last->first >= finOffset_) {
      bump(stats_.beyondFinBytes, last->second.bytes.size());
      releaseChunk(last);
    } else {
      const size_t cut = static_cast<size_t>(chunkEnd - finOffset_);
      last->second.bytes.resize(last->second.bytes.size() - cut);
      bufferedBytes_ -= cut;
      drop(stats_.outOfOrderBytes, cut);
      bump(stats_.beyondFinBytes, cut);
    }
  }
}

void Reassembler::releaseChunk(std::map<uint64_t, Chunk>::iterator it) {
  const size_t n = it->second.bytes.size();
  bufferedBytes_ -= n;
  drop(stats_.outOfOrderBytes, n);
  chunks_.erase(it);
  oldestStale_ = true;
}

}  // namespace shadowtap::flow
