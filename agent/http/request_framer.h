#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>
#include <string>

#include <llhttp.h>

#include "flow/flow_key.h"
#include "flow/stream_consumer.h"
#include "http/http_stats.h"
#include "http/request.h"

namespace shadowtap::http {

struct FramerLimits {
  size_t maxRequestBytes = 8 << 20;     // whole request, request line to last body byte
  size_t maxHeaderBytes = 64 << 10;     // request line + headers + blank line
  size_t maxResyncScanBytes = 64 << 10;  // longest candidate request line held while resyncing
};

// Frames the HTTP/1.x requests of one client-to-server byte stream with llhttp
// and hands each complete request, byte-identical, to a RequestSink.
//
// - Requests with exactly one non-empty Host are emitted; every other outcome is
//   counted in HttpStats (see the identities there).
// - A parse error, CONNECT/Upgrade, the HTTP/2 preface or TLS ends framing for
//   the rest of the stream (counted, never resynchronised).
// - After a gap, or when joined mid-stream, the framer skips to the next line
//   that is a complete `METHOD SP target SP HTTP/1.x CRLF` and parses from there.
// - Holds at most max(maxHeaderBytes, maxRequestBytes) bytes; oversized requests
//   are skipped as llhttp frames them, without buffering.
// Not thread-safe; the parser points back at the framer, so it does not move.
class RequestFramer final : public flow::StreamConsumer {
 public:
  RequestFramer(const flow::FlowKey& key, uint32_t ruleId, bool fromStart, RequestSink& sink,
                const FramerLimits& limits, HttpStats& stats);
  ~RequestFramer() override;
  RequestFramer(const RequestFramer&) = delete;
  RequestFramer& operator=(const RequestFramer&) = delete;

  void onData(std::span<const uint8_t> bytes, uint64_t tsNs) override;
  void onGap(uint64_t bytes) override;
  void onEnd(flow::EndReason reason) override;
  size_t bufferedBytes() const override { return buf_.size(); }

  const HttpStats& stats() const { return stats_; }

 private:
  enum class Mode : uint8_t { kParse, kResync, kAbandoned, kEnded };
  enum class Pause : uint8_t { kNone, kHeaders, kMessage };

  static int onMessageBegin(llhttp_t* parser);
  static int onMethod(llhttp_t* parser, const char* at, size_t length);
  static int onHeaderField(llhttp_t* parser, const char* at, size_t length);
  static int onHeaderFieldComplete(llhttp_t* parser);
  static int onHeaderValue(llhttp_t* parser, const char* at, size_t length);
  static int onHeaderValueComplete(llhttp_t* parser);
  static int onHeadersComplete(llhttp_t* parser);
  static int onMessageComplete(llhttp_t* parser);
  static const llhttp_settings_t& settings();

  // Runs llhttp over one contiguous chunk at stream position `pos`.
  void feedParse(const char* data, size_t len, uint64_t pos, uint64_t tsNs);
  void feedResync(const char* data, size_t len, uint64_t pos, uint64_t tsNs);
  void scanResync(const char* data, size_t len, uint64_t pos, uint64_t tsNs);
  void finishChunk();
  void startParse();
  void enterResync();
  void afterHeaders();
  void completeRequest(uint64_t end);
  void emit(uint64_t end);
  void resolve(std::atomic<uint64_t>& outcome);
  void abandon(std::atomic<uint64_t>& reason);
  void finish();
  // Counts stream bytes up to `pos` that were not emitted as unmirrored.
  void account(uint64_t pos);
  void releaseBuffer(uint64_t pos);
  void publishBuffered();
  uint64_t posOf(const char* p) const { return chunkPos_ + static_cast<uint64_t>(p - chunkBase_); }

  const flow::FlowKey key_;
  const uint32_t ruleId_;
  const bool fromStart_;
  RequestSink& sink_;
  const FramerLimits limits_;
  const size_t resyncLineCap_;
  HttpStats& stats_;
  llhttp_t parser_;
  Mode mode_ = Mode::kParse;
  Pause pause_ = Pause::kNone;

  // Stream positions count delivered bytes only (gaps are not positions).
  uint64_t pos_ = 0;        // end of everything delivered
  uint64_t accounted_ = 0;  // bytes before this were emitted or counted unmirrored
  // buf_ holds stream bytes [bufPos_, chunkPos_) while a chunk is parsed: the
  // request in progress (parse) or a candidate request line (resync).
  std::string buf_;
  uint64_t bufPos_ = 0;
  size_t publishedBuffered_ = 0;

  // The chunk llhttp is running over.
  const char* chunkBase_ = nullptr;
  size_t chunkLen_ = 0;
  uint64_t chunkPos_ = 0;
  uint64_t chunkTs_ = 0;

  // Resync.
  bool atLineStart_ = true;  // the next delivered byte may start a request line
  uint64_t candidateTs_ = 0;

  // The request in progress.
  bool inRequest_ = false;
  bool methodSeen_ = false;
  bool headersDone_ = false;
  bool skipping_ = false;  // too large: let llhttp frame it, keep nothing
  bool fieldIsHost_ = true;
  bool valueIsHost_ = false;
  bool hostValueSeen_ = false;
  uint32_t fieldLen_ = 0;
  uint32_t hostCount_ = 0;
  uint64_t reqStart_ = 0;
  uint64_t reqTs_ = 0;
  uint64_t hostStart_ = 0;
  uint64_t hostEnd_ = 0;
};

// Creates one RequestFramer per client-to-server stream. Owns the shared
// HttpStats and limits, so it must outlive every framer it created.
class RequestFramerFactory final : public flow::StreamConsumerFactory {
 public:
  explicit RequestFramerFactory(RequestSink& sink, FramerLimits limits = {});

  std::unique_ptr<flow::StreamConsumer> create(const flow::FlowKey& key, uint32_t ruleId,
                                               bool fromStart) override;

  const HttpStats& stats() const { return stats_; }
  const FramerLimits& limits() const { return limits_; }

 private:
  RequestSink& sink_;
  const FramerLimits limits_;
  HttpStats stats_;
};

}  // namespace shadowtap::http
