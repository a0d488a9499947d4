// The HTTP/1 connection, declared for the two files that implement it:
// http1_connection.cc (readiness through epoll, parsing, endings) and
// http1_connection_ring.cc (sends and receives through io_uring, --mirror-io).
// Internal to the replay layer: the pool knows connections only by ConnectionKind.
#pragma once

#include <llhttp.h>
#include <sys/socket.h>

#include <memory>
#include <optional>
#include <span>
#include <string>
#include <utility>

#include "replay/connection.h"
#include "replay/mirror_socket.h"
#include "replay/ring.h"
#include "replay/tls_client.h"

namespace shadowtap::replay::http1 {

// --mirror-io uring: each connection has a receive always armed, into its own buffer.
constexpr size_t kRingReadSize = 8 * 1024;

// llhttp state of the response being read.
struct Parser {
  llhttp_t http;
  bool isHead = false;
  bool complete = false;  // the final (non-1xx, or 101) response is complete
  bool keepAlive = false;
  int status = 0;
};

// Compare mode: what the framer of a kept response hands over.
class KeptSink final : public http::ResponseSink {
 public:
  void onResponse(uint64_t, model::Response&& response) override { response_ = std::move(response); }
  void onNoResponse(uint64_t, http::NoResponse) override {}
  std::optional<model::Response> response_;
};

class Http1Connection final : public Connection {
 public:
  Http1Connection(const ConnectionSettings& settings, ConnectionEvents& events, std::span<char> readBuf)
      : s_(settings), events_(events), readBuf_(readBuf) {}
  ~Http1Connection() override { close(Outcome::kDroppedShutdown); }

  int start(const sockaddr_storage& addr, uint64_t nowNs) {
    deadlineNs_ = nowNs + s_.connectTimeoutNs;
    return socket_.connect(addr, s_.endpoints);
  }

  int fd() const override { return socket_.fd(); }
  bool wantsWrite() const override {
    if (inRing_) {
      return false;
    }
    if (tls_ && state_ != State::kBusy) {
      return state_ == State::kConnecting && tls_->wantsWrite();  // the handshake's turn to write
    }
    return state_ == State::kConnecting || (state_ == State::kBusy && (hasBytesToWrite() || (tls_ && tls_->wantsWrite())));
  }
  bool connected() const override { return connected_; }
  bool closed() const override { return state_ == State::kClosed; }
  int connectError() const override { return connectError_; }
  size_t room() const override {
    return !request_ && (state_ == State::kConnecting || state_ == State::kIdle) ? 1 : 0;
  }
  size_t load() const override { return request_ ? 1 : 0; }
  size_t onWire() const override { return state_ == State::kBusy ? 1 : 0; }

  bool send(model::Request&& request, uint64_t nowNs) override {
    if (room() == 0) {
      return false;
    }
    request_.emplace(std::move(request));
    if (state_ == State::kIdle) {
      begin(nowNs);
    }
    return true;
  }

  void onEvents(uint32_t events, uint64_t nowNs) override;

  void onBodyReady(uint64_t nowNs) override {
    if (state_ == State::kBusy && body_ && !written()) {
      writeSome(nowNs);
    }
  }

  void checkDeadlines(uint64_t nowNs) override {
    if (nowNs < deadlineNs_) {
      return;
    }
    if (state_ == State::kBusy && waitingForCapture()) {
      // The client is slow, not the mirror: its stream ends (idle timeout) or goes on.
      deadlineNs_ = nowNs + s_.responseTimeoutNs;
      return;
    }
    if (state_ == State::kConnecting) {
      fail(Outcome::kConnectTimeout, nowNs);
    } else if (state_ == State::kBusy) {
      fail(Outcome::kResponseTimeout, nowNs);
    }
  }

  uint64_t nextDeadlineNs() const override {
    return state_ == State::kConnecting || state_ == State::kBusy ? deadlineNs_ : UINT64_MAX;
  }

  void close(Outcome outcome) override {
    if (request_) {
      dropBody();
      Ending e{.outcome = outcome, .exchangeId = request_->exchangeId};
      end(e);
    }
    closeSocket();
  }

  void useRing(Ring& ring, void* tag) override {
    if (s_.tls == nullptr) {
      ring_ = &ring;
      tag_ = tag;
    }
  }
  bool usesRing() const override { return inRing_; }

 private:
  enum class State { kConnecting, kIdle, kBusy, kClosed };

