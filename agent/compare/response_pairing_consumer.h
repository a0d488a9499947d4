#pragma once

// The egress flow's consumer of ResponsePairing (response_pairing.cc), and the
// helpers it shares with it. Private to compare/: included by response_pairing.cc only.
#include <algorithm>
#include <limits>
#include <string_view>
#include <utility>
#include <vector>

#include "base/counters.h"
#include "base/strings.h"
#include "compare/response_pairing.h"

namespace shadowtap::compare {

inline uint64_t stampOf(uint64_t nowNs) { return nowNs == 0 ? 1 : nowNs; }

// An entry is due when it was stamped by an earlier sweep more than timeoutNs
// ago, or at the final sweep (nowNs == UINT64_MAX), which ends everything.
inline bool aged(uint64_t stampNs, uint64_t nowNs, uint64_t timeoutNs) {
  if (nowNs == std::numeric_limits<uint64_t>::max()) {
    return true;
  }
  return stampNs != 0 && nowNs > stampNs && nowNs - stampNs > timeoutNs;
}

inline std::string_view trimmed(std::string_view v) {
  while (!v.empty() && (v.front() == ' ' || v.front() == '\t')) {
    v.remove_prefix(1);
  }
  while (!v.empty() && (v.back() == ' ' || v.back() == '\t' || v.back() == '\r')) {
    v.remove_suffix(1);
  }
  return v;
}

// True when the head (status line and fields, up to the blank line) has
// "Upgrade: h2c".
inline bool upgradesToH2c(std::string_view head) {
  size_t pos = head.find("\r\n");
  while (pos != std::string_view::npos && pos + 2 < head.size()) {
    const size_t begin = pos + 2;
    const size_t eol = head.find("\r\n", begin);
    const std::string_view line = head.substr(begin, eol == std::string_view::npos ? eol : eol - begin);
    const size_t colon = line.find(':');
    if (colon != std::string_view::npos && base::equalsIgnoreCase(trimmed(line.substr(0, colon)), "upgrade") &&
        base::equalsIgnoreCase(trimmed(line.substr(colon + 1)), "h2c")) {
      return true;
    }
    pos = eol;
  }
  return false;
}

inline constexpr std::string_view kUpgradeStatus = "HTTP/1.1 101";

inline size_t responseBytes(const model::Response& r) {
  size_t n = r.body.size();
  for (const model::HeaderField& h : r.headers) {
    n += h.name.size() + h.value.size();
  }
  return n;
}

// The egress flow's consumer. Until the first bytes tell the protocol it holds
// them (a few bytes, or an "HTTP/1.1 101" head); then it feeds either the HTTP/1
// http::ResponseFramer (created at once, so HTTP/1 requests can be handed to it as
// before) or an h2::H2ResponseDecoder, whose per-stream results it pairs with
// expectH2() registrations by stream id. It tells the registry when the
// response stream ends, so the connection is forgotten.
class ResponsePairing::Consumer final : public flow::StreamConsumer, private h2::H2ResponseHandler {
 public:
  enum class Proto : uint8_t { kSniff, kHttp1, kH2 };

  Consumer(ResponsePairing& owner, const model::FlowKey& requestFlow, bool fromStart)
      : owner_(owner),
        requestFlow_(requestFlow),
        framer_(fromStart, owner.sink_, owner.limits_.framer, owner.framerStats_),
        proto_(fromStart ? Proto::kSniff : Proto::kHttp1) {
    if (!fromStart) {
      base::bump(owner_.stats_.streamsHttp1);
    }
  }
  ~Consumer() override { onEnd(flow::EndReason::kShutdown); }

  void onData(std::span<const uint8_t> bytes, uint64_t tsNs) override {
    if (ended_) {
      return;
    }
    switch (proto_) {
      case Proto::kSniff:
        sniff(bytes, tsNs);
        break;
      case Proto::kHttp1:
        framer_.onData(bytes, tsNs);
        break;
      case Proto::kH2:
        decoder_->onData(bytes, tsNs);
        break;
    }
  }
  void onGap(uint64_t bytes) override {
    if (ended_) {
      return;
    }
    if (proto_ == Proto::kSniff) {
      toHttp1(http::NoResponse::kGap);
    }
    if (proto_ == Proto::kH2) {
      decoder_->onGap(bytes);
    } else {
      framer_.onGap(bytes);
    }
  }
  void onEnd(flow::EndReason reason) override {
    if (ended_) {
      return;
    }
    if (proto_ == Proto::kSniff) {
      toHttp1(http::NoResponse::kStreamEnded);
    }
    ended_ = true;
    framer_.onEnd(reason);
    if (decoder_ != nullptr) {
      decoder_->onEnd(reason);  // onH2End() resolves every waiting exchange
    }
    dropUnmatched();
    owner_.onConsumerEnd(requestFlow_, this);
  }
  size_t bufferedBytes() const override {
    return sniff_.size() + framer_.bufferedBytes() + (decoder_ != nullptr ? decoder_->bufferedBytes() : 0) +
           unmatchedBytes_;
  }

