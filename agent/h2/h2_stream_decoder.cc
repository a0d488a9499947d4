#include "h2/h2_stream_decoder.h"

#include <nghttp2/nghttp2.h>

#include <algorithm>
#include <cstring>

#include "base/counters.h"
#include "h2/preface.h"

namespace shadowtap::h2 {
namespace {

constexpr uint32_t kMaxFrameSize = (1U << 24) - 1;  // RFC 9113 6.5.2 upper bound
constexpr size_t kFrameHeaderBytes = 9;             // RFC 9113 4.1


}  // namespace

// nghttp2 calls back into the decoder through these; `user` is the decoder.
struct DecoderCallbacks {
  static H2StreamDecoder& self(void* user) { return *static_cast<H2StreamDecoder*>(user); }

  static int onBeginHeaders(nghttp2_session*, const nghttp2_frame* frame, void* user) {
    H2StreamDecoder& d = self(user);
    if (frame->hd.type != NGHTTP2_HEADERS) {
      return 0;
    }
    const int32_t id = frame->hd.stream_id;
    if (frame->headers.cat == NGHTTP2_HCAT_REQUEST) {
      base::bump(d.stats_.streamsOpened);
      if (d.streams_.size() >= d.limits_.maxConcurrentStreams) {
        base::bump(d.stats_.streamsRefused);
        // nghttp2 resets the stream and still decodes the block, so HPACK stays in sync.
        return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE;
      }
      H2StreamDecoder::Stream& s = d.streams_[id];
      s.request.flow = d.key_;
      s.request.ruleId = d.ruleId_;
      s.request.streamId = id;
      s.request.tsNs = d.chunkTs_;
      return 0;
    }
    auto it = d.streams_.find(id);
    if (it != d.streams_.end()) {
      it->second.inTrailers = true;
      it->second.headerBytes = 0;
    }
    return 0;
  }

  static int onHeader(nghttp2_session*, const nghttp2_frame* frame, const uint8_t* name, size_t namelen,
                      const uint8_t* value, size_t valuelen, uint8_t flags, void* user) {
    H2StreamDecoder& d = self(user);
    auto it = d.streams_.find(frame->hd.stream_id);
    if (frame->hd.type != NGHTTP2_HEADERS || it == d.streams_.end()) {
      return 0;  // a stream we dropped: nghttp2 still decodes the block, which keeps HPACK in sync
    }
    H2StreamDecoder::Stream& s = it->second;
    // RFC 7541 4.1 entry size: what SETTINGS_MAX_HEADER_LIST_SIZE counts.
    s.headerBytes += namelen + valuelen + 32;
    if (s.headerBytes > d.limits_.maxHeaderListBytes) {
      d.dropStream(frame->hd.stream_id, d.stats_.streamsHeadersTooLarge, false);
      return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE;
    }
    if (!d.addBuffered(s, namelen + valuelen, frame->hd.stream_id)) {
      return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE;
    }
    model::HeaderField f{std::string(reinterpret_cast<const char*>(name), namelen),
                  std::string(reinterpret_cast<const char*>(value), valuelen),
                  (flags & NGHTTP2_NV_FLAG_NO_INDEX) != 0};
    (s.inTrailers ? s.request.trailers : s.request.headers).push_back(std::move(f));
    return 0;
  }

  static int onInvalidHeader(nghttp2_session*, const nghttp2_frame* frame, const uint8_t*, size_t,
                             const uint8_t*, size_t, uint8_t, void* user) {
    H2StreamDecoder& d = self(user);
    if (d.streams_.contains(frame->hd.stream_id)) {
      // Mirroring the request without the field would not be the same request.
      d.dropStream(frame->hd.stream_id, d.stats_.streamsMalformed, false);
      return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE;
    }
    return 0;
  }

