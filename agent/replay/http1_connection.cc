// The HTTP/1 connection kind: one request at a time per connection (no
// pipelining), kept alive between requests, responses framed with llhttp and
// discarded (or kept, in compare mode, through http::ResponseFramer).
#include <errno.h>
#include <spdlog/spdlog.h>
#include <sys/epoll.h>
#include <sys/socket.h>

#include <chrono>
#include <utility>
#include <vector>

#include "base/rate_limited_log.h"
#include "replay/http1_connection.h"

namespace shadowtap::replay::http1 {
namespace {

constexpr int kMaxReadsPerEvent = 16;
constexpr size_t kKeptBodyCapacity = 1 << 20;

Outcome abortOutcome(model::BodyStream::End end) {
  switch (end) {
    case model::BodyStream::End::kGap:
      return Outcome::kAbortedGap;
    case model::BodyStream::End::kOverflow:
      return Outcome::kAbortedWindow;
    default:
      return Outcome::kAbortedCapture;
  }
}
constexpr size_t kReadBufferSize = 64 * 1024;

int onHeadersComplete(llhttp_t* http) {
  auto* parser = static_cast<Parser*>(http->data);
  // Responses to HEAD, and 1xx, 204 and 304 responses, have no body whatever
  // their headers say (RFC 9112 6.3); a HEAD response carries the GET's
  // Content-Length. 1 tells llhttp there is no body. llhttp 8 would otherwise
  // wait for a 304's Content-Length bytes.
  const int status = http->status_code;
  if (parser->isHead || status < 200 || status == 204 || status == 304) {
    return 1;
  }
  return 0;
}

int onMessageComplete(llhttp_t* http) {
  auto* parser = static_cast<Parser*>(http->data);
  const int status = http->status_code;
  if (status >= 100 && status < 200 && status != 101) {
    // Interim response (100 Continue, 103 Early Hints): the final one follows
    // on the same connection; the request body was already sent.
    return 0;
  }
  parser->complete = true;
  parser->status = status;
  parser->keepAlive = llhttp_should_keep_alive(http) != 0;
  // Stop right after this message so bytes beyond it can be detected.
  return HPE_PAUSED;
}

const llhttp_settings_t& parserSettings() {
  static const llhttp_settings_t kSettings = [] {
    llhttp_settings_t s;
    llhttp_settings_init(&s);
    s.on_headers_complete = onHeadersComplete;
    s.on_message_complete = onMessageComplete;
    return s;
  }();
  return kSettings;
}

}  // namespace

void Http1Connection::onEvents(uint32_t events, uint64_t nowNs) {
  switch (state_) {
    case State::kConnecting: {
      if (tls_) {
        handshake(nowNs);
        return;
      }
      if ((events & (EPOLLOUT | EPOLLERR | EPOLLHUP)) == 0) {
        return;
      }
      const int err = socket_.connectResult();
      if (err != 0 || (events & EPOLLOUT) == 0) {
        connectError_ = err;
        fail(Outcome::kConnectError, nowNs);
        return;
      }
      if (s_.tls) {
        tls_ = std::make_unique<TlsSession>(*s_.tls, socket_.fd());
        handshake(nowNs);
        return;
      }
      connected_ = true;
      state_ = State::kIdle;
      if (ring_ != nullptr) {
        enterRing();
      }
      if (request_) {
        begin(nowNs);
      }
      return;
    }
    case State::kIdle:
      // Nothing is expected on an idle connection: the peer closed it, reset it
      // or sent bytes we did not ask for. Either way it cannot be reused.
      // Over TLS, records without application data (a TLS 1.3 session
      // ticket) are read and the connection stays.
      if (tls_ && (events & (EPOLLRDHUP | EPOLLHUP | EPOLLERR)) == 0 && (events & EPOLLIN)) {
        char scratch[64];
        if (tls_->recv(scratch, sizeof(scratch)) < 0 && errno == EAGAIN) {
          return;
        }
      }
      if (events & (EPOLLIN | EPOLLRDHUP | EPOLLHUP | EPOLLERR)) {
        closeSocket();
      }
      return;
    case State::kBusy:
      if ((events & (EPOLLOUT | EPOLLERR)) && !written()) {
        writeSome(nowNs);
      }
      if (state_ == State::kBusy && (events & (EPOLLIN | EPOLLRDHUP | EPOLLHUP | EPOLLERR))) {
        readSome(nowNs);
      }
      return;
    case State::kClosed:
      return;
  }
}

void Http1Connection::handshake(uint64_t nowNs) {
  const int r = tls_->handshake();
  if (r == 0) {
    return;
  }
  if (r < 0) {
    thread_local base::RateLimitedLog limit;
    uint64_t suppressed = 0;
    if (limit.allow(std::chrono::steady_clock::now(), suppressed)) {
      spdlog::warn("TLS to the mirror failed: {} ({} more not logged)", tls_->error(), suppressed);
    }
    connectError_ = EPROTO;
    fail(Outcome::kConnectError, nowNs);
    return;
  }
  connected_ = true;
  state_ = State::kIdle;
  if (request_) {
    begin(nowNs);
  }
}

void Http1Connection::begin(uint64_t nowNs) {
  state_ = State::kBusy;
  startNs_ = nowNs;
  deadlineNs_ = nowNs + s_.responseTimeoutNs;
  llhttp_init(&parser_.http, HTTP_RESPONSE, &parserSettings());
  parser_.http.data = &parser_;
  parser_.isHead = request_->method == "HEAD";
  parser_.complete = false;
  parser_.keepAlive = false;
  parser_.status = 0;
  writeOffset_ = 0;
  responseBytes_ = 0;
  body_ = std::exchange(request_->bodyStream, nullptr);
  bodyDone_ = false;
  writtenTold_ = false;
  bodyOffset_ = 0;
  bodyChunk_.clear();
  if (body_) {
    const model::BodyStream::End ended = body_->end();
    if (ended != model::BodyStream::End::kOpen && ended != model::BodyStream::End::kComplete) {
      // Aborted while it waited in the queue: nothing went out, the connection stays.
      dropBody();
      state_ = State::kIdle;
      Ending e{.outcome = abortOutcome(ended), .exchangeId = request_->exchangeId};
      end(e);
      return;
    }
    body_->setListener(events_.bodyListener());
  }
  framer_.reset();
  kept_.response_.reset();
  if (request_->exchangeId != 0 && s_.keepResponses && s_.keptFraming != nullptr) {
    // A framer per request: we never pipeline, so this connection's next bytes
    // are this request's response, from its first byte.
    framer_ = std::make_unique<http::ResponseFramer>(true, kept_, s_.responseLimits, *s_.keptFraming);
    framer_->expectResponseTo(request_->method.empty() ? std::string_view("GET") : std::string_view(request_->method),
                              request_->exchangeId);
  }
  if (inRing_) {
    ringSent_ = false;
    if (!body_) {
      sendOp_->offset = 0;
      sendOp_->bytes.swap(request_->bytes);
      ringSend();
      return;
    }
    if (!leaveRing()) {
      return;  // writeSome() once the armed receive has ended
    }
  }
  writeSome(nowNs);
}

void Http1Connection::writeSome(uint64_t nowNs) {
  const std::string& bytes = request_->bytes;
  const bool headBefore = writeOffset_ == bytes.size();
  uint64_t written = 0;
  while (writeOffset_ < bytes.size()) {
    const ssize_t n = sendBytes(bytes.data() + writeOffset_, bytes.size() - writeOffset_);
    if (n > 0) {
      writeOffset_ += static_cast<size_t>(n);
      written += static_cast<uint64_t>(n);
      continue;
    }
    if (n < 0 && errno == EINTR) {
      continue;
    }
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
      break;
    }
    events_.onBytes(written, 0);
    fail(Outcome::kReset, nowNs);
    return;
  }
  if (body_ && writeOffset_ == bytes.size()) {
    if (!headBefore) {
      events_.onStreamStarted();
    }
    if (!writeBody(nowNs, written)) {
      return;
    }
    if (!bodyDone_) {
      events_.onBytes(written, 0);
      return;
    }
  }
  events_.onBytes(written, 0);
  if (this->written() && !writtenTold_) {
    writtenTold_ = true;
    events_.onRequestWritten();
    if (body_) {
      events_.onStreamSent();
      // Latency counts from the last body byte: the upload's length is the client's.
      startNs_ = nowNs;
      deadlineNs_ = nowNs + s_.responseTimeoutNs;
    }
  }
}

