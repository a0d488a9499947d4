#include "h2_wire.h"

#include <algorithm>
#include <cstring>
#include <memory>
#include <stdexcept>

namespace shadowtap::h2::test {

std::vector<nghttp2_nv> toNv(const std::vector<model::HeaderField>& fields) {
  std::vector<nghttp2_nv> nv;
  for (const model::HeaderField& f : fields) {
    nv.push_back({reinterpret_cast<uint8_t*>(const_cast<char*>(f.name.data())),
                  reinterpret_cast<uint8_t*>(const_cast<char*>(f.value.data())), f.name.size(), f.value.size(),
                  static_cast<uint8_t>(f.neverIndex ? NGHTTP2_NV_FLAG_NO_INDEX : NGHTTP2_NV_FLAG_NONE)});
  }
  return nv;
}

namespace {

// Client DATA frames as large as the server allows (nghttp2 stops at 16 KiB otherwise).
ssize_t readLength(nghttp2_session* session, uint8_t, int32_t, int32_t window, int32_t, uint32_t maxFrame, void*) {
  (void)session;
  return std::min<ssize_t>(window, maxFrame);
}

// The test server answers every complete request with an empty 200, so the
// client's streams close as on a real connection.
int serverFrameRecv(nghttp2_session* session, const nghttp2_frame* frame, void*) {
  if ((frame->hd.type == NGHTTP2_HEADERS || frame->hd.type == NGHTTP2_DATA) &&
      (frame->hd.flags & NGHTTP2_FLAG_END_STREAM) != 0) {
    const nghttp2_nv status[] = {{reinterpret_cast<uint8_t*>(const_cast<char*>(":status")),
                                  reinterpret_cast<uint8_t*>(const_cast<char*>("200")), 7, 3, NGHTTP2_NV_FLAG_NONE}};
    nghttp2_submit_response(session, frame->hd.stream_id, status, 1, nullptr);
  }
  return 0;
}

}  // namespace

WireClient::WireClient(bool withServer, ServerSettings server, const std::string* upgradeSettings) {
  nghttp2_session_callbacks* cb = nullptr;
  nghttp2_session_callbacks_new(&cb);
  nghttp2_session_callbacks_set_data_source_read_length_callback(cb, readLength);
  nghttp2_session_client_new(&client_, cb, this);
  nghttp2_session_callbacks_set_on_frame_recv_callback(cb, serverFrameRecv);
  if (withServer) {
    nghttp2_session_server_new(&server_, cb, this);
    const nghttp2_settings_entry iv[] = {
        {NGHTTP2_SETTINGS_MAX_FRAME_SIZE, server.maxFrameSize},
        {NGHTTP2_SETTINGS_INITIAL_WINDOW_SIZE, server.initialWindowSize},
        {NGHTTP2_SETTINGS_MAX_CONCURRENT_STREAMS, server.maxConcurrentStreams},
    };
    nghttp2_submit_settings(server_, NGHTTP2_FLAG_NONE, iv, 3);
    nghttp2_session_set_local_window_size(server_, NGHTTP2_FLAG_NONE, 0, 1 << 30);
  }
  nghttp2_session_callbacks_del(cb);
  if (upgradeSettings != nullptr) {
    nghttp2_session_upgrade2(client_, reinterpret_cast<const uint8_t*>(upgradeSettings->data()),
                             upgradeSettings->size(), 0, nullptr);
    if (server_ != nullptr) {
      nghttp2_session_upgrade2(server_, reinterpret_cast<const uint8_t*>(upgradeSettings->data()),
                               upgradeSettings->size(), 0, nullptr);
    }
  } else {
    nghttp2_submit_settings(client_, NGHTTP2_FLAG_NONE, nullptr, 0);
  }
}

WireClient::~WireClient() {
  nghttp2_session_del(client_);
  if (server_ != nullptr) {
    nghttp2_session_del(server_);
  }
}

ssize_t WireClient::readBody(nghttp2_session* session, int32_t streamId, uint8_t* buf, size_t length,
                             uint32_t* flags, nghttp2_data_source* source, void*) {
  Body& b = *static_cast<Body*>(source->ptr);
  size_t n = std::min(length, b.data.size() - b.offset);
  if (b.chunk > 0) {
    n = std::min(n, b.chunk);
  }
  std::memcpy(buf, b.data.data() + b.offset, n);
  b.offset += n;
  if (b.offset == b.data.size()) {
    if (!b.endStream) {
      // Leave the stream open: the test ends or resets it later.
      *flags |= NGHTTP2_DATA_FLAG_EOF | NGHTTP2_DATA_FLAG_NO_END_STREAM;
    } else if (!b.trailers.empty()) {
      *flags |= NGHTTP2_DATA_FLAG_EOF | NGHTTP2_DATA_FLAG_NO_END_STREAM;
      auto nv = toNv(b.trailers);
      nghttp2_submit_trailer(session, streamId, nv.data(), nv.size());
    } else {
      *flags |= NGHTTP2_DATA_FLAG_EOF;
    }
  }
  return static_cast<ssize_t>(n);
}

int32_t WireClient::submit(const RequestSpec& spec) {
  auto nv = toNv(spec.headers);
  if (spec.body.empty() && spec.trailers.empty() && spec.endStream) {
    return nghttp2_submit_request(client_, nullptr, nv.data(), nv.size(), nullptr, nullptr);
  }
  auto body = std::make_unique<Body>();
  body->data = spec.body;
  body->chunk = spec.dataChunk;
  body->trailers = spec.trailers;
  body->endStream = spec.endStream;
  nghttp2_data_provider dp{};
  dp.source.ptr = body.get();
  dp.read_callback = readBody;
  bodies_.push_back(std::move(body));
  return nghttp2_submit_request(client_, nullptr, nv.data(), nv.size(), &dp, nullptr);
}

void WireClient::rst(int32_t streamId) { nghttp2_submit_rst_stream(client_, NGHTTP2_FLAG_NONE, streamId, NGHTTP2_CANCEL); }

void WireClient::ping() { nghttp2_submit_ping(client_, NGHTTP2_FLAG_NONE, nullptr); }

void WireClient::goaway() { nghttp2_submit_goaway(client_, NGHTTP2_FLAG_NONE, 0, NGHTTP2_NO_ERROR, nullptr, 0); }

void WireClient::pump() {
  for (bool progress = true; progress;) {
    progress = false;
    const uint8_t* data = nullptr;
    ssize_t n;
    while ((n = nghttp2_session_mem_send(client_, &data)) > 0) {
      progress = true;
      captured_.append(reinterpret_cast<const char*>(data), static_cast<size_t>(n));
      if (server_ != nullptr && nghttp2_session_mem_recv(server_, data, static_cast<size_t>(n)) < 0) {
        throw std::runtime_error("test server session rejected the client's bytes");
      }
    }
    if (server_ != nullptr) {
      while ((n = nghttp2_session_mem_send(server_, &data)) > 0) {
        progress = true;
        if (nghttp2_session_mem_recv(client_, data, static_cast<size_t>(n)) < 0) {
          throw std::runtime_error("test client session rejected the server's bytes");
        }
      }
    }
  }
}

std::vector<FrameInfo> frames(const std::string& b) {
  std::vector<FrameInfo> out;
  size_t p = b.compare(0, 24, NGHTTP2_CLIENT_MAGIC) == 0 ? 24 : 0;
  while (p + 9 <= b.size()) {
    const auto* u = reinterpret_cast<const uint8_t*>(b.data() + p);
    FrameInfo f{};
    f.length = (uint32_t(u[0]) << 16) | (uint32_t(u[1]) << 8) | u[2];
    f.type = u[3];
    f.flags = u[4];
    f.streamId = static_cast<int32_t>(((uint32_t(u[5]) & 0x7f) << 24) | (uint32_t(u[6]) << 16) |
                                      (uint32_t(u[7]) << 8) | u[8]);
    out.push_back(f);
    p += 9 + f.length;
  }
  return out;
}

}  // namespace shadowtap::h2::test