  Proto proto() const { return proto_; }
  http::ResponseFramer& framer() { return framer_; }

  // See ResponsePairing::expectH2(); counts h2Handed when it returns true.
  bool expectH2(int32_t streamId, uint64_t exchangeId) {
    PairingStats& st = owner_.stats_;
    if (proto_ != Proto::kH2 || h2Ended_ || streamId > goAwayLast_ || waiting_.count(streamId) != 0 ||
        waiting_.size() >= owner_.limits_.maxH2Waiting) {
      return false;
    }
    base::bump(st.h2Handed);
    for (auto it = unmatched_.begin(); it != unmatched_.end(); ++it) {
      if (it->streamId != streamId) {
        continue;
      }
      Unmatched u = std::move(*it);
      unmatched_.erase(it);
      unmatchedBytes_ -= u.bytes;
      base::subtract(st.unmatchedWaiting);
      base::bump(st.unmatchedMatched);
      deliver(exchangeId, u.have, std::move(u.response), u.reason);
      return true;
    }
    waiting_.emplace(streamId, Waiting{exchangeId, 0});
    base::bump(st.h2Waiting);
    return true;
  }

  void expireH2(uint64_t nowNs) {
    const PairingLimits& lim = owner_.limits_;
    PairingStats& st = owner_.stats_;
    while (!unmatched_.empty() && aged(unmatched_.front().stampNs, nowNs, lim.unmatchedTimeoutNs)) {
      popUnmatched(st.unmatchedExpired);
    }
    for (Unmatched& u : unmatched_) {
      if (u.stampNs == 0) {
        u.stampNs = stampOf(nowNs);
      }
    }
    std::vector<std::pair<int32_t, uint64_t>> late;
    for (auto& [streamId, w] : waiting_) {
      if (aged(w.stampNs, nowNs, lim.h2WaitTimeoutNs)) {
        late.emplace_back(streamId, w.id);
      } else if (w.stampNs == 0) {
        w.stampNs = stampOf(nowNs);
      }
    }
    std::sort(late.begin(), late.end());
    for (const auto& [streamId, id] : late) {
      waiting_.erase(streamId);
      base::bump(st.h2WaitExpired);
      deliver(id, false, model::Response(), http::NoResponse::kUnpairable, true);
    }
  }

 private:
  struct Waiting {
    uint64_t id;
    uint64_t stampNs;  // 0: not seen by expire() yet
  };
  // A stream outcome whose registration has not come (yet).
  struct Unmatched {
    int32_t streamId = 0;
    bool have = false;  // a response, else `reason`
    model::Response response;
    http::NoResponse reason = http::NoResponse::kStreamEnded;
    size_t bytes = 0;
    uint64_t stampNs = 0;
  };

  // The sniff: the first bytes of the stream, held until they tell.
  void sniff(std::span<const uint8_t> bytes, uint64_t tsNs) {
    if (bytes.empty()) {
      return;
    }
    if (sniff_.empty()) {
      sniffTs_ = tsNs;
    }
    sniff_.append(reinterpret_cast<const char*>(bytes.data()), bytes.size());
    const std::string_view s = sniff_;
    if (s[0] != 'H') {
      // RFC 9113 3.4: the server's first frame is SETTINGS (type 4, not ACK) on stream 0.
      if (s.size() < 9) {
        return;
      }
      const bool settings = s[3] == 0x04 && s[4] == 0 && s[5] == 0 && s[6] == 0 && s[7] == 0 && s[8] == 0;
      settings ? toH2() : toHttp1(http::NoResponse::kUnpairable);
      return;
    }
    const size_t n = std::min(s.size(), kUpgradeStatus.size());
    if (s.compare(0, n, kUpgradeStatus.substr(0, n)) != 0) {
      toHttp1(http::NoResponse::kUnpairable);
      return;
    }
    const size_t end = s.find("\r\n\r\n");
    if (end == std::string_view::npos) {
      if (s.size() >= owner_.limits_.h2.maxUpgradeHeadBytes) {
        toHttp1(http::NoResponse::kUnpairable);
      }
      return;
    }
    // The same limit when the whole head came at once, so the outcome does not
    // depend on how the stream was cut.
    if (end + 4 > owner_.limits_.h2.maxUpgradeHeadBytes) {
      toHttp1(http::NoResponse::kUnpairable);
      return;
    }
    upgradesToH2c(s.substr(0, end + 2)) ? toH2() : toHttp1(http::NoResponse::kUnpairable);
  }

  void toHttp1(http::NoResponse h2Reason) {
    proto_ = Proto::kHttp1;
    base::bump(owner_.stats_.streamsHttp1);
    owner_.onProtocolKnown(requestFlow_, this, false, h2Reason);
    std::string bytes;
    bytes.swap(sniff_);
    if (!bytes.empty()) {
      framer_.onData({reinterpret_cast<const uint8_t*>(bytes.data()), bytes.size()}, sniffTs_);
    }
  }

