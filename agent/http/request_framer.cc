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
#include "http/request_line.h"

namespace shadowtap::http {
namespace {

// An idle framer keeps at most this much buffer capacity: thousands of flows
// must not each sit on the capacity of the largest request they ever carried.
constexpr size_t kIdleCapacity = 16 << 10;
// How far ahead of the bytes held a Content-Length may make us reserve.
constexpr uint64_t kReserveAhead = 64 << 10;

RequestFramer& framerOf(llhttp_t* parser) { return *static_cast<RequestFramer*>(parser->data); }

// Header names the framer looks for (bits of fieldMatch_).
constexpr uint8_t kFieldHost = 1;
constexpr uint8_t kFieldTransferEncoding = 2;
constexpr std::string_view kFieldNames[] = {"host", "transfer-encoding"};

// llhttp is given this method in place of one it does not know: every request
// method is framed the same way (Content-Length or chunked, else no body), and
// llhttp only treats CONNECT and PRI apart.
constexpr std::string_view kStandInMethod = "POST";

void initParser(llhttp_t& parser, const llhttp_settings_t& settings, void* data) {
  llhttp_init(&parser, HTTP_REQUEST, &settings);
  parser.data = data;
  // Lets a header line end in LF alone (as nginx and most servers do). It also
  // lets through what the framer then refuses itself: any control byte in a
  // value, a SP before a colon (refused as a SP in the name) and a SP before
  // the first header line.
  llhttp_set_lenient_headers(&parser, 1);
}

bool isControl(uint8_t c) { return (c < 0x20 && c != '\t') || c == 0x7f; }

// A control byte other than HT in `s`; eight bytes at a time, as header values
// are most of a request's head.
bool hasControl(const char* s, size_t n) {
  constexpr uint64_t kOnes = 0x0101010101010101ULL;
  constexpr uint64_t kHighs = 0x8080808080808080ULL;
  size_t i = 0;
  for (; i + 8 <= n; i += 8) {
    uint64_t w;
    std::memcpy(&w, s + i, 8);
    // A byte below 0x20, or equal to 0x7f (then 0 after the xor): look closer.
    const uint64_t below = (w - kOnes * 0x20) & ~w & kHighs;
    const uint64_t del = w ^ (kOnes * 0x7f);
    if ((below | ((del - kOnes) & ~del & kHighs)) != 0) {
      for (size_t k = i; k < i + 8; ++k) {
        if (isControl(static_cast<uint8_t>(s[k]))) {
          return true;
        }
      }
    }
  }
  for (; i < n; ++i) {
    if (isControl(static_cast<uint8_t>(s[i]))) {
      return true;
    }
  }
  return false;
}

// A CR not followed by LF (or at the very end).
bool hasBareCr(std::string_view s) {
  for (size_t i = s.find('\r'); i != std::string_view::npos; i = s.find('\r', i + 1)) {
    if (i + 1 == s.size() || s[i + 1] != '\n') {
      return true;
    }
  }
  return false;
}

// A LF not preceded by CR.
bool hasBareLf(std::string_view s) {
  for (size_t i = s.find('\n'); i != std::string_view::npos; i = s.find('\n', i + 1)) {
    if (i == 0 || s[i - 1] != '\r') {
      return true;
    }
  }
  return false;
}

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
  if (mode_ == Mode::kFailing) {
    failPending(nullptr, 0, pos_);  // what follows the gap is not the next byte
  }
  if (mode_ == Mode::kAbandoned || mode_ == Mode::kClosed || mode_ == Mode::kEnded) {
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
  if (mode_ == Mode::kFailing) {
    failPending(nullptr, 0, pos_);
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

// At a request boundary the framer reads the method itself: llhttp 8.1 refuses
// any method outside its table (QUERY, extension methods), which servers serve.
// Skips the empty lines llhttp would skip, begins the request at its first
// byte, and once the SP after the method is here, gives llhttp the method (or,
// for one it does not know, kStandInMethod) from a string of its own; from the
// SP on llhttp reads the stream again. The bytes mirrored stay the client's.
// Returns where llhttp goes on, or nullptr when the chunk ended first (the
// method so far is held with the request) or the request line was refused.
const char* RequestFramer::scanMethod(const char* p, const char* end) {
  if (!inRequest_) {
    while (p < end && (*p == '\r' || *p == '\n')) {
      ++p;
    }
    if (p == end) {
      return nullptr;
    }
    beginRequest(posOf(p));
  }
  for (; p < end && *p != ' '; ++p) {
    // As finishChunk() decides when a cut falls here: a line already over the
    // limit is too long, whatever its next byte.
    if (posOf(p) - reqStart_ >= limits_.maxRequestLineBytes) {
      abandon(stats_.requestLineTooLong);
      return nullptr;
    }
    if (!isMethodChar(*p)) {
      abandon(stats_.invalidRequestLine);
      return nullptr;
    }
    if (methodLen_ < sizeof(method_)) {
      method_[methodLen_] = *p;
    }
    ++methodLen_;
  }
  if (p == end) {
    return nullptr;
  }
  if (methodLen_ == 0) {
    abandon(stats_.invalidRequestLine);
    return nullptr;
  }
  atBoundary_ = false;
  methodSeen_ = true;
  const char* known =
      methodLen_ <= sizeof(method_) ? knownMethodName(std::string_view(method_, methodLen_)) : nullptr;
  extensionMethod_ = known == nullptr;
  const std::string_view given = known != nullptr ? std::string_view(known) : kStandInMethod;
  // A known method, then the SP from the stream: llhttp cannot fail here.
  [[maybe_unused]] const llhttp_errno_t err = llhttp_execute(&parser_, given.data(), given.size());
  assert(err == HPE_OK);
  return p;
}

void RequestFramer::beginRequest(uint64_t pos) {
  inRequest_ = true;
  methodSeen_ = false;
  extensionMethod_ = false;
  methodLen_ = 0;
  targetSeen_ = false;
  versionSeen_ = false;
  lineDone_ = false;
  simpleRequest_ = false;
  headersDone_ = false;
  skipping_ = false;
  headersTooLarge_ = false;
  fieldMatch_ = kFieldHost | kFieldTransferEncoding;
  firstField_ = true;
  fieldLen_ = 0;
  valueIsHost_ = false;
  valueIsTe_ = false;
  valueSpanSeen_ = false;
  awaitingValue_ = false;
  lfAfterField_ = UINT64_MAX;
  crAfterField_ = UINT64_MAX;
  htAfterField_ = UINT64_MAX;
  hostValueSeen_ = false;
  hostCount_ = 0;
  teCount_ = 0;
  teChunkedOnly_ = true;
  ignoredName_ = false;
  chunkedBodyBytes_ = 0;
  reqStart_ = pos;
  reqTs_ = chunkTs_;
  account(pos);  // the empty lines before it
  base::bump(stats_.requestsStarted);
  base::bump(stats_.requestsInProgress);
}

// The bytes between a colon and the value may be released before the value
// arrives; what the obs-fold and bare CR checks need from them is kept here.
void RequestFramer::noteLfAfterField() {
  if (mode_ != Mode::kParse || !inRequest_ || !awaitingValue_) {
    return;
  }
  noteLineEndsAfterField(std::max(fieldEnd_, chunkPos_), chunkPos_ + chunkLen_);
}

// Remembers the first LF, CR and HT in [from, to), a range of the chunk (the
// few bytes between a colon and its value, as a rule).
void RequestFramer::noteLineEndsAfterField(uint64_t from, uint64_t to) {
  for (uint64_t q = from; q < to; ++q) {
    const char c = chunkBase_[q - chunkPos_];
    uint64_t* first = c == '\n' ? &lfAfterField_ : c == '\r' ? &crAfterField_ : c == '\t' ? &htAfterField_ : nullptr;
    if (first != nullptr && *first == UINT64_MAX) {
      *first = q;
    }
  }
}

// llhttp takes a line end between the colon and the value for a fold (RFC 9112
// 5.2: a server must reject it or replace it by SP, so the mirror could see
// another value), and outside strict mode it takes CR followed by any byte
// there for a line end, which a server that ends the line at the CR does not.
bool RequestFramer::checkBeforeValue(uint64_t last) {
  // The usual ": value": a fold needs at least ":\n v", and after a bare CR
  // llhttp skips a byte (":\rX v"), so nothing to look at.
  if (last < fieldEnd_ + 3 && !valueIsTe_) {
    return true;
  }
  const uint64_t from = std::max(fieldEnd_, chunkPos_);
  noteLineEndsAfterField(from, std::max(from, last));
  const uint64_t cr = crAfterField_;
  const uint64_t lf = lfAfterField_;
  if (cr < last && cr < lf) {
    reject(lf == cr + 1 ? stats_.obsFold : stats_.bareCr);
    return false;
  }
  if (lf < last) {
    reject(stats_.obsFold);
    return false;
  }
  // nginx takes only SP before a value: "Transfer-Encoding:<HT>chunked" is an
  // unknown coding to it (501), chunked to others.
  if (valueIsTe_ && htAfterField_ < last) {
    reject(stats_.transferCoding);
    return false;
  }
  return true;
}

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
  if (inRequest_ && !skipping_) {
    const uint64_t held = chunkEnd - reqStart_;
    if (!headersDone_ && held > limits_.maxHeaderBytes) {
      skipping_ = true;
      headersTooLarge_ = true;
    } else if (held > limits_.maxRequestBytes) {
      skipping_ = true;
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

namespace {

// A byte nginx takes in no header name, and for which it ignores the header
// line (ignore_invalid_headers, its default) instead of refusing the request:
// a visible byte that is not a token character, or any byte from 0x80. llhttp
// refuses it. (Control bytes and SP there nginx refuses too.)
bool isIgnoredNameByte(uint8_t c) {
  return c >= 0x80 || (c > 0x20 && c < 0x7f && std::string_view("\"(),/;<=>?@[\\]{}").find(char(c)) !=
                                                    std::string_view::npos);
}

int countMessages(llhttp_t* parser) {
  ++*static_cast<int*>(parser->data);
  return 0;
}

// llhttp fails on such a byte in the state that reads the rest of a header
// name, leaving nothing else changed but its error fields; the framer puts it
// back in that state and gives it '!' instead. The state's value is llhttp's
// own: read from a parser left there, and checked on a request before it is
// relied on (otherwise such names stay refused).
const void* headerNameState() {
  static const void* const kState = []() -> const void* {
    static llhttp_settings_t settings;
    llhttp_settings_init(&settings);
    settings.on_message_complete = &countMessages;
    int messages = 0;
    llhttp_t probe;
    llhttp_init(&probe, HTTP_REQUEST, &settings);
    llhttp_set_lenient_headers(&probe, 1);
    probe.data = &messages;
    constexpr std::string_view kLeft = "GET / HTTP/1.1\r\nXx";
    if (llhttp_execute(&probe, kLeft.data(), kLeft.size()) != HPE_OK) {
      return nullptr;
    }
    const void* state = probe._current;
    llhttp_init(&probe, HTTP_REQUEST, &settings);
    llhttp_set_lenient_headers(&probe, 1);
    probe.data = &messages;
    constexpr std::string_view kBad = "GET / HTTP/1.1\r\nX@";
    if (llhttp_execute(&probe, kBad.data(), kBad.size()) != HPE_INVALID_HEADER_TOKEN ||
        llhttp_get_error_pos(&probe) != kBad.data() + kBad.size() - 1) {
      return nullptr;
    }
    probe.error = HPE_OK;
    probe._current = const_cast<void*>(state);
    constexpr std::string_view kRest = "!: 1\r\nContent-Length: 2\r\n\r\nhiGET / HTTP/1.1\r\n\r\n";
    if (llhttp_execute(&probe, kRest.data(), kRest.size()) != HPE_OK || messages != 2) {
      return nullptr;
    }
    return state;
  }();
  return kState;
}

}  // namespace

// llhttp refused the byte at `at` in a header name: when nginx ignores the
// line for it instead (isIgnoredNameByte), llhttp reads on as if it were '!',
// an unknown field as nginx ignores one; the bytes mirrored stay the client's.
bool RequestFramer::resumeAfterIgnoredName(const char* at) {
  const char* reason = llhttp_get_error_reason(&parser_);
  const void* state = headerNameState();
  if (state == nullptr || headersDone_ || !lineDone_ || at == nullptr || at < chunkBase_ ||
      at >= chunkBase_ + chunkLen_ || !isIgnoredNameByte(static_cast<uint8_t>(*at)) || reason == nullptr ||
      std::strcmp(reason, "Invalid header token") != 0 || parser_._span_pos0 == nullptr) {
    return false;
  }
  // The name so far, as llhttp would have handed it over at the end of a chunk.
  using SpanCallback = int (*)(llhttp_t*, const char*, const char*);
  const auto callback = reinterpret_cast<SpanCallback>(parser_._span_cb0);
  callback(&parser_, static_cast<const char*>(parser_._span_pos0), at);
  if (rejectReason_ != nullptr) {
    return false;
  }
  parser_.error = HPE_OK;
  parser_.reason = nullptr;
  parser_._current = const_cast<void*>(state);
  ignoredName_ = true;
  static constexpr char kStandIn = '!';
  synthetic_ = &kStandIn;
  syntheticPos_ = posOf(at);
  const llhttp_errno_t err = llhttp_execute(&parser_, &kStandIn, 1);  // the name span goes on
  synthetic_ = nullptr;
  return err == HPE_OK;
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
    // A Content-Length body over the limit is skipped from the start; a chunked
    // one is caught by finishChunk()/completeRequest() as it grows.
    skipping_ = true;
  }
  return true;
}

void RequestFramer::completeRequest(uint64_t end) {
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

bool RequestFramer::emit(uint64_t end) {
  assert(accounted_ == reqStart_ && end >= chunkPos_);
  const uint64_t size = end - reqStart_;
  model::Request req;
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
  if (chunked) {
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
  req.upgrade = parser_.upgrade != 0;

  req.flow = key_;
  req.ruleId = ruleId_;
  req.tsNs = reqTs_;
  req.hostOffset = hostBegin;
  req.hostLength = hostEnd - hostBegin;
  req.method.assign(req.bytes, 0, methodLen_);
  if (hasBareLf(std::string_view(req.bytes).substr(0, bodyOffset))) {
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
  resolve(stats_.requestsParsed);
  base::bump(stats_.bytesParsed, size);
  accounted_ = end;
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
  base::bump(reason);
  base::bump(stats_.connectionsAbandoned);
  mode_ = Mode::kAbandoned;
  skipping_ = false;
  account(pos_);
  releaseBuffer(pos_);
}

// ---------------------------------------------------------------------------
// llhttp callbacks (return 0 to go on, HPE_PAUSED to stop llhttp_execute here)

int RequestFramer::onUrl(llhttp_t* parser, const char* at, size_t length) {
  RequestFramer& f = framerOf(parser);
  const uint64_t pos = f.posOf(at);
  if (!f.targetSeen_) {
    f.targetSeen_ = true;
    f.targetStart_ = pos;
  }
  f.targetEnd_ = pos + length;
  if (pos == f.targetStart_ && length > 0) {
    f.targetFirst_ = at[0];
  }
  // Outside strict mode llhttp takes HT and FF inside the target; other parsers
  // split the request line there.
  const void* tab = std::memchr(at, '\t', length);
  const void* ff = std::memchr(at, '\f', length);
  if (tab != nullptr || ff != nullptr) {
    const char* bad = static_cast<const char*>(tab == nullptr ? ff : ff == nullptr ? tab : std::min(tab, ff));
    return f.reject(f.lineReason(f.stats_.invalidRequestLine, f.posOf(bad)));
  }
  return 0;
}

// A target ended by CR or LF is an HTTP/0.9 request ("GET /"). Refused here, at
// an exact position, rather than when llhttp goes on to parse its "headers".
int RequestFramer::onUrlComplete(llhttp_t* parser) {
  RequestFramer& f = framerOf(parser);
  const int end = f.byteAt(f.targetEnd_);
  if (end == '\r' || end == '\n') {
    return f.reject(f.lineReason(f.stats_.invalidRequestLine, f.targetEnd_));
  }
  // "*" names the server as a whole, for OPTIONS only (RFC 9112 3.2.4); nginx
  // and others refuse any other method with it. (PRI: the HTTP/2 preface.)
  if (f.targetEnd_ - f.targetStart_ == 1 && f.targetFirst_ == '*' && parser->method != HTTP_PRI &&
      (parser->method != HTTP_OPTIONS || f.extensionMethod_)) {
    return f.reject(f.lineReason(f.stats_.asteriskForm, f.targetEnd_));
  }
  return 0;
}

int RequestFramer::onVersion(llhttp_t* parser, const char* at, size_t length) {
  RequestFramer& f = framerOf(parser);
  const uint64_t pos = f.posOf(at);
  if (!f.versionSeen_) {
    f.versionSeen_ = true;
    f.versionStart_ = pos;
  }
  f.versionEnd_ = pos + length;
  return 0;
}

int RequestFramer::onVersionComplete(llhttp_t* parser) {
  RequestFramer& f = framerOf(parser);
  f.lineDone_ = true;
  // First, as finishChunk() would have stopped on a line this long already
  // (even one that starts like the HTTP/2 preface).
  if (f.versionEnd_ + 2 - f.reqStart_ > f.limits_.maxRequestLineBytes) {
    return f.reject(f.stats_.requestLineTooLong);
  }
  if (parser->method == HTTP_PRI) {
    return 0;  // the HTTP/2 preface; llhttp stops on it right after
  }
  // The version is checked before the line end: its bytes come first, and the
  // line end may not have arrived yet, so the other order would make the reason
  // depend on the cut.
  if (parser->http_major != 1 || parser->http_minor > 1) {
    return f.reject(f.stats_.invalidRequestLine);
  }
  // llhttp takes "RTSP/1.0" after an HTTP method too.
  if (f.versionSeen_ && f.versionStart_ >= 5) {
    static constexpr char kProtocol[] = "HTTP/";
    for (uint64_t i = 0; i < 5; ++i) {
      const int b = f.byteAt(f.versionStart_ - 5 + i);
      if (b >= 0 && b != kProtocol[i]) {
        return f.reject(f.stats_.invalidRequestLine);
      }
    }
  }
  // The line end is llhttp's: CRLF or a bare LF; a CR followed by anything
  // else fails there (counted as bareCr).
  return 0;
}

// Header names may arrive in pieces. We need whether it is Host or
// Transfer-Encoding, whether it is a token (llhttp outside strict mode takes SP
// inside and before the colon: "Transfer-Encoding : chunked"), whether it
// starts its line (with lenient headers llhttp skips a SP before the first
// one), and where it ends (for obs-fold).
int RequestFramer::onHeaderField(llhttp_t* parser, const char* at, size_t length) {
  RequestFramer& f = framerOf(parser);
  const uint64_t pos = f.posOf(at);
  if (f.fieldLen_ == 0 && f.firstField_ && pos > 0 && f.byteAt(pos - 1) == ' ') {
    return f.reject(f.stats_.obsFold);  // a line starting with whitespace
  }
  if (std::memchr(at, ' ', length) != nullptr) {
    return f.reject(f.stats_.invalidHeaderName);
  }
  if (f.fieldLen_ == 0 && length > 0) {
    const char c = static_cast<char>(at[0] | 0x20);
    f.fieldMatch_ &= c == 'h' ? kFieldHost : c == 't' ? kFieldTransferEncoding : 0;
  }
  for (size_t k = 0; f.fieldMatch_ != 0 && k < std::size(kFieldNames); ++k) {
    const uint8_t bit = static_cast<uint8_t>(1u << k);
    if ((f.fieldMatch_ & bit) == 0) {
      continue;
    }
    const std::string_view name = kFieldNames[k];
    if (f.fieldLen_ + length > name.size()) {
      f.fieldMatch_ &= static_cast<uint8_t>(~bit);
      continue;
    }
    for (size_t i = 0; i < length; ++i) {
      if ((at[i] | 0x20) != name[f.fieldLen_ + i]) {
        f.fieldMatch_ &= static_cast<uint8_t>(~bit);
        break;
      }
    }
  }
  f.fieldLen_ += static_cast<uint32_t>(length);
  f.fieldEnd_ = pos + length;
  return 0;
}

int RequestFramer::onHeaderFieldComplete(llhttp_t* parser) {
  RequestFramer& f = framerOf(parser);
  if (f.fieldLen_ == 0) {
    return f.reject(f.stats_.invalidHeaderName);  // ": value"
  }
  // Trailers (after the headers) never count as Host or Transfer-Encoding.
  const bool inHeaders = !f.headersDone_;
  f.valueIsHost_ = inHeaders && (f.fieldMatch_ & kFieldHost) != 0 && f.fieldLen_ == kFieldNames[0].size();
  f.valueIsTe_ =
      inHeaders && (f.fieldMatch_ & kFieldTransferEncoding) != 0 && f.fieldLen_ == kFieldNames[1].size();
  f.teValueLen_ = 0;
  f.firstField_ = false;
  f.fieldMatch_ = kFieldHost | kFieldTransferEncoding;
  f.fieldLen_ = 0;
  f.valueSpanSeen_ = false;
  f.awaitingValue_ = true;
  f.lfAfterField_ = UINT64_MAX;
  f.crAfterField_ = UINT64_MAX;
  f.htAfterField_ = UINT64_MAX;
  return 0;
}

// A folded value (obs-fold) shows as a value piece that does not continue the
// previous one, or whose first piece comes after a line end following the
// colon. An empty value shows as an empty piece at the start of the next line,
// right after its own line end (checked in onHeaderValueComplete(); an empty
// piece also comes before an error).
int RequestFramer::onHeaderValue(llhttp_t* parser, const char* at, size_t length) {
  RequestFramer& f = framerOf(parser);
  const uint64_t pos = f.posOf(at);
  if (!f.valueSpanSeen_) {
    if (length == 0) {
      f.emptyValuePos_ = pos;
      return 0;
    }
    f.valueSpanSeen_ = true;
    f.awaitingValue_ = false;
    if (!f.checkBeforeValue(pos)) {
      return -1;
    }
  } else if (pos != f.valueEnd_) {
    return f.reject(f.stats_.obsFold);
  }
  // Lenient headers let any byte but CR and LF into a value; servers refuse
  // control bytes other than HT (RFC 9110 5.5).
  if (hasControl(at, length)) {
    return f.reject(f.stats_.invalidHeaderValue);
  }
  f.valueEnd_ = pos + length;
  if (f.valueIsHost_) {
    if (!f.hostValueSeen_) {
      f.hostValueSeen_ = true;
      f.hostStart_ = pos;
    }
    f.hostEnd_ = pos + length;
  }
  if (f.valueIsTe_) {
    for (size_t i = 0; i < length; ++i, ++f.teValueLen_) {
      if (f.teValueLen_ < sizeof(f.teValue_)) {
        f.teValue_[f.teValueLen_] = at[i];
      }
    }
  }
  return 0;
}

int RequestFramer::onHeaderValueComplete(llhttp_t* parser) {
  RequestFramer& f = framerOf(parser);
  if (!f.valueSpanSeen_) {
    // Outside strict mode llhttp ends an empty value at "\r<any>" too: the
    // x:\rTransfer-Encoding: chunked of request smuggling. (The two bytes
    // before the empty piece are in this chunk or kept from the one before.)
    const uint64_t pos = f.emptyValuePos_;
    if (pos < 1 || f.byteAt(pos - 1) != '\n') {
      return f.reject(f.stats_.bareCr);
    }
    f.awaitingValue_ = false;
    if (!f.checkBeforeValue(pos >= 2 && f.byteAt(pos - 2) == '\r' ? pos - 2 : pos - 1)) {
      return -1;
    }
  }
  if (f.valueIsHost_) {
    ++f.hostCount_;
    f.valueIsHost_ = false;
  }
  if (f.valueIsTe_) {
    // The value without the SP llhttp leaves after it (an HT there, nginx keeps).
    // (Longer than kept: not "chunked" with a little OWS; refused.)
    std::string_view v(f.teValue_, std::min<size_t>(f.teValueLen_, sizeof(f.teValue_)));
    while (!v.empty() && v.back() == ' ') {
      v.remove_suffix(1);
    }
    constexpr std::string_view kChunked = "chunked";
    bool chunked = f.teValueLen_ <= sizeof(f.teValue_) && v.size() == kChunked.size();
    for (size_t i = 0; chunked && i < v.size(); ++i) {
      chunked = (v[i] | 0x20) == kChunked[i];
    }
    ++f.teCount_;
    f.teChunkedOnly_ = f.teChunkedOnly_ && chunked;
    f.valueIsTe_ = false;
  }
  return 0;
}

int RequestFramer::onHeadersComplete(llhttp_t* parser) {
  RequestFramer& f = framerOf(parser);
  f.headersDone_ = true;
  if (!f.lineDone_) {
    // HTTP/0.9 ("GET /" without a version): refused in afterHeaders(), which
    // knows how long the "line" was.
    f.simpleRequest_ = true;
    f.pause_ = Pause::kHeaders;
    return HPE_PAUSED;
  }
  if (f.teCount_ > 0) {
    // RFC 9112 6.1: Transfer-Encoding in HTTP/1.0 means faulty framing.
    if (parser->http_minor == 0) {
      return f.reject(f.stats_.ambiguousLength);
    }
    // Another coding before chunked ("gzip, chunked"), or the field twice:
    // unambiguous for llhttp, but nginx answers 501 or 400 and closes, others
    // frame it otherwise or refuse it. An empty value (which llhttp ignores,
    // framing by Content-Length) too.
    if (f.teCount_ > 1 || !f.teChunkedOnly_) {
      return f.reject(f.stats_.transferCoding);
    }
  }
  // Pause so that llhttp_get_error_pos() tells where the header section ends.
  f.pause_ = Pause::kHeaders;
  return HPE_PAUSED;
}

int RequestFramer::onChunkHeader(llhttp_t* parser) {
  framerOf(parser).chunkedBodyBytes_ += parser->content_length;
  return 0;
}

int RequestFramer::onMessageComplete(llhttp_t* parser) {
  // Pause so that llhttp_get_error_pos() tells where the message ends.
  framerOf(parser).pause_ = Pause::kMessage;
  return HPE_PAUSED;
}

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
