// The h2c connection kind: HTTP/2 cleartext with prior knowledge over nghttp2
// client sessions. Each request becomes a new stream with exactly its header
// fields (in order, never-index flags kept), body and trailers; the response is
// read and discarded (kept in compare mode).
#include <errno.h>
#include <netinet/in.h>
#include <nghttp2/nghttp2.h>
#include <sys/epoll.h>
#include <sys/socket.h>

#include <algorithm>
#include <charconv>
#include <cstring>
#include <deque>
#include <string>
#include <unordered_map>
#include <vector>

#include "base/strings.h"
#include "replay/connection.h"
#include "replay/mirror_socket.h"

namespace shadowtap::replay {
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

// One request taken by the connection, queued for a stream slot or on a stream.
struct Pending {
  model::Request request;
  uint64_t takenNs = 0;      // by the connection (send)
  uint64_t submittedNs = 0;  // to nghttp2
  size_t bodyOffset = 0;
  int status = 0;
  int grpcStatus = -1;
  bool complete = false;
  bool timedOut = false;
  // Compare mode only (null otherwise).
  std::unique_ptr<model::Response> kept;
  size_t keptHeaderBytes = 0;
  bool finalSeen = false;   // a final (non-1xx) :status arrived
  bool inTrailers = false;  // the current header block is the trailers
};

class H2Connection final : public Connection {
 public:
  H2Connection(const ConnectionSettings& settings, ConnectionEvents& events) : s_(settings), events_(events) {}
  ~H2Connection() override {
    close(Outcome::kDroppedShutdown);
    if (session_ != nullptr) {
      nghttp2_session_del(session_);
    }
  }

  int start(const sockaddr_storage& addr, uint64_t nowNs);

  int fd() const override { return socket_.fd(); }
  bool wantsWrite() const override {
    return !closed_ && (!connected_ || !outBuf_.empty() || nghttp2_session_want_write(session_) != 0);
  }
  bool connected() const override { return connected_; }
  bool closed() const override { return closed_; }
  int connectError() const override { return connectError_; }
  size_t room() const override;
  size_t load() const override { return active_.size() + queue_.size(); }
  size_t onWire() const override { return active_.size(); }
  bool send(model::Request&& request, uint64_t nowNs) override;
  void onEvents(uint32_t events, uint64_t nowNs) override {
    if ((events & (EPOLLOUT | EPOLLERR | EPOLLHUP)) != 0) {
      onWritable(nowNs);
    }
    if ((events & (EPOLLIN | EPOLLERR | EPOLLHUP)) != 0) {
      onReadable(nowNs);
    }
  }
  void checkDeadlines(uint64_t nowNs) override;
  uint64_t nextDeadlineNs() const override;
  // Streams that timed out end as kResponseTimeout whatever `outcome` is.
  void close(Outcome outcome) override;

 private:
  friend struct SessionCallbacks;

  // A queued request's clock runs from when it was taken, but not before the
  // connect completed: the connect has its own timeout.
  uint64_t queuedDeadlineNs(const Pending& p) const {
    return std::max(p.takenNs, connectedNs_) + s_.responseTimeoutNs;
  }
  // A stream's response deadline; once it timed out, the end of the grace its
  // RST_STREAM gets to go out (see expireStreams).
  uint64_t streamDeadlineNs(const Pending& p) const {
    return p.submittedNs + (p.timedOut ? 2 : 1) * s_.responseTimeoutNs;
  }
  // Deadlines of queued requests (false when that closed the connection) and of streams.
  bool expireQueued(uint64_t nowNs);
  void expireStreams(uint64_t nowNs);
  void markConnected(uint64_t nowNs) {
    if (!connected_) {
      connected_ = true;
      connectedNs_ = nowNs;
    }
  }
  void onWritable(uint64_t nowNs);
  void onReadable(uint64_t nowNs);
  void startQueued(uint64_t nowNs);
  void flush();
  void afterIo(uint64_t nowNs);
  void finish(Pending& p, Outcome outcome, uint32_t errorCode = 0);
  void keepField(Pending& p, std::string_view name, std::string_view value);

