#include "flow/flow_table.h"

#include <algorithm>
#include <cassert>

namespace shadowtap::flow {

using detail::bump;
using detail::drop;

namespace {

// A SYN arriving after a mid-stream join belongs to the same connection when its
// first data byte (ISN+1) is at most this far before the join point: the SYN was
// reordered or we joined just after it. A new connection's ISN is random.
constexpr uint32_t kLateSynWindow = 1u << 20;

}  // namespace

FlowTable::FlowTable(const FlowLimits& limits, StreamConsumerFactory& factory)
    : limits_(limits), factory_(factory) {
  // Buckets up front: a rehash of a large table on the capture thread is a stall.
  flows_.reserve(std::min<size_t>(limits_.maxFlows, 1u << 20));
}

FlowTable::~FlowTable() { shutdown(); }

size_t FlowTable::bufferedBytes() const {
  return stats_.outOfOrderBytes.load(std::memory_order_relaxed) + consumerTotal_;
}

FlowTable::Entry* FlowTable::lookup(const model::FlowKey& key) {
  if (last_ != nullptr && last_->key == key) {
    return last_;
  }
  auto it = flows_.find(key);
  if (it == flows_.end()) {
    return nullptr;
  }
  last_ = &it->second;
  return last_;
}

void FlowTable::ingest(const Segment& s) {
  const size_t len = s.payload.size();
  bump(stats_.segments);
  bump(stats_.payloadBytes, len);
  nowNs_ = std::max(nowNs_, s.tsNs);
  const bool syn = (s.flags & kTcpSyn) != 0;

  Entry* e = lookup(s.key);
  if (e == nullptr) {
    if (!syn && len == 0) {
      bump(stats_.noPayloadIgnored);
      return;
    }
    e = startFlow(s, nullptr, syn);
  } else if (e->closed) {
    if (!syn) {
      bump(stats_.lateSegments);
      bump(stats_.lateBytes, len);
      return;
    }
    e = startFlow(s, e, true);
  } else if (syn && !isOwnSyn(*e, s.seq)) {
    bump(stats_.flowsReplaced);
    endFlow(e, EndReason::kRst, /*linger=*/true);
    e = startFlow(s, e, true);
  } else {
    if (syn) {
      bump(stats_.synRetransmits);
    }
    e->lastSeenNs = nowNs_;
    live_.moveToFront(e);
  }
  if (e == nullptr) {
    return;  // declined, counted in startFlow
  }

  // A SYN's own sequence number is the ISN; its payload (TCP Fast Open) starts
  // at ISN+1 like the rest of the stream.
  const uint32_t dataSeq = syn ? s.seq + 1 : s.seq;
  Reassembler& r = e->reassembler;
  if (len == 0) {
    bump(stats_.controlSegments);
  } else {
    r.insert(dataSeq, s.payload, s.tsNs);
  }
  if ((s.flags & kTcpFin) != 0) {
    r.setFin(dataSeq + static_cast<uint32_t>(len), s.tsNs);
  }
  if ((s.flags & kTcpRst) != 0) {
    endFlow(e, EndReason::kRst, /*linger=*/true);
  } else {
    if (r.waiting()) {
      r.expireHoles(nowNs_);
    }
    settle(e);
  }
  if (bufferedBytes() > limits_.maxTotalBufferBytes) {
    enforceTotalLimit();
  }
}

FlowTable::Entry* FlowTable::startFlow(const Segment& s, Entry* reuse, bool fromStart) {
  std::unique_ptr<StreamConsumer> consumer = factory_.create(s.key, s.ruleId, fromStart);
  if (consumer == nullptr) {
    bump(stats_.flowsDeclined);
    bump(stats_.declinedSegments);
    bump(stats_.declinedBytes, s.payload.size());
    return nullptr;
  }
  Entry* e = reuse;
  if (e == nullptr) {
    if (flows_.size() >= limits_.maxFlows) {
      makeRoom();
    }
    auto [it, inserted] = flows_.try_emplace(s.key, s.key, limits_, stats_);
    assert(inserted);
    e = &it->second;
  } else {
    assert(e->closed);
    closed_.remove(e);
    drop(stats_.closedFlows, 1);
  }
  e->closed = false;
  e->hasIsn = fromStart;
  e->isn = s.seq;
  e->startSeq = fromStart ? s.seq + 1 : s.seq;
  e->ruleId = s.ruleId;
  e->lastSeenNs = nowNs_;
  e->consumerBytes = 0;
  e->consumer = std::move(consumer);
  e->reassembler.start(e->startSeq, e->consumer.get());
  live_.pushFront(e);
  last_ = e;
  bump(stats_.flowsCreated);
  bump(stats_.liveFlows);
  if (!fromStart) {
    bump(stats_.flowsMidstream);
  }
  return e;
}

bool FlowTable::isOwnSyn(const Entry& e, uint32_t synSeq) {
  if (e.hasIsn) {
    return synSeq == e.isn;
  }
  return e.startSeq - (synSeq + 1) < kLateSynWindow;
}

void FlowTable::endFlow(Entry* e, EndReason reason, bool linger) {
  assert(!e->closed);
  e->reassembler.flush();
  e->consumer->onEnd(reason);
  switch (reason) {
    case EndReason::kFin:
      bump(stats_.endedFin);
      break;
    case EndReason::kRst:
      bump(stats_.endedRst);
      break;
    case EndReason::kIdle:
      bump(stats_.endedIdle);
      break;
    case EndReason::kEvicted:
      bump(stats_.endedEvicted);
      break;
    case EndReason::kShutdown:
      bump(stats_.endedShutdown);
      break;
  }
  e->reassembler.stop();
  e->consumer.reset();
  consumerTotal_ -= e->consumerBytes;
  e->consumerBytes = 0;
  stats_.consumerBytes.store(consumerTotal_, std::memory_order_relaxed);
  if (e->inWaitList) {
    waiting_.remove(e);
    e->inWaitList = false;
  }
  live_.remove(e);
  drop(stats_.liveFlows, 1);
  if (linger) {
    e->closed = true;
    e->lastSeenNs = nowNs_;
    closed_.pushBack(e);
    bump(stats_.closedFlows);
  } else {
    forget(e);
  }
}

void FlowTable::forget(Entry* e) {
  if (e->closed) {
    closed_.remove(e);
    drop(stats_.closedFlows, 1);
  }
  if (last_ == e) {
    last_ = nullptr;
  }
  const model::FlowKey key = e->key;  // erase() destroys e->key
  flows_.erase(key);
}

void FlowTable::makeRoom() {
  // A lingering closed flow is cheaper to lose than a live one.
  if (!closed_.empty()) {
    forget(closed_.front());
    bump(stats_.closedEvicted);
    return;
  }
  if (!live_.empty()) {
    bump(stats_.flowsEvicted);
    endFlow(live_.back(), EndReason::kEvicted, /*linger=*/false);
  }
}

void FlowTable::refreshConsumerBytes(Entry* e) {
  const size_t now = e->consumer->bufferedBytes();
  if (now != e->consumerBytes) {
    consumerTotal_ = consumerTotal_ - e->consumerBytes + now;
    e->consumerBytes = now;
    stats_.consumerBytes.store(consumerTotal_, std::memory_order_relaxed);
  }
}

bool FlowTable::settle(Entry* e) {
  if (e->reassembler.finished()) {
    endFlow(e, EndReason::kFin, /*linger=*/true);
    return false;
  }
  const bool waiting = e->reassembler.waiting();
  if (waiting != e->inWaitList) {
    if (waiting) {
      waiting_.pushBack(e);
    } else {
      waiting_.remove(e);
    }
    e->inWaitList = waiting;
  }
  refreshConsumerBytes(e);
  return true;
}

void FlowTable::enforceTotalLimit() {
  while (bufferedBytes() > limits_.maxTotalBufferBytes) {
    // Out-of-order bytes go first, from the flow holding most: they are the
    // cheapest to give up (a gap in one flow) and free memory at once.
    Entry* victim = nullptr;
    size_t most = 0;
    for (Entry* e = waiting_.front(); e != nullptr; e = WaitList::next(e)) {
      if (e->reassembler.bufferedBytes() > most) {
        most = e->reassembler.bufferedBytes();
        victim = e;
      }
    }
    if (victim != nullptr) {
      victim->reassembler.giveUpFirstHole(Reassembler::GapReason::kTotalLimit);
      settle(victim);
      continue;
    }
    // Only consumers hold memory: end the flow whose consumer holds most. This
    // scans all flows, but only while over the limit, which a sane limit makes rare.
    for (Entry* e = live_.front(); e != nullptr; e = LruList::next(e)) {
      if (e->consumerBytes > most) {
        most = e->consumerBytes;
        victim = e;
      }
    }
    if (victim == nullptr) {
      return;
    }
    bump(stats_.flowsEvictedMemory);
    endFlow(victim, EndReason::kEvicted, /*linger=*/false);
  }
}

void FlowTable::expire(uint64_t nowNs) {
  nowNs_ = std::max(nowNs_, nowNs);
  for (Entry* e = waiting_.front(); e != nullptr;) {
    Entry* next = WaitList::next(e);
    e->reassembler.expireHoles(nowNs_);
    settle(e);
    e = next;
  }
  while (!live_.empty() && nowNs_ - live_.back()->lastSeenNs >= limits_.idleTimeoutNs) {
    endFlow(live_.back(), EndReason::kIdle, /*linger=*/false);
  }
  while (!closed_.empty() && nowNs_ - closed_.front()->lastSeenNs >= limits_.closedLingerNs) {
    forget(closed_.front());
    bump(stats_.closedForgotten);
  }
  if (bufferedBytes() > limits_.maxTotalBufferBytes) {
    enforceTotalLimit();
  }
}

void FlowTable::shutdown() {
  while (!live_.empty()) {
    endFlow(live_.front(), EndReason::kShutdown, /*linger=*/false);
  }
  while (!closed_.empty()) {
    forget(closed_.front());
  }
  assert(flows_.empty());
}

}  // namespace shadowtap::flow
