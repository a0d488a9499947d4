#include "h2/h2_mirror_client.h"

#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <nghttp2/nghttp2.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <cstring>
#include <vector>

#include "base/strings.h"

namespace shadowtap::h2 {
namespace {

int parseInt(const uint8_t* p, size_t n) {
  int v = 0;
  const auto* s = reinterpret_cast<const char*>(p);
  if (std::from_chars(s, s + n, v).ec != std::errc()) {
    return 0;
  }
  return v;
}

std::vector<nghttp2_nv> toNv(const std::vector<model::HeaderField>& fields) {
  std::vector<nghttp2_nv> nv;
  nv.reserve(fields.size());
  for (const model::HeaderField& f : fields) {
    nv.push_back({reinterpret_cast<uint8_t*>(const_cast<char*>(f.name.data())),
                  reinterpret_cast<uint8_t*>(const_cast<char*>(f.value.data())), f.name.size(), f.value.size(),
                  static_cast<uint8_t>(f.neverIndex ? NGHTTP2_NV_FLAG_NO_INDEX : NGHTTP2_NV_FLAG_NONE)});
  }
  return nv;
}

}  // namespace

struct ClientCallbacks {
  static H2MirrorClient& self(void* user) { return *static_cast<H2MirrorClient*>(user); }

  static ssize_t readBody(nghttp2_session* session, int32_t streamId, uint8_t* buf, size_t length,
                          uint32_t* flags, nghttp2_data_source* source, void*) {
    auto* p = static_cast<H2MirrorClient::Pending*>(source->ptr);
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

  static int onHeader(nghttp2_session* session, const nghttp2_frame* frame, const uint8_t* name, size_t namelen,
                      const uint8_t* value, size_t valuelen, uint8_t, void* user) {
    if (frame->hd.type != NGHTTP2_HEADERS) {
      return 0;
    }
    auto* p = static_cast<H2MirrorClient::Pending*>(nghttp2_session_get_stream_user_data(session, frame->hd.stream_id));
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
      keepField(*p, n, std::string_view(reinterpret_cast<const char*>(value), valuelen), self(user).opts_);
    }
    return 0;
  }

  static void keepField(H2MirrorClient::Pending& p, std::string_view name, std::string_view value,
                        const H2ClientOptions& opts) {
    model::Response& r = *p.kept;
    if ((!name.empty() && name.front() == ':') || r.headersTruncated || (p.inTrailers && !opts.keepTrailers)) {
      return;
    }
    const size_t bytes = name.size() + value.size() + model::kH2FieldOverhead;  // as the primary's decoder
    if (p.keptHeaderBytes + bytes > opts.responseLimits.maxHeaderBytes) {
      r.headersTruncated = true;  // flagged so the comparator knows later fields are missing
      return;
    }
    p.keptHeaderBytes += bytes;
    r.headers.push_back({std::string(name), std::string(value)});
  }