bool Http1Connection::writeBody(uint64_t nowNs, uint64_t& written) {
  for (;;) {
    if (bodyOffset_ == bodyChunk_.size()) {
      bodyOffset_ = 0;
      if (bodyChunk_.capacity() > kKeptBodyCapacity) {
        // take() hands this buffer to the producer: let only one side of the
        // window keep a window's worth of capacity.
        std::string().swap(bodyChunk_);
      }
      if (body_->take(bodyChunk_) == 0) {
        const model::BodyStream::End end = body_->end();
        if (end == model::BodyStream::End::kComplete) {
          bodyDone_ = true;
        } else if (end != model::BodyStream::End::kOpen) {
          events_.onBytes(written, 0);
          fail(abortOutcome(end), nowNs);  // closed mid-request: never a truncated request that looks complete
          return false;
        }
        return true;  // kOpen: onBodyReady() when more comes
      }
    }
    if (const model::BodyStream::End end = body_->end();
        end != model::BodyStream::End::kOpen && end != model::BodyStream::End::kComplete) {
      events_.onBytes(written, 0);
      fail(abortOutcome(end), nowNs);
      return false;
    }
    const ssize_t n = sendBytes(bodyChunk_.data() + bodyOffset_, bodyChunk_.size() - bodyOffset_);
    if (n > 0) {
      bodyOffset_ += static_cast<size_t>(n);
      written += static_cast<uint64_t>(n);
      body_->release(static_cast<size_t>(n));
      deadlineNs_ = nowNs + s_.responseTimeoutNs;  // progress: the mirror takes the body
      continue;
    }
    if (n < 0 && errno == EINTR) {
      continue;
    }
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
      return true;
    }
    events_.onBytes(written, 0);
    fail(Outcome::kReset, nowNs);
    return false;
  }
}

