#include "h2/h2_response_decoder.h"

#include <algorithm>
#include <cstring>
#include <utility>
#include <vector>

#include <nghttp2/nghttp2.h>

#include "base/counters.h"
#include "base/strings.h"

namespace shadowtap::h2 {
namespace {

constexpr uint8_t kData = 0x0;
constexpr uint8_t kHeaders = 0x1;
constexpr uint8_t kRstStream = 0x3;
constexpr uint8_t kSettings = 0x4;
constexpr uint8_t kPushPromise = 0x5;
constexpr uint8_t kGoAway = 0x7;
constexpr uint8_t kContinuation = 0x9;

constexpr uint8_t kEndStream = 0x1;
constexpr uint8_t kAck = 0x1;
constexpr uint8_t kEndHeaders = 0x4;
constexpr uint8_t kPadded = 0x8;
constexpr uint8_t kPriority = 0x20;

uint32_t read32(const uint8_t* p) {
  return (uint32_t{p[0]} << 24) | (uint32_t{p[1]} << 16) | (uint32_t{p[2]} << 8) | uint32_t{p[3]};
}

constexpr std::string_view kUpgradeStatus = "HTTP/1.1 101";

}  // namespace

H2ResponseDecoder::H2ResponseDecoder(H2ResponseHandler& handler, const http::ResponseLimits& responseLimits,
                                     const H2ResponseLimits& limits, H2ResponseStats& stats)
    : handler_(handler), responseLimits_(responseLimits), limits_(limits), stats_(stats) {
  base::bump(stats_.decoders);
  if (nghttp2_hd_inflate_new(&inflater_) != 0) {
    inflater_ = nullptr;
  } else {
    // Raising the limit needs no table size update from the encoder; the
    // server may then grow its table up to it (if the client allowed that).
    nghttp2_hd_inflate_change_table_size(inflater_, limits_.maxDynamicTableSize);
  }
}

H2ResponseDecoder::~H2ResponseDecoder() {
  onEnd(flow::EndReason::kShutdown);
  if (inflater_ != nullptr) {
    nghttp2_hd_inflate_del(inflater_);
  }
}

size_t H2ResponseDecoder::bufferedBytes() const {
  return head_.size() + hdrFill_ + prefixFill_ + buffered_ + block_.fieldBytes;
}

// ---------------------------------------------------------------------------
// StreamConsumer

void H2ResponseDecoder::onData(std::span<const uint8_t> bytes, uint64_t tsNs) {
  if (bytes.empty()) {
    return;
  }
  base::bump(stats_.bytesIn, bytes.size());
  if (state_ == State::kDone) {
    base::bump(stats_.bytesIgnored, bytes.size());
    return;
  }
  if (inflater_ == nullptr) {
    base::bump(stats_.bytesIgnored, bytes.size());
    fail(http::NoResponse::kParseError, nullptr);
    return;
  }
  chunkTs_ = tsNs;
  consume(bytes.data(), bytes.size());
}

void H2ResponseDecoder::onGap(uint64_t /*bytes*/) {
  if (state_ == State::kDone) {
    return;
  }
  base::bump(stats_.gaps);
  fail(http::NoResponse::kGap, nullptr);
}

void H2ResponseDecoder::onEnd(flow::EndReason /*reason*/) {
  if (state_ != State::kDone) {
    fail(http::NoResponse::kStreamEnded, nullptr);
  }
}

// ---------------------------------------------------------------------------
// Frame parsing: a byte-at-a-time-safe state machine, so any cut of the stream
// gives the same result.

void H2ResponseDecoder::consume(const uint8_t* p, size_t n) {
  const uint8_t* const end = p + n;
  while (p < end && state_ != State::kDone) {
    const size_t avail = static_cast<size_t>(end - p);
    switch (state_) {
      case State::kStart:
        // A frame header starting with 'H' would announce a frame of 4.5 MiB
        // or more: the first frame is SETTINGS, far smaller. So 'H' is the 101.
        if (*p == 'H') {
          base::bump(stats_.upgraded);
          state_ = State::kUpgradeHead;
        } else {
          state_ = State::kFrameHeader;
        }
        break;
      case State::kUpgradeHead:
        skipUpgradeHead(p, end);
        break;
      case State::kFrameHeader: {
        if (hdrFill_ == 0) {
          frameTs_ = chunkTs_;
        }
        const size_t take = std::min(avail, hdr_.size() - hdrFill_);
        std::memcpy(hdr_.data() + hdrFill_, p, take);
        hdrFill_ += take;
        p += take;
        unitBytes_ += take;
        if (hdrFill_ == hdr_.size()) {
          startFrame();
        }
        break;
      }
      case State::kPayload:
        if (phase_ == Phase::kPrefix) {
          const size_t take = std::min(avail, prefixLen_ - prefixFill_);
          std::memcpy(prefix_.data() + prefixFill_, p, take);
          prefixFill_ += take;
          p += take;
          unitBytes_ += take;
          if (prefixFill_ == prefixLen_) {
            onPrefix();
          }
        } else if (phase_ == Phase::kContent) {
          const size_t take = std::min(avail, contentLeft_);
          contentLeft_ -= take;
          unitBytes_ += take;
          onContent(p, take);
          p += take;
          if (state_ == State::kPayload && contentLeft_ == 0) {
            phase_ = Phase::kPadding;
            if (paddingLeft_ == 0) {
              endFrame();
            }
          }
        } else {
          const size_t take = std::min(avail, paddingLeft_);
          paddingLeft_ -= take;
          p += take;
          unitBytes_ += take;
          if (paddingLeft_ == 0) {
            endFrame();
          }
        }
        break;
      case State::kDone:
        break;
    }
  }
  base::bump(stats_.bytesIgnored, static_cast<uint64_t>(end - p));
}

void H2ResponseDecoder::unitDone() {
  base::bump(stats_.bytesDecoded, unitBytes_);
  unitBytes_ = 0;
}

bool H2ResponseDecoder::skipUpgradeHead(const uint8_t*& p, const uint8_t* end) {
  const size_t old = head_.size();
  const size_t room = limits_.maxUpgradeHeadBytes > old ? limits_.maxUpgradeHeadBytes - old : 0;
  const size_t take = std::min(static_cast<size_t>(end - p), room);
  head_.append(reinterpret_cast<const char*>(p), take);
  unitBytes_ += take;
  // Check the status line as soon as it can be checked, so garbage fails early.
  const size_t cmp = std::min(head_.size(), kUpgradeStatus.size());
  if (head_.compare(0, cmp, kUpgradeStatus, 0, cmp) != 0) {
    p += take;
    fail(http::NoResponse::kParseError, &stats_.badPreface);
    return false;
  }
  const size_t from = old >= 3 ? old - 3 : 0;
  const size_t at = head_.find("\r\n\r\n", from);
  if (at != std::string::npos) {
    const size_t used = at + 4 - old;  // bytes of this call that belong to the head
    p += used;
    unitBytes_ -= take - used;        // the rest is the first frame's
    unitDone();
    std::string().swap(head_);
    state_ = State::kFrameHeader;
    return true;
  }
  p += take;
  if (head_.size() >= limits_.maxUpgradeHeadBytes) {
    fail(http::NoResponse::kParseError, &stats_.badPreface);
  }
  return false;
}

void H2ResponseDecoder::startFrame() {
  hdrFill_ = 0;
  length_ = (uint32_t{hdr_[0]} << 16) | (uint32_t{hdr_[1]} << 8) | uint32_t{hdr_[2]};
  type_ = hdr_[3];
  flags_ = hdr_[4];
  streamId_ = static_cast<int32_t>(read32(&hdr_[5]) & 0x7fffffffU);
  base::bump(stats_.frames);
  ++frameSeq_;
  if (length_ > limits_.maxFrameLength) {
    fail(http::NoResponse::kParseError, &stats_.frameTooLarge);
    return;
  }
  if (!sawSettings_) {
    // RFC 9113 3.4: the server's preface is a SETTINGS frame.
    if (type_ != kSettings || streamId_ != 0 || (flags_ & kAck) != 0) {
      fail(http::NoResponse::kParseError, &stats_.badPreface);
      return;
    }
    sawSettings_ = true;
  }
  // RFC 9113 6.10: a header block is contiguous.
  if (block_.active != (type_ == kContinuation) || (block_.active && streamId_ != block_.streamId)) {
    fail(http::NoResponse::kParseError, nullptr);
    return;
  }
  const bool padded = (flags_ & kPadded) != 0;
  prefixLen_ = 0;
  bool bad = false;
  switch (type_) {
    case kData:
      prefixLen_ = padded ? 1 : 0;
      bad = streamId_ == 0;
      if (!bad) {
        startData();
      }
      break;
    case kHeaders:
    case kPushPromise:
      prefixLen_ = (padded ? 1 : 0) + (type_ == kHeaders && (flags_ & kPriority) != 0 ? 5 : 0) +
                   (type_ == kPushPromise ? 4 : 0);
      bad = streamId_ == 0;
      startHeaderBlock();
      break;
    case kContinuation:
      break;
    case kRstStream:
      prefixLen_ = 4;
      bad = streamId_ == 0 || length_ != 4;
      break;
    case kGoAway:
      prefixLen_ = 8;
      bad = streamId_ != 0 || length_ < 8;
      break;
    default:
      // SETTINGS, PING, WINDOW_UPDATE, PRIORITY and extensions carry nothing a
      // response needs; their payloads are skipped.
      if (type_ > kContinuation) {
        base::bump(stats_.framesIgnored);
      }
      break;
  }
  if (bad || length_ < prefixLen_) {
    fail(http::NoResponse::kParseError, nullptr);
    return;
  }
  state_ = State::kPayload;
  phase_ = Phase::kPrefix;
  prefixFill_ = 0;
  contentLeft_ = 0;
  paddingLeft_ = 0;
  if (prefixLen_ == 0) {
    onPrefix();
  }
}

// A DATA frame on a stream: ignored on one nobody waits for, and the stream's
// end when it comes before the final headers or inside trailers.
void H2ResponseDecoder::startData() {
  auto it = streams_.find(streamId_);
  if (it == streams_.end()) {
    base::bump(stats_.framesIgnored);
  } else if (!it->second.finalHeaders || it->second.inTrailers) {
    dropStream(streamId_, http::NoResponse::kParseError, stats_.malformedStreams);
  } else {
    it->second.lastUse = frameSeq_;
  }
}

// HEADERS or PUSH_PROMISE begins a header block; pushed streams' blocks are
// inflated (HPACK state is per connection) and discarded.
void H2ResponseDecoder::startHeaderBlock() {
  block_ = Block();
  block_.active = true;
  block_.streamId = streamId_;
  block_.endStream = type_ == kHeaders && (flags_ & kEndStream) != 0;
  block_.tsNs = frameTs_;
  block_.budget = responseLimits_.maxHeaderBytes;
  if (type_ == kPushPromise) {
    base::bump(stats_.pushPromises);
    block_.discard = true;
  } else if (streamId_ % 2 == 0) {
    base::bump(stats_.framesIgnored);  // a pushed stream: nobody asked for it
    block_.discard = true;
  } else if (auto it = streams_.find(streamId_); it != streams_.end()) {
    it->second.lastUse = frameSeq_;
    block_.budget = it->second.headerBytes < block_.budget ? block_.budget - it->second.headerBytes : 0;
  }
}

void H2ResponseDecoder::onPrefix() {
  const bool padded = (flags_ & kPadded) != 0 &&
                      (type_ == kData || type_ == kHeaders || type_ == kPushPromise);
  const size_t pad = padded ? prefix_[0] : 0;
  const size_t rest = length_ - prefixLen_;
  prefixFill_ = 0;
  if (pad > rest) {
    fail(http::NoResponse::kParseError, nullptr);  // RFC 9113 6.1: padding longer than the payload
    return;
  }
  contentLeft_ = rest - pad;
  paddingLeft_ = pad;
  phase_ = Phase::kContent;
  if (contentLeft_ == 0) {
    phase_ = Phase::kPadding;
    if (paddingLeft_ == 0) {
      endFrame();
    }
  }
}

void H2ResponseDecoder::onContent(const uint8_t* p, size_t n) {
  if (n == 0) {
    return;
  }
  switch (type_) {
    case kData: {
      auto it = streams_.find(streamId_);
      if (it == streams_.end()) {
        return;
      }
      Stream& s = it->second;
      model::Response& r = s.response;
      r.bodyHash = base::fnv1a64(std::string_view(reinterpret_cast<const char*>(p), n), r.bodyHash);
      r.bodyLength += n;
      size_t take = 0;
      if (r.body.size() < responseLimits_.maxBodyBytes) {
        take = std::min(n, responseLimits_.maxBodyBytes - r.body.size());
        const size_t room = limits_.maxBufferedBytes > buffered_ ? limits_.maxBufferedBytes - buffered_ : 0;
        if (take > room) {
          take = room;
          if (!r.bodyTruncated) {
            base::bump(stats_.bufferLimited);
          }
        }
        r.body.append(reinterpret_cast<const char*>(p), take);
        keep(s, take);
      }
      if (r.bodyLength > r.body.size() && !r.bodyTruncated) {
        r.bodyTruncated = true;
        base::bump(stats_.bodiesTruncated);
      }
      break;
    }
    case kHeaders:
    case kPushPromise:
    case kContinuation:
      inflate(p, n, false);
      break;
    default:
      break;
  }
}

void H2ResponseDecoder::endFrame() {
  state_ = State::kFrameHeader;
  unitDone();
  switch (type_) {
    case kData:
      if ((flags_ & kEndStream) != 0 && streams_.count(streamId_) != 0) {
        emit(streamId_);
      }
      break;
    case kHeaders:
    case kPushPromise:
    case kContinuation:
      if ((flags_ & kEndHeaders) != 0) {
        if (inflate(nullptr, 0, true)) {
          finishBlock();
        }
      }
      break;
    case kRstStream:
      if (streams_.count(streamId_) != 0) {
        dropStream(streamId_, http::NoResponse::kStreamEnded, stats_.reset);
      }
      break;
    case kGoAway:
      base::bump(stats_.goaways);
      handler_.onH2GoAway(static_cast<int32_t>(read32(prefix_.data()) & 0x7fffffffU));
      break;
    default:
      break;
  }
}

}  // namespace shadowtap::h2
