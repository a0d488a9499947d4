#pragma once

// The HTTP/2 connection kind's insides, shared by its two files:
// h2_connection.cc (the connection: connect, TLS, I/O, deadlines) and
// h2_session_callbacks.cc (what nghttp2 calls back). Not for other users:
// they take h2Kind() from connection.h.
#include <nghttp2/nghttp2.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/types.h>

#include <cstdint>
#include <deque>
#include <memory>
#include <string>
#include <unordered_map>
#include <vector>

#include "replay/connection.h"
#include "replay/mirror_socket.h"
#include "replay/tls_client.h"

namespace shadowtap::replay::h2conn {

// nghttp2 name/value pairs pointing into `fields` (which must outlive them),
// except :scheme, which says `scheme` when one is given: the transport to the mirror ("https"
// over TLS, else "http"), not the one the captured request came over (as a
// proxy does: a request caught in cleartext and sent over TLS is https).
std::vector<nghttp2_nv> toNv(const std::vector<model::HeaderField>& fields, std::string_view scheme = {});

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
    if (closed_) {
      return false;
    }
    if (tls_ && tls_->wantsWrite()) {
      return true;  // the handshake, or a read that must write first
    }
    if (!connected_) {
      return !tls_;  // the TCP connect; a handshake waiting to read does not
    }
    return !outBuf_.empty() || nghttp2_session_want_write(session_) != 0;
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
  // The TCP connect, then with tls=true the TLS handshake: true once both are
  // done (connected_), false while in progress or when it failed (closed).
  bool advanceConnect(uint64_t nowNs);
  ssize_t writeOut(const void* data, size_t len) {
    return tls_ ? tls_->send(data, len) : ::send(socket_.fd(), data, len, MSG_NOSIGNAL);
  }
  ssize_t readIn(void* data, size_t len) { return tls_ ? tls_->recv(data, len) : ::recv(socket_.fd(), data, len, 0); }
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
  std::unique_ptr<TlsSession> tls_;  // tls=true, from the TCP connect on
  nghttp2_session* session_ = nullptr;
  bool tcpUp_ = false;
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

// nghttp2's callbacks, with access to the connection (h2_session_callbacks.cc).
struct SessionCallbacks {
  // The callbacks every session of ours uses (null when nghttp2 is out of memory).
  static const nghttp2_session_callbacks* get();
  // A request body's next bytes, and its trailers after them.
  static ssize_t readBody(nghttp2_session* session, int32_t streamId, uint8_t* buf, size_t length, uint32_t* flags,
                          nghttp2_data_source* source, void*);

 private:
  static H2Connection& self(void* user) { return *static_cast<H2Connection*>(user); }
  static Pending* pendingOf(nghttp2_session* session, int32_t streamId) {
    return static_cast<Pending*>(nghttp2_session_get_stream_user_data(session, streamId));
  }
  static int onHeader(nghttp2_session* session, const nghttp2_frame* frame, const uint8_t* name, size_t namelen,
                      const uint8_t* value, size_t valuelen, uint8_t, void* user);
  static int onBeginHeaders(nghttp2_session* session, const nghttp2_frame* frame, void* user);
  static int onDataChunk(nghttp2_session* session, uint8_t, int32_t streamId, const uint8_t* data, size_t len,
                         void* user);
  static int onFrameRecv(nghttp2_session* session, const nghttp2_frame* frame, void* user);
  static int onStreamClose(nghttp2_session*, int32_t streamId, uint32_t errorCode, void* user);
};

}  // namespace shadowtap::replay::h2conn