void Http1Connection::readSome(uint64_t nowNs) {
  for (int i = 0; i < kMaxReadsPerEvent && state_ == State::kBusy; ++i) {
    const ssize_t n = recvBytes(readBuf_.data(), readBuf_.size());
    if (n > 0) {
      events_.onBytes(0, static_cast<uint64_t>(n));
      responseBytes_ += static_cast<size_t>(n);
      if (responseBytes_ > s_.maxResponseBytes) {
        fail(Outcome::kResponseTooLarge, nowNs);
        return;
      }
      feed(readBuf_.data(), static_cast<size_t>(n), nowNs);
      continue;
    }
    if (n == 0) {
      onEof(nowNs);
      return;
    }
    if (errno == EINTR) {
      continue;
    }
    if (errno != EAGAIN && errno != EWOULDBLOCK) {
      fail(Outcome::kReset, nowNs);
    }
    return;
  }
}

void Http1Connection::onEof(uint64_t nowNs) {
  // EOF ends a response framed by connection close; anything else is cut short.
  if (framer_) {
    framer_->onEnd(flow::EndReason::kFin);
  }
  llhttp_finish(&parser_.http);
  if (parser_.complete) {
    finishOk(nowNs);
    closeSocket();
  } else {
    fail(Outcome::kReset, nowNs);
  }
}

void Http1Connection::feed(const char* data, size_t len, uint64_t nowNs) {
  if (framer_) {
    framer_->onData({reinterpret_cast<const uint8_t*>(data), len}, nowNs);
  }
  const llhttp_errno_t err = llhttp_execute(&parser_.http, data, len);
  if (parser_.complete) {
    size_t leftover = 0;
    if (err == HPE_PAUSED || err == HPE_PAUSED_UPGRADE) {
      const char* pos = llhttp_get_error_pos(&parser_.http);
      if (pos != nullptr && pos >= data && pos <= data + len) {
        leftover = static_cast<size_t>(data + len - pos);
      }
    }
    // Close when the mirror asked to, when it sent more than one response (we
    // never pipeline), when it answered before taking the whole request, or
    // when it switched protocols.
    if (body_ && !bodyDone_ && bodyOffset_ == bodyChunk_.size() && body_->end() == model::BodyStream::End::kComplete) {
      // The mirror answered the last body byte before the stream's end reached us.
      writeSome(nowNs);
      if (state_ != State::kBusy) {
        return;  // the write failed: the request has ended and the connection is closed
      }
    }
    const bool mustClose = !parser_.keepAlive || leftover > 0 || !written() || parser_.status == 101;
    finishOk(nowNs);
    if (mustClose) {
      closeSocket();
    }
    return;
  }
  if (err != HPE_OK) {
    fail(Outcome::kBadResponse, nowNs);
  }
}

void Http1Connection::finishOk(uint64_t nowNs) {
  framer_.reset();  // a response it did not complete is not kept
  dropBody();  // a mirror that answered before the body's end gets no more of it
  Ending e{.outcome = Outcome::kResponse,
           .exchangeId = request_->exchangeId,
           .status = parser_.status,
           .latencyNs = nowNs > startNs_ ? nowNs - startNs_ : 0};
  if (kept_.response_) {
    e.kept = &*kept_.response_;
  }
  state_ = State::kIdle;
  end(e);
  kept_.response_.reset();
}

void Http1Connection::fail(Outcome outcome, uint64_t nowNs) {
  framer_.reset();
  dropBody();
  kept_.response_.reset();
  if (request_) {
    Ending e{.outcome = outcome,
             .exchangeId = request_->exchangeId,
             .latencyNs = nowNs > startNs_ && startNs_ != 0 ? nowNs - startNs_ : 0};
    end(e);
  }
  closeSocket();
}

void Http1Connection::end(Ending& ending) {
  request_.reset();
  events_.onEnded(ending);
}

namespace {

class Http1Kind final : public ConnectionKind {
 public:
  explicit Http1Kind(const ConnectionSettings& settings) : settings_(settings), readBuf_(kReadBufferSize) {}

  std::unique_ptr<Connection> open(const sockaddr_storage& addr, ConnectionEvents& events, uint64_t nowNs,
                                   int& err) override {
    auto conn = std::make_unique<Http1Connection>(settings_, events, readBuf_);
    err = conn->start(addr, nowNs);
    if (err != 0) {
      return nullptr;
    }
    return conn;
  }
  const char* name() const override { return "http1"; }

 private:
  const ConnectionSettings settings_;
  // Scratch space for reads, shared by the kind's connections (one loop thread).
  std::vector<char> readBuf_;
};

}  // namespace
}  // namespace shadowtap::replay::http1

namespace shadowtap::replay {

std::unique_ptr<ConnectionKind> http1Kind(const ConnectionSettings& settings) {
  return std::make_unique<http1::Http1Kind>(settings);
}

}  // namespace shadowtap::replay
