#include "replay/mirror_connection.h"

#include <errno.h>
#include <llhttp.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/epoll.h>
#include <time.h>
#include <unistd.h>

#include "base/clock.h"

namespace shadowtap::replay {

struct MirrorConnection::Parser {
  llhttp_t http;
  bool isHead = false;
  bool complete = false;  // the final (non-1xx, or 101) response is complete
  bool keepAlive = false;
  int status = 0;
};

namespace {

int onHeadersComplete(llhttp_t* http) {
  auto* parser = static_cast<MirrorConnection::Parser*>(http->data);
  // Responses to HEAD, and 1xx, 204 and 304 responses, have no body whatever
  // their headers say (RFC 9112 6.3); a HEAD response carries the GET's
  // Content-Length. 1 tells llhttp there is no body. llhttp 8 would otherwise
  // wait for a 304's Content-Length bytes.
  int status = http->status_code;
  if (parser->isHead || status < 200 || status == 204 || status == 304) {
    return 1;
  }
  return 0;
}

int onMessageComplete(llhttp_t* http) {
  auto* parser = static_cast<MirrorConnection::Parser*>(http->data);
  int status = http->status_code;
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

const llhttp_settings_t& settings() {
  static const llhttp_settings_t kSettings = [] {
    llhttp_settings_t s;
    llhttp_settings_init(&s);
    s.on_headers_complete = onHeadersComplete;
    s.on_message_complete = onMessageComplete;
    return s;
  }();
  return kSettings;
}

constexpr int kMaxReadsPerEvent = 16;

}  // namespace

std::unique_ptr<MirrorConnection> MirrorConnection::open(const sockaddr_storage& addr, size_t addrIndex,
                                                         ReplayJob&& job, size_t maxResponseBytes, int& err,
                                                         LocalEndpoints* endpoints) {
  err = 0;
  int fd = ::socket(addr.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, IPPROTO_TCP);
  if (fd < 0) {
    err = errno;
    return nullptr;
  }
  int one = 1;
  // Requests are written whole; Nagle would only delay the last segment.
  ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
  LocalEndpoints::Endpoint published{};
  bool isPublished = false;
  if (endpoints != nullptr) {
    // Bind the local port before connecting so it can be published before the
    // SYN leaves: the capture thread may see that SYN before connect() returns.
    sockaddr_storage any{};
    any.ss_family = addr.ss_family;
    socklen_t anyLen = addr.ss_family == AF_INET6 ? sizeof(sockaddr_in6) : sizeof(sockaddr_in);
    sockaddr_storage local{};
    socklen_t localLen = sizeof(local);
    if (::bind(fd, reinterpret_cast<const sockaddr*>(&any), anyLen) == 0 &&
        ::getsockname(fd, reinterpret_cast<sockaddr*>(&local), &localLen) == 0) {
      published = LocalEndpoints::fromSockaddr(local);
      endpoints->add(published);
      isPublished = true;
    }
  }
  socklen_t len = addr.ss_family == AF_INET6 ? sizeof(sockaddr_in6) : sizeof(sockaddr_in);
  int rc = ::connect(fd, reinterpret_cast<const sockaddr*>(&addr), len);
  if (rc != 0 && errno != EINPROGRESS) {
    err = errno;
    ::close(fd);
    if (isPublished) {
      endpoints->remove(published);
    }
    return nullptr;
  }
  auto conn = std::unique_ptr<MirrorConnection>(new MirrorConnection(fd, addrIndex, std::move(job), maxResponseBytes));
  conn->remote_ = addr;
  if (isPublished) {
    // Narrow the wildcard entry to the address the route chose.
    sockaddr_storage local{};
    socklen_t localLen = sizeof(local);
    LocalEndpoints::Endpoint exact = published;
    if (::getsockname(fd, reinterpret_cast<sockaddr*>(&local), &localLen) == 0) {
      exact = LocalEndpoints::fromSockaddr(local);
    }
    if (!(exact == published)) {
      endpoints->add(exact);
      endpoints->remove(published);
    }
    conn->endpoints_ = endpoints;
    conn->published_ = exact;
    conn->isPublished_ = true;
  }
  // Even an immediate success is reported through EPOLLOUT, which keeps one path.
  return conn;
}

MirrorConnection::MirrorConnection(int fd, size_t addrIndex, ReplayJob&& job, size_t maxResponseBytes)
    : fd_(fd),
      addrIndex_(addrIndex),
      maxResponseBytes_(maxResponseBytes),
      job_(std::move(job)),
      parser_(std::make_unique<Parser>()) {}

MirrorConnection::~MirrorConnection() { closeSocket(); }

void MirrorConnection::beginResponse() {
  llhttp_init(&parser_->http, HTTP_RESPONSE, &settings());
  parser_->http.data = parser_.get();
  parser_->isHead = job_->isHead;
  parser_->complete = false;
  parser_->keepAlive = false;
  parser_->status = 0;
  writeOffset_ = 0;
  responseBytes_ = 0;
  framer_.reset();
  kept_.response_.reset();
  if (job_->exchangeId != 0 && keepLimits_ != nullptr && keepStats_ != nullptr) {
    // A framer per job: we never pipeline, so this connection's next bytes are
    // this request's response, from its first byte.
    framer_ = std::make_unique<http::ResponseFramer>(true, kept_, *keepLimits_, *keepStats_);
    std::string_view method = job_->method;
    if (method.empty()) {
      method = job_->isHead ? "HEAD" : "GET";
    }
    framer_->expectResponseTo(method, job_->exchangeId);
  }
}

std::optional<model::Response> MirrorConnection::takeKeptResponse() {
  std::optional<model::Response> out = std::move(kept_.response_);
  kept_.response_.reset();
  return out;
}

MirrorConnection::Step MirrorConnection::startRequest(ReplayJob&& job) {
  Step step;
  job_ = std::move(job);
  state_ = State::kBusy;
  beginResponse();
  writeSome(step);
  return step;
}

MirrorConnection::Step MirrorConnection::onEvents(uint32_t events, std::span<char> buf) {
  Step step;
  switch (state_) {
    case State::kConnecting: {
      if ((events & (EPOLLOUT | EPOLLERR | EPOLLHUP)) == 0) {
        break;
      }
      int soError = 0;
      socklen_t len = sizeof(soError);
      if (::getsockopt(fd_, SOL_SOCKET, SO_ERROR, &soError, &len) != 0) {
        soError = errno;
      }
      if (soError != 0 || (events & EPOLLOUT) == 0) {
        step.connectFailed = true;
        fail(ReplayError::kConnect, step, soError);
        break;
      }
      step.connected = true;
      established_ = true;
      state_ = State::kBusy;
      beginResponse();
      writeSome(step);
      break;
    }
    case State::kIdle:
      // Nothing is expected on an idle connection: the peer closed it, reset it
      // or sent bytes we did not ask for. Either way it cannot be reused.
      if (events & (EPOLLIN | EPOLLRDHUP | EPOLLHUP | EPOLLERR)) {
        closeSocket();
      }
      break;
    case State::kBusy:
      if ((events & (EPOLLOUT | EPOLLERR)) && writeOffset_ < jobSize()) {
        writeSome(step);
      }
      if (state_ == State::kBusy && (events & (EPOLLIN | EPOLLRDHUP | EPOLLHUP | EPOLLERR))) {
        readSome(buf, step);
      }
      break;
    case State::kClosed:
      break;
  }
  return step;
}

MirrorConnection::Step MirrorConnection::abort(ReplayError error) {
  Step step;
  if (job_) {
    step.connectFailed = state_ == State::kConnecting;
    fail(error, step);
  } else {
    closeSocket();
  }
  return step;
}

std::optional<ReplayJob> MirrorConnection::close() {
  std::optional<ReplayJob> job = std::move(job_);
  job_.reset();
  framer_.reset();
  kept_.response_.reset();
  closeSocket();
  return job;
}

void MirrorConnection::writeSome(Step& step) {
  const std::string& bytes = job_->bytes;
  while (writeOffset_ < bytes.size()) {
    ssize_t n = ::send(fd_, bytes.data() + writeOffset_, bytes.size() - writeOffset_, MSG_NOSIGNAL | MSG_DONTWAIT);
    if (n > 0) {
      writeOffset_ += static_cast<size_t>(n);
      step.bytesWritten += static_cast<uint64_t>(n);
      if (writeOffset_ == bytes.size()) {
        step.requestWritten = true;
      }
      continue;
    }
    if (n < 0 && errno == EINTR) {
      continue;
    }
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
      return;
    }
    fail(ReplayError::kReset, step, errno);
    return;
  }
}

void MirrorConnection::readSome(std::span<char> buf, Step& step) {
  for (int i = 0; i < kMaxReadsPerEvent && state_ == State::kBusy; ++i) {
    ssize_t n = ::recv(fd_, buf.data(), buf.size(), MSG_DONTWAIT);
    if (n > 0) {
      step.bytesRead += static_cast<uint64_t>(n);
      responseBytes_ += static_cast<size_t>(n);
      if (responseBytes_ > maxResponseBytes_) {
        fail(ReplayError::kResponseTooLarge, step);
        return;
      }
      feed(buf.data(), static_cast<size_t>(n), step);
      if (step.finished) {
        return;
      }
      continue;
    }
    if (n == 0) {
      // EOF ends a response framed by connection close; anything else is cut short.
      if (framer_) {
        framer_->onEnd(flow::EndReason::kFin);
      }
      llhttp_finish(&parser_->http);
      if (parser_->complete) {
        finishOk(step);
        closeSocket();
      } else {
        fail(ReplayError::kReset, step);
      }
      return;
    }
    if (errno == EINTR) {
      continue;
    }
    if (errno == EAGAIN || errno == EWOULDBLOCK) {
      return;
    }
    fail(ReplayError::kReset, step, errno);
    return;
  }
}

void MirrorConnection::feed(const char* data, size_t len, Step& step) {
  if (framer_) {
    framer_->onData({reinterpret_cast<const uint8_t*>(data), len}, base::monotonicNs());
  }
  llhttp_errno_t err = llhttp_execute(&parser_->http, data, len);
  if (parser_->complete) {
    size_t leftover = 0;
    if (err == HPE_PAUSED || err == HPE_PAUSED_UPGRADE) {
      const char* pos = llhttp_get_error_pos(&parser_->http);
      if (pos != nullptr && pos >= data && pos <= data + len) {
        leftover = static_cast<size_t>(data + len - pos);
      }
    }
    // Close when the mirror asked to, when it sent more than one response (we
    // never pipeline), when it answered before taking the whole request, or
    // when it switched protocols.
    bool mustClose = !parser_->keepAlive || leftover > 0 || writeOffset_ < jobSize() || parser_->status == 101;
    finishOk(step);
    if (mustClose) {
      closeSocket();
    }
    return;
  }
  if (err != HPE_OK) {
    fail(ReplayError::kBadResponse, step);
  }
}

void MirrorConnection::finishOk(Step& step) {
  step.finished = true;
  step.status = parser_->status;
  step.exchangeId = job_->exchangeId;
  framer_.reset();  // a response it did not complete is not kept
  job_.reset();
  state_ = State::kIdle;
}

void MirrorConnection::fail(ReplayError error, Step& step, int osError) {
  step.finished = true;
  step.error = error;
  step.osError = osError;
  step.exchangeId = job_ ? job_->exchangeId : 0;
  framer_.reset();
  kept_.response_.reset();
  job_.reset();
  closeSocket();
}

void MirrorConnection::closeSocket() {
  if (fd_ >= 0) {
    ::close(fd_);
    fd_ = -1;
  }
  unpublish();
  state_ = State::kClosed;
}

void MirrorConnection::unpublish() {
  if (isPublished_) {
    endpoints_->remove(published_);
    isPublished_ = false;
  }
}

}  // namespace shadowtap::replay