  static int onBeginHeaders(nghttp2_session* session, const nghttp2_frame* frame, void* user) {
    if (frame->hd.type != NGHTTP2_HEADERS) {
      return 0;
    }
    auto* p = static_cast<H2MirrorClient::Pending*>(nghttp2_session_get_stream_user_data(session, frame->hd.stream_id));
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

  static int onDataChunk(nghttp2_session* session, uint8_t, int32_t streamId, const uint8_t* data, size_t len,
                         void* user) {
    // Response bodies are discarded (auto window update keeps them flowing),
    // except the prefix of a kept one; its hash and length cover all of it.
    auto* p = static_cast<H2MirrorClient::Pending*>(nghttp2_session_get_stream_user_data(session, streamId));
    if (p == nullptr || !p->kept) {
      return 0;
    }
    model::Response& r = *p->kept;
    const std::string_view chunk(reinterpret_cast<const char*>(data), len);
    r.bodyLength += len;
    r.bodyHash = base::fnv1a64(chunk, r.bodyHash);
    const size_t max = self(user).opts_.responseLimits.maxBodyBytes;
    if (r.body.size() < max) {
      r.body.append(chunk.substr(0, max - r.body.size()));
    }
    return 0;
  }

  static int onFrameRecv(nghttp2_session* session, const nghttp2_frame* frame, void* user) {
    if (frame->hd.type == NGHTTP2_SETTINGS && (frame->hd.flags & NGHTTP2_FLAG_ACK) == 0) {
      self(user).settingsSeen_ = true;
    }
    if ((frame->hd.type == NGHTTP2_HEADERS || frame->hd.type == NGHTTP2_DATA) &&
        (frame->hd.flags & NGHTTP2_FLAG_END_STREAM) != 0) {
      auto* p =
          static_cast<H2MirrorClient::Pending*>(nghttp2_session_get_stream_user_data(session, frame->hd.stream_id));
      if (p != nullptr) {
        p->complete = true;
      }
    }
    return 0;
  }

  static int onStreamClose(nghttp2_session*, int32_t streamId, uint32_t errorCode, void* user) {
    H2MirrorClient& c = self(user);
    auto it = c.active_.find(streamId);
    if (it == c.active_.end()) {
      return 0;
    }
    std::unique_ptr<H2MirrorClient::Pending> p = std::move(it->second);
    c.active_.erase(it);
    H2Outcome o;
    o.status = p->status;
    o.grpcStatus = p->grpcStatus;
    if (p->complete) {
      o.kind = H2Outcome::Kind::kResponse;
      if (p->kept) {
        p->kept->status = p->status;
        p->kept->bodyTruncated = p->kept->body.size() < p->kept->bodyLength;
        o.response = p->kept.get();
      }
    } else if (p->timedOut) {
      o.kind = H2Outcome::Kind::kTimeout;
    } else {
      o.kind = H2Outcome::Kind::kStreamReset;
      o.errorCode = errorCode;
    }
    c.finish(*p, o);
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
      nghttp2_session_callbacks_set_on_data_chunk_recv_callback(cb, onDataChunk);
      nghttp2_session_callbacks_set_on_frame_recv_callback(cb, onFrameRecv);
      nghttp2_session_callbacks_set_on_stream_close_callback(cb, onStreamClose);
      return cb;
    }();
    return callbacks;
  }
};

std::unique_ptr<H2MirrorClient> H2MirrorClient::connect(const sockaddr_storage& addr, const H2ClientOptions& opts,
                                                        uint64_t nowNs, int* err) {
  const int fd = ::socket(addr.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) {
    *err = errno;
    return nullptr;
  }
  const int one = 1;
  setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
  const socklen_t len = addr.ss_family == AF_INET6 ? sizeof(sockaddr_in6) : sizeof(sockaddr_in);
  if (::connect(fd, reinterpret_cast<const sockaddr*>(&addr), len) != 0 && errno != EINPROGRESS) {
    *err = errno;
    ::close(fd);
    return nullptr;
  }
  std::unique_ptr<H2MirrorClient> c(new H2MirrorClient(fd, opts, nowNs));
  if (!c->startSession()) {
    *err = ENOMEM;
    return nullptr;
  }
  return c;
}

H2MirrorClient::H2MirrorClient(int fd, const H2ClientOptions& opts, uint64_t nowNs)
    : opts_(opts), fd_(fd), connectStartNs_(nowNs), nowNs_(nowNs) {}

H2MirrorClient::~H2MirrorClient() {
  close(H2Outcome::Kind::kShutdown);
  if (session_ != nullptr) {
    nghttp2_session_del(session_);
  }
}

bool H2MirrorClient::startSession() {
  const nghttp2_session_callbacks* cb = ClientCallbacks::get();
  if (cb == nullptr || nghttp2_session_client_new(&session_, cb, this) != 0) {
    session_ = nullptr;
    return false;
  }
  // Large windows so response bodies we discard never stall the server.
  const nghttp2_settings_entry iv[] = {
      {NGHTTP2_SETTINGS_ENABLE_PUSH, 0},
      {NGHTTP2_SETTINGS_INITIAL_WINDOW_SIZE, 1U << 24},
  };
  nghttp2_submit_settings(session_, NGHTTP2_FLAG_NONE, iv, std::size(iv));
  nghttp2_session_set_local_window_size(session_, NGHTTP2_FLAG_NONE, 0, 1 << 26);
  return true;
}

bool H2MirrorClient::wantsWrite() const {
  if (closed_) {
    return false;
  }
  return !connected_ || !outBuf_.empty() || nghttp2_session_want_write(session_) != 0;
}

bool H2MirrorClient::submit(model::Request&& request, H2Callback done, uint64_t nowNs) {
  if (!canAccept()) {
    return false;
  }
  auto p = std::make_unique<Pending>();
  p->request = std::move(request);
  p->done = std::move(done);
  if (opts_.keepResponses && p->request.exchangeId != 0) {
    p->kept = std::make_unique<model::Response>();
    p->kept->bodyHash = base::kFnv1aSeed;
  }
  queue_.push_back(std::move(p));
  if (connected_) {
    startQueued(nowNs);
  }
  return true;
}

void H2MirrorClient::startQueued(uint64_t nowNs) {
  if (!settingsSeen_) {
    // A server with a lower SETTINGS_MAX_CONCURRENT_STREAMS refuses streams
    // opened before its SETTINGS arrive; one round trip is cheaper.
    return;
  }
  const uint32_t remoteMax = nghttp2_session_get_remote_settings(session_, NGHTTP2_SETTINGS_MAX_CONCURRENT_STREAMS);
  const size_t limit = std::min<size_t>(opts_.maxConcurrentStreams, remoteMax);
  while (!queue_.empty() && active_.size() < limit && !closed_) {
    std::unique_ptr<Pending> p = std::move(queue_.front());
    queue_.pop_front();
    std::vector<nghttp2_nv> nv = toNv(p->request.headers);
    nghttp2_data_provider dp{};
    dp.source.ptr = p.get();
    dp.read_callback = ClientCallbacks::readBody;
    const bool hasData = !p->request.body.empty() || !p->request.trailers.empty();
    p->submittedNs = nowNs;
    const int32_t id =
        nghttp2_submit_request(session_, nullptr, nv.data(), nv.size(), hasData ? &dp : nullptr, p.get());
    if (id < 0) {
      H2Outcome o;
      o.kind = H2Outcome::Kind::kRejected;
      finish(*p, o);
      continue;
    }
    active_.emplace(id, std::move(p));
  }
}

void H2MirrorClient::finish(Pending& p, const H2Outcome& outcome) {
  H2Outcome o = outcome;
  o.latencyNs = p.submittedNs != 0 && nowNs_ > p.submittedNs ? nowNs_ - p.submittedNs : 0;
  H2Callback done = std::move(p.done);
  done(o);
}

void H2MirrorClient::flush() {
  while (!closed_) {
    if (outBuf_.empty()) {
      const uint8_t* data = nullptr;
      const ssize_t n = nghttp2_session_mem_send(session_, &data);
      if (n < 0) {
        close(H2Outcome::Kind::kConnectionError);
        return;
      }
      if (n == 0) {
        return;
      }
      outBuf_.assign(reinterpret_cast<const char*>(data), static_cast<size_t>(n));
    }
    const ssize_t w = ::send(fd_, outBuf_.data(), outBuf_.size(), MSG_NOSIGNAL);
    if (w < 0) {
      if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR) {
        return;
      }
      close(H2Outcome::Kind::kConnectionError);
      return;
    }
    bytesSent_ += static_cast<uint64_t>(w);
    outBuf_.erase(0, static_cast<size_t>(w));
    if (!outBuf_.empty()) {
      return;
    }
  }
}

