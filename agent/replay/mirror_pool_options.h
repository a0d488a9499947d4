#pragma once

#include <sys/socket.h>

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "base/clock.h"
#include "base/drop_policy.h"
#include "http/response_framer.h"
#include "model/request.h"
#include "replay/local_endpoints.h"
#include "replay/rate_limiter.h"
#include "replay/ring.h"
#include "replay/response_observer.h"
#include "replay/target.h"
#include "replay/tls_client.h"

namespace shadowtap::replay {

using base::DropPolicy;

struct MirrorPoolOptions {
  // The connection kind: HTTP/1 (sends Request::bytes) or h2c (sends the
  // fields, body and trailers). Every request submitted must be of it.
  model::Protocol protocol = model::Protocol::kHttp1;
  // How the loop does its sockets' I/O (ring.h): HTTP/1 cleartext pools can
  // use io_uring; kUring fails start() where the kernel refuses it, kAuto
  // falls back to epoll (logged).
  MirrorIo io = MirrorIo::kEpoll;

  // "host:port" as configured: names the target in logs and is re-resolved
  // every resolveInterval (0: never) on the pool's resolver thread with
  // `resolve` (default resolveTarget). New connections use the new addresses;
  // a connection to an address that left the list takes no new requests and
  // closes once it has none.
  std::string target;
  // tls=true: HTTP/1 connections to the target speak TLS (tls_client.h).
  std::shared_ptr<const TlsClientConfig> tls;
  std::chrono::milliseconds resolveInterval{0};
  std::function<ResolveResult(const std::string& hostPort)> resolve;
  // The mirror's addresses (from resolveTarget); new connections use them in turn.
  std::vector<sockaddr_storage> addrs;

  // Connections: up to minConnections open on demand; beyond that the pool
  // grows, while requests wait, to what the mirror's latency needs (Little's
  // law), up to maxConnections, paced one per connectPacing, held after refused
  // or timed-out connects and response timeouts (growthHold, doubling to
  // growthHoldMax); connections beyond minConnections close after shrinkIdle
  // without a request (see PoolSizer). minConnections >= maxConnections is a
  // fixed pool of maxConnections. HTTP/1 carries one request at a time per
  // connection (no pipelining); h2c up to maxConcurrentStreams (and the
  // server's SETTINGS_MAX_CONCURRENT_STREAMS), so an h2c pool fills a
  // connection's streams before it opens another.
  size_t minConnections = 16;
  size_t maxConnections = 16;
  std::chrono::milliseconds connectPacing{5};
  std::chrono::milliseconds growthHold{1000};
  std::chrono::milliseconds growthHoldMax{16000};
  std::chrono::milliseconds shrinkIdle{5000};

  // The queue between submit() and the connections holds at most
  // queueCapacity requests and queueBytes bytes of them (see queuedBytes),
  // whatever the drop policy: kNewest refuses the request that does not fit
  // (queueFull); kOldest drops the requests queued longest until it fits
  // (droppedOldest), and refuses only a request larger than queueBytes on its
  // own (queueFull). Memory of the pool: the queue's bound, plus the requests
  // on connections (one per HTTP/1 connection, up to maxConcurrentStreams per
  // h2c connection, each with its response up to maxResponseBytes /
  // responseLimits in compare mode), plus the ring's preallocated cells
  // (queueCapacity rounded up to a power of two, sizeof(model::Request) each).
  size_t queueCapacity = 4096;
  size_t queueBytes = 64 << 20;
  DropPolicy dropPolicy = DropPolicy::kNewest;
  // Requests per second admitted by submit (0: unlimited), with bursts of up
  // to a tenth of a second's worth (at least one); the excess is dropped and
  // counted (droppedRateLimit).
  uint32_t maxRps = 0;
  // When set, submit admits through this limiter instead of one of maxRps:
  // the pools of one rule in every worker share the rule's max-rps.
  std::shared_ptr<RateLimiter> sharedRate;

  // Where the sockets' local endpoints are published (may be null).
  LocalEndpoints* localEndpoints = nullptr;
  std::chrono::milliseconds connectTimeout{1000};
  // From the request's start on the wire until its response is complete.
  std::chrono::milliseconds responseTimeout{5000};
  // A connection with nothing to do is closed after this long.
  std::chrono::milliseconds idleTimeout{60000};
  // After a failed connect to an address (refused, unreachable, timed out),
  // no new connect to it for a backoff that starts here and doubles up to the
  // maximum; reset by a successful connect.
  std::chrono::milliseconds backoffInitial{100};
  std::chrono::milliseconds backoffMax{5000};

  // HTTP/1: response bytes (head and body) read per request before the
  // connection is closed and the request counted as errorsResponseTooLarge.
  size_t maxResponseBytes = 16 << 20;
  // h2c: streams per connection at most; the server's
  // SETTINGS_MAX_CONCURRENT_STREAMS applies below it, so a pool uses what the
  // mirror advertises (up to this cap) before it opens another connection.
  size_t maxConcurrentStreams = 1000;

  // Compare mode: with an observer, a request with an exchange id keeps its
  // response within responseLimits (h2c: with keepTrailers, the trailer fields
  // follow the header fields) and ends in exactly one observer call (see
  // ResponseObserver). Not owned; outlives the pool. Null: nothing is kept.
  ResponseObserver* observer = nullptr;
  http::ResponseLimits responseLimits;
  bool keepTrailers = true;

  // Time for pacing, timeouts, backoff, re-resolution and the drain (null: the
  // monotonic clock). Tests give a base::FakeClock and call MirrorPool::wake()
  // after moving it.
  const base::Clock* clock = nullptr;
};

}  // namespace shadowtap::replay
