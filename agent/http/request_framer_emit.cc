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

// Completing a request: holding its bytes across chunks, its end, and handing
// it to the sink.

namespace shadowtap::http {

using framer_detail::hasBareCr;
using framer_detail::hasBareLf;

namespace {

// How far ahead of the bytes held a Content-Length may make us reserve.
constexpr uint64_t kReserveAhead = 64 << 10;

}  // namespace


// Keeps the request in progress for the next chunk, unless it is known to be
// too large by now, in which case it is skipped without buffering.
void RequestFramer::finishChunk() {
  if (mode_ != Mode::kParse) {
    return;
  }
  const uint64_t chunkEnd = chunkPos_ + chunkLen_;
  if (inRequest_ && !lineDone_ && chunkEnd - reqStart_ > limits_.maxRequestLineBytes) {
    // No server reads a request line this long; resynchronising inside it
    // could start a request in the middle of an attacker's bytes.
    abandon(stats_.requestLineTooLong);
    return;
  }
  if (streaming_) {
    streamBytes(chunkEnd);
    releaseBuffer(chunkEnd);
    return;
  }
  if (inRequest_ && !skipping_) {
    const uint64_t held = chunkEnd - reqStart_;
    if (!headersDone_ && held > limits_.maxHeaderBytes) {
      skipping_ = true;
      headersTooLarge_ = true;
    } else if (held > limits_.maxRequestBytes && (!headersDone_ || !startStream(chunkEnd))) {
      skipping_ = mode_ == Mode::kParse;  // (a refused head closed the stream)
    }
    if (streaming_ || mode_ != Mode::kParse) {
      releaseBuffer(chunkEnd);
      return;
    }
  }
  if (!inRequest_ || skipping_) {
    account(chunkEnd);
    releaseBuffer(chunkEnd);
    return;
  }
  assert(accounted_ == reqStart_);
  // A Content-Length body tells how much is still to come: one allocation for
  // the whole request instead of doubling the buffer segment after segment.
  // emit() then moves this buffer out as the request's bytes. A length that is
  // only announced is not trusted with memory: at most twice what is held (or
  // kReserveAhead) is reserved, as the string's own growth would.
  if (headersDone_ && (parser_.flags & F_CONTENT_LENGTH) != 0 && (parser_.flags & F_CHUNKED) == 0) {
    const uint64_t held = chunkEnd - reqStart_;
    // (+ kRewriteSlack: room for the Host rewrite, done in this same buffer.)
    const uint64_t want = std::min<uint64_t>({held + parser_.content_length + kRewriteSlack,
                                              limits_.maxRequestBytes + kRewriteSlack,
                                              std::max<uint64_t>(2 * held, kReserveAhead)});
    if (want > buf_.capacity()) {
      buf_.reserve(want);
    }
  }
  if (accounted_ >= chunkPos_) {
    buf_.assign(chunkBase_ + (accounted_ - chunkPos_), chunkEnd - accounted_);
  } else {
    assert(bufPos_ == accounted_ && bufPos_ + buf_.size() == chunkPos_);
    buf_.append(chunkBase_, chunkLen_);
  }
  bufPos_ = accounted_;
}

// `end` is the first byte after the header section's blank line.
bool RequestFramer::afterHeaders(uint64_t end) {
  headersEnd_ = end;
  if (simpleRequest_) {
    // Everything before the last LF was the "request line" for finishChunk().
    abandon(end - 1 - reqStart_ > limits_.maxRequestLineBytes ? stats_.requestLineTooLong
                                                               : stats_.invalidRequestLine);
    return false;
  }
  // The blank line is "\r\n" or "\n" after a line end. llhttp (outside strict
  // mode) also takes "\r<any>" for it, and after the request line it skips one
  // SP first (lenient headers), which servers refuse. These bytes were read in
  // this chunk or are the two kept from the one before.
  const int lf = byteAt(end - 1);
  const int b2 = end >= 2 ? byteAt(end - 2) : -1;
  const int b3 = end >= 3 ? byteAt(end - 3) : -1;
  if (lf >= 0 && lf != '\n') {
    abandon(stats_.bareCr);
    return false;
  }
  if (b2 >= 0 && b2 != '\n' && !(b2 == '\r' && (b3 < 0 || b3 == '\n'))) {
    abandon(stats_.obsFold);  // a line of whitespace before the blank line
    return false;
  }
  if (end - reqStart_ > limits_.maxHeaderBytes) {
    skipping_ = true;
    headersTooLarge_ = true;
  } else if ((parser_.flags & F_CONTENT_LENGTH) != 0 &&
             parser_.content_length > limits_.maxRequestBytes) {
    // A Content-Length body over the limit is streamed (or skipped) from the
    // start; a chunked one is caught by finishChunk()/completeRequest() as it grows.
    if (!startStream(end)) {
      skipping_ = mode_ == Mode::kParse;
    }
  }
  return mode_ == Mode::kParse;
}

void RequestFramer::completeRequest(uint64_t end) {
  if (!streaming_ && inRequest_ && !skipping_ && end - reqStart_ > limits_.maxRequestBytes) {
    // Over the limit, and complete within one chunk: streamed all the same
    // (its stream completes at once), so the cut does not decide.
    startStream(end);
    if (mode_ != Mode::kParse) {
      return;
    }
  }
  if (streaming_) {
    completeStream(end);
    return;
  }
  const bool connect = parser_.method == HTTP_CONNECT;
  const bool upgrade = parser_.upgrade != 0;
  if ((parser_.flags & F_CHUNKED) != 0) {
    // The last chunk or the trailers ended without CRLF.
    if (std::atomic<uint64_t>* reason = chunkedLineEndReason(end)) {
      abandon(*reason);
      return;
    }
  }
  const bool keepAlive = llhttp_should_keep_alive(&parser_) != 0;
  // Servers answer these with 400 and close the connection.
  bool refused = false;
  if (connect) {
    // A tunnel, not a request to a service: nothing to mirror.
    resolve(stats_.droppedByAbandon);
    account(end);
  } else if (headersTooLarge_) {
    resolve(stats_.headersTooLarge);
    account(end);
  } else if (skipping_ || end - reqStart_ > limits_.maxRequestBytes) {
    resolve(stats_.tooLarge);
    account(end);
  } else if (hostCount_ == 0 && parser_.http_minor != 0) {
    resolve(stats_.noHost);
    account(end);
    refused = true;
  } else if (hostCount_ > 1) {
    resolve(stats_.multipleHost);
    account(end);
    refused = true;
  } else {
    refused = !emit(end);
  }
  skipping_ = false;
  headersTooLarge_ = false;
  atBoundary_ = true;
  if (mode_ != Mode::kParse) {
    return;  // emit() found the request malformed and gave up
  }
  if (connect) {
    abandon(stats_.connect);
  } else if (upgrade) {
    // What follows is another protocol (WebSocket, h2c) if the server agrees,
    // and we do not see its answer.
    abandon(stats_.upgrade);
  } else if (refused || !keepAlive) {
    base::bump(refused ? stats_.closedAfterRefused : stats_.closedByRequest);
    mode_ = Mode::kClosed;
    account(pos_);
    releaseBuffer(pos_);
  }
}

// Moves or copies the request's bytes [reqStart_, end) into req.bytes.
void RequestFramer::takeBytes(model::Request& req, uint64_t end) {
  const uint64_t size = end - reqStart_;
  // Every path leaves kRewriteSlack of capacity: the Host rewrite then inserts
  // the suffix in place instead of copying the request again.
  if (reqStart_ >= chunkPos_) {
    req.bytes.reserve(size + kRewriteSlack);
    req.bytes.assign(chunkBase_ + (reqStart_ - chunkPos_), size);
  } else if (reqStart_ == bufPos_) {
    // The buffer holds exactly the start of this request: complete it and hand
    // it over rather than copying it. Nothing before chunkPos_ is read again
    // for this chunk (the next request starts at `end`; tail_ keeps the rest).
    assert(bufPos_ + buf_.size() == chunkPos_);
    if (buf_.capacity() < size) {
      buf_.reserve(size + kRewriteSlack);  // it grows here anyway: grow once, with the slack
    }
    buf_.append(chunkBase_, end - chunkPos_);
    req.bytes = std::move(buf_);
    buf_.clear();
    bufPos_ = end;
  } else {
    assert(reqStart_ > bufPos_ && bufPos_ + buf_.size() == chunkPos_);
    req.bytes.reserve(size + kRewriteSlack);
    req.bytes.append(buf_, reqStart_ - bufPos_);
    req.bytes.append(chunkBase_, end - chunkPos_);
  }
}

// Counts what the request has that servers tolerate and the framer let through.
void RequestFramer::countTolerated(const model::Request& req) {
  if (hasBareLf(std::string_view(req.bytes).substr(0, req.bodyOffset))) {
    base::bump(stats_.toleratedBareLf);
  }
  if (extensionMethod_) {
    base::bump(stats_.extensionMethod);
  }
  if (hostCount_ == 0) {
    base::bump(stats_.http10WithoutHost);
  }
  if (ignoredName_) {
    base::bump(stats_.ignoredHeaderName);
  }
}

bool RequestFramer::frame(model::Request& req, uint64_t end, bool wholeBody) {
  const uint64_t size = end - reqStart_;
  takeBytes(req, end);

  // llhttp leaves trailing whitespace in the value (folded values were refused).
  size_t hostBegin = hostStart_ - reqStart_;
  size_t hostEnd = hostEnd_ - reqStart_;
  if (!hostValueSeen_) {
    hostBegin = hostEnd = 0;
  }
  while (hostBegin < hostEnd && (req.bytes[hostBegin] == ' ' || req.bytes[hostBegin] == '\t')) {
    ++hostBegin;
  }
  while (hostEnd > hostBegin && (req.bytes[hostEnd - 1] == ' ' || req.bytes[hostEnd - 1] == '\t')) {
    --hostEnd;
  }
  const std::string_view host(req.bytes.data() + hostBegin, hostEnd - hostBegin);
  const size_t bodyOffset = headersEnd_ - reqStart_;
  const bool chunked = (parser_.flags & F_CHUNKED) != 0;
  if (chunked && wholeBody) {
    const std::string_view body = std::string_view(req.bytes).substr(bodyOffset);
    if (!isWellFormedChunkedBody(body)) {
      abandon(hasBareCr(body) ? stats_.bareCr : stats_.bareLf);
      return false;
    }
  }
  req.targetOffset = targetStart_ - reqStart_;
  req.targetLength = targetEnd_ - targetStart_;
  const TargetHost th = findTargetHost(req.target());
  // (hostCount_ is 0 only in HTTP/1.0 here.) Userinfo in the target: RFC 9110
  // 4.2.4 says to treat it as an error (phishing), and nginx answers 400.
  if ((hostCount_ == 1 && host.empty()) || (th.absoluteForm && (th.length == 0 || th.userinfo))) {
    resolve(stats_.invalidHost);
    account(end);
    return false;
  }
  if (th.absoluteForm) {
    req.targetHostOffset = req.targetOffset + th.offset;
    req.targetHostLength = th.length;
  }
  req.bodyOffset = bodyOffset;
  req.bodyLength = chunked ? chunkedBodyBytes_ : size - bodyOffset;
  req.streamOffset = reqStart_;
  req.gapsBefore = gaps_;
  req.upgrade = parser_.upgrade != 0;

  req.flow = key_;
  req.ruleId = ruleId_;
  req.tsNs = reqTs_;
  req.hostOffset = hostBegin;
  req.hostLength = hostEnd - hostBegin;
  req.method.assign(req.bytes, 0, methodLen_);
  countTolerated(req);
  resolve(stats_.requestsParsed);
  base::bump(stats_.bytesParsed, size);
  accounted_ = end;
  return true;
}

bool RequestFramer::emit(uint64_t end) {
  assert(accounted_ == reqStart_ && end >= chunkPos_);
  model::Request req;
  if (!frame(req, end, true)) {
    return false;
  }
  sink_.onRequest(std::move(req));
  return true;
}

void RequestFramer::resolve(std::atomic<uint64_t>& outcome) {
  assert(inRequest_);
  inRequest_ = false;
  base::bump(outcome);
  base::subtract(stats_.requestsInProgress);
}

void RequestFramer::abandon(std::atomic<uint64_t>& reason) {
  if (inRequest_) {
    resolve(stats_.droppedByAbandon);
  }
  if (streaming_) {
    endStream(model::BodyStream::End::kIncomplete, stats_.streamsAbortedRefused);
    streaming_ = false;
  }
  base::bump(reason);
  base::bump(stats_.connectionsAbandoned);
  mode_ = Mode::kAbandoned;
  skipping_ = false;
  account(pos_);
  releaseBuffer(pos_);
}

}  // namespace shadowtap::http
