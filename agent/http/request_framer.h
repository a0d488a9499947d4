#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>
#include <string>

#include <llhttp.h>

#include "model/flow_key.h"
#include "flow/stream_consumer.h"
#include "http/chunked_body.h"
#include "http/http_stats.h"
#include "model/request.h"

namespace shadowtap::http {

struct FramerLimits {
  size_t maxRequestBytes = 8 << 20;     // whole request, request line to last body byte
  size_t maxHeaderBytes = 64 << 10;     // request line + headers + blank line
  size_t maxRequestLineBytes = 16 << 10;  // request line with its CRLF
  size_t maxResyncScanBytes = 64 << 10;  // longest candidate request line held while resyncing
  // A request over maxRequestBytes is streamed with this window
  // (model::BodyStream) instead of skipped; 0: skipped (counted tooLarge).
  size_t streamWindowBytes = 0;
};

// Frames the HTTP/1.x requests of one client-to-server byte stream with llhttp
// and hands each complete request, byte-identical, to a model::RequestSink.
//
// The policy (docs/http1.md): as strict as the strictest common server on
// ambiguity, as tolerant as the common servers on harmless variation.
// - Requests with exactly one non-empty Host are emitted, and HTTP/1.0 requests
//   without Host (hostLength 0; the rewrite adds one). Every other outcome is
//   counted in HttpStats (see the identities there). After a request servers
//   answer with 400 and a close (HTTP/1.1 without Host, several Host fields, an
//   invalid Host) the rest of the stream is not mirrored.
// - Only HTTP/1.0 and 1.1 is emitted. Tolerated and counted: head lines ended
//   by LF alone, methods llhttp 8.1 does not know (A-Z, '-', '_'; framed by
//   giving llhttp a known method instead), header names with a byte nginx
//   ignores the line for (llhttp reads '!' there). The bytes stay the client's.
// - Ambiguous or hostile framing (CL+TE, several CLs, a Transfer-Encoding other
//   than one "chunked", obs-fold, a CR not followed by LF, a chunk line not
//   ended by CRLF, a bad header name or value, a "*" target without OPTIONS, a
//   bad request line or one over maxRequestLineBytes), any other parse error,
//   CONNECT/Upgrade, the HTTP/2 preface or TLS end framing for the rest of the
//   stream: counted by reason, never resynchronised. These checks hold whether
//   llhttp is built in strict mode or not.
// - After a request that closes the connection, the rest is unmirrored.
// - A header section over maxHeaderBytes is counted and skipped as llhttp
//   frames it; the stream stays in sync. So is a request over maxRequestBytes
//   when streamWindowBytes is 0. Otherwise such a request is streamed: emitted
//   once its head is framed (a Content-Length over the limit) or once it holds
//   maxRequestBytes (chunked), with a model::BodyStream that gets the rest of
//   the body as it is framed. Counted requestsParsed and requestsStreamed when
//   emitted; its stream then ends in exactly one of the stream counters of
//   HttpStats. A gap, the stream's end or a refusal inside the body aborts it
//   (never completes it); a stream its consumer let go of (sampled out,
//   dropped, the mirror failed) has the rest of its body skipped, unmirrored.
//   A streamed chunked body is checked as it goes (ChunkedBodyChecker).
// - After a gap, or when joined mid-stream, the framer skips to the next line
//   that is a complete `METHOD SP target SP HTTP/1.x CRLF` (a method llhttp
//   knows) and parses from there.
// - Holds at most max(maxHeaderBytes, maxRequestBytes) bytes, plus a streamed
//   request's window (counted in bufferedBytes(), so the flow table's memory
//   limit covers it); oversized requests are skipped or streamed as llhttp
//   frames them, without buffering them whole.
// - Requests emitted and every counter (reasons included) depend on the bytes
//   and gaps only, never on how the stream was cut into onData() calls.
// Not thread-safe; the parser points back at the framer, so it does not move.
class RequestFramer final : public flow::StreamConsumer {
 public:
  // `startOffset`: the stream position of the first byte this framer will be
  // given (non-zero when it takes over a stream at a request boundary, e.g.
  // after a declined "Upgrade: h2c"); requests' streamOffset count from it.
  RequestFramer(const model::FlowKey& key, uint32_t ruleId, bool fromStart, model::RequestSink& sink,
                const FramerLimits& limits, HttpStats& stats, uint64_t startOffset = 0);
  ~RequestFramer() override;
  RequestFramer(const RequestFramer&) = delete;
  RequestFramer& operator=(const RequestFramer&) = delete;

