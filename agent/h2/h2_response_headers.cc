#include "h2/h2_response_decoder.h"

#include <algorithm>
#include <string_view>
#include <utility>

#include <nghttp2/nghttp2.h>

#include "base/counters.h"
#include "base/strings.h"

// H2ResponseDecoder's header blocks: HPACK inflation, the fields of a response
// or its trailers, and the stream's end. Frames are read in h2_response_decoder.cc.

namespace shadowtap::h2 {
namespace {

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