  static int onDataChunk(nghttp2_session*, uint8_t, int32_t streamId, const uint8_t* data, size_t len,
                         void* user) {
    H2StreamDecoder& d = self(user);
    auto it = d.streams_.find(streamId);
    if (it == d.streams_.end()) {
      return 0;
    }
    H2StreamDecoder::Stream& s = it->second;
    // A DATA frame arrives in as many pieces as onData() calls it spans. When
    // a limit is crossed, the one crossed at the earlier byte decides (the body
    // limit on a tie), so the outcome is the same however the frame was cut.
    const size_t bodyRoom =
        d.limits_.maxStreamBodyBytes - std::min(s.request.body.size(), d.limits_.maxStreamBodyBytes);
    const size_t bufferRoom =
        d.limits_.maxConnectionBufferedBytes - std::min(d.buffered_, d.limits_.maxConnectionBufferedBytes);
    if (len > bodyRoom && bodyRoom <= bufferRoom) {
      d.dropStream(streamId, d.stats_.streamsBodyTooLarge, true);
      return 0;
    }
    if (!d.addBuffered(s, len, streamId)) {
      return 0;
    }
    s.request.body.append(reinterpret_cast<const char*>(data), len);
    return 0;
  }

  static int onFrameRecv(nghttp2_session*, const nghttp2_frame* frame, void* user) {
    H2StreamDecoder& d = self(user);
    const int32_t id = frame->hd.stream_id;
    switch (frame->hd.type) {
      case NGHTTP2_HEADERS:
      case NGHTTP2_DATA:
        if ((frame->hd.flags & NGHTTP2_FLAG_END_STREAM) != 0 && d.streams_.contains(id)) {
          d.completeStream(id);
        } else if (frame->hd.type == NGHTTP2_HEADERS) {
          auto it = d.streams_.find(id);
          if (it != d.streams_.end()) {
            it->second.headerBytes = 0;
          }
        }
        break;
      case NGHTTP2_RST_STREAM:
        if (d.streams_.contains(id)) {
          d.dropStream(id, d.stats_.streamsReset, false);
        }
        break;
      case NGHTTP2_SETTINGS:
        if ((frame->hd.flags & NGHTTP2_FLAG_ACK) != 0) {
          // That ACK applied our in-flight SETTINGS; the real server may send
          // more, each ACKed, so keep one in flight for the next ACK.
          d.submitPermissiveSettings();
        }
        break;
      case NGHTTP2_GOAWAY:
        base::bump(d.stats_.goaways);
        break;
      default:
        break;
    }
    return 0;
  }

  static int onInvalidFrameRecv(nghttp2_session*, const nghttp2_frame* frame, int, void* user) {
    H2StreamDecoder& d = self(user);
    base::bump(d.stats_.invalidFrames);
    // nghttp2 resets the stream, but onStreamClose runs only once that
    // RST_STREAM is "sent" (drainOutput, after the chunk). Decide now, so the
    // outcome does not depend on whether a connection error follows in the
    // same chunk (it would abandon the stream instead).
    if (frame != nullptr && d.streams_.contains(frame->hd.stream_id)) {
      d.dropStream(frame->hd.stream_id, d.stats_.streamsMalformed, false);
    }
    return 0;
  }

  static int onFrameSend(nghttp2_session*, const nghttp2_frame* frame, void* user) {
    // We never submit a GOAWAY: nghttp2 sends one only when it found a
    // connection error. Unlike want_read(), this is not mistaken for the end
    // after a client GOAWAY.
    if (frame->hd.type == NGHTTP2_GOAWAY) {
      self(user).goawaySent_ = true;
    }
    return 0;
  }

  static int onStreamClose(nghttp2_session*, int32_t streamId, uint32_t, void* user) {
    H2StreamDecoder& d = self(user);
    // Streams we complete or drop are gone from streams_ before nghttp2 closes
    // them; one still here was reset by nghttp2 itself (HTTP messaging rule,
    // e.g. content-length not matching the DATA, or a stream protocol error).
    if (d.streams_.contains(streamId)) {
      d.dropStream(streamId, d.stats_.streamsMalformed, false);
    }
    return 0;
  }

