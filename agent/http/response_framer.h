#pragma once

#include <cstddef>
#include <cstdint>
#include <deque>
#include <span>
#include <string>
#include <string_view>

#include <llhttp.h>

#include "model/response.h"
#include "http/response_stats.h"
#include "flow/stream_consumer.h"

namespace shadowtap::http {

struct ResponseLimits {
  size_t maxBodyBytes = 1 << 20;     // body kept per response; the rest is only hashed
  size_t maxHeaderBytes = 64 << 10;  // header names + values kept per response
  size_t maxHeldBytes = 64 << 10;    // response bytes held while their request is not known yet
  size_t maxAwaiting = 256;          // pipelined requests waiting for their response
};

// Why a request told to a framer will never get its response.
enum class NoResponse {
  kStreamEnded,  // the response stream ended (FIN, RST, idle, eviction) first
  kGap,          // bytes of the response stream were lost
  kParseError,   // the response stream is not HTTP/1.x as llhttp reads it
  kUpgrade,      // an earlier response switched protocols (101)
  kUnpairable,   // joined mid-stream, the request stream broke, or over the limits
};
const char* toString(NoResponse reason);

// Where framed responses go. Called on the thread that feeds the framer.
class ResponseSink {
 public:
  virtual ~ResponseSink() = default;
  // The final response to the request registered with `exchangeId`.
  virtual void onResponse(uint64_t exchangeId, model::Response&& response) = 0;
  // The request registered with `exchangeId` will get no response from this stream.
  virtual void onNoResponse(uint64_t exchangeId, NoResponse reason) = 0;
};

// Frames the HTTP/1.x responses of one server-to-client byte stream with llhttp
// and pairs each with its request by order on the connection.
//
// - The caller registers requests in the order they were sent on the connection
//   with expectResponseTo(method, id); responses answer them in that order
//   (pipelining included). Each registered request ends in exactly one
//   onResponse() or onNoResponse() call.
// - A response to HEAD has no body whatever its headers say; so do 1xx, 204 and
//   304. Interim 1xx responses are skipped; 101 is the answer to its request and
//   ends the stream (another protocol follows).
// - Response bytes that come before their request is known are held (at most
//   maxHeldBytes; beyond, the stream is given up) and framed once it is.
// - The body is de-chunked and kept up to maxBodyBytes; the rest is hashed and
//   counted, and the response is flagged bodyTruncated.
// - A stream joined mid-way, a gap, a parse error, an upgrade or too many
//   requests waiting end the pairing for good: requests waiting and registered
//   later get onNoResponse(); bytes after that point are counted as unframed.
// Not thread-safe; the parser points back at the framer, so it does not move.
class ResponseFramer final : public flow::StreamConsumer {
 public:
  ResponseFramer(bool fromStart, ResponseSink& sink, const ResponseLimits& limits, ResponseStats& stats);
  ~ResponseFramer() override;
  ResponseFramer(const ResponseFramer&) = delete;
  ResponseFramer& operator=(const ResponseFramer&) = delete;

  // Registers the next request sent on this connection. May call the sink at
  // once (a response already held completes, or pairing is no longer possible).
  void expectResponseTo(std::string_view method, uint64_t exchangeId);
  // The request direction lost bytes or requests: the order is no longer known.
  void breakPairing();

  void onData(std::span<const uint8_t> bytes, uint64_t tsNs) override;
  void onGap(uint64_t bytes) override;
  void onEnd(flow::EndReason reason) override;
  size_t bufferedBytes() const override;

  // False once pairing ended for good (mid-stream, gap, error, upgrade, end).
  bool pairing() const { return mode_ == Mode::kParse; }
  size_t awaiting() const { return expectations_.size(); }
  const ResponseStats& stats() const { return stats_; }

 private:
  enum class Mode : uint8_t { kParse, kGivenUp, kEnded };
  struct Expectation {
    uint64_t id;
    bool head;
  };

  static int onMessageBegin(llhttp_t* parser);
  static int onStatus(llhttp_t* parser, const char* at, size_t length);
  static int onHeaderField(llhttp_t* parser, const char* at, size_t length);
  static int onHeaderValue(llhttp_t* parser, const char* at, size_t length);
  static int onHeaderValueComplete(llhttp_t* parser);
  static int onHeadersComplete(llhttp_t* parser);
  static int onBody(llhttp_t* parser, const char* at, size_t length);
  static int onMessageComplete(llhttp_t* parser);
  static const llhttp_settings_t& settings();

  // Runs llhttp over bytes while a request waits; holds the rest.
  void feed(const char* data, size_t len);
  void hold(const char* data, size_t len);
  void drainHeld();
  // Ends pairing: every waiting request gets onNoResponse(reason).
  void giveUp(NoResponse reason, std::atomic<uint64_t>* counter);
  void failWaiting(NoResponse reason);
  void resetMessage();
  void addHeaderBytes(size_t n);
  void publishHeld();

  const bool fromStart_;
  ResponseSink& sink_;
  const ResponseLimits limits_;
  ResponseStats& stats_;
  llhttp_t parser_;
  Mode mode_ = Mode::kParse;
  NoResponse endReason_ = NoResponse::kStreamEnded;
  std::deque<Expectation> expectations_;
  std::string held_;  // response bytes whose request is not known yet
  size_t publishedHeld_ = 0;
  uint64_t chunkTs_ = 0;
  uint64_t heldTs_ = 0;

  // The response in progress.
  bool feeding_ = false;   // inside feed(): expectResponseTo() only queues
  bool upgraded_ = false;  // a 101 was emitted; llhttp stops after it
  bool inMessage_ = false;
  bool headersDone_ = false;  // header callbacks after this are trailers (ignored)
  bool fieldOpen_ = false;    // headers.back() is still receiving its name or value
  size_t headerBytes_ = 0;
  model::Response cur_;
};

}  // namespace shadowtap::http
