#include <cassert>
#include <string_view>
#include <utility>

#include "base/counters.h"
#include "http/request_framer.h"
#include "http/request_framer_detail.h"

// Streamed requests: a request over maxRequestBytes is emitted before its body
// is complete, and the rest of its body goes to a model::BodyStream as it is
// framed (docs/mirroring.md#large-requests).

namespace shadowtap::http {

using framer_detail::hasBareCr;

void RequestFramer::refuseHead(std::atomic<uint64_t>& reason) {
  resolve(reason);
  base::bump(stats_.closedAfterRefused);
  mode_ = Mode::kClosed;
  account(pos_);
  releaseBuffer(pos_);
}

bool RequestFramer::startStream(uint64_t end) {
  assert(inRequest_ && headersDone_ && !streaming_);
  if (limits_.streamWindowBytes == 0 || parser_.method == HTTP_CONNECT || parser_.upgrade != 0) {
    return false;  // skipped as llhttp frames it (tooLarge), as without streaming
  }
  // What completeRequest() refuses at the end of a whole request, refused at the head.
  if (hostCount_ == 0 && parser_.http_minor != 0) {
    refuseHead(stats_.noHost);
    return false;
  }
  if (hostCount_ > 1) {
    refuseHead(stats_.multipleHost);
    return false;
  }
  model::Request req;
  if (!frame(req, end, false)) {
    base::bump(stats_.closedAfterRefused);  // frame() counted invalidHost
    mode_ = Mode::kClosed;
    account(pos_);
    releaseBuffer(pos_);
    return false;
  }
  if ((parser_.flags & F_CHUNKED) == 0) {
    req.bodyLength = parser_.content_length + (end - headersEnd_);  // llhttp counts down what is left
  } else {
    req.bodyLength = 0;  // not known until the last chunk
  }
  base::bump(stats_.requestsStreamed);
  base::bump(stats_.streamsInProgress);
  streaming_ = true;
  stream_ = std::make_shared<model::BodyStream>(limits_.streamWindowBytes);
  req.bodyStream = stream_;
  chunkCheck_ = ChunkedBodyChecker();
  if ((parser_.flags & F_CHUNKED) != 0) {
    const std::string_view body = std::string_view(req.bytes).substr(req.bodyOffset);
    if (!chunkCheck_.feed(body)) {
      abandon(hasBareCr(body) ? stats_.bareCr : stats_.bareLf);
      return true;  // counted; not emitted
    }
  }
  sink_.onRequest(std::move(req));
  // Sampled out, filtered, printed, refused by the queue: nobody reads it.
  if (stream_.use_count() == 1) {
    endStream(model::BodyStream::End::kIncomplete, stats_.streamsLetGo);
  }
  return true;
}

void RequestFramer::streamBytes(uint64_t end) {
  if (end <= accounted_) {
    return;
  }
  assert(streaming_ && accounted_ >= chunkPos_ && end <= chunkPos_ + chunkLen_);
  const char* data = chunkBase_ + (accounted_ - chunkPos_);
  const size_t n = end - accounted_;
  if ((parser_.flags & F_CHUNKED) != 0 && !chunkCheck_.feed({data, n})) {
    const std::string_view piece(data, n);
    abandon(hasBareCr(piece) ? stats_.bareCr : stats_.bareLf);
    return;
  }
  if (stream_ && (stream_.use_count() == 1 || stream_->cancelled())) {
    endStream(model::BodyStream::End::kIncomplete, stats_.streamsLetGo);
  }
  if (!stream_) {
    account(end);  // let go of: the rest of the body is framed, not kept
    return;
  }
  if (!stream_->append(data, n)) {
    // The window is full (the mirror is that far behind), or the consumer
    // cancelled meanwhile.
    endStream(model::BodyStream::End::kOverflow,
              stream_->cancelled() ? stats_.streamsLetGo : stats_.streamsOverflowed);
    account(end);
    return;
  }
  base::bump(stats_.bytesParsed, n);
  base::bump(stats_.bytesStreamed, n);
  accounted_ = end;
}

void RequestFramer::completeStream(uint64_t end) {
  // The body's last bytes; its framing was checked as it went.
  streamBytes(end);
  if (mode_ != Mode::kParse) {
    return;  // refused in its last bytes
  }
  if (!chunkCheck_.complete() && (parser_.flags & F_CHUNKED) != 0) {
    abandon(stats_.bareLf);  // llhttp ended the body where the checker does not: refused as a whole body would be
    return;
  }
  endStream(model::BodyStream::End::kComplete, stats_.streamsCompleted);
  streaming_ = false;
  account(end);
  atBoundary_ = true;
  if (llhttp_should_keep_alive(&parser_) == 0) {
    base::bump(stats_.closedByRequest);
    mode_ = Mode::kClosed;
    account(pos_);
    releaseBuffer(pos_);
  }
}

void RequestFramer::endStream(model::BodyStream::End how, std::atomic<uint64_t>& counter) {
  if (!stream_) {
    return;
  }
  stream_->finish(how);
  stream_.reset();
  base::bump(counter);
  base::subtract(stats_.streamsInProgress);
}

}  // namespace shadowtap::http
