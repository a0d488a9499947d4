// What nghttp2 calls back on an HTTP/2 mirror connection: response fields,
// kept response bodies, stream ends; and request bodies and trailers as it
// asks for them (h2_connection_internal.h).
#include <algorithm>
#include <charconv>
#include <cstring>
#include <string>
#include <vector>

#include "base/strings.h"
#include "replay/h2_connection_internal.h"

namespace shadowtap::replay::h2conn {
namespace {

int parseInt(const uint8_t* p, size_t n) {
  int v = 0;
  const auto* s = reinterpret_cast<const char*>(p);
  if (std::from_chars(s, s + n, v).ec != std::errc()) {
    return 0;
  }
  return v;
}

}  // namespace

std::vector<nghttp2_nv> toNv(const std::vector<model::HeaderField>& fields, std::string_view scheme) {
  std::vector<nghttp2_nv> nv;
  nv.reserve(fields.size());
  for (const model::HeaderField& f : fields) {
    const std::string_view value = !scheme.empty() && f.name == ":scheme" ? scheme : std::string_view(f.value);
    nv.push_back({reinterpret_cast<uint8_t*>(const_cast<char*>(f.name.data())),
                  reinterpret_cast<uint8_t*>(const_cast<char*>(value.data())), f.name.size(), value.size(),
                  static_cast<uint8_t>(f.neverIndex ? NGHTTP2_NV_FLAG_NO_INDEX : NGHTTP2_NV_FLAG_NONE)});
  }
  return nv;
}

ssize_t SessionCallbacks::readBody(nghttp2_session* session, int32_t streamId, uint8_t* buf, size_t length,
                                   uint32_t* flags, nghttp2_data_source* source, void*) {
  auto* p = static_cast<Pending*>(source->ptr);
  const std::string& body = p->request.body;
  const size_t n = std::min(length, body.size() - p->bodyOffset);
  std::memcpy(buf, body.data() + p->bodyOffset, n);
  p->bodyOffset += n;
  if (p->bodyOffset == body.size()) {
    *flags |= NGHTTP2_DATA_FLAG_EOF;
    if (!p->request.trailers.empty()) {
      // gRPC and other trailers go out as a final HEADERS with END_STREAM.
      *flags |= NGHTTP2_DATA_FLAG_NO_END_STREAM;
      std::vector<nghttp2_nv> nv = toNv(p->request.trailers);
      if (nghttp2_submit_trailer(session, streamId, nv.data(), nv.size()) != 0) {
        return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE;
      }
    }
  }
  return static_cast<ssize_t>(n);
}

int SessionCallbacks::onHeader(nghttp2_session* session, const nghttp2_frame* frame, const uint8_t* name,
                               size_t namelen, const uint8_t* value, size_t valuelen, uint8_t, void* user) {
  Pending* p = frame->hd.type == NGHTTP2_HEADERS ? pendingOf(session, frame->hd.stream_id) : nullptr;
  if (p == nullptr) {
    return 0;
  }
  const std::string_view n(reinterpret_cast<const char*>(name), namelen);
  if (n == ":status") {
    p->status = parseInt(value, valuelen);  // a final status overwrites interim 1xx ones
    p->finalSeen = p->status >= 200;
  } else if (n == "grpc-status") {
    p->grpcStatus = parseInt(value, valuelen);
  }
  if (p->kept) {
    self(user).keepField(*p, n, std::string_view(reinterpret_cast<const char*>(value), valuelen));
  }
  return 0;
}

int SessionCallbacks::onBeginHeaders(nghttp2_session* session, const nghttp2_frame* frame, void* user) {
  Pending* p = frame->hd.type == NGHTTP2_HEADERS ? pendingOf(session, frame->hd.stream_id) : nullptr;
  if (p == nullptr || !p->kept) {
    return 0;
  }
  if (p->finalSeen) {
    p->inTrailers = true;
    return 0;
  }
  // A new response header block: an interim (1xx) one before it is forgotten.
  p->kept->headers.clear();
  p->kept->headersTruncated = false;
  p->keptHeaderBytes = 0;
  p->kept->tsNs = self(user).nowNs_;
  return 0;
}

int SessionCallbacks::onDataChunk(nghttp2_session* session, uint8_t, int32_t streamId, const uint8_t* data, size_t len,
                                  void* user) {
  // Response bodies are discarded (auto window update keeps them flowing),
  // except the prefix of a kept one; its hash and length cover all of it.
  Pending* p = pendingOf(session, streamId);
  if (p == nullptr || !p->kept) {
    return 0;
  }
  model::Response& r = *p->kept;
  const std::string_view chunk(reinterpret_cast<const char*>(data), len);
  r.bodyLength += len;
  r.bodyHash = base::fnv1a64(chunk, r.bodyHash);
  const size_t max = self(user).s_.responseLimits.maxBodyBytes;
  if (r.body.size() < max) {
    r.body.append(chunk.substr(0, max - r.body.size()));
  }
  return 0;
}

int SessionCallbacks::onFrameRecv(nghttp2_session* session, const nghttp2_frame* frame, void* user) {
  if (frame->hd.type == NGHTTP2_SETTINGS && (frame->hd.flags & NGHTTP2_FLAG_ACK) == 0) {
    self(user).settingsSeen_ = true;
  }
  if ((frame->hd.type == NGHTTP2_HEADERS || frame->hd.type == NGHTTP2_DATA) &&
      (frame->hd.flags & NGHTTP2_FLAG_END_STREAM) != 0) {
    if (Pending* p = pendingOf(session, frame->hd.stream_id); p != nullptr) {
      p->complete = true;
    }
  }
  return 0;
}

int SessionCallbacks::onStreamClose(nghttp2_session*, int32_t streamId, uint32_t errorCode, void* user) {
  H2Connection& c = self(user);
  auto it = c.active_.find(streamId);
  if (it == c.active_.end()) {
    return 0;
  }
  std::unique_ptr<Pending> p = std::move(it->second);
  c.active_.erase(it);
  if (p->complete) {
    c.finish(*p, Outcome::kResponse);
  } else if (p->timedOut) {
    c.finish(*p, Outcome::kResponseTimeout);
  } else {
    c.finish(*p, Outcome::kReset, errorCode);
  }
  return 0;
}

const nghttp2_session_callbacks* SessionCallbacks::get() {
  static nghttp2_session_callbacks* callbacks = [] {
    nghttp2_session_callbacks* cb = nullptr;
    if (nghttp2_session_callbacks_new(&cb) != 0) {
      return static_cast<nghttp2_session_callbacks*>(nullptr);
    }
    nghttp2_session_callbacks_set_on_begin_headers_callback(cb, onBeginHeaders);
    nghttp2_session_callbacks_set_on_header_callback(cb, onHeader);
    nghttp2_session_callbacks_set_on_data_chunk_recv_callback(cb, onDataChunk);
    nghttp2_session_callbacks_set_on_frame_recv_callback(cb, onFrameRecv);
    nghttp2_session_callbacks_set_on_stream_close_callback(cb, onStreamClose);
    return cb;
  }();
  return callbacks;
}

}  // namespace shadowtap::replay::h2conn
