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

// ":status" is exactly three digits (RFC 9113 8.3.2 via RFC 9110 15).
int parseStatus(std::string_view v) {
  if (v.size() != 3) {
    return -1;
  }
  int s = 0;
  for (char c : v) {
    if (c < '0' || c > '9') {
      return -1;
    }
    s = s * 10 + (c - '0');
  }
  return s >= 100 ? s : -1;
}

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
        auto it = streams_.find(streamId_);
        if (it == streams_.end()) {
          base::bump(stats_.framesIgnored);
        } else if (!it->second.finalHeaders || it->second.inTrailers) {
          dropStream(streamId_, http::NoResponse::kParseError, stats_.malformedStreams);
        } else {
          it->second.lastUse = frameSeq_;
        }
      }
      break;
    case kHeaders:
    case kPushPromise: {
      prefixLen_ = (padded ? 1 : 0) + (type_ == kHeaders && (flags_ & kPriority) != 0 ? 5 : 0) +
                   (type_ == kPushPromise ? 4 : 0);
      bad = streamId_ == 0;
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
      break;
    }
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

// ---------------------------------------------------------------------------
// Header blocks

bool H2ResponseDecoder::inflate(const uint8_t* p, size_t n, bool final) {
  static const uint8_t kNothing = 0;
  if (p == nullptr) {
    p = &kNothing;
  }
  for (;;) {
    nghttp2_nv nv;
    int flags = 0;
    const ssize_t rv = nghttp2_hd_inflate_hd2(inflater_, &nv, &flags, p, n, final ? 1 : 0);
    if (rv < 0) {
      fail(http::NoResponse::kParseError, &stats_.hpackErrors);
      return false;
    }
    p += rv;
    n -= static_cast<size_t>(rv);
    if ((flags & NGHTTP2_HD_INFLATE_EMIT) != 0) {
      onField(std::string_view(reinterpret_cast<const char*>(nv.name), nv.namelen),
              std::string_view(reinterpret_cast<const char*>(nv.value), nv.valuelen));
    }
    if ((flags & NGHTTP2_HD_INFLATE_FINAL) != 0) {
      nghttp2_hd_inflate_end_headers(inflater_);
      return true;
    }
    if ((flags & NGHTTP2_HD_INFLATE_EMIT) == 0 && n == 0) {
      if (final) {
        // Cannot happen with nghttp2 (it reports an incomplete block as an
        // error), but a block that did not end must not be taken as whole.
        fail(http::NoResponse::kParseError, &stats_.hpackErrors);
        return false;
      }
      return true;
    }
  }
}

void H2ResponseDecoder::onField(std::string_view name, std::string_view value) {
  Block& b = block_;
  if (b.discard) {
    return;
  }
  if (!name.empty() && name[0] == ':') {
    b.anyPseudo = true;
    if (name == ":status" && !b.sawStatus) {
      b.sawStatus = true;
      b.status = parseStatus(value);
    }
    return;
  }
  if (b.truncated) {
    return;
  }
  // Charged like an HPACK table entry, so a block of empty or tiny fields (one
  // indexed byte each) cannot grow without limit.
  const size_t size = name.size() + value.size() + model::kH2FieldOverhead;
  const bool overBuffer = buffered_ + b.fieldBytes + size > limits_.maxBufferedBytes;
  if (b.fieldBytes + size > b.budget || overBuffer) {
    b.truncated = true;
    if (overBuffer) {
      base::bump(stats_.bufferLimited);
    }
    return;
  }
  b.fields.push_back({std::string(name), std::string(value)});
  b.fieldBytes += size;
}