  void toH2() {
    proto_ = Proto::kH2;
    base::bump(owner_.stats_.streamsH2);
    // HTTP/1 requests told to this connection cannot be answered by HTTP/2.
    framer_.breakPairing();
    decoder_ = std::make_unique<h2::H2ResponseDecoder>(static_cast<h2::H2ResponseHandler&>(*this), owner_.limits_.framer, owner_.limits_.h2,
                                                   owner_.h2Stats_);
    owner_.onProtocolKnown(requestFlow_, this, true, http::NoResponse::kUnpairable);
    std::string bytes;
    bytes.swap(sniff_);
    decoder_->onData({reinterpret_cast<const uint8_t*>(bytes.data()), bytes.size()}, sniffTs_);
  }

  // h2::H2ResponseHandler
  void onH2Response(int32_t streamId, model::Response&& response) override { settle(streamId, true, std::move(response), {}); }
  void onH2NoResponse(int32_t streamId, http::NoResponse reason) override { settle(streamId, false, model::Response(), reason); }
  void onH2GoAway(int32_t lastStreamId) override {
    goAwayLast_ = std::min(goAwayLast_, lastStreamId);
    failWaiting([&](int32_t streamId) { return streamId > goAwayLast_; }, http::NoResponse::kStreamEnded);
  }
  void onH2End(http::NoResponse reason) override {
    h2Ended_ = true;
    failWaiting([](int32_t) { return true; }, reason);
    dropUnmatched();
  }

  void settle(int32_t streamId, bool have, model::Response&& response, http::NoResponse reason) {
    auto it = waiting_.find(streamId);
    if (it != waiting_.end()) {
      const uint64_t id = it->second.id;
      waiting_.erase(it);
      deliver(id, have, std::move(response), reason, true);
      return;
    }
    PairingStats& st = owner_.stats_;
    const PairingLimits& lim = owner_.limits_;
    Unmatched u;
    u.streamId = streamId;
    u.have = have;
    u.reason = reason;
    u.bytes = have ? responseBytes(response) : 0;
    u.response = std::move(response);
    unmatchedBytes_ += u.bytes;
    unmatched_.push_back(std::move(u));
    base::bump(st.unmatchedKept);
    base::bump(st.unmatchedWaiting);
    while (!unmatched_.empty() &&
           (unmatched_.size() > lim.maxUnmatchedResponses || unmatchedBytes_ > lim.maxUnmatchedBytes)) {
      popUnmatched(st.unmatchedDropped);
    }
  }

  // One sink call for a handed-over exchange; `wasWaiting` releases the gauge.
  void deliver(uint64_t id, bool have, model::Response&& response, http::NoResponse reason, bool wasWaiting = false) {
    PairingStats& st = owner_.stats_;
    if (wasWaiting) {
      base::subtract(st.h2Waiting);
    }
    if (have) {
      base::bump(st.h2Responses);
      owner_.sink_.onResponse(id, std::move(response));
    } else {
      base::bump(st.h2NoResponse);
      owner_.sink_.onNoResponse(id, reason);
    }
  }

  template <typename Pred>
  void failWaiting(Pred pred, http::NoResponse reason) {
    std::vector<std::pair<int32_t, uint64_t>> gone;
    for (const auto& [streamId, w] : waiting_) {
      if (pred(streamId)) {
        gone.emplace_back(streamId, w.id);
      }
    }
    std::sort(gone.begin(), gone.end());  // stream order, not hash order
    for (const auto& [streamId, id] : gone) {
      waiting_.erase(streamId);
      deliver(id, false, model::Response(), reason, true);
    }
  }

  void popUnmatched(std::atomic<uint64_t>& counter) {
    unmatchedBytes_ -= unmatched_.front().bytes;
    unmatched_.pop_front();
    base::subtract(owner_.stats_.unmatchedWaiting);
    base::bump(counter);
  }

  void dropUnmatched() {
    while (!unmatched_.empty()) {
      popUnmatched(owner_.stats_.unmatchedDropped);
    }
  }

  ResponsePairing& owner_;
  const model::FlowKey requestFlow_;
  http::ResponseFramer framer_;
  Proto proto_;
  bool ended_ = false;
  std::string sniff_;
  uint64_t sniffTs_ = 0;
  std::unique_ptr<h2::H2ResponseDecoder> decoder_;
  bool h2Ended_ = false;
  int32_t goAwayLast_ = std::numeric_limits<int32_t>::max();
  std::unordered_map<int32_t, Waiting> waiting_;
  std::deque<Unmatched> unmatched_;  // oldest first
  size_t unmatchedBytes_ = 0;
};

}  // namespace shadowtap::compare