  // --mirror-io uring: the connection's two ops, owned by it until closed
  // (then by the ring, until the kernel is done with their buffers).
  struct RecvOp final : RingOp {
    Http1Connection* owner = nullptr;
    char buf[kRingReadSize];
    void complete(int res, uint64_t nowNs) override { owner->onRingRecv(res, nowNs); }
  };
  struct SendOp final : RingOp {
    Http1Connection* owner = nullptr;
    std::string bytes;  // the request's, moved here: the kernel reads them until completion
    size_t offset = 0;
    void complete(int res, uint64_t nowNs) override { owner->onRingSend(res, nowNs); }
  };
  // Connected: sends and receives go through the ring from now on.
  void enterRing();
  void armRecv();
  void ringSend();
  void onRingRecv(int res, uint64_t nowNs);
  void onRingSend(int res, uint64_t nowNs);
  // A streamed request's body is written as the capture releases it, which the
  // ring path does not do: the connection goes back to epoll for good once its
  // armed receive is cancelled.
  // True when it left at once (nothing armed).
  bool leaveRing();
  // The response was cut by the mirror closing the connection (EOF).
  void onEof(uint64_t nowNs);

  void begin(uint64_t nowNs);
  void writeSome(uint64_t nowNs);
  // Streamed requests: writes the body as its stream releases it; false when
  // the request ended (aborted) meanwhile.
  bool writeBody(uint64_t nowNs, uint64_t& written);
  // The whole request (head, and a streamed body to its end) went out.
  bool written() const {
    return (inRing_ ? ringSent_ : writeOffset_ == request_->bytes.size()) && (!body_ || bodyDone_);
  }
  bool hasBytesToWrite() const {
    return writeOffset_ < request_->bytes.size() || (body_ && bodyOffset_ < bodyChunk_.size());
  }
  bool waitingForCapture() const { return body_ && !bodyDone_ && !hasBytesToWrite(); }
  // Lets go of the streamed body: its producer stops at once.
  void dropBody() {
    if (body_) {
      body_->cancel();
      body_.reset();
    }
    std::string().swap(bodyChunk_);
    bodyOffset_ = 0;
  }
  void readSome(uint64_t nowNs);
  void feed(const char* data, size_t len, uint64_t nowNs);
  void finishOk(uint64_t nowNs);
  void fail(Outcome outcome, uint64_t nowNs);
  void end(Ending& ending);
  // tls=true: the handshake after the TCP connect; the connection is connected once it is done.
  void handshake(uint64_t nowNs);
  // send(2)/recv(2) of the connection's bytes, through TLS when the rule asks for it.
  ssize_t sendBytes(const char* data, size_t len) {
    return tls_ ? tls_->send(data, len) : ::send(socket_.fd(), data, len, MSG_NOSIGNAL | MSG_DONTWAIT);
  }
  ssize_t recvBytes(char* data, size_t len) {
    return tls_ ? tls_->recv(data, len) : ::recv(socket_.fd(), data, len, MSG_DONTWAIT);
  }
  void closeSocket() {
    if (ring_ != nullptr) {
      // The kernel may still read or write their buffers: the ring frees them.
      ring_->orphan(std::exchange(recvOp_, nullptr));
      ring_->orphan(std::exchange(sendOp_, nullptr));
    }
    inRing_ = false;
    tls_.reset();
    socket_.close();
    state_ = State::kClosed;
  }

  const ConnectionSettings& s_;
  ConnectionEvents& events_;
  std::span<char> readBuf_;
  MirrorSocket socket_;
  std::unique_ptr<TlsSession> tls_;  // tls=true, from the TCP connect on
  State state_ = State::kConnecting;
  bool connected_ = false;
  int connectError_ = 0;
  std::optional<model::Request> request_;
  size_t writeOffset_ = 0;
  // A streamed request's body: its stream, the piece taken from it being
  // written, and whether the stream completed and every byte went out.
  std::shared_ptr<model::BodyStream> body_;
  std::string bodyChunk_;
  size_t bodyOffset_ = 0;
  bool bodyDone_ = false;
  bool writtenTold_ = false;  // onRequestWritten() was called for the request
  size_t responseBytes_ = 0;
  uint64_t deadlineNs_ = 0;  // connect or response deadline, by state
  uint64_t startNs_ = 0;     // the current request's first byte went out (or is about to)
  Parser parser_;
  // Compare mode. The sink is declared before the framer so the framer, which
  // reports to it when destroyed, goes first.
  KeptSink kept_;
  std::unique_ptr<http::ResponseFramer> framer_;
  // --mirror-io uring (see useRing).
  Ring* ring_ = nullptr;
  void* tag_ = nullptr;
  bool inRing_ = false;
  bool leaving_ = false;   // leaveRing(): waiting for the armed receive to end
  bool ringSent_ = false;  // the request's bytes went out through the ring
  RecvOp* recvOp_ = nullptr;
  SendOp* sendOp_ = nullptr;
};

}  // namespace shadowtap::replay::http1
