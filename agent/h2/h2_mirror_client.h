#pragma once

#include <sys/socket.h>

#include <cstddef>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <string>
#include <unordered_map>

#include "model/response.h"
#include "http/response_framer.h"
#include "model/request.h"

struct nghttp2_session;

namespace shadowtap::h2 {

// How one mirrored HTTP/2 request ended.
struct H2Outcome {
  enum class Kind : uint8_t {
    kResponse,         // the response completed (END_STREAM); status/grpcStatus set
    kStreamReset,      // the server reset the stream (or refused it after GOAWAY) first
    kConnectFailed,    // the connection never came up (refused, unreachable, connect timeout)
    kConnectionError,  // the connection failed or closed with the request queued or in flight
    kTimeout,          // no complete response within responseTimeout; the stream was reset
    kRejected,         // nghttp2 refused to submit it (e.g. invalid pseudo-header set)
    kShutdown,         // the client was destroyed with the request still queued or in flight
  };
  Kind kind = Kind::kResponse;
  int status = 0;          // final :status (0 if none arrived)
  int grpcStatus = -1;     // grpc-status from the trailers or a trailers-only response; -1 if absent
  uint32_t errorCode = 0;  // HTTP/2 error code of the RST_STREAM (kStreamReset)
  uint64_t latencyNs = 0;  // from the stream's submission to nghttp2 until the outcome
  // kResponse of a request kept for comparison (H2ClientOptions::keepResponses
  // and a non-zero exchangeId): the response, which the callback may move
  // from. Null in every other case.
  model::Response* response = nullptr;
};

// Called exactly once per accepted request, on the thread driving the client,
// from inside onReadable/onWritable/checkTimeouts/close or the destructor. Must
// not call back into the client.
using H2Callback = std::function<void(const H2Outcome&)>;

struct H2ClientOptions {
  size_t maxConcurrentStreams = 100;  // our cap; the server's SETTINGS_MAX_CONCURRENT_STREAMS also applies
  size_t maxQueued = 256;             // accepted requests waiting for a stream slot
  uint64_t connectTimeoutNs = 2'000'000'000;
  uint64_t responseTimeoutNs = 10'000'000'000;
  // Compare mode: a request with exchangeId != 0 keeps its final response:
  // :status, the response header fields in wire order (pseudo-headers left
  // out; HTTP/2 names are lowercase), then, with keepTrailers, the trailer
  // fields; names and values count against responseLimits.maxHeaderBytes
  // (beyond: headersTruncated, later fields left out). The body is kept up to
  // responseLimits.maxBodyBytes and hashed and counted whole. Requests without
  // an exchange id keep nothing.
  bool keepResponses = false;
  bool keepTrailers = true;
  http::ResponseLimits responseLimits;
};

// One HTTP/2 cleartext (prior knowledge) connection to the mirror, driven by
// the caller's event loop: register fd() for reading always and for writing
// while wantsWrite(), call onReadable()/onWritable() when ready and
// checkTimeouts() now and then. Each submitted request becomes a new stream
// with exactly its header fields (in order, never-index flags kept), body and
// trailers; the response body is read and discarded (kept in compare mode, see
// H2ClientOptions::keepResponses). Once closed() the client
// does no more I/O and every request it accepted has its outcome.
// Not thread-safe.
class H2MirrorClient {
 public:
  // Starts a non-blocking connect to `addr`. nullptr (errno in *err) when no
  // socket can be made or the connect fails at once.
  static std::unique_ptr<H2MirrorClient> connect(const sockaddr_storage& addr, const H2ClientOptions& opts,
                                                 uint64_t nowNs, int* err);
  // Requests still queued or in flight end with kShutdown.
  ~H2MirrorClient();
  H2MirrorClient(const H2MirrorClient&) = delete;
  H2MirrorClient& operator=(const H2MirrorClient&) = delete;

  int fd() const { return fd_; }
  bool wantsWrite() const;
  bool connected() const { return connected_; }
  bool closed() const { return closed_; }
  // True when submit() would take one more request.
  bool canAccept() const { return !closed_ && queue_.size() < opts_.maxQueued; }
  size_t inFlight() const { return active_.size(); }
  size_t queued() const { return queue_.size(); }
  uint64_t bytesSent() const { return bytesSent_; }
  uint64_t bytesReceived() const { return bytesReceived_; }

  // Takes the request unless the queue is full or the client closed (false:
  // `done` is not called). Sent as soon as a stream slot is free.
  bool submit(model::Request&& request, H2Callback done, uint64_t nowNs);

  void onReadable(uint64_t nowNs);
  void onWritable(uint64_t nowNs);
  // Connect timeout (the connection fails) and response timeouts (streams reset).
  void checkTimeouts(uint64_t nowNs);
  // Closes the connection now; everything left ends with `kind`.
  void close(H2Outcome::Kind kind);

 private:
  struct Pending {
    model::Request request;
    H2Callback done;
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
  friend struct ClientCallbacks;

  H2MirrorClient(int fd, const H2ClientOptions& opts, uint64_t nowNs);
  bool startSession();
  void startQueued(uint64_t nowNs);
  void flush();
  void finish(Pending& p, const H2Outcome& outcome);
  void afterIo(uint64_t nowNs);

  const H2ClientOptions opts_;
  int fd_ = -1;
  nghttp2_session* session_ = nullptr;
  bool connected_ = false;
  bool closed_ = false;
  bool settingsSeen_ = false;  // the server's first SETTINGS arrived
  uint64_t connectStartNs_ = 0;
  uint64_t nowNs_ = 0;
  std::string outBuf_;  // bytes nghttp2 produced that the socket did not take yet
  std::deque<std::unique_ptr<Pending>> queue_;
  std::unordered_map<int32_t, std::unique_ptr<Pending>> active_;
  uint64_t bytesSent_ = 0;
  uint64_t bytesReceived_ = 0;
};

}  // namespace shadowtap::h2