void H2MirrorClient::afterIo(uint64_t nowNs) {
  if (closed_) {
    return;
  }
  startQueued(nowNs);
  flush();
  if (!closed_ && nghttp2_session_want_read(session_) == 0 && nghttp2_session_want_write(session_) == 0 &&
      outBuf_.empty()) {
    // GOAWAY exchanged and no stream left: this connection is done.
    close(H2Outcome::Kind::kConnectionError);
  }
}

void H2MirrorClient::onWritable(uint64_t nowNs) {
  nowNs_ = nowNs;
  if (closed_) {
    return;
  }
  if (!connected_) {
    int soErr = 0;
    socklen_t len = sizeof(soErr);
    if (getsockopt(fd_, SOL_SOCKET, SO_ERROR, &soErr, &len) != 0 || soErr != 0) {
      close(H2Outcome::Kind::kConnectFailed);
      return;
    }
    connected_ = true;
  }
  afterIo(nowNs);
}

void H2MirrorClient::onReadable(uint64_t nowNs) {
  nowNs_ = nowNs;
  if (closed_) {
    return;
  }
  uint8_t buf[16384];
  for (;;) {
    const ssize_t n = ::recv(fd_, buf, sizeof(buf), 0);
    if (n > 0) {
      if (!connected_) {
        connected_ = true;  // data before the writable event: the connect has succeeded
      }
      bytesReceived_ += static_cast<uint64_t>(n);
      if (nghttp2_session_mem_recv(session_, buf, static_cast<size_t>(n)) < 0) {
        close(H2Outcome::Kind::kConnectionError);
        return;
      }
      continue;
    }
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
      break;
    }
    if (n < 0 && errno == EINTR) {
      continue;
    }
    close(connected_ ? H2Outcome::Kind::kConnectionError : H2Outcome::Kind::kConnectFailed);
    return;
  }
  afterIo(nowNs);
}

void H2MirrorClient::checkTimeouts(uint64_t nowNs) {
  nowNs_ = nowNs;
  if (closed_) {
    return;
  }
  if (!connected_) {
    if (nowNs - connectStartNs_ > opts_.connectTimeoutNs) {
      close(H2Outcome::Kind::kConnectFailed);
    }
    return;
  }
  bool reset = false;
  for (auto& [id, p] : active_) {
    if (!p->timedOut && nowNs - p->submittedNs > opts_.responseTimeoutNs) {
      p->timedOut = true;
      nghttp2_submit_rst_stream(session_, NGHTTP2_FLAG_NONE, id, NGHTTP2_CANCEL);
      reset = true;
    }
  }
  if (reset) {
    afterIo(nowNs);
  }
}

void H2MirrorClient::close(H2Outcome::Kind kind) {
  if (closed_) {
    return;
  }
  closed_ = true;
  if (fd_ >= 0) {
    ::close(fd_);
    fd_ = -1;
  }
  H2Outcome o;
  o.kind = kind;
  // Callbacks run with the maps already detached, so none can see a half-closed client.
  auto active = std::move(active_);
  active_.clear();
  auto queue = std::move(queue_);
  queue_.clear();
  for (auto& [id, p] : active) {
    H2Outcome po = o;
    po.status = p->status;
    po.grpcStatus = p->grpcStatus;
    finish(*p, po);
  }
  for (auto& p : queue) {
    finish(*p, o);
  }
}

}  // namespace shadowtap::h2
