#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <utility>
#include <unordered_map>

#include "model/flow_key.h"
#include "flow/stream_consumer.h"
#include "h2/h2_decoder_stats.h"
#include "model/request.h"
#include "h2/h2c_upgrade.h"
#include "h2/preface.h"

struct nghttp2_session;

namespace shadowtap::h2 {

struct H2DecoderLimits {
  size_t maxConcurrentStreams = 256;          // streams being assembled per connection
  size_t maxHeaderListBytes = 64 << 10;       // per header block, RFC 7541 size (name + value + 32 each)
  size_t maxStreamBodyBytes = 8 << 20;        // DATA payload per stream
  size_t maxConnectionBufferedBytes = 16 << 20;  // headers + bodies of all streams in progress
  // HPACK dynamic table the client's encoder may grow to (it follows the real
  // server's SETTINGS_HEADER_TABLE_SIZE, which we cannot see); bounds the
  // decoder's table memory. A client going beyond it is a decode error.
  uint32_t maxHeaderTableBytes = 64 << 10;
  size_t maxContinuations = 64;  // CONTINUATION frames per header block
};

// Decodes ONE client-to-server HTTP/2 cleartext connection (prior knowledge
// h2c, or the rest of an accepted "Upgrade: h2c") from its first byte, with an
// nghttp2 server session that only observes: nothing it wants to send goes
// anywhere. Each client stream's HEADERS (+CONTINUATION), DATA and trailers
// are assembled and emitted to the sink as one model::Request at END_STREAM.
//
// We see only the client's bytes, so the settings the real server announced
// are unknown. The client may use them (a larger frame size, stream window or
// HPACK table) only after it has acknowledged them, so the decoder keeps one
// SETTINGS of its own "in flight" with permissive values (max frame size,
// max windows, maxHeaderTableBytes), and every SETTINGS ACK the client sends
// applies it. Connection and stream windows are replenished as data arrives,
// so flow control never rejects a legitimate client.
//
// Outcomes and counters depend only on the byte stream, not on how it is cut
// into onData() calls: nghttp2 is fed one frame at a time and what it "sends"
// (RST_STREAM closing a finished stream, its GOAWAY) is drained after every
// complete frame, never in the middle of one. So a connection error nghttp2
// finds inside a frame takes effect where that frame ends (or at onEnd()).
//
// - The stream must start with the client preface; otherwise counted
//   (prefaceMismatch) and skipped whole.
// - Any connection error nghttp2 finds (bad frame, HPACK decoding failed, e.g.
//   because the connection was joined mid-stream) is counted (decodeErrors);
//   the rest of the stream is skipped.
// - onGap(): the HPACK state is lost, so the connection is abandoned (gaps).
// - A client GOAWAY is counted (goaways); once no stream is left after it,
//   the rest is skipped (a server ignores new streams then).
// - Stream-level trouble (RST_STREAM from the client, limits, malformed fields)
//   drops that stream only; see H2DecoderStats for the outcomes.
// Not thread-safe; nghttp2 points back at the decoder, so it does not move.
class H2StreamDecoder final : public flow::StreamConsumer {
 public:
  // `upgrade`: the connection continues an accepted "Upgrade: h2c" request (see
  // h2c_upgrade.h); its request is emitted as stream 1 once the preface is seen.
  H2StreamDecoder(const model::FlowKey& key, uint32_t ruleId, model::RequestSink& sink, const H2DecoderLimits& limits,
                  H2DecoderStats& stats, std::optional<H2cUpgrade> upgrade = std::nullopt);
  ~H2StreamDecoder() override;
  H2StreamDecoder(const H2StreamDecoder&) = delete;
  H2StreamDecoder& operator=(const H2StreamDecoder&) = delete;

  void onData(std::span<const uint8_t> bytes, uint64_t tsNs) override;
  void onGap(uint64_t bytes) override;
  void onEnd(flow::EndReason reason) override;
  size_t bufferedBytes() const override { return buffered_; }

  // True once the connection is given up or ended: later bytes are only counted.
  bool skipping() const { return state_ != State::kPreface && state_ != State::kDecoding; }

 private:
  enum class State : uint8_t { kPreface, kDecoding, kSkipping, kEnded };

  struct Stream {
    model::Request request;
    size_t headerBytes = 0;  // of the header block being received
    size_t buffered = 0;     // counted in buffered_
    bool inTrailers = false;
  };

  // Follows the frame layout of the client stream (preface, then 9-byte
  // header + payload frames) so nghttp2 can be fed up to each frame boundary.
  class FrameCursor {
   public:
    // Moves over `bytes` up to the first frame boundary among them: returns how
    // many were passed and whether a frame (or the preface) ends right there.
    std::pair<size_t, bool> advance(std::span<const uint8_t> bytes);

   private:
    enum class Part : uint8_t { kPreface, kHeader, kPayload };
    Part part_ = Part::kPreface;
    size_t left_ = kClientPreface.size();  // bytes left of the current part
    uint32_t length_ = 0;                  // payload length, from the header's first 3 bytes
  };

  // The nghttp2 callbacks (h2_stream_decoder.cc).
  friend struct DecoderCallbacks;

  bool startSession();
  void submitPermissiveSettings();
  void feed(std::span<const uint8_t> bytes);
  void drainOutput();
  // Drains our output after a complete frame. False when the connection ended
  // there: nghttp2 found a connection error, or client GOAWAY and no stream left.
  bool afterFrame();
  // Drops a stream we still assemble: counts `outcome`, resets it in nghttp2
  // when `reset` (so its further frames are ignored).
  void dropStream(int32_t streamId, std::atomic<uint64_t>& outcome, bool reset);
  void completeStream(int32_t streamId);
  bool addBuffered(Stream& s, size_t n, int32_t streamId);
  void releaseBuffered(Stream& s);
  void giveUp(std::atomic<uint64_t>& reason);
  void abandonStreams();
  void destroySession();

  const model::FlowKey key_;
  const uint32_t ruleId_;
  model::RequestSink& sink_;
  const H2DecoderLimits limits_;
  H2DecoderStats& stats_;
  std::optional<H2cUpgrade> upgrade_;
  nghttp2_session* session_ = nullptr;
  State state_ = State::kPreface;
  size_t prefaceSeen_ = 0;
  bool goawaySent_ = false;  // by nghttp2: it found a connection error
  FrameCursor cursor_;
  uint64_t chunkTs_ = 0;
  size_t buffered_ = 0;
  std::unordered_map<int32_t, Stream> streams_;
};

// Creates one H2StreamDecoder per connection that starts with the preface.
// Owns the shared stats and limits, so it must outlive every decoder it created.
class H2StreamDecoderFactory {
 public:
  explicit H2StreamDecoderFactory(model::RequestSink& sink, H2DecoderLimits limits = {})
      : sink_(sink), limits_(limits) {}

  std::unique_ptr<H2StreamDecoder> create(const model::FlowKey& key, uint32_t ruleId,
                                          std::optional<H2cUpgrade> upgrade = std::nullopt) {
    return std::make_unique<H2StreamDecoder>(key, ruleId, sink_, limits_, stats_, std::move(upgrade));
  }

  const H2DecoderStats& stats() const { return stats_; }
  const H2DecoderLimits& limits() const { return limits_; }

 private:
  model::RequestSink& sink_;
  const H2DecoderLimits limits_;
  H2DecoderStats stats_;
};

}  // namespace shadowtap::h2
