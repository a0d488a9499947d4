#pragma once

#include <array>
#include <atomic>
#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <unordered_map>
#include <vector>

#include "model/response.h"
#include "http/response_framer.h"
#include "flow/stream_consumer.h"

struct nghttp2_hd_inflater;

namespace shadowtap::h2 {

// Limits of one HTTP/2 response decoder (body and header limits come from
// http::ResponseLimits, shared with HTTP/1).
struct H2ResponseLimits {
  size_t maxStreams = 1024;             // responses assembled at once; over it the oldest is evicted
  size_t maxBufferedBytes = 16 << 20;   // headers + bodies kept by all open streams; over it bodies are only hashed
  size_t maxDynamicTableSize = 64 << 10;  // largest HPACK table the server may switch to
  size_t maxFrameLength = (1 << 24) - 1;  // a longer frame is a decode error (24 bits: 16 MiB - 1 at most)
  size_t maxUpgradeHeadBytes = 8 << 10;   // the skipped "HTTP/1.1 101" head
};

// Counters of HTTP/2 response decoding, shared by the decoders of one factory.
// Relaxed atomics written on the capture thread.
//
// Identities (exact once the capture thread is quiescent):
//   streamsOpened == responses + reset + evicted + malformedStreams + abandoned + openStreams
//   bytesIn == bytesDecoded + bytesIgnored + (bytes of frames in progress)
// where openStreams is a gauge; both it and the bytes in progress are 0 once
// every decoder has ended. Bytes are counted per whole frame (or 101 head), so
// the counters do not depend on how the stream was cut.
struct H2ResponseStats {
  // --- connections ---
  std::atomic<uint64_t> decoders{0};      // decoders created
  std::atomic<uint64_t> upgraded{0};      // started with an "HTTP/1.1 101" head (skipped)
  std::atomic<uint64_t> decodeErrors{0};  // the stream is not HTTP/2 as we read it (rest ignored)
  std::atomic<uint64_t> badPreface{0};    // ... because it did not start with SETTINGS (or a 101 head)
  std::atomic<uint64_t> hpackErrors{0};   // ... because a header block did not inflate
  std::atomic<uint64_t> frameTooLarge{0};  // ... because a frame was longer than maxFrameLength
  std::atomic<uint64_t> gaps{0};          // onGap calls while decoding
  std::atomic<uint64_t> goaways{0};       // GOAWAY frames

  // --- frames (diagnostic) ---
  std::atomic<uint64_t> frames{0};
  std::atomic<uint64_t> framesIgnored{0};  // unknown type, pushed stream, or stream not open
  std::atomic<uint64_t> pushPromises{0};   // header blocks inflated and discarded

  // --- client streams answered by the server: each opened one ends in exactly one of these ---
  std::atomic<uint64_t> streamsOpened{0};     // first HEADERS of an odd stream with a :status
  std::atomic<uint64_t> responses{0};         // END_STREAM: final response emitted
  std::atomic<uint64_t> reset{0};             // RST_STREAM from the server: no response
  std::atomic<uint64_t> evicted{0};           // over maxStreams: the oldest open stream gets no response
  std::atomic<uint64_t> malformedStreams{0};  // bad :status, DATA before final headers, trailers without END_STREAM
  std::atomic<uint64_t> abandoned{0};         // open when the connection ended, broke or failed
  std::atomic<uint64_t> openStreams{0};       // gauge

  // --- responses (diagnostic) ---
  std::atomic<uint64_t> interim{0};            // 1xx HEADERS skipped
  std::atomic<uint64_t> trailers{0};           // trailer blocks appended to the headers
  std::atomic<uint64_t> badTrailers{0};        // trailer blocks with pseudo-headers: dropped
  std::atomic<uint64_t> headerBlocksIgnored{0};  // blocks for no open stream without :status (e.g. trailers of an evicted stream)
  std::atomic<uint64_t> headersTruncated{0};   // header fields over maxHeaderBytes
  std::atomic<uint64_t> bodiesTruncated{0};    // body over maxBodyBytes or the buffer limit (prefix kept)
  std::atomic<uint64_t> bufferLimited{0};      // ... of which because of maxBufferedBytes