  void onData(std::span<const uint8_t> bytes, uint64_t tsNs) override;
  void onGap(uint64_t bytes) override;
  void onEnd(flow::EndReason reason) override;
  size_t bufferedBytes() const override { return buf_.size() + (stream_ ? stream_->held() : 0); }

  const HttpStats& stats() const { return stats_; }

 private:
  // kFailing: llhttp failed right at the end of a chunk; the reason waits for
  // the next byte (see failPending()).
  enum class Mode : uint8_t { kParse, kResync, kFailing, kAbandoned, kClosed, kEnded };
  enum class Pause : uint8_t { kNone, kHeaders, kMessage };

  static int onUrl(llhttp_t* parser, const char* at, size_t length);
  static int onUrlComplete(llhttp_t* parser);
  static int onVersion(llhttp_t* parser, const char* at, size_t length);
  static int onVersionComplete(llhttp_t* parser);
  static int onHeaderField(llhttp_t* parser, const char* at, size_t length);
  static int onHeaderFieldComplete(llhttp_t* parser);
  static int onHeaderValue(llhttp_t* parser, const char* at, size_t length);
  static int onHeaderValueComplete(llhttp_t* parser);
  static int onHeadersComplete(llhttp_t* parser);
  static int onChunkHeader(llhttp_t* parser);
  static int onMessageComplete(llhttp_t* parser);
  static const llhttp_settings_t& settings();

  // Runs llhttp over one contiguous chunk at stream position `pos`.
  void feedParse(const char* data, size_t len, uint64_t pos, uint64_t tsNs);
  void feedResync(const char* data, size_t len, uint64_t pos, uint64_t tsNs);
  void scanResync(const char* data, size_t len, uint64_t pos, uint64_t tsNs);
  void finishChunk();
  void noteLfAfterField();
  void startParse();
  // At a request boundary: the method, read by the framer (see the .cc).
  const char* scanMethod(const char* p, const char* end);
  void beginRequest(uint64_t pos);
  // A CR or LF between a header name's colon and its value's first byte at
  // `last` (exclusive), or an HT before a Transfer-Encoding value: false when
  // rejected (obs-fold, a CR without LF, transferCoding).
  bool checkBeforeValue(uint64_t last);
  void noteLineEndsAfterField(uint64_t from, uint64_t to);
  // The reason for a chunk line or trailer line ending at `end` (exclusive)
  // without CRLF, or nullptr.
  std::atomic<uint64_t>* chunkedLineEndReason(uint64_t end);
  void enterResync();
  bool afterHeaders(uint64_t end);
  void completeRequest(uint64_t end);
  // Streaming (request_framer_stream.cc). The request in progress, over
  // maxRequestBytes, is emitted with its bytes up to `end` and a BodyStream.
  // False when it was not (streaming off, refused: counted).
  bool startStream(uint64_t end);
  // Hands the body bytes [accounted_, end) of the current chunk to the stream.
  void streamBytes(uint64_t end);
  // The streamed request's message ends at `end`: its last bytes, its stream complete.
  void completeStream(uint64_t end);
  // Ends the stream (if still held) with `how`, counted under `counter`.
  void endStream(model::BodyStream::End how, std::atomic<uint64_t>& counter);
  // A head servers answer with 400 and a close: counted, the rest unmirrored.
  void refuseHead(std::atomic<uint64_t>& reason);
  // Builds the request [reqStart_, end) for emission; false (counted as
  // invalidHost) when it must not be. `wholeBody`: end is the message's end.
  bool frame(model::Request& req, uint64_t end, bool wholeBody);
  // False when the request was refused (counted) instead of emitted.
  bool emit(uint64_t end);
  void takeBytes(model::Request& req, uint64_t end);
  void countTolerated(const model::Request& req);
  // Makes llhttp stop with an error; feedParse() then abandons with `reason`.
  int reject(std::atomic<uint64_t>& reason);
  std::atomic<uint64_t>& lineReason(std::atomic<uint64_t>& reason, uint64_t pos);
  // Reasons decided by the bytes before the error position (nullptr: none).
  std::atomic<uint64_t>* classifyBefore(llhttp_errno_t err, const char* at);
  // The other reasons, which may look at the byte at `pos` too.
  std::atomic<uint64_t>& classifyError(llhttp_errno_t err, uint64_t pos);
  // Gives the stream up for the error pending since the last chunk, now that the
  // byte after it is `data[0]` (len > 0) or will never come (len == 0).
  void failPending(const char* data, size_t len, uint64_t pos);
  // The stream byte at `pos` if it is still held (current chunk or buf_), else -1.
  int byteAt(uint64_t pos) const;
  void resolve(std::atomic<uint64_t>& outcome);
  void abandon(std::atomic<uint64_t>& reason);
  void finish();
  // Counts stream bytes up to `pos` that were not emitted as unmirrored.
  void account(uint64_t pos);
  void releaseBuffer(uint64_t pos);
  void publishBuffered();
  // After llhttp refused the byte at `at` in a header name: true when it reads
  // on (the byte is one nginx ignores the field for).
  bool resumeAfterIgnoredName(const char* at);
  uint64_t posOf(const char* p) const {
    if (synthetic_ != nullptr && p >= synthetic_ && p <= synthetic_ + 1) {
      return syntheticPos_ + static_cast<uint64_t>(p - synthetic_);
    }
    return chunkPos_ + static_cast<uint64_t>(p - chunkBase_);
  }

