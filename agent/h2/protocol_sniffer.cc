#include "h2/protocol_sniffer.h"

#include <utility>

#include "base/counters.h"
#include "h2/preface.h"

namespace shadowtap::h2 {
namespace {


std::span<const uint8_t> asBytes(const std::string& s) {
  return {reinterpret_cast<const uint8_t*>(s.data()), s.size()};
}

}  // namespace

ProtocolSniffer::ProtocolSniffer(ProtocolSnifferFactory& factory, const model::FlowKey& key, uint32_t ruleId,
                                 bool fromStart)
    : factory_(factory), key_(key), ruleId_(ruleId), mode_(fromStart ? Mode::kSniffPreface : Mode::kHttp1) {
  base::bump(factory_.stats_.connections);
  if (!fromStart) {
    base::bump(factory_.stats_.midstream);
    framer_ = factory_.framers_.create(key_, ruleId_, false);
  }
}

ProtocolSniffer::~ProtocolSniffer() {
  // Destroyed without onEnd (the flow table always ends a stream first, but
  // keep the gauge right regardless).
  setHeld({});
  if (pending_) {
    factory_.stats_.heldBytes.fetch_sub(static_cast<int64_t>(pending_->request.bytes.size()),
                                        std::memory_order_relaxed);
  }
}

size_t ProtocolSniffer::bufferedBytes() const {
  size_t n = held_.size();
  if (pending_) {
    n += pending_->request.bytes.size();
  }
  if (framer_) {
    n += framer_->bufferedBytes();
  }
  if (h2_) {
    n += h2_->bufferedBytes();
  }
  return n;
}

void ProtocolSniffer::setHeld(std::string held) {
  held_ = std::move(held);
  factory_.stats_.heldBytes.fetch_add(static_cast<int64_t>(held_.size()) - static_cast<int64_t>(heldCounted_),
                                      std::memory_order_relaxed);
  heldCounted_ = held_.size();
}

void ProtocolSniffer::onData(std::span<const uint8_t> bytes, uint64_t tsNs) {
  switch (mode_) {
    case Mode::kSniffPreface:
    case Mode::kSniffUpgrade:
      sniff(bytes, tsNs);
      break;
    case Mode::kHttp1:
      feedFramer(bytes, tsNs);
      break;
    case Mode::kH2:
      h2_->onData(bytes, tsNs);
      break;
    case Mode::kEnded:
      break;
  }
}

void ProtocolSniffer::sniff(std::span<const uint8_t> bytes, uint64_t tsNs) {
  std::string joined;
  std::span<const uint8_t> all = bytes;
  uint64_t ts = tsNs;
  if (!held_.empty()) {
    joined = held_;
    joined.append(reinterpret_cast<const char*>(bytes.data()), bytes.size());
    all = asBytes(joined);
    ts = heldTs_;
  }
  switch (matchPreface(all)) {
    case PrefaceMatch::kNeedMore:
      // A proper prefix of the 24-byte preface: at most 23 bytes held.
      heldTs_ = ts;
      setHeld(std::string(reinterpret_cast<const char*>(all.data()), all.size()));
      return;
    case PrefaceMatch::kYes:
      setHeld({});  // `all` is `bytes` or `joined`, never held_
      toH2(all, ts);
      return;
    case PrefaceMatch::kNo:
      setHeld({});
      toHttp1(all, ts);
      return;
  }
}

void ProtocolSniffer::toH2(std::span<const uint8_t> bytes, uint64_t tsNs) {
  std::optional<H2cUpgrade> upgrade;
  if (mode_ == Mode::kSniffUpgrade) {
    base::bump(factory_.stats_.upgradesAccepted);
    factory_.stats_.heldBytes.fetch_sub(static_cast<int64_t>(pending_->request.bytes.size()),
                                        std::memory_order_relaxed);
    upgrade = std::move(pending_->upgrade);
    pending_.reset();
    // The framer has abandoned the stream; it gets no more bytes and ends
    // with the stream.
  } else {
    base::bump(factory_.stats_.prefaceH2);
  }
  mode_ = Mode::kH2;
  h2_ = factory_.decoders_.create(key_, ruleId_, std::move(upgrade));
  h2_->onData(bytes, tsNs);
}

void ProtocolSniffer::toHttp1(std::span<const uint8_t> bytes, uint64_t tsNs) {
  if (mode_ == Mode::kSniffUpgrade) {
    // Declined: the client goes on with HTTP/1 right after the upgrade request
    // (curl, Java's HttpClient do). The framer gave the stream up at the
    // upgrade, so a new one takes over at that request boundary. The bytes of
    // the chunk that carried the request's end are counted by both framers
    // (the old one as unmirrored), as when the upgrade is accepted.
    const uint64_t end = pending_->request.streamOffset + pending_->request.bytes.size();
    releaseUpgrade();
    framer_->onEnd(flow::EndReason::kFin);
    framer_ = factory_.framers_.createAt(key_, ruleId_, end);
    framerPos_ = end;
  } else {
    base::bump(factory_.stats_.http1);
    framer_ = factory_.framers_.create(key_, ruleId_, true);
  }
  mode_ = Mode::kHttp1;
  if (!bytes.empty()) {
    feedFramer(bytes, tsNs);
  }
}

void ProtocolSniffer::releaseUpgrade() {
  base::bump(factory_.stats_.upgradesDeclined);
  factory_.stats_.heldBytes.fetch_sub(static_cast<int64_t>(pending_->request.bytes.size()),
                                      std::memory_order_relaxed);
  model::Request r = std::move(pending_->request);
  pending_.reset();
  factory_.sink_.onRequest(std::move(r));
}

void ProtocolSniffer::feedFramer(std::span<const uint8_t> bytes, uint64_t tsNs) {
  const uint64_t chunkPos = framerPos_;
  ProtocolSniffer* outer = std::exchange(factory_.feeding_, this);
  framer_->onData(bytes, tsNs);
  factory_.feeding_ = outer;
  framerPos_ += bytes.size();
  if (!pending_ || mode_ != Mode::kHttp1) {
    return;
  }
  // The framer emitted an "Upgrade: h2c" request in this chunk (and gave the
  // stream up); what follows it decides the protocol.
  mode_ = Mode::kSniffUpgrade;
  const uint64_t end = pending_->request.streamOffset + pending_->request.bytes.size();
  if (end < chunkPos || end > framerPos_) {
    releaseUpgrade();  // cannot happen: the request ends in the chunk just parsed
    mode_ = Mode::kHttp1;
    return;
  }
  const auto rest = bytes.subspan(static_cast<size_t>(end - chunkPos));
  if (!rest.empty()) {
    sniff(rest, tsNs);
  }
}

void ProtocolSniffer::holdUpgrade(model::Request&& request, H2cUpgrade&& upgrade) {
  if (pending_ || mode_ != Mode::kHttp1) {
    factory_.sink_.onRequest(std::move(request));  // one per stream; the framer stops after it
    return;
  }
  base::bump(factory_.stats_.upgradesSeen);
  factory_.stats_.heldBytes.fetch_add(static_cast<int64_t>(request.bytes.size()), std::memory_order_relaxed);
  pending_ = std::make_unique<PendingUpgrade>(PendingUpgrade{std::move(request), std::move(upgrade)});
}

void ProtocolSniffer::onGap(uint64_t bytes) {
  switch (mode_) {
    case Mode::kSniffPreface:
    case Mode::kSniffUpgrade: {
      // Whatever comes next cannot be told apart any more: HTTP/1, which
      // resynchronises (or, after an upgrade, stays abandoned).
      std::string held = std::move(held_);
      setHeld({});
      toHttp1(asBytes(held), heldTs_);
      framer_->onGap(bytes);
      break;
    }
    case Mode::kHttp1:
      framer_->onGap(bytes);
      break;
    case Mode::kH2:
      h2_->onGap(bytes);
      break;
    case Mode::kEnded:
      break;
  }
}

void ProtocolSniffer::onEnd(flow::EndReason reason) {
  if (mode_ == Mode::kSniffPreface || mode_ == Mode::kSniffUpgrade) {
    std::string held = std::move(held_);
    setHeld({});
    toHttp1(asBytes(held), heldTs_);
  }
  if (mode_ == Mode::kEnded) {
    return;
  }
  mode_ = Mode::kEnded;
  if (h2_) {
    h2_->onEnd(reason);
  }
  if (framer_) {
    framer_->onEnd(reason);
  }
}

ProtocolSnifferFactory::ProtocolSnifferFactory(model::RequestSink& sink, http::FramerLimits framerLimits,
                                               H2DecoderLimits h2Limits)
    : sink_(sink), framers_(*this, framerLimits), decoders_(sink, h2Limits) {}

std::unique_ptr<flow::StreamConsumer> ProtocolSnifferFactory::create(const model::FlowKey& key, uint32_t ruleId,
                                                                     bool fromStart) {
  return std::make_unique<ProtocolSniffer>(*this, key, ruleId, fromStart);
}

void ProtocolSnifferFactory::onRequest(model::Request&& request) {
  // Only a request after which the framer stops (llhttp saw the upgrade too):
  // otherwise the framer goes on with the next request itself, and holding this
  // one would reorder or, after a decline, repeat what follows.
  if (feeding_ != nullptr && feeding_->key() == request.flow && request.upgrade) {
    H2cUpgrade upgrade;
    if (parseH2cUpgrade(request, upgrade) == UpgradeParse::kUpgrade) {
      feeding_->holdUpgrade(std::move(request), std::move(upgrade));
      return;
    }
  }
  sink_.onRequest(std::move(request));
}

}  // namespace shadowtap::h2
