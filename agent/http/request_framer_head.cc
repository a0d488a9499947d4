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

// Reading a request's line and header section: the method scan, the checks
// llhttp leaves to the framer, and llhttp's callbacks.

namespace shadowtap::http {

using namespace framer_detail;


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

}  // namespace shadowtap::http