  const model::FlowKey key_;
  const uint32_t ruleId_;
  const bool fromStart_;
  uint64_t startOffset_ = 0;
  model::RequestSink& sink_;
  const FramerLimits limits_;
  const size_t resyncLineCap_;
  HttpStats& stats_;
  llhttp_t parser_;
  Mode mode_ = Mode::kParse;
  Pause pause_ = Pause::kNone;

  // Stream positions count delivered bytes only (gaps are not positions).
  uint64_t pos_ = 0;        // end of everything delivered
  uint64_t accounted_ = 0;  // bytes before this were emitted or counted unmirrored
  uint32_t gaps_ = 0;       // onGap calls so far (each request carries it: gapsBefore)
  // buf_ holds stream bytes [bufPos_, chunkPos_) while a chunk is parsed: the
  // request in progress (parse) or a candidate request line (resync).
  std::string buf_;
  uint64_t bufPos_ = 0;
  size_t publishedBuffered_ = 0;

  // A byte llhttp is given in place of the stream byte at syntheticPos_.
  const char* synthetic_ = nullptr;
  uint64_t syntheticPos_ = 0;
  bool ignoredName_ = false;  // the request has a header line nginx ignores

  // The chunk llhttp is running over.
  const char* chunkBase_ = nullptr;
  size_t chunkLen_ = 0;
  uint64_t chunkPos_ = 0;
  uint64_t chunkTs_ = 0;
  // The last bytes of the chunk parsed before, ending at stream position tailEnd_.
  char tail_[2] = {0, 0};
  uint8_t tailLen_ = 0;
  uint64_t tailEnd_ = UINT64_MAX;

  // Resync.
  bool atLineStart_ = true;  // the next delivered byte may start a request line
  uint64_t candidateTs_ = 0;

  // Set by a callback that refuses the request; see reject().
  std::atomic<uint64_t>* rejectReason_ = nullptr;
  // kFailing: the llhttp error and its stream position (the next chunk's start).
  llhttp_errno_t pendingError_ = HPE_OK;
  uint64_t pendingPos_ = 0;

