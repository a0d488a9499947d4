// The HTTP/2 connection kind: h2c (cleartext with prior knowledge), or with
// tls=true HTTP/2 over TLS (ALPN h2), over nghttp2 client sessions. Each
// request becomes a new stream with exactly its header fields (in order,
// never-index flags kept), body and trailers; the response is read and
// discarded (kept in compare mode). What nghttp2 calls back is in
// h2_session_callbacks.cc.
#include <errno.h>
#include <netinet/in.h>
#include <spdlog/spdlog.h>
#include <sys/epoll.h>
#include <sys/socket.h>

#include <algorithm>
#include <chrono>
#include <string>

#include "base/rate_limited_log.h"
#include "base/strings.h"
#include "replay/h2_connection_internal.h"

namespace shadowtap::replay {
namespace h2conn {

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
    std::vector<nghttp2_nv> nv = toNv(p->request.headers, tls_ ? "https" : "http");
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
    const ssize_t w = writeOut(outBuf_.data(), outBuf_.size());
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

bool H2Connection::advanceConnect(uint64_t nowNs) {
  if (!tcpUp_) {
    if (const int err = socket_.connectResult(); err != 0) {
      connectError_ = err;
      close(Outcome::kConnectError);
      return false;
    }
    tcpUp_ = true;
    if (s_.tls != nullptr) {
      tls_ = std::make_unique<TlsSession>(*s_.tls, socket_.fd(), Alpn::kH2);
    }
  }
  if (tls_) {
    const int r = tls_->handshake();
    if (r == 0) {
      return false;
    }
    // HTTP/2 over TLS is what ALPN h2 says (RFC 9113 3.2): a server that
    // chose nothing speaks HTTP/1.1 at best and would answer the preface with garbage.
    if (r < 0 || tls_->alpnChosen() != "h2") {
      thread_local base::RateLimitedLog limit;
      uint64_t suppressed = 0;
      if (limit.allow(std::chrono::steady_clock::now(), suppressed)) {
        spdlog::warn("HTTP/2 over TLS to the mirror failed: {} ({} more not logged)",
                     r < 0 ? tls_->error() : "the mirror did not choose h2 in ALPN (does it serve HTTP/2 over TLS?)",
                     suppressed);
      }
      connectError_ = EPROTO;
      close(Outcome::kConnectError);
      return false;
    }
  }
  markConnected(nowNs);
  return true;
}

void H2Connection::onWritable(uint64_t nowNs) {
  nowNs_ = nowNs;
  if (closed_) {
    return;
  }
  if (!connected_ && !advanceConnect(nowNs)) {
    return;
  }
  if (tls_ && tls_->wantsWrite() && outBuf_.empty()) {
    onReadable(nowNs);  // a TLS read that had to write first (a key update): retried now
    return;
  }
  afterIo(nowNs);
}

void H2Connection::onReadable(uint64_t nowNs) {
  nowNs_ = nowNs;
  if (closed_) {
    return;
  }
  if (!connected_ && tls_ && !advanceConnect(nowNs)) {
    return;  // the handshake goes on (or failed)
  }
  uint8_t buf[16384];
  for (;;) {
    const ssize_t n = readIn(buf, sizeof(buf));
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
  const char* name() const override { return settings_.tls != nullptr ? "h2" : "h2c"; }

 private:
  const ConnectionSettings settings_;
};

}  // namespace h2conn

std::unique_ptr<ConnectionKind> h2Kind(const ConnectionSettings& settings) {
  return std::make_unique<h2conn::H2Kind>(settings);
}

}  // namespace shadowtap::replay
