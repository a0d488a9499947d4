#include "http/request_framer.h"

#include <algorithm>
#include <array>
#include <cassert>
#include <cstring>
#include <string_view>
#include <utility>

#include "base/counters.h"
#include "http/chunked_body.h"
#include "http/host_rewrite.h"
#include "http/request_framer_detail.h"
#include "http/request_line.h"

// Refusing a request (the reason counted once, independent of the cuts) and
// finding the next request boundary after a refusal or a gap.

namespace shadowtap::http {

using namespace framer_detail;


// Whatever is wrong in a request line, a line already over the limit before the
// byte at `pos` is counted as too long: finishChunk() decides the same way when
// that byte comes in a later chunk, so the reason does not depend on the cuts.
std::atomic<uint64_t>& RequestFramer::lineReason(std::atomic<uint64_t>& reason, uint64_t pos) {
  if (!lineDone_ && pos - reqStart_ > limits_.maxRequestLineBytes) {
    return stats_.requestLineTooLong;
  }
  return reason;
}

int RequestFramer::reject(std::atomic<uint64_t>& reason) {
  if (rejectReason_ == nullptr) {
    rejectReason_ = &reason;
  }
  return -1;
}

// Maps an llhttp error to the reason it is counted under. Only on the error
// path, so string compares are fine.
std::atomic<uint64_t>* RequestFramer::classifyBefore(llhttp_errno_t err, const char* at) {
  // llhttp stops inside a span (target, header name or value...) without
  // handing over the piece of it in this chunk; had the chunk been cut at the
  // error, llhttp would have handed it over at the end of the chunk, and our
  // callback might have refused it for an earlier byte (a TAB in the target, a
  // SP in a name). Hand it over now, as llhttp would (its open span is in
  // fields of its public struct), so the reason is the same for every cut.
  if (parser_._span_pos0 != nullptr && parser_._span_cb0 != nullptr) {
    using SpanCallback = int (*)(llhttp_t*, const char*, const char*);
    const char* piece = static_cast<const char*>(std::exchange(parser_._span_pos0, nullptr));
    const auto callback = reinterpret_cast<SpanCallback>(parser_._span_cb0);
    assert(piece >= chunkBase_ && piece <= at);
    callback(&parser_, piece, at);
    if (rejectReason_ != nullptr) {
      return std::exchange(rejectReason_, nullptr);
    }
  }
  const uint64_t pos = posOf(at);
  const bool inLine = inRequest_ && methodSeen_ && !lineDone_;
  if (inLine && pos - reqStart_ > limits_.maxRequestLineBytes) {
    return &stats_.requestLineTooLong;
  }
  const char* reason = llhttp_get_error_reason(&parser_);
  // llhttp refuses a complete but unsupported version ("HTTP/1.9") at the byte
  // after it, which may not have arrived: that byte must not decide the reason.
  if (err == HPE_INVALID_VERSION && reason != nullptr &&
      std::strcmp(reason, "Invalid HTTP version") == 0) {
    return &stats_.invalidRequestLine;
  }
  return nullptr;
}

std::atomic<uint64_t>& RequestFramer::classifyError(llhttp_errno_t err, uint64_t pos) {
  const int b = byteAt(pos);
  const int prev = pos > 0 ? byteAt(pos - 1) : -1;
  const bool inLine = inRequest_ && methodSeen_ && !lineDone_;
  const char* reason = llhttp_get_error_reason(&parser_);
  // llhttp took a CR and failed on the byte after it, which is not LF.
  if (prev == '\r' && b != '\n') {
    return stats_.bareCr;
  }
  // In the head a bare LF ends a line; in chunked framing a line ends in CRLF.
  if (headersDone_ && (parser_.flags & F_CHUNKED) != 0 &&
      (b == '\n' || (prev == '\n' && pos > 1 && byteAt(pos - 2) != '\r'))) {
    return stats_.bareLf;
  }
  if (inLine) {
    return stats_.invalidRequestLine;
  }
  switch (err) {
    case HPE_UNEXPECTED_CONTENT_LENGTH:
      return (parser_.flags & F_TRANSFER_ENCODING) != 0 ? stats_.ambiguousLength
                                                         : stats_.conflictingLength;
    case HPE_INVALID_TRANSFER_ENCODING:
      return stats_.transferCoding;  // "chunked, gzip", "chunked" twice, no chunked
    case HPE_INVALID_CONTENT_LENGTH:
    case HPE_INVALID_CHUNK_SIZE:
      return stats_.invalidLength;
    case HPE_INVALID_HEADER_TOKEN:
      // llhttp's reasons: "Invalid header token", "Invalid header field char",
      // "Invalid header value char".
      if (reason != nullptr && std::strcmp(reason, "Invalid header value char") == 0) {
        return stats_.invalidHeaderValue;
      }
      return stats_.invalidHeaderName;
    case HPE_LF_EXPECTED:
    case HPE_CR_EXPECTED:
      return stats_.bareCr;
    case HPE_INVALID_METHOD:
    case HPE_INVALID_URL:
    case HPE_INVALID_VERSION:
    case HPE_INVALID_CONSTANT:
      return stats_.invalidRequestLine;
    default:
      return stats_.parseErrors;
  }
}

void RequestFramer::failPending(const char* data, size_t len, uint64_t pos) {
  assert(mode_ == Mode::kFailing && pos == pendingPos_ && tailEnd_ == pendingPos_);
  // byteAt() then sees this chunk and the tail of the failed one, nothing stale.
  chunkBase_ = data;
  chunkLen_ = len;
  chunkPos_ = pos;
  mode_ = Mode::kParse;
  abandon(classifyError(pendingError_, pendingPos_));
}

int RequestFramer::byteAt(uint64_t pos) const {
  if (pos >= chunkPos_ && pos - chunkPos_ < chunkLen_) {
    return static_cast<uint8_t>(chunkBase_[pos - chunkPos_]);
  }
  if (pos >= bufPos_ && pos - bufPos_ < buf_.size()) {
    return static_cast<uint8_t>(buf_[pos - bufPos_]);
  }
  if (tailEnd_ == chunkPos_ && pos < chunkPos_ && chunkPos_ - pos <= tailLen_) {
    return static_cast<uint8_t>(tail_[2 - (chunkPos_ - pos)]);
  }
  return -1;
}

std::atomic<uint64_t>* RequestFramer::chunkedLineEndReason(uint64_t end) {
  const int lf = end >= 1 ? byteAt(end - 1) : -1;
  const int cr = end >= 2 ? byteAt(end - 2) : -1;
  // Bytes no longer held belong to a request being skipped; nothing to check.
  if (lf >= 0 && lf != '\n') {
    return &stats_.bareCr;  // llhttp took "\r<any>" for the line end
  }
  if (cr >= 0 && cr != '\r') {
    return &stats_.bareLf;
  }
  return nullptr;
}

// ---------------------------------------------------------------------------
// Resynchronisation

void RequestFramer::enterResync() {
  mode_ = Mode::kResync;
  atLineStart_ = true;
  base::bump(stats_.resyncs);
}

void RequestFramer::feedResync(const char* data, size_t len, uint64_t pos, uint64_t tsNs) {
  size_t off = 0;
  if (!buf_.empty()) {
    // A candidate request line is pending (it has no LF yet); complete it.
    const void* lf = std::memchr(data, '\n', len);
    const size_t take = lf != nullptr ? static_cast<size_t>(static_cast<const char*>(lf) - data) + 1 : len;
    if (buf_.size() + take > resyncLineCap_) {
      // Too long to be a request line; continue scanning mid-line.
      base::bump(stats_.resyncLinesTooLong);
      account(pos);
      releaseBuffer(pos);
      atLineStart_ = false;
    } else {
      buf_.append(data, take);
      off = take;
      const LineMatch m = matchRequestLine(buf_, resyncLineCap_);
      if (m == LineMatch::kNeedMore) {
        return;
      }
      if (m == LineMatch::kMatch) {
        const std::string line = std::move(buf_);
        const uint64_t linePos = bufPos_;
        releaseBuffer(linePos);
        startParse();
        feedParse(line.data(), line.size(), linePos, candidateTs_);
        if (mode_ == Mode::kParse && off < len) {
          feedParse(data + off, len - off, pos + off, tsNs);
        } else if (mode_ == Mode::kFailing && off < len) {
          failPending(data + off, len - off, pos + off);
        } else if (mode_ != Mode::kParse) {
          account(pos_);
        }
        return;
      }
      if (m == LineMatch::kTooLong) {
        base::bump(stats_.resyncLinesTooLong);
      }
      account(pos + off);
      releaseBuffer(pos + off);
      atLineStart_ = data[take - 1] == '\n';
    }
  }
  if (off < len) {
    scanResync(data + off, len - off, pos + off, tsNs);
  }
}

// Looks for a request line at the start of `data` (if atLineStart_) and after
// every LF. Skipped bytes are unmirrored; only a partial candidate line is kept.
void RequestFramer::scanResync(const char* data, size_t len, uint64_t pos, uint64_t tsNs) {
  size_t i = 0;
  bool candidate = atLineStart_;
  for (;;) {
    if (candidate) {
      const LineMatch m = matchRequestLine(std::string_view(data + i, len - i), resyncLineCap_);
      if (m == LineMatch::kMatch) {
        account(pos + i);
        releaseBuffer(pos + i);
        startParse();
        feedParse(data + i, len - i, pos + i, tsNs);
        return;
      }
      if (m == LineMatch::kTooLong) {
        base::bump(stats_.resyncLinesTooLong);
      }
      if (m == LineMatch::kNeedMore) {
        account(pos + i);
        buf_.assign(data + i, len - i);
        bufPos_ = pos + i;
        candidateTs_ = tsNs;
        return;
      }
    }
    const void* lf = std::memchr(data + i, '\n', len - i);
    if (lf == nullptr) {
      account(pos + len);
      atLineStart_ = false;
      return;
    }
    i = static_cast<size_t>(static_cast<const char*>(lf) - data) + 1;
    candidate = true;
    if (i == len) {
      account(pos + len);
      atLineStart_ = true;
      return;
    }
  }
}

}  // namespace shadowtap::http