  static const nghttp2_session_callbacks* get() {
    static nghttp2_session_callbacks* callbacks = [] {
      nghttp2_session_callbacks* cb = nullptr;
      if (nghttp2_session_callbacks_new(&cb) != 0) {
        return static_cast<nghttp2_session_callbacks*>(nullptr);
      }
      nghttp2_session_callbacks_set_on_begin_headers_callback(cb, onBeginHeaders);
      nghttp2_session_callbacks_set_on_header_callback(cb, onHeader);
      nghttp2_session_callbacks_set_on_invalid_header_callback(cb, onInvalidHeader);
      nghttp2_session_callbacks_set_on_data_chunk_recv_callback(cb, onDataChunk);
      nghttp2_session_callbacks_set_on_frame_recv_callback(cb, onFrameRecv);
      nghttp2_session_callbacks_set_on_invalid_frame_recv_callback(cb, onInvalidFrameRecv);
      nghttp2_session_callbacks_set_on_stream_close_callback(cb, onStreamClose);
      nghttp2_session_callbacks_set_on_frame_send_callback(cb, onFrameSend);
      return cb;
    }();
    return callbacks;
  }
};

H2StreamDecoder::H2StreamDecoder(const model::FlowKey& key, uint32_t ruleId, model::RequestSink& sink,
                                 const H2DecoderLimits& limits, H2DecoderStats& stats,
                                 std::optional<H2cUpgrade> upgrade)
    : key_(key), ruleId_(ruleId), sink_(sink), limits_(limits), stats_(stats), upgrade_(std::move(upgrade)) {
  base::bump(stats_.connections);
  if (upgrade_) {
    base::bump(stats_.upgrades);
  }
  if (!startSession()) {
    giveUp(stats_.decodeErrors);
  }
}

H2StreamDecoder::~H2StreamDecoder() {
  if (state_ == State::kPreface || state_ == State::kDecoding) {
    abandonStreams();
  }
  destroySession();
}

bool H2StreamDecoder::startSession() {
  const nghttp2_session_callbacks* callbacks = DecoderCallbacks::get();
  nghttp2_option* opt = nullptr;
  if (callbacks == nullptr || nghttp2_option_new(&opt) != 0) {
    return false;
  }
  // Streams are closed as soon as we are done with them; keeping closed ones
  // (for the RFC 7540 priority tree) is memory for nothing.
  nghttp2_option_set_no_closed_streams(opt, 1);
  nghttp2_option_set_max_continuations(opt, limits_.maxContinuations);
  // The rapid-reset guard protects a server's work; we do none per stream, and
  // the real server, not we, decides whether the client misbehaves.
  nghttp2_option_set_stream_reset_rate_limit(opt, uint64_t(1) << 40, uint64_t(1) << 20);
  const int rv = nghttp2_session_server_new2(&session_, callbacks, this, opt);
  nghttp2_option_del(opt);
  if (rv != 0) {
    session_ = nullptr;
    return false;
  }
  // The real server's WINDOW_UPDATEs go the other way; never let our
  // connection window run out (auto window update refills it too).
  if (nghttp2_session_set_local_window_size(session_, NGHTTP2_FLAG_NONE, 0, NGHTTP2_MAX_WINDOW_SIZE) != 0) {
    return false;
  }
  submitPermissiveSettings();
  if (upgrade_) {
    const auto* payload = reinterpret_cast<const uint8_t*>(upgrade_->settingsPayload.data());
    if (nghttp2_session_upgrade2(session_, payload, upgrade_->settingsPayload.size(),
                                 upgrade_->headRequest ? 1 : 0, nullptr) != 0) {
      return false;
    }
    // Stream 1 is half-closed (remote): the request came as HTTP/1.1. Close it
    // in nghttp2 now; its request is emitted when the preface confirms the upgrade.
    nghttp2_submit_rst_stream(session_, NGHTTP2_FLAG_NONE, 1, NGHTTP2_NO_ERROR);
  }
  drainOutput();
  return true;
}

void H2StreamDecoder::submitPermissiveSettings() {
  const nghttp2_settings_entry iv[] = {
      {NGHTTP2_SETTINGS_HEADER_TABLE_SIZE, limits_.maxHeaderTableBytes},
      {NGHTTP2_SETTINGS_INITIAL_WINDOW_SIZE, static_cast<uint32_t>(NGHTTP2_MAX_WINDOW_SIZE)},
      {NGHTTP2_SETTINGS_MAX_FRAME_SIZE, kMaxFrameSize},
  };
  nghttp2_submit_settings(session_, NGHTTP2_FLAG_NONE, iv, std::size(iv));
}

void H2StreamDecoder::drainOutput() {
  // Whatever the server session wants to send (SETTINGS, ACKs, WINDOW_UPDATE,
  // RST_STREAM, GOAWAY) is dropped: we only observe. Sending it is what makes
  // nghttp2 apply it locally (close streams, reset windows).
  const uint8_t* data = nullptr;
  while (nghttp2_session_mem_send(session_, &data) > 0) {
  }
}

void H2StreamDecoder::onData(std::span<const uint8_t> bytes, uint64_t tsNs) {
  if (bytes.empty()) {
    return;
  }
  if (state_ == State::kSkipping || state_ == State::kEnded) {
    base::bump(stats_.bytesSkipped, bytes.size());
    return;
  }
  chunkTs_ = tsNs;
  if (state_ == State::kPreface) {
    const size_t n = std::min(bytes.size(), kClientPreface.size() - prefaceSeen_);
    if (std::memcmp(bytes.data(), kClientPreface.data() + prefaceSeen_, n) != 0) {
      base::bump(stats_.bytesSkipped, bytes.size());
      giveUp(stats_.prefaceMismatch);
      return;
    }
    prefaceSeen_ += n;
    if (prefaceSeen_ == kClientPreface.size()) {
      state_ = State::kDecoding;
      if (upgrade_) {
        model::Request r = std::move(upgrade_->request);
        r.flow = key_;
        r.ruleId = ruleId_;
        r.streamId = 1;
        r.finishHttp2();
        base::bump(stats_.streamsOpened);
        base::bump(stats_.requests);
        if (!r.trailers.empty()) {
          base::bump(stats_.trailers);
        }
        upgrade_.reset();
        sink_.onRequest(std::move(r));
      }
    }
  }
  feed(bytes);
}

void H2StreamDecoder::feed(std::span<const uint8_t> bytes) {
  // One nghttp2_session_mem_recv per frame, and our output drained after each
  // complete frame: nghttp2 closes a stream (the RST_STREAM of a finished or
  // dropped one) or ends the session (its GOAWAY) only once that is "sent", so
  // draining only between onData() calls would make what the next frame meets
  // depend on where the stream was cut. E.g. DATA after END_STREAM is a
  // connection error while the finished stream's RST_STREAM is still queued,
  // and ignored once it went out.
  while (!bytes.empty()) {
    const auto [n, frameEnds] = cursor_.advance(bytes);
    const ssize_t rv = nghttp2_session_mem_recv(session_, bytes.data(), n);
    base::bump(stats_.bytesDecoded, n);
    bytes = bytes.subspan(n);
    if (rv < 0) {
      base::bump(stats_.bytesSkipped, bytes.size());
      giveUp(stats_.decodeErrors);
      return;
    }
    if (frameEnds && !afterFrame()) {
      base::bump(stats_.bytesSkipped, bytes.size());
      return;
    }
  }
}

bool H2StreamDecoder::afterFrame() {
  drainOutput();
  if (goawaySent_) {
    // nghttp2 found a connection error and sent (to nowhere) its GOAWAY.
    giveUp(stats_.decodeErrors);
    return false;
  }
  if (nghttp2_session_want_read(session_) == 0) {
    // The client sent GOAWAY and no stream is left: nghttp2 (like a real
    // server) ignores any new stream from here on. Orderly end.
    abandonStreams();
    destroySession();
    state_ = State::kSkipping;
    return false;
  }
  return true;
}

std::pair<size_t, bool> H2StreamDecoder::FrameCursor::advance(std::span<const uint8_t> bytes) {
  size_t used = 0;
  while (used < bytes.size()) {
    const size_t take = std::min(left_, bytes.size() - used);
    if (part_ == Part::kHeader) {
      // Header bytes 0..2 are the 24-bit payload length.
      for (size_t i = 0; i < take; ++i) {
        const size_t pos = kFrameHeaderBytes - left_ + i;
        if (pos < 3) {
          length_ = (length_ << 8) | bytes[used + i];
        }
      }
    }
    used += take;
    left_ -= take;
    if (left_ > 0) {
      break;
    }
    if (part_ == Part::kHeader && length_ > 0) {
      part_ = Part::kPayload;
      left_ = length_;
      continue;
    }
    // The preface, or a frame (header and payload), ends here.
    part_ = Part::kHeader;
    left_ = kFrameHeaderBytes;
    length_ = 0;
    return {used, true};
  }
  return {used, false};
}

void H2StreamDecoder::onGap(uint64_t) {
  if (state_ == State::kPreface || state_ == State::kDecoding) {
    giveUp(stats_.gaps);
  }
}

void H2StreamDecoder::onEnd(flow::EndReason) {
  // A connection error nghttp2 found in a last, incomplete frame shows only
  // once its GOAWAY is drained; whether it counts must not depend on the cuts.
  if (state_ == State::kDecoding) {
    afterFrame();
  }
  if (state_ == State::kPreface || state_ == State::kDecoding) {
    abandonStreams();
    destroySession();
  }
  state_ = State::kEnded;
}

bool H2StreamDecoder::addBuffered(Stream& s, size_t n, int32_t streamId) {
  if (buffered_ + n > limits_.maxConnectionBufferedBytes) {
    dropStream(streamId, stats_.streamsBufferFull, true);
    return false;
  }
  s.buffered += n;
  buffered_ += n;
  stats_.bufferedBytes.fetch_add(static_cast<int64_t>(n), std::memory_order_relaxed);
  return true;
}

void H2StreamDecoder::releaseBuffered(Stream& s) {
  buffered_ -= s.buffered;
  stats_.bufferedBytes.fetch_sub(static_cast<int64_t>(s.buffered), std::memory_order_relaxed);
  s.buffered = 0;
}

void H2StreamDecoder::dropStream(int32_t streamId, std::atomic<uint64_t>& outcome, bool reset) {
  auto it = streams_.find(streamId);
  if (it == streams_.end()) {
    return;
  }
  releaseBuffered(it->second);
  streams_.erase(it);
  base::bump(outcome);
  if (reset && session_ != nullptr) {
    // Its further DATA is then ignored by nghttp2 (flow control still counted).
    nghttp2_submit_rst_stream(session_, NGHTTP2_FLAG_NONE, streamId, NGHTTP2_CANCEL);
  }
}

void H2StreamDecoder::completeStream(int32_t streamId) {
  auto it = streams_.find(streamId);
  releaseBuffered(it->second);
  model::Request r = std::move(it->second.request);
  streams_.erase(it);
  r.finishHttp2();
  base::bump(stats_.requests);
  if (!r.trailers.empty()) {
    base::bump(stats_.trailers);
  }
  // The real server answers; our session must forget the stream all the same.
  nghttp2_submit_rst_stream(session_, NGHTTP2_FLAG_NONE, streamId, NGHTTP2_NO_ERROR);
  sink_.onRequest(std::move(r));
}

void H2StreamDecoder::giveUp(std::atomic<uint64_t>& reason) {
  base::bump(reason);
  abandonStreams();
  destroySession();
  state_ = State::kSkipping;
}

void H2StreamDecoder::abandonStreams() {
  base::bump(stats_.streamsAbandoned, streams_.size());
  for (auto& [id, s] : streams_) {
    releaseBuffered(s);
  }
  streams_.clear();
}

void H2StreamDecoder::destroySession() {
  if (session_ != nullptr) {
    nghttp2_session_del(session_);
    session_ = nullptr;
  }
}

}  // namespace shadowtap::h2
