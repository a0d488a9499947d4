#include "http/request_framer.h"

#include <algorithm>
#include <cassert>
#include <cstring>
#include <utility>

#include "http/request_line.h"

namespace shadowtap::http {
namespace {

void add(std::atomic<uint64_t>& counter, uint64_t n = 1) {
  counter.fetch_add(n, std::memory_order_relaxed);
}

void sub(std::atomic<uint64_t>& counter, uint64_t n = 1) {
  counter.fetch_sub(n, std::memory_order_relaxed);
}

// An idle framer keeps at most this much buffer capacity: thousands of flows
// must not each sit on the capacity of the largest request they ever carried.
constexpr size_t kIdleCapacity = 16 << 10;

RequestFramer& framerOf(llhttp_t* parser) { return *static_cast<RequestFramer*>(parser->data); }

}  // namespace

const llhttp_settings_t& RequestFramer::settings() {
  static const llhttp_settings_t kSettings = [] {
    llhttp_settings_t s;
    llhttp_settings_init(&s);
    s.on_message_begin = &RequestFramer::onMessageBegin;
    s.on_method = &RequestFramer::onMethod;
    s.on_header_field = &RequestFramer::onHeaderField;
    s.on_header_field_complete = &RequestFramer::onHeaderFieldComplete;
    s.on_header_value = &RequestFramer::onHeaderValue;
    s.on_header_value_complete = &RequestFramer::onHeaderValueComplete;
    s.on_headers_complete = &RequestFramer::onHeadersComplete;
    s.on_message_complete = &RequestFramer::onMessageComplete;
    return s;
  }();
  return kSettings;
}

RequestFramer::RequestFramer(const flow::FlowKey& key, uint32_t ruleId, bool fromStart,
                             RequestSink& sink, const FramerLimits& limits, HttpStats& stats)
    : key_(key),
      ruleId_(ruleId),
      fromStart_(fromStart),
      sink_(sink),
      limits_(limits),
      resyncLineCap_(std::max<size_t>(1, std::min(limits.maxResyncScanBytes, limits.maxHeaderBytes))),
      stats_(stats) {
  add(stats_.streams);
  llhttp_init(&parser_, HTTP_REQUEST, &settings());
  parser_.data = this;
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
  add(stats_.bytesIn, len);

  switch (mode_) {
    case Mode::kParse:
      // A TLS handshake record cannot be an HTTP/1 method byte; say why we stop
      // instead of reporting it as a parse error.
      if (pos == 0 && fromStart_ && static_cast<uint8_t>(data[0]) == 0x16) {
        abandon(stats_.tls);
        break;
      }
      feedParse(data, len, pos, tsNs);
      break;
    case Mode::kResync:
      feedResync(data, len, pos, tsNs);
      break;
    case Mode::kAbandoned:
    case Mode::kEnded:
      account(pos_);
      break;
  }
  publishBuffered();
}

void RequestFramer::onGap(uint64_t /*bytes*/) {
  add(stats_.gaps);
  if (mode_ == Mode::kAbandoned || mode_ == Mode::kEnded) {
    return;
  }
  if (inRequest_) {
    resolve(stats_.droppedByGap);
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
  if (inRequest_) {
    resolve(stats_.droppedAtEnd);
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
  inRequest_ = false;
  skipping_ = false;
  llhttp_init(&parser_, HTTP_REQUEST, &settings());
  parser_.data = this;
}

void RequestFramer::feedParse(const char* data, size_t len, uint64_t pos, uint64_t tsNs) {
  chunkBase_ = data;
  chunkLen_ = len;
  chunkPos_ = pos;
  chunkTs_ = tsNs;
  const char* p = data;
  const char* const end = data + len;
  while (p < end && mode_ == Mode::kParse) {
    const llhttp_errno_t err = llhttp_execute(&parser_, p, static_cast<size_t>(end - p));
    if (err == HPE_OK) {
      break;
    }
    const char* at = llhttp_get_error_pos(&parser_);
    if (err == HPE_PAUSED && pause_ != Pause::kNone) {
      llhttp_resume(&parser_);
      const Pause why = std::exchange(pause_, Pause::kNone);
      if (why == Pause::kMessage) {
        completeRequest(posOf(at));
      } else if (posOf(at) - reqStart_ > limits_.maxHeaderBytes) {
        skipping_ = true;
      } else {
        afterHeaders();
      }
      p = at;
      continue;
    }
    if (err == HPE_PAUSED_UPGRADE) {
      abandon(stats_.upgrade);
    } else if (err == HPE_PAUSED_H2_UPGRADE) {
      abandon(stats_.http2);
    } else {
      abandon(stats_.parseErrors);
    }
  }
  finishChunk();
}

// Keeps the request in progress for the next chunk, unless it is known to be
// too large by now, in which case it is skipped without buffering.
void RequestFramer::finishChunk() {
  if (mode_ != Mode::kParse) {
    return;
  }
  const uint64_t chunkEnd = chunkPos_ + chunkLen_;
  if (inRequest_ && !skipping_) {
    const uint64_t held = chunkEnd - reqStart_;
    if ((!headersDone_ && held > limits_.maxHeaderBytes) || held > limits_.maxRequestBytes) {
      skipping_ = true;
    }
  }
  if (!inRequest_ || skipping_) {
    account(chunkEnd);
    releaseBuffer(chunkEnd);
    return;
  }
  assert(accounted_ == reqStart_);
  if (accounted_ >= chunkPos_) {
    buf_.assign(chunkBase_ + (accounted_ - chunkPos_), chunkEnd - accounted_);
  } else {
    assert(bufPos_ == accounted_ && bufPos_ + buf_.size() == chunkPos_);
    buf_.append(chunkBase_, chunkLen_);
  }
  bufPos_ = accounted_;
}

void RequestFramer::afterHeaders() {
  // A Content-Length body over the limit is skipped from the start; a chunked
  // one is caught by finishChunk()/completeRequest() as it grows.
  if ((parser_.flags & F_CONTENT_LENGTH) != 0 && parser_.content_length > limits_.maxRequestBytes) {
    skipping_ = true;
  }
}

void RequestFramer::completeRequest(uint64_t end) {
  const bool connect = parser_.method == HTTP_CONNECT;
  const bool upgrade = parser_.upgrade != 0;
  if (connect) {
    // A tunnel, not a request to a service: nothing to mirror.
    resolve(stats_.droppedByAbandon);
    account(end);
  } else if (skipping_ || end - reqStart_ > limits_.maxRequestBytes) {
    resolve(stats_.tooLarge);
    account(end);
  } else if (hostCount_ == 0) {
    resolve(stats_.noHost);
    account(end);
  } else if (hostCount_ > 1) {
    resolve(stats_.multipleHost);
    account(end);
  } else {
    emit(end);
  }
  skipping_ = false;
  if (upgrade || connect) {
    // What follows is another protocol (WebSocket, h2c, a tunnel).
    abandon(stats_.upgrade);
  }
}

void RequestFramer::emit(uint64_t end) {
  assert(accounted_ == reqStart_ && end >= chunkPos_);
  const uint64_t size = end - reqStart_;
  Request req;
  if (reqStart_ >= chunkPos_) {
    req.bytes.assign(chunkBase_ + (reqStart_ - chunkPos_), size);
  } else {
    assert(reqStart_ >= bufPos_ && bufPos_ + buf_.size() == chunkPos_);
    req.bytes.reserve(size);
    req.bytes.append(buf_, reqStart_ - bufPos_);
    req.bytes.append(chunkBase_, end - chunkPos_);
  }

  // llhttp leaves trailing whitespace in the value; a folded value spans lines.
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
  if (host.empty() || host.find_first_of("\r\n") != std::string_view::npos) {
    resolve(stats_.invalidHost);
    account(end);
    return;
  }

  req.flow = key_;
  req.ruleId = ruleId_;
  req.tsNs = reqTs_;
  req.hostOffset = hostBegin;
  req.hostLength = hostEnd - hostBegin;
  req.method = llhttp_method_name(static_cast<llhttp_method_t>(parser_.method));
  resolve(stats_.requestsParsed);
  add(stats_.bytesParsed, size);
  accounted_ = end;
  sink_.onRequest(std::move(req));
}

void RequestFramer::resolve(std::atomic<uint64_t>& outcome) {
  assert(inRequest_);
  inRequest_ = false;
  add(outcome);
  sub(stats_.requestsInProgress);
}

void RequestFramer::abandon(std::atomic<uint64_t>& reason) {
  if (inRequest_) {
    resolve(stats_.droppedByAbandon);
  }
  add(reason);
  add(stats_.connectionsAbandoned);
  mode_ = Mode::kAbandoned;
  skipping_ = false;
  account(pos_);
  releaseBuffer(pos_);
}

// ---------------------------------------------------------------------------
// llhttp callbacks (return 0 to go on, HPE_PAUSED to stop llhttp_execute here)

int RequestFramer::onMessageBegin(llhttp_t* parser) {
  RequestFramer& f = framerOf(parser);
  f.inRequest_ = true;
  f.methodSeen_ = false;
  f.headersDone_ = false;
  f.skipping_ = false;
  f.fieldIsHost_ = true;
  f.fieldLen_ = 0;
  f.valueIsHost_ = false;
  f.hostValueSeen_ = false;
  f.hostCount_ = 0;
  f.reqStart_ = f.posOf(f.chunkBase_);  // corrected by the first method byte
  f.reqTs_ = f.chunkTs_;
  add(f.stats_.requestsStarted);
  add(f.stats_.requestsInProgress);
  return 0;
}

// The first method byte is the request's first byte (llhttp has skipped any
// CRLF between pipelined requests by then).
int RequestFramer::onMethod(llhttp_t* parser, const char* at, size_t /*length*/) {
  RequestFramer& f = framerOf(parser);
  if (!f.methodSeen_) {
    f.methodSeen_ = true;
    f.reqStart_ = f.posOf(at);
    f.account(f.reqStart_);
  }
  return 0;
}

// Header names may arrive in pieces; all we need is whether it is "Host".
int RequestFramer::onHeaderField(llhttp_t* parser, const char* at, size_t length) {
  RequestFramer& f = framerOf(parser);
  if (f.fieldIsHost_) {
    static constexpr char kHost[] = "host";
    if (f.fieldLen_ + length > 4) {
      f.fieldIsHost_ = false;
    } else {
      for (size_t i = 0; i < length; ++i) {
        if ((at[i] | 0x20) != kHost[f.fieldLen_ + i]) {
          f.fieldIsHost_ = false;
          break;
        }
      }
      f.fieldLen_ += static_cast<uint32_t>(length);
    }
  }
  return 0;
}

int RequestFramer::onHeaderFieldComplete(llhttp_t* parser) {
  RequestFramer& f = framerOf(parser);
  // Trailers (after the headers) never count as Host.
  f.valueIsHost_ = !f.headersDone_ && f.fieldIsHost_ && f.fieldLen_ == 4;
  f.fieldIsHost_ = true;
  f.fieldLen_ = 0;
  return 0;
}

int RequestFramer::onHeaderValue(llhttp_t* parser, const char* at, size_t length) {
  RequestFramer& f = framerOf(parser);
  if (f.valueIsHost_) {
    const uint64_t pos = f.posOf(at);
    if (!f.hostValueSeen_) {
      f.hostValueSeen_ = true;
      f.hostStart_ = pos;
    }
    f.hostEnd_ = pos + length;
  }
  return 0;
}

int RequestFramer::onHeaderValueComplete(llhttp_t* parser) {
  RequestFramer& f = framerOf(parser);
  if (f.valueIsHost_) {
    ++f.hostCount_;
    f.valueIsHost_ = false;
  }
  return 0;
}

int RequestFramer::onHeadersComplete(llhttp_t* parser) {
  RequestFramer& f = framerOf(parser);
  f.headersDone_ = true;
  if (f.skipping_) {
    return 0;
  }
  // The exact end of the header section is only known where llhttp stops; ask
  // for it only when the headers could be over the limit.
  if (f.chunkPos_ + f.chunkLen_ - f.reqStart_ > f.limits_.maxHeaderBytes) {
    f.pause_ = Pause::kHeaders;
    return HPE_PAUSED;
  }
  f.afterHeaders();
  return 0;
}

int RequestFramer::onMessageComplete(llhttp_t* parser) {
  // Pause so that llhttp_get_error_pos() tells where the message ends.
  framerOf(parser).pause_ = Pause::kMessage;
  return HPE_PAUSED;
}

// ---------------------------------------------------------------------------
// Resynchronisation

void RequestFramer::enterResync() {
  mode_ = Mode::kResync;
  atLineStart_ = true;
  add(stats_.resyncs);
}

void RequestFramer::feedResync(const char* data, size_t len, uint64_t pos, uint64_t tsNs) {
  size_t off = 0;
  if (!buf_.empty()) {
    // A candidate request line is pending (it has no LF yet); complete it.
    const void* lf = std::memchr(data, '\n', len);
    const size_t take = lf != nullptr ? static_cast<size_t>(static_cast<const char*>(lf) - data) + 1 : len;
    if (buf_.size() + take > resyncLineCap_) {
      // Too long to be a request line; continue scanning mid-line.
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
        } else if (mode_ != Mode::kParse) {
          account(pos_);
        }
        return;
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

// ---------------------------------------------------------------------------
// Byte accounting

void RequestFramer::account(uint64_t pos) {
  if (pos > accounted_) {
    add(stats_.unmirroredBytes, pos - accounted_);
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
    add(stats_.bytesBuffered, now - publishedBuffered_);
  } else if (now < publishedBuffered_) {
    sub(stats_.bytesBuffered, publishedBuffered_ - now);
  }
  publishedBuffered_ = now;
}

// ---------------------------------------------------------------------------

RequestFramerFactory::RequestFramerFactory(RequestSink& sink, FramerLimits limits)
    : sink_(sink), limits_(limits) {}

std::unique_ptr<flow::StreamConsumer> RequestFramerFactory::create(const flow::FlowKey& key,
                                                                   uint32_t ruleId, bool fromStart) {
  return std::make_unique<RequestFramer>(key, ruleId, fromStart, sink_, limits_, stats_);
}

}  // namespace shadowtap::http
