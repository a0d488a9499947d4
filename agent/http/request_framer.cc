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

// The framer's driver: chunks in, llhttp run over them, bytes accounted. The
// request line and header checks are in request_framer_head.cc, completing and
// emitting a request in request_framer_emit.cc, refusals and resynchronisation
// in request_framer_resync.cc.

namespace shadowtap::http {

using framer_detail::initParser;

namespace {

// An idle framer keeps at most this much buffer capacity: thousands of flows
// must not each sit on the capacity of the largest request they ever carried.
constexpr size_t kIdleCapacity = 16 << 10;

}  // namespace

const llhttp_settings_t& RequestFramer::settings() {
  static const llhttp_settings_t kSettings = [] {
    llhttp_settings_t s;
    llhttp_settings_init(&s);
    // No on_message_begin / on_method: scanMethod() begins each request and
    // reads its method before llhttp sees it.
    s.on_url = &RequestFramer::onUrl;
    s.on_url_complete = &RequestFramer::onUrlComplete;
    s.on_version = &RequestFramer::onVersion;
    s.on_version_complete = &RequestFramer::onVersionComplete;
    s.on_header_field = &RequestFramer::onHeaderField;
    s.on_header_field_complete = &RequestFramer::onHeaderFieldComplete;
    s.on_header_value = &RequestFramer::onHeaderValue;
    s.on_header_value_complete = &RequestFramer::onHeaderValueComplete;
    s.on_headers_complete = &RequestFramer::onHeadersComplete;
    s.on_chunk_header = &RequestFramer::onChunkHeader;
    s.on_message_complete = &RequestFramer::onMessageComplete;
    return s;
  }();
  return kSettings;
}

RequestFramer::RequestFramer(const model::FlowKey& key, uint32_t ruleId, bool fromStart,
                             model::RequestSink& sink, const FramerLimits& limits, HttpStats& stats, uint64_t startOffset)
    : key_(key),
      ruleId_(ruleId),
      fromStart_(fromStart),
      sink_(sink),
      limits_(limits),
      resyncLineCap_(std::max<size_t>(1, std::min({limits.maxResyncScanBytes, limits.maxHeaderBytes,
                                                    limits.maxRequestLineBytes}))),
      stats_(stats) {
  base::bump(stats_.streams);
  initParser(parser_, settings(), this);
  pos_ = accounted_ = bufPos_ = chunkPos_ = startOffset;
  startOffset_ = startOffset;
  if (!fromStart_) {
    enterResync();
  }
}

RequestFramer::~RequestFramer() { finish(); }

// ---------------------------------------------------------------------------
// StreamConsumer

void RequestFramer::onData(std::span<const uint8_t> bytes, uint64_t tsNs) {
  if (bytes.empty()) {
    return;
  }
  const char* data = reinterpret_cast<const char*>(bytes.data());
  const size_t len = bytes.size();
  const uint64_t pos = pos_;
  pos_ += len;
  base::bump(stats_.bytesIn, len);

  switch (mode_) {
    case Mode::kParse:
      // A TLS handshake record cannot be an HTTP/1 method byte; say why we stop
      // instead of reporting it as a parse error.
      if (pos == 0 && startOffset_ == 0 && fromStart_ && static_cast<uint8_t>(data[0]) == 0x16) {
        abandon(stats_.tls);
        break;
      }
      feedParse(data, len, pos, tsNs);
      break;
    case Mode::kResync:
      feedResync(data, len, pos, tsNs);
      break;
    case Mode::kFailing:
      failPending(data, len, pos);
      break;
    case Mode::kAbandoned:
    case Mode::kClosed:
    case Mode::kEnded:
      account(pos_);
      break;
  }
  publishBuffered();
}

void RequestFramer::onGap(uint64_t /*bytes*/) {
  base::bump(stats_.gaps);
  gaps_ += gaps_ != UINT32_MAX ? 1 : 0;  // saturates: never back to "no gap"
  if (mode_ == Mode::kFailing) {
    failPending(nullptr, 0, pos_);  // what follows the gap is not the next byte
  }
  if (mode_ == Mode::kAbandoned || mode_ == Mode::kClosed || mode_ == Mode::kEnded) {
    return;
  }
  if (inRequest_) {
    resolve(stats_.droppedByGap);
  }
  if (streaming_) {
    // Never a truncated body that looks complete: the consumer aborts.
    endStream(model::BodyStream::End::kGap, stats_.streamsAbortedGap);
    streaming_ = false;
  }
  skipping_ = false;
  account(pos_);
  releaseBuffer(pos_);
  enterResync();
  publishBuffered();
}

void RequestFramer::onEnd(flow::EndReason /*reason*/) { finish(); }

void RequestFramer::finish() {
  if (mode_ == Mode::kEnded) {
    return;
  }
  if (mode_ == Mode::kFailing) {
    failPending(nullptr, 0, pos_);
  }
  if (inRequest_) {
    resolve(stats_.droppedAtEnd);
  }
  if (streaming_) {
    endStream(model::BodyStream::End::kIncomplete, stats_.streamsAbortedEnd);
    streaming_ = false;
  }
  account(pos_);
  releaseBuffer(pos_);
  mode_ = Mode::kEnded;
  publishBuffered();
}

// ---------------------------------------------------------------------------
// Parsing

void RequestFramer::startParse() {
  mode_ = Mode::kParse;
  pause_ = Pause::kNone;
  rejectReason_ = nullptr;
  inRequest_ = false;
  skipping_ = false;
  headersTooLarge_ = false;
  atBoundary_ = true;
  initParser(parser_, settings(), this);
}

void RequestFramer::feedParse(const char* data, size_t len, uint64_t pos, uint64_t tsNs) {
  chunkBase_ = data;
  chunkLen_ = len;
  chunkPos_ = pos;
  chunkTs_ = tsNs;
  const char* p = data;
  const char* const end = data + len;
  // After a pause llhttp runs again even at the end of the chunk: the message
  // may complete without another byte (a request without a body).
  while (mode_ == Mode::kParse) {
    if (atBoundary_) {
      p = scanMethod(p, end);
      if (p == nullptr) {
        break;
      }
    }
    llhttp_errno_t err = llhttp_execute(&parser_, p, static_cast<size_t>(end - p));
    if (err == HPE_OK) {
      break;
    }
    const char* at = llhttp_get_error_pos(&parser_);
    if (rejectReason_ != nullptr) {
      abandon(*std::exchange(rejectReason_, nullptr));
      break;
    }
    if (err == HPE_INVALID_HEADER_TOKEN && resumeAfterIgnoredName(at)) {
      p = at + 1;
      continue;
    }
    if (rejectReason_ != nullptr) {
      abandon(*std::exchange(rejectReason_, nullptr));  // refused while resuming
      break;
    }
    if (err == HPE_PAUSED && pause_ != Pause::kNone) {
      llhttp_resume(&parser_);
      const Pause why = std::exchange(pause_, Pause::kNone);
      if (why == Pause::kMessage) {
        completeRequest(posOf(at));
      } else {
        afterHeaders(posOf(at));
      }
      p = at;
      continue;
    }
    if (err == HPE_PAUSED_UPGRADE) {
      abandon(stats_.upgrade);
    } else if (err == HPE_PAUSED_H2_UPGRADE) {
      abandon(stats_.http2);
    } else if (std::atomic<uint64_t>* before = classifyBefore(err, at)) {
      abandon(*before);
    } else if (at == end) {
      // llhttp may have failed without reading the byte at `at`; had the chunk
      // gone on, the reason could depend on that byte. Wait for it, so the
      // reason does not depend on where the stream was cut.
      pendingError_ = err;
      pendingPos_ = posOf(at);
      mode_ = Mode::kFailing;
      account(pos_);
      releaseBuffer(pos_);
    } else {
      abandon(classifyError(err, posOf(at)));
    }
  }
  // Keep the chunk's last two bytes: an error at the start of the next chunk is
  // classified by the bytes before it, whatever the cut.
  if (len >= 2) {
    tail_[0] = data[len - 2];
    tail_[1] = data[len - 1];
    tailLen_ = 2;
  } else {
    tail_[0] = tail_[1];
    tail_[1] = data[0];
    tailLen_ = tailEnd_ == pos ? std::min<uint8_t>(tailLen_ + 1, 2) : 1;
  }
  tailEnd_ = pos + len;
  noteLfAfterField();
  finishChunk();
}

// ---------------------------------------------------------------------------
// Byte accounting

void RequestFramer::account(uint64_t pos) {
  if (pos > accounted_) {
    base::bump(stats_.unmirroredBytes, pos - accounted_);
    accounted_ = pos;
  }
}

void RequestFramer::releaseBuffer(uint64_t pos) {
  buf_.clear();
  bufPos_ = pos;
  if (buf_.capacity() > kIdleCapacity) {
    std::string().swap(buf_);
  }
}

void RequestFramer::publishBuffered() {
  const size_t now = buf_.size();
  if (now > publishedBuffered_) {
    base::bump(stats_.bytesBuffered, now - publishedBuffered_);
  } else if (now < publishedBuffered_) {
    base::subtract(stats_.bytesBuffered, publishedBuffered_ - now);
  }
  publishedBuffered_ = now;
}

// ---------------------------------------------------------------------------

RequestFramerFactory::RequestFramerFactory(model::RequestSink& sink, FramerLimits limits)
    : sink_(sink), limits_(limits) {}

std::unique_ptr<flow::StreamConsumer> RequestFramerFactory::create(const model::FlowKey& key,
                                                                   uint32_t ruleId, bool fromStart) {
  return std::make_unique<RequestFramer>(key, ruleId, fromStart, sink_, limits_, stats_);
}

std::unique_ptr<flow::StreamConsumer> RequestFramerFactory::createAt(const model::FlowKey& key, uint32_t ruleId,
                                                                     uint64_t startOffset) {
  return std::make_unique<RequestFramer>(key, ruleId, true, sink_, limits_, stats_, startOffset);
}

}  // namespace shadowtap::http