  // --- bytes ---
  std::atomic<uint64_t> bytesIn{0};
  std::atomic<uint64_t> bytesDecoded{0};  // whole frames (and the 101 head) parsed
  std::atomic<uint64_t> bytesIgnored{0};  // the frame that failed, and everything after an error, a gap or the end
};

// Where a decoder's results go. Called from inside onData/onGap/onEnd.
class H2ResponseHandler {
 public:
  virtual ~H2ResponseHandler() = default;
  // The final response of client stream `streamId` (odd), complete.
  virtual void onH2Response(int32_t streamId, model::Response&& response) = 0;
  // Client stream `streamId` was answered but its response will not be complete.
  virtual void onH2NoResponse(int32_t streamId, http::NoResponse reason) = 0;
  // GOAWAY: streams above `lastStreamId` were not processed and get no response;
  // streams at or below it may still complete. Called for each GOAWAY.
  virtual void onH2GoAway(int32_t lastStreamId) = 0;
  // Nothing more will be decoded (error, gap, end). Every stream still open
  // got onH2NoResponse first; streams never answered get no call at all.
  virtual void onH2End(http::NoResponse reason) = 0;
};

// Decodes ONE server-to-client HTTP/2 byte stream from its first byte: the
// server's SETTINGS first, or an "HTTP/1.1 101" head (skipped) and then the
// server's SETTINGS, as after "Upgrade: h2c" (stream 1 is then the upgraded
// request's response).
//
// Frames are parsed here and payloads streamed (never buffered whole); header
// blocks (HEADERS + CONTINUATION, and PUSH_PROMISE, which is inflated and
// discarded to keep the HPACK state) go through nghttp2's HPACK inflater.
// Per client stream a model::Response is assembled: status from :status (1xx blocks
// skipped), the regular fields of the final block in order (pseudo-headers
// excluded, names lowercase as sent), DATA joined (kept up to maxBodyBytes,
// hashed and counted whole), and the fields of a trailer block appended after
// the headers (a trailer block with any pseudo-header is dropped whole). tsNs
// is the capture time of the stream's first HEADERS frame. The response is
// emitted at END_STREAM; RST_STREAM means no response for that stream; a
// decode error, a gap or the end means no response for every open stream.
// Pushed (even) streams are ignored. Every opened stream ends in exactly one
// onH2Response/onH2NoResponse call. The result is the same however the byte
// stream is cut into onData() calls. Not thread-safe.
class H2ResponseDecoder final : public flow::StreamConsumer {
 public:
  H2ResponseDecoder(H2ResponseHandler& handler, const http::ResponseLimits& responseLimits,
                    const H2ResponseLimits& limits, H2ResponseStats& stats);
  ~H2ResponseDecoder() override;
  H2ResponseDecoder(const H2ResponseDecoder&) = delete;
  H2ResponseDecoder& operator=(const H2ResponseDecoder&) = delete;

  void onData(std::span<const uint8_t> bytes, uint64_t tsNs) override;
  void onGap(uint64_t bytes) override;
  void onEnd(flow::EndReason reason) override;
  // Partial frame prefix, upgrade head, and the headers and bodies of open streams.
  size_t bufferedBytes() const override;

  // False once an error, a gap or the end stopped decoding.
  bool decoding() const { return state_ != State::kDone; }
  size_t openStreams() const { return streams_.size(); }

 private:
  enum class State : uint8_t { kStart, kUpgradeHead, kFrameHeader, kPayload, kDone };
  enum class Phase : uint8_t { kPrefix, kContent, kPadding };
  struct Stream {
    model::Response response;
    bool finalHeaders = false;  // a non-1xx :status block was seen
    bool inTrailers = false;
    uint64_t lastUse = 0;      // for eviction: frame sequence of the last frame
    size_t keptBytes = 0;      // header + body bytes counted in buffered_
    size_t headerBytes = 0;
  };
  // The header block in progress (one HEADERS or PUSH_PROMISE and its CONTINUATIONs).
  struct Block {
    bool active = false;
    bool discard = false;      // PUSH_PROMISE, pushed or ignored stream: inflate only
    bool endStream = false;    // the HEADERS frame had END_STREAM
    int32_t streamId = 0;
    bool sawStatus = false;
    bool anyPseudo = false;
    int status = 0;
    std::vector<model::HeaderField> fields;  // regular fields, before the limit
    size_t fieldBytes = 0;
    size_t budget = 0;         // header bytes this block may still add to its response
    bool truncated = false;
    uint64_t tsNs = 0;         // capture time of the HEADERS frame's first byte
  };

  void consume(const uint8_t* p, size_t n);
  void unitDone();
  void startFrame();
  void startData();
  void startHeaderBlock();
  void onPrefix();
  void onContent(const uint8_t* p, size_t n);
  void endFrame();
  bool inflate(const uint8_t* p, size_t n, bool final);
  void onField(std::string_view name, std::string_view value);
  void finishBlock();
  void openStream(int32_t id, Block& block);
  void emit(int32_t id);
  void dropStream(int32_t id, http::NoResponse reason, std::atomic<uint64_t>& counter);
  void fail(http::NoResponse reason, std::atomic<uint64_t>* counter);
  void keep(Stream& s, size_t n);
  bool skipUpgradeHead(const uint8_t*& p, const uint8_t* end);

  H2ResponseHandler& handler_;
  const http::ResponseLimits responseLimits_;
  const H2ResponseLimits limits_;
  H2ResponseStats& stats_;
  nghttp2_hd_inflater* inflater_ = nullptr;

  State state_ = State::kStart;
  std::string head_;  // the 101 head so far
  uint64_t chunkTs_ = 0;

  // The frame in progress.
  std::array<uint8_t, 9> hdr_{};
  size_t hdrFill_ = 0;
  uint64_t frameTs_ = 0;
  uint32_t length_ = 0;
  uint8_t type_ = 0;
  uint8_t flags_ = 0;
  int32_t streamId_ = 0;
  Phase phase_ = Phase::kPrefix;
  std::array<uint8_t, 14> prefix_{};
  size_t prefixLen_ = 0;
  size_t prefixFill_ = 0;
  size_t contentLeft_ = 0;
  size_t paddingLeft_ = 0;
  bool sawSettings_ = false;
  uint64_t frameSeq_ = 0;
  uint64_t unitBytes_ = 0;  // bytes of the frame (or 101 head) in progress, not counted yet

  Block block_;
  std::unordered_map<int32_t, Stream> streams_;
  size_t buffered_ = 0;  // keptBytes of all streams
};

}  // namespace shadowtap::h2
