#pragma once

#include <sys/socket.h>

#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>

#include "http/response_framer.h"
#include "model/request.h"
#include "model/response.h"
#include "replay/local_endpoints.h"
#include "replay/outcome.h"

namespace shadowtap::replay {

class Ring;
class TlsClientConfig;

// How one request a connection took ended.
struct Ending {
  Outcome outcome = Outcome::kResponse;
  uint64_t exchangeId = 0;
  int status = 0;          // final status (kResponse), else what arrived if anything
  int grpcStatus = -1;     // grpc-status of an h2c response; -1 if absent
  uint32_t errorCode = 0;  // h2c kReset: the RST_STREAM error code
  uint64_t latencyNs = 0;  // from the request's start on the wire until now
  // Compare mode: the kept response of a request with an exchange id that got
  // one (kResponse); the receiver may move from it. Null otherwise.
  model::Response* kept = nullptr;
};

// What a connection reports to its pool, on the pool's loop thread from inside
// the connection's calls. Must not call back into the connection.
class ConnectionEvents {
 public:
  virtual ~ConnectionEvents() = default;
  // Exactly once per request the connection took.
  virtual void onEnded(Ending& ending) = 0;
  virtual void onBytes(uint64_t sent, uint64_t received) = 0;
  // HTTP/1: the last byte of a request went out.
  virtual void onRequestWritten() = 0;
  // A streamed request's body stream calls this (from the capture thread) when
  // bytes or its end arrive while the connection waits for them; the pool then
  // calls Connection::onBodyReady(). Empty: nobody is woken (the connection is
  // driven by other events only).
  virtual std::function<void()> bodyListener() { return {}; }
  // HTTP/1, streamed requests: the head went out; the body went out whole.
  virtual void onStreamStarted() {}
  virtual void onStreamSent() {}
};

// One connection to the mirror, of some kind (HTTP/1, h2c), driven by the
// pool's event loop: it registers fd() for reading always and for writing while
// wantsWrite(), calls onEvents() with the epoll bits, checkDeadlines() now and
// then, and gives it requests while room() > 0. Times are the pool's clock.
// Once closed() it does no more I/O and every request it took has ended.
class Connection {
 public:
  virtual ~Connection() = default;

  virtual int fd() const = 0;
  virtual bool wantsWrite() const = 0;
  // The connect completed (at some point).
  virtual bool connected() const = 0;
  virtual bool closed() const = 0;
  // errno of a failed connect, for the log (0 if none or unknown).
  virtual int connectError() const = 0;

  // Requests it would take now: HTTP/1 one while it carries none (connecting
  // or idle); h2c the stream slots left under min(our cap, the server's
  // SETTINGS_MAX_CONCURRENT_STREAMS).
  virtual size_t room() const = 0;
  // Requests it holds (in flight or waiting on it to connect).
  virtual size_t load() const = 0;
  // Of load(), the requests on the wire: HTTP/1 the one being sent or
  // answered, h2c the open streams.
  virtual size_t onWire() const = 0;
  // Takes `request` (true) when room() > 0; false leaves it untouched.
  virtual bool send(model::Request&& request, uint64_t nowNs) = 0;

  virtual void onEvents(uint32_t events, uint64_t nowNs) = 0;
  // HTTP/1: the body stream of the request it carries has bytes or has ended
  // (see ConnectionEvents::bodyListener). Kinds without streamed requests ignore it.
  virtual void onBodyReady(uint64_t /*nowNs*/) {}
  // Connect and response timeouts.
  virtual void checkDeadlines(uint64_t nowNs) = 0;
  // When checkDeadlines next has something to do; UINT64_MAX if never.
  virtual uint64_t nextDeadlineNs() const = 0;
  // Closes now; every request it holds ends with `outcome`.
  virtual void close(Outcome outcome) = 0;

  // The pool does its I/O through `ring` (--mirror-io uring): once connected,
  // a kind that can moves its sends and receives there, its completions
  // tagged with `tag`. Kinds that cannot (h2c, TLS) ignore it.
  virtual void useRing(Ring& /*ring*/, void* /*tag*/) {}
  // Its I/O is in the ring now: the pool's epoll set does not watch fd().
  virtual bool usesRing() const { return false; }
};

// What the connections of a pool are made with (from MirrorPoolOptions).
struct ConnectionSettings {
  uint64_t connectTimeoutNs = 1'000'000'000;
  // Per request, from its start on the wire until its response is complete.
  uint64_t responseTimeoutNs = 5'000'000'000;
  // Where the sockets' local endpoints are published (may be null).
  LocalEndpoints* endpoints = nullptr;
  // Compare mode: a request with an exchange id keeps its final response
  // within responseLimits (body kept up to maxBodyBytes and hashed whole;
  // header names and values up to maxHeaderBytes, then headersTruncated) and
  // hands it over in its Ending. Requests without an id keep nothing.
  bool keepResponses = false;
  http::ResponseLimits responseLimits;
  // HTTP/1: response bytes (head and body) read per request before the
  // connection is closed and the request ends as kResponseTooLarge.
  size_t maxResponseBytes = 16 << 20;
  // HTTP/1: framing counters of kept responses (null: not counted).
  http::ResponseStats* keptFraming = nullptr;
  // h2c: streams per connection at most (the server's
  // SETTINGS_MAX_CONCURRENT_STREAMS also applies); requests taken while no
  // stream slot is free wait on the connection, at most maxQueued of them.
  size_t maxConcurrentStreams = 1000;
  size_t maxQueued = 256;
  // h2c, compare mode: the response's trailer fields follow its header fields.
  bool keepTrailers = true;
  // HTTP/1, tls=true: TLS to the mirror (null: plaintext). Outlives the pool's connections.
  const TlsClientConfig* tls = nullptr;
};

// A connection kind: opens connections of that kind to one address.
class ConnectionKind {
 public:
  virtual ~ConnectionKind() = default;
  // Starts a non-blocking connect. nullptr and `err` (errno) when no socket
  // can be made or the connect fails at once.
  virtual std::unique_ptr<Connection> open(const sockaddr_storage& addr, ConnectionEvents& events, uint64_t nowNs,
                                           int& err) = 0;
  // "http1", "h2c": for logs.
  virtual const char* name() const = 0;
};

// The two kinds a pool is built with.
std::unique_ptr<ConnectionKind> http1Kind(const ConnectionSettings& settings);
std::unique_ptr<ConnectionKind> h2Kind(const ConnectionSettings& settings);

}  // namespace shadowtap::replay