  const ConnectionSettings& s_;
  ConnectionEvents& events_;
  MirrorSocket socket_;
  nghttp2_session* session_ = nullptr;
  bool connected_ = false;
  bool closed_ = false;
  bool settingsSeen_ = false;  // the server's first SETTINGS arrived
  int connectError_ = 0;
  uint64_t connectDeadlineNs_ = 0;
  uint64_t connectedNs_ = 0;
  uint64_t nowNs_ = 0;
  std::string outBuf_;  // bytes nghttp2 produced that the socket did not take yet
  std::deque<std::unique_ptr<Pending>> queue_;
  std::unordered_map<int32_t, std::unique_ptr<Pending>> active_;
};

// nghttp2's callbacks, with access to the connection.
struct SessionCallbacks {
  static H2Connection& self(void* user) { return *static_cast<H2Connection*>(user); }
  static Pending* pendingOf(nghttp2_session* session, int32_t streamId) {
    return static_cast<Pending*>(nghttp2_session_get_stream_user_data(session, streamId));
  }

  static ssize_t readBody(nghttp2_session* session, int32_t streamId, uint8_t* buf, size_t length, uint32_t* flags,
                          nghttp2_data_source* source, void*) {
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

  static int onHeader(nghttp2_session* session, const nghttp2_frame* frame, const uint8_t* name, size_t namelen,
                      const uint8_t* value, size_t valuelen, uint8_t, void* user) {
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

  static int onBeginHeaders(nghttp2_session* session, const nghttp2_frame* frame, void* user) {
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

  static int onDataChunk(nghttp2_session* session, uint8_t, int32_t streamId, const uint8_t* data, size_t len,
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

  static int onFrameRecv(nghttp2_session* session, const nghttp2_frame* frame, void* user) {
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

  static int onStreamClose(nghttp2_session*, int32_t streamId, uint32_t errorCode, void* user) {
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

int H2Connection::start(const sockaddr_storage& addr, uint64_t nowNs) {
  nowNs_ = nowNs;
  connectDeadlineNs_ = nowNs + s_.connectTimeoutNs;
  const nghttp2_session_callbacks* cb = SessionCallbacks::get();
  if (cb == nullptr || nghttp2_session_client_new(&session_, cb, this) != 0) {
    session_ = nullptr;
    closed_ = true;
    return ENOMEM;
  }
  // Large windows so response bodies we discard never stall the server.
  const nghttp2_settings_entry iv[] = {
      {NGHTTP2_SETTINGS_ENABLE_PUSH, 0},
      {NGHTTP2_SETTINGS_INITIAL_WINDOW_SIZE, 1U << 24},
  };
  nghttp2_submit_settings(session_, NGHTTP2_FLAG_NONE, iv, std::size(iv));
  nghttp2_session_set_local_window_size(session_, NGHTTP2_FLAG_NONE, 0, 1 << 26);
  if (const int err = socket_.connect(addr, s_.endpoints); err != 0) {
    closed_ = true;
    return err;
  }
  return 0;
}

size_t H2Connection::room() const {
  if (closed_) {
    return 0;
  }
  // Until the server's SETTINGS arrive nghttp2 assumes 100 concurrent streams.
  const size_t remoteMax = nghttp2_session_get_remote_settings(session_, NGHTTP2_SETTINGS_MAX_CONCURRENT_STREAMS);
  const size_t limit = std::min(s_.maxConcurrentStreams, remoteMax);
  const size_t streams = limit > load() ? limit - load() : 0;
  const size_t queueRoom = s_.maxQueued > queue_.size() ? s_.maxQueued - queue_.size() : 0;
  return std::min(streams, queueRoom);
}

bool H2Connection::send(model::Request&& request, uint64_t nowNs) {
  if (closed_ || queue_.size() >= s_.maxQueued) {
    return false;
  }
  auto p = std::make_unique<Pending>();
  p->request = std::move(request);
  p->takenNs = nowNs;
  if (s_.keepResponses && p->request.exchangeId != 0) {
    p->kept = std::make_unique<model::Response>();
    p->kept->bodyHash = base::kFnv1aSeed;
  }
  queue_.push_back(std::move(p));
  if (connected_) {
    startQueued(nowNs);
  }
  return true;
}

void H2Connection::keepField(Pending& p, std::string_view name, std::string_view value) {
  model::Response& r = *p.kept;
  if ((!name.empty() && name.front() == ':') || r.headersTruncated || (p.inTrailers && !s_.keepTrailers)) {
    return;
  }
  const size_t bytes = name.size() + value.size() + model::kH2FieldOverhead;  // as the primary's decoder
  if (p.keptHeaderBytes + bytes > s_.responseLimits.maxHeaderBytes) {
    r.headersTruncated = true;  // flagged so the comparator knows later fields are missing
    return;
  }
  p.keptHeaderBytes += bytes;
  r.headers.push_back({std::string(name), std::string(value)});
}

void H2Connection::startQueued(uint64_t nowNs) {
  if (!settingsSeen_) {
    // A server with a lower SETTINGS_MAX_CONCURRENT_STREAMS refuses streams
    // opened before its SETTINGS arrive; one round trip is cheaper.
    return;
  }
  const uint32_t remoteMax = nghttp2_session_get_remote_settings(session_, NGHTTP2_SETTINGS_MAX_CONCURRENT_STREAMS);
  const size_t limit = std::min<size_t>(s_.maxConcurrentStreams, remoteMax);
  while (!queue_.empty() && active_.size() < limit && !closed_) {
    std::unique_ptr<Pending> p = std::move(queue_.front());
    queue_.pop_front();
    std::vector<nghttp2_nv> nv = toNv(p->request.headers);
    nghttp2_data_provider dp{};
    dp.source.ptr = p.get();
    dp.read_callback = SessionCallbacks::readBody;
    const bool hasData = !p->request.body.empty() || !p->request.trailers.empty();
    p->submittedNs = nowNs;
    const int32_t id =
        nghttp2_submit_request(session_, nullptr, nv.data(), nv.size(), hasData ? &dp : nullptr, p.get());
    if (id < 0) {
      finish(*p, Outcome::kRejected);
      continue;
    }
    active_.emplace(id, std::move(p));
  }
}

void H2Connection::finish(Pending& p, Outcome outcome, uint32_t errorCode) {
  Ending e{.outcome = outcome,
           .exchangeId = p.request.exchangeId,
           .status = p.status,
           .grpcStatus = p.grpcStatus,
           .errorCode = errorCode,
           .latencyNs = p.submittedNs != 0 && nowNs_ > p.submittedNs ? nowNs_ - p.submittedNs : 0};
  if (outcome == Outcome::kResponse && p.kept) {
    p.kept->status = p.status;
    p.kept->bodyTruncated = p.kept->body.size() < p.kept->bodyLength;
    e.kept = p.kept.get();
  }
  events_.onEnded(e);
}

void H2Connection::flush() {
  while (!closed_) {
    if (outBuf_.empty()) {
      const uint8_t* data = nullptr;
      const ssize_t n = nghttp2_session_mem_send(session_, &data);
      if (n < 0) {
        close(Outcome::kConnectionError);
        return;
      }
      if (n == 0) {
        return;
      }
      outBuf_.assign(reinterpret_cast<const char*>(data), static_cast<size_t>(n));
    }
    const ssize_t w = ::send(socket_.fd(), outBuf_.data(), outBuf_.size(), MSG_NOSIGNAL);
    if (w < 0) {
      if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR) {
        return;
      }
      close(Outcome::kConnectionError);
      return;
    }
    events_.onBytes(static_cast<uint64_t>(w), 0);
    outBuf_.erase(0, static_cast<size_t>(w));
    if (!outBuf_.empty()) {
      return;
    }
  }
}

void H2Connection::afterIo(uint64_t nowNs) {
  if (closed_) {
    return;
  }
  startQueued(nowNs);
  flush();
  if (!closed_ && nghttp2_session_want_read(session_) == 0 && nghttp2_session_want_write(session_) == 0 &&
      outBuf_.empty()) {
    // GOAWAY exchanged and no stream left: this connection is done.
    close(Outcome::kConnectionError);
  }
}

void H2Connection::onWritable(uint64_t nowNs) {
  nowNs_ = nowNs;
  if (closed_) {
    return;
  }
  if (!connected_) {
    if (const int err = socket_.connectResult(); err != 0) {
      connectError_ = err;
      close(Outcome::kConnectError);
      return;
    }
    markConnected(nowNs);
  }
  afterIo(nowNs);
}

void H2Connection::onReadable(uint64_t nowNs) {
  nowNs_ = nowNs;
  if (closed_) {
    return;
  }
  uint8_t buf[16384];
  for (;;) {
    const ssize_t n = ::recv(socket_.fd(), buf, sizeof(buf), 0);
    if (n > 0) {
      markConnected(nowNs);  // data before the writable event: the connect has succeeded
      events_.onBytes(0, static_cast<uint64_t>(n));
      if (nghttp2_session_mem_recv(session_, buf, static_cast<size_t>(n)) < 0) {
        close(Outcome::kConnectionError);
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
    if (!connected_) {
      connectError_ = n < 0 ? errno : 0;
    }
    close(connected_ ? Outcome::kConnectionError : Outcome::kConnectError);
    return;
  }
  afterIo(nowNs);
}

void H2Connection::checkDeadlines(uint64_t nowNs) {
  nowNs_ = nowNs;
  if (closed_) {
    return;
  }
  if (!connected_) {
    if (nowNs >= connectDeadlineNs_) {
      close(Outcome::kConnectTimeout);
    }
    return;
  }
  if (expireQueued(nowNs)) {
    expireStreams(nowNs);
  }
}

// Requests still waiting for a stream slot (the server's SETTINGS have not
// come, or its streams are all taken) end as response timeouts at their
// deadline. A server that sent no SETTINGS within a whole response timeout
// never will: nothing on the connection can start, so it is closed.
bool H2Connection::expireQueued(uint64_t nowNs) {
  bool expired = false;
  while (!queue_.empty() && nowNs >= queuedDeadlineNs(*queue_.front())) {
    std::unique_ptr<Pending> p = std::move(queue_.front());
    queue_.pop_front();  // detached before its ending is reported
    finish(*p, Outcome::kResponseTimeout);
    expired = true;
  }
  if (expired && !settingsSeen_) {
    close(Outcome::kConnectionError);
    return false;
  }
  return true;
}

// A stream past its deadline is reset (CANCEL) and ends as a response timeout
// once nghttp2 closes it, which is when the RST_STREAM goes out. A mirror that
// stopped reading keeps it in outBuf_ for good: one more response timeout of
// grace, then the connection is closed so its streams end (the connection is
// of no use with a full socket anyway).
void H2Connection::expireStreams(uint64_t nowNs) {
  bool reset = false;
  bool stuck = false;
  for (auto& [id, p] : active_) {
    if (nowNs < streamDeadlineNs(*p)) {
      continue;
    }
    if (p->timedOut) {
      stuck = true;
      continue;
    }
    p->timedOut = true;
    nghttp2_submit_rst_stream(session_, NGHTTP2_FLAG_NONE, id, NGHTTP2_CANCEL);
    reset = true;
  }
  if (stuck) {
    close(Outcome::kConnectionError);
  } else if (reset) {
    afterIo(nowNs);
  }
}

uint64_t H2Connection::nextDeadlineNs() const {
  if (closed_) {
    return UINT64_MAX;
  }
  if (!connected_) {
    return connectDeadlineNs_;
  }
  // The queue is in the order requests were taken: its front is due first.
  uint64_t next = queue_.empty() ? UINT64_MAX : queuedDeadlineNs(*queue_.front());
  for (const auto& [id, p] : active_) {
    next = std::min(next, streamDeadlineNs(*p));
  }
  return next;
}

void H2Connection::close(Outcome outcome) {
  if (closed_) {
    return;
  }
  closed_ = true;
  socket_.close();
  // Endings are reported with the maps already detached, so none sees a half-closed connection.
  auto active = std::move(active_);
  active_.clear();
  auto queue = std::move(queue_);
  queue_.clear();
  for (auto& [id, p] : active) {
    finish(*p, p->timedOut ? Outcome::kResponseTimeout : outcome);
  }
  for (auto& p : queue) {
    finish(*p, outcome);
  }
}

class H2Kind final : public ConnectionKind {
 public:
  explicit H2Kind(const ConnectionSettings& settings) : settings_(settings) {}

  std::unique_ptr<Connection> open(const sockaddr_storage& addr, ConnectionEvents& events, uint64_t nowNs,
                                   int& err) override {
    auto conn = std::make_unique<H2Connection>(settings_, events);
    err = conn->start(addr, nowNs);
    if (err != 0) {
      return nullptr;
    }
    return conn;
  }
  const char* name() const override { return "h2c"; }

 private:
  const ConnectionSettings settings_;
};

}  // namespace

std::unique_ptr<ConnectionKind> h2Kind(const ConnectionSettings& settings) {
  return std::make_unique<H2Kind>(settings);
}

}  // namespace shadowtap::replay
