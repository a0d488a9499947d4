#include "http/response_framer.h"

#include <cassert>
#include <utility>

#include "base/counters.h"
#include "base/strings.h"

namespace shadowtap::http {
namespace {

ResponseFramer& framerOf(llhttp_t* parser) { return *static_cast<ResponseFramer*>(parser->data); }

void trimValue(std::string& v) {
  size_t end = v.size();
  while (end > 0 && (v[end - 1] == ' ' || v[end - 1] == '\t')) {
    --end;
  }
  size_t begin = 0;
  while (begin < end && (v[begin] == ' ' || v[begin] == '\t')) {
    ++begin;
  }
  if (begin > 0 || end < v.size()) {
    v = v.substr(begin, end - begin);
  }
}

}  // namespace

const char* toString(NoResponse reason) {
  switch (reason) {
    case NoResponse::kStreamEnded:
      return "stream_ended";
    case NoResponse::kGap:
      return "gap";
    case NoResponse::kParseError:
      return "parse_error";
    case NoResponse::kUpgrade:
      return "upgrade";
    case NoResponse::kUnpairable:
      return "unpairable";
  }
  return "unknown";
}

const llhttp_settings_t& ResponseFramer::settings() {
  static const llhttp_settings_t kSettings = [] {
    llhttp_settings_t s;
    llhttp_settings_init(&s);
    s.on_message_begin = &ResponseFramer::onMessageBegin;
    s.on_header_field = &ResponseFramer::onHeaderField;
    s.on_header_value = &ResponseFramer::onHeaderValue;
    s.on_header_value_complete = &ResponseFramer::onHeaderValueComplete;
    s.on_headers_complete = &ResponseFramer::onHeadersComplete;
    s.on_body = &ResponseFramer::onBody;
    s.on_message_complete = &ResponseFramer::onMessageComplete;
    return s;
  }();
  return kSettings;
}

ResponseFramer::ResponseFramer(bool fromStart, ResponseSink& sink, const ResponseLimits& limits,
                               ResponseStats& stats)
    : fromStart_(fromStart), sink_(sink), limits_(limits), stats_(stats) {
  base::bump(stats_.streams);
  llhttp_init(&parser_, HTTP_RESPONSE, &settings());
  parser_.data = this;
  if (!fromStart_) {
    // The first response seen may answer any earlier request: order is unknown.
    giveUp(NoResponse::kUnpairable, &stats_.midstream);
  }
}

ResponseFramer::~ResponseFramer() { onEnd(flow::EndReason::kShutdown); }

size_t ResponseFramer::bufferedBytes() const { return held_.size() + cur_.body.size() + headerBytes_; }

// ---------------------------------------------------------------------------
// Requests

void ResponseFramer::expectResponseTo(std::string_view method, uint64_t exchangeId) {
  base::bump(stats_.expected);
  if (mode_ != Mode::kParse) {
    base::bump(stats_.unanswered);
    sink_.onNoResponse(exchangeId, endReason_);
    return;
  }
  if (expectations_.size() >= limits_.maxAwaiting) {
    base::bump(stats_.awaiting);  // resolved with the others by giveUp()
    expectations_.push_back({exchangeId, method == "HEAD"});
    giveUp(NoResponse::kUnpairable, &stats_.tooManyAwaiting);
    return;
  }
  base::bump(stats_.awaiting);
  expectations_.push_back({exchangeId, method == "HEAD"});
  if (!feeding_ && !held_.empty()) {
    drainHeld();
  }
}

void ResponseFramer::breakPairing() {
  if (mode_ == Mode::kParse) {
    giveUp(NoResponse::kUnpairable, nullptr);
  }
}

// ---------------------------------------------------------------------------
// StreamConsumer

void ResponseFramer::onData(std::span<const uint8_t> bytes, uint64_t tsNs) {
  if (bytes.empty()) {
    return;
  }
  base::bump(stats_.bytesIn, bytes.size());
  const char* data = reinterpret_cast<const char*>(bytes.data());
  if (mode_ != Mode::kParse) {
    base::bump(stats_.bytesUnframed, bytes.size());
    return;
  }
  chunkTs_ = tsNs;
  if (!held_.empty() || expectations_.empty()) {
    hold(data, bytes.size());
  } else {
    feed(data, bytes.size());
  }
  publishHeld();
}

void ResponseFramer::onGap(uint64_t /*bytes*/) {
  base::bump(stats_.gaps);
  if (mode_ == Mode::kParse) {
    giveUp(NoResponse::kGap, nullptr);
  }
}

void ResponseFramer::onEnd(flow::EndReason reason) {
  if (mode_ == Mode::kEnded) {
    return;
  }
  if (mode_ == Mode::kParse && reason == flow::EndReason::kFin && inMessage_ && held_.empty() &&
      !expectations_.empty()) {
    // A body delimited by the end of the connection is complete now.
    feeding_ = true;
    llhttp_finish(&parser_);
    feeding_ = false;
  }
  if (mode_ == Mode::kParse) {
    giveUp(NoResponse::kStreamEnded, nullptr);
  }
  mode_ = Mode::kEnded;
}

// ---------------------------------------------------------------------------

void ResponseFramer::hold(const char* data, size_t len) {
  if (held_.empty()) {
    heldTs_ = chunkTs_;
  }
  if (held_.size() + len > limits_.maxHeldBytes) {
    // Responses nobody asked for (their requests were not mirrored, or were
    // never seen): the order is lost.
    base::bump(stats_.bytesUnframed, len);
    giveUp(NoResponse::kUnpairable, &stats_.unexpected);
    return;
  }
  held_.append(data, len);
}

void ResponseFramer::drainHeld() {
  std::string bytes = std::move(held_);
  held_.clear();
  const uint64_t ts = chunkTs_;
  chunkTs_ = heldTs_;
  feed(bytes.data(), bytes.size());
  chunkTs_ = ts;
  publishHeld();
}

void ResponseFramer::feed(const char* data, size_t len) {
  assert(!expectations_.empty() && held_.empty());
  feeding_ = true;
  const char* p = data;
  const char* const end = data + len;
  while (mode_ == Mode::kParse && p < end) {
    if (expectations_.empty()) {
      // The next response answers a request we have not been told about yet.
      feeding_ = false;
      hold(p, static_cast<size_t>(end - p));
      return;
    }
    const llhttp_errno_t err = llhttp_execute(&parser_, p, static_cast<size_t>(end - p));
    if (err == HPE_OK) {
      base::bump(stats_.bytesFramed, static_cast<uint64_t>(end - p));
      p = end;
      break;
    }
    const char* at = llhttp_get_error_pos(&parser_);
    if (at == nullptr || at < p || at > end) {
      at = end;
    }
    base::bump(stats_.bytesFramed, static_cast<uint64_t>(at - p));
    p = at;
    if (upgraded_) {
      giveUp(NoResponse::kUpgrade, &stats_.upgrades);
    } else if (err == HPE_PAUSED) {
      llhttp_resume(&parser_);
    } else if (err == HPE_PAUSED_UPGRADE) {
      giveUp(NoResponse::kUpgrade, &stats_.upgrades);
    } else {
      giveUp(NoResponse::kParseError, &stats_.parseErrors);
    }
  }
  feeding_ = false;
  if (p < end) {
    base::bump(stats_.bytesUnframed, static_cast<uint64_t>(end - p));
  }
}

void ResponseFramer::giveUp(NoResponse reason, std::atomic<uint64_t>* counter) {
  if (counter != nullptr) {
    base::bump(*counter);
  }
  if (inMessage_) {
    base::bump(stats_.incomplete);
  }
  mode_ = Mode::kGivenUp;
  endReason_ = reason;
  base::bump(stats_.bytesUnframed, held_.size());
  std::string().swap(held_);
  resetMessage();
  publishHeld();
  failWaiting(reason);
}

void ResponseFramer::failWaiting(NoResponse reason) {
  // The sink may register more requests while being told; those are answered
  // by expectResponseTo() itself since the mode is no longer kParse.
  std::deque<Expectation> waiting;
  waiting.swap(expectations_);
  for (const Expectation& e : waiting) {
    base::subtract(stats_.awaiting);
    base::bump(stats_.unanswered);
    sink_.onNoResponse(e.id, reason);
  }
}

void ResponseFramer::resetMessage() {
  inMessage_ = false;
  headersDone_ = false;
  fieldOpen_ = false;
  headerBytes_ = 0;
  cur_ = model::Response();
}

void ResponseFramer::publishHeld() {
  const size_t now = held_.size();
  if (now > publishedHeld_) {
    base::bump(stats_.bytesHeld, now - publishedHeld_);
  } else if (now < publishedHeld_) {
    base::subtract(stats_.bytesHeld, publishedHeld_ - now);
  }
  publishedHeld_ = now;
}

void ResponseFramer::addHeaderBytes(size_t n) {
  headerBytes_ += n;
  if (headerBytes_ > limits_.maxHeaderBytes && !cur_.headersTruncated) {
    cur_.headersTruncated = true;
    base::bump(stats_.headersTruncated);
    if (fieldOpen_ && !cur_.headers.empty()) {
      cur_.headers.pop_back();  // never keep half a header
    }
    fieldOpen_ = false;
  }
}

// ---------------------------------------------------------------------------
// llhttp callbacks

int ResponseFramer::onMessageBegin(llhttp_t* parser) {
  ResponseFramer& f = framerOf(parser);
  f.resetMessage();
  f.inMessage_ = true;
  f.cur_.tsNs = f.chunkTs_;
  f.cur_.bodyHash = base::kFnv1aSeed;
  return 0;
}

int ResponseFramer::onHeaderField(llhttp_t* parser, const char* at, size_t length) {
  ResponseFramer& f = framerOf(parser);
  if (f.headersDone_ || f.cur_.headersTruncated) {
    return 0;
  }
  if (!f.fieldOpen_) {
    f.cur_.headers.emplace_back();
    f.fieldOpen_ = true;
  }
  f.addHeaderBytes(length);
  if (f.fieldOpen_) {
    f.cur_.headers.back().name.append(at, length);
  }
  return 0;
}

int ResponseFramer::onHeaderValue(llhttp_t* parser, const char* at, size_t length) {
  ResponseFramer& f = framerOf(parser);
  if (f.headersDone_ || f.cur_.headersTruncated || !f.fieldOpen_) {
    return 0;
  }
  f.addHeaderBytes(length);
  if (f.fieldOpen_) {
    f.cur_.headers.back().value.append(at, length);
  }
  return 0;
}

int ResponseFramer::onHeaderValueComplete(llhttp_t* parser) {
  ResponseFramer& f = framerOf(parser);
  if (f.fieldOpen_ && !f.headersDone_) {
    trimValue(f.cur_.headers.back().value);
    f.fieldOpen_ = false;
  }
  return 0;
}

int ResponseFramer::onHeadersComplete(llhttp_t* parser) {
  ResponseFramer& f = framerOf(parser);
  f.headersDone_ = true;
  f.fieldOpen_ = false;
  const int status = parser->status_code;
  assert(!f.expectations_.empty());
  // RFC 9112 6.3: no body for HEAD, 1xx, 204 and 304 whatever the headers say
  // (a HEAD response carries the GET's Content-Length). 1 tells llhttp so.
  const bool head = !f.expectations_.empty() && f.expectations_.front().head;
  if (head || status < 200 || status == 204 || status == 304) {
    return 1;
  }
  return 0;
}

int ResponseFramer::onBody(llhttp_t* parser, const char* at, size_t length) {
  ResponseFramer& f = framerOf(parser);
  model::Response& r = f.cur_;
  const std::string_view piece(at, length);
  r.bodyHash = base::fnv1a64(piece, r.bodyHash);
  r.bodyLength += length;
  if (r.body.size() < f.limits_.maxBodyBytes) {
    const size_t take = std::min(length, f.limits_.maxBodyBytes - r.body.size());
    r.body.append(at, take);
  }
  if (r.bodyLength > r.body.size() && !r.bodyTruncated) {
    r.bodyTruncated = true;
    base::bump(f.stats_.bodiesTruncated);
  }
  return 0;
}

int ResponseFramer::onMessageComplete(llhttp_t* parser) {
  ResponseFramer& f = framerOf(parser);
  const int status = parser->status_code;
  if (status >= 100 && status < 200 && status != 101) {
    // Interim (100 Continue, 103 Early Hints): the final response follows.
    base::bump(f.stats_.interim);
    f.resetMessage();
    return 0;
  }
  assert(!f.expectations_.empty());
  if (f.expectations_.empty()) {
    return -1;  // unreachable: feed() runs llhttp only while a request waits
  }
  const Expectation e = f.expectations_.front();
  f.expectations_.pop_front();
  base::subtract(f.stats_.awaiting);
  base::bump(f.stats_.responses);
  model::Response r = std::move(f.cur_);
  r.status = status;
  f.resetMessage();
  if (status == 101) {
    f.upgraded_ = true;
  }
  f.sink_.onResponse(e.id, std::move(r));
  // Stop right here when what follows is not ours to frame (another protocol)
  // or answers a request not registered yet (held until it is).
  if (f.upgraded_ || f.expectations_.empty()) {
    return HPE_PAUSED;
  }
  return 0;
}

}  // namespace shadowtap::http