void H2ResponseDecoder::finishBlock() {
  Block b = std::move(block_);
  block_ = Block();
  if (b.discard) {
    return;
  }
  const int32_t id = b.streamId;
  auto it = streams_.find(id);
  if (it == streams_.end()) {
    if (!b.sawStatus) {
      // Not a response start: trailers of a stream given up on (evicted, or
      // opened before a limit), or a broken server. Nothing to pair it with.
      base::bump(stats_.headerBlocksIgnored);
      return;
    }
    openStream(id, b);
    it = streams_.find(id);
  }
  Stream& s = it->second;
  s.lastUse = frameSeq_;
  if (s.finalHeaders) {
    // Trailers (RFC 9113 8.1): they end the stream and carry no pseudo-header.
    if (!b.endStream) {
      dropStream(id, http::NoResponse::kParseError, stats_.malformedStreams);
      return;
    }
    if (b.anyPseudo) {
      base::bump(stats_.badTrailers);
    } else {
      base::bump(stats_.trailers);
      for (model::HeaderField& h : b.fields) {
        s.response.headers.push_back(std::move(h));
      }
      s.headerBytes += b.fieldBytes;
      keep(s, b.fieldBytes);
      if (b.truncated && !s.response.headersTruncated) {
        s.response.headersTruncated = true;
        base::bump(stats_.headersTruncated);
      }
    }
    emit(id);
    return;
  }
  if (!b.sawStatus || b.status < 0 || b.status > 599 || b.status == 101) {
    dropStream(id, http::NoResponse::kParseError, stats_.malformedStreams);
    return;
  }
  if (b.status < 200) {
    base::bump(stats_.interim);
    if (b.endStream) {
      dropStream(id, http::NoResponse::kParseError, stats_.malformedStreams);
    }
    return;
  }
  s.finalHeaders = true;
  s.response.status = b.status;
  s.response.headers = std::move(b.fields);
  s.headerBytes = b.fieldBytes;
  keep(s, b.fieldBytes);
  if (b.truncated) {
    s.response.headersTruncated = true;
    base::bump(stats_.headersTruncated);
  }
  if (b.endStream) {
    emit(id);
  }
}

void H2ResponseDecoder::openStream(int32_t id, Block& block) {
  if (streams_.size() >= limits_.maxStreams && !streams_.empty()) {
    // Streams the client reset are never closed by the server: evicting the
    // least recently used keeps such leftovers from blocking new streams.
    auto oldest = std::min_element(streams_.begin(), streams_.end(), [](const auto& a, const auto& b) {
      return a.second.lastUse < b.second.lastUse;
    });
    dropStream(oldest->first, http::NoResponse::kUnpairable, stats_.evicted);
  }
  Stream& s = streams_[id];
  s.response.tsNs = block.tsNs;
  s.response.bodyHash = base::kFnv1aSeed;
  s.lastUse = frameSeq_;
  base::bump(stats_.streamsOpened);
  base::bump(stats_.openStreams);
}

void H2ResponseDecoder::keep(Stream& s, size_t n) {
  s.keptBytes += n;
  buffered_ += n;
}

void H2ResponseDecoder::emit(int32_t id) {
  auto it = streams_.find(id);
  if (it == streams_.end()) {
    return;
  }
  model::Response r = std::move(it->second.response);
  buffered_ -= it->second.keptBytes;
  streams_.erase(it);
  base::subtract(stats_.openStreams);
  base::bump(stats_.responses);
  handler_.onH2Response(id, std::move(r));
}

void H2ResponseDecoder::dropStream(int32_t id, http::NoResponse reason, std::atomic<uint64_t>& counter) {
  auto it = streams_.find(id);
  if (it == streams_.end()) {
    return;
  }
  buffered_ -= it->second.keptBytes;
  streams_.erase(it);
  base::subtract(stats_.openStreams);
  base::bump(counter);
  handler_.onH2NoResponse(id, reason);
}

void H2ResponseDecoder::fail(http::NoResponse reason, std::atomic<uint64_t>* counter) {
  if (state_ == State::kDone) {
    return;
  }
  if (reason == http::NoResponse::kParseError) {
    base::bump(stats_.decodeErrors);
  }
  if (counter != nullptr) {
    base::bump(*counter);
  }
  state_ = State::kDone;
  // The frame (or head) that failed counts as ignored whole, wherever in it
  // the failure was found: so the counters do not depend on the cuts.
  base::bump(stats_.bytesIgnored, unitBytes_);
  unitBytes_ = 0;
  std::string().swap(head_);
  hdrFill_ = 0;
  prefixFill_ = 0;
  block_ = Block();
  std::unordered_map<int32_t, Stream> open;
  open.swap(streams_);
  buffered_ = 0;
  // In stream id order, so the calls do not depend on the hash table.
  std::vector<int32_t> ids;
  ids.reserve(open.size());
  for (const auto& [id, s] : open) {
    ids.push_back(id);
  }
  std::sort(ids.begin(), ids.end());
  for (int32_t id : ids) {
    base::subtract(stats_.openStreams);
    base::bump(stats_.abandoned);
    handler_.onH2NoResponse(id, reason);
  }
  handler_.onH2End(reason);
}

}  // namespace shadowtap::h2