  // The request in progress. Positions are stream positions.
  bool inRequest_ = false;
  // At a request boundary: the next method is read by scanMethod(), not llhttp.
  bool atBoundary_ = true;
  bool methodSeen_ = false;  // the method and the SP after it
  bool extensionMethod_ = false;  // llhttp was given another method
  uint32_t methodLen_ = 0;
  char method_[16] = {};  // its first bytes, to look it up
  bool targetSeen_ = false;
  bool versionSeen_ = false;
  bool lineDone_ = false;  // request line complete
  bool simpleRequest_ = false;   // HTTP/0.9: no version
  bool headersDone_ = false;
  bool skipping_ = false;  // too large: let llhttp frame it, keep nothing
  bool headersTooLarge_ = false;
  uint8_t fieldMatch_ = 0;  // names the current header name may still be (kField*)
  bool firstField_ = true;  // the current name is the request's first
  bool valueIsHost_ = false;
  bool valueIsTe_ = false;
  bool hostValueSeen_ = false;
  bool valueSpanSeen_ = false;  // of the current header value
  // Between a header name's colon and its value's first byte. The first LF
  // there (a fold) is remembered at the end of each chunk, so obs-fold is found
  // whether or not those bytes are still held (a header section over the limit
  // is not buffered).
  bool awaitingValue_ = false;
  uint64_t lfAfterField_ = UINT64_MAX;
  uint64_t crAfterField_ = UINT64_MAX;
  uint64_t htAfterField_ = UINT64_MAX;
  // Transfer-Encoding fields (in the header section): how many, and whether
  // every value was exactly "chunked" (case-insensitive, OWS around it).
  uint32_t teCount_ = 0;
  bool teChunkedOnly_ = true;
  uint32_t teValueLen_ = 0;
  char teValue_[16] = {};  // the current value's first bytes
  uint32_t fieldLen_ = 0;       // of the current header name
  uint32_t hostCount_ = 0;
  uint64_t reqStart_ = 0;
  uint64_t reqTs_ = 0;
  char targetFirst_ = 0;
  uint64_t targetStart_ = 0;
  uint64_t targetEnd_ = 0;
  uint64_t versionStart_ = 0;
  uint64_t versionEnd_ = 0;
  uint64_t fieldEnd_ = 0;
  uint64_t valueEnd_ = 0;
  uint64_t emptyValuePos_ = 0;  // of the current value's empty first piece
  uint64_t hostStart_ = 0;
  uint64_t hostEnd_ = 0;
  uint64_t headersEnd_ = 0;
  uint64_t chunkedBodyBytes_ = 0;  // sum of chunk sizes
  // The request in progress was emitted as a stream and its body is framed;
  // stream_ is its BodyStream while it is still wanted (null once ended or let go).
  bool streaming_ = false;
  std::shared_ptr<model::BodyStream> stream_;
  ChunkedBodyChecker chunkCheck_;
};

// Creates one RequestFramer per client-to-server stream. Owns the shared
// HttpStats and limits, so it must outlive every framer it created.
class RequestFramerFactory final : public flow::StreamConsumerFactory {
 public:
  explicit RequestFramerFactory(model::RequestSink& sink, FramerLimits limits = {});

  std::unique_ptr<flow::StreamConsumer> create(const model::FlowKey& key, uint32_t ruleId,
                                               bool fromStart) override;
  // A framer taking over a stream at a request boundary at `startOffset` (the
  // bytes before it went elsewhere): it parses from its first byte, as from
  // the start, but its requests carry their real stream offsets.
  std::unique_ptr<flow::StreamConsumer> createAt(const model::FlowKey& key, uint32_t ruleId, uint64_t startOffset);

  const HttpStats& stats() const { return stats_; }
  const FramerLimits& limits() const { return limits_; }

 private:
  model::RequestSink& sink_;
  const FramerLimits limits_;
  HttpStats stats_;
};

}  // namespace shadowtap::http
