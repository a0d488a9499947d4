#pragma once

#include <sys/socket.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "compare/compare_engine.h"
#include "model/response.h"
#include "http/response_framer.h"
#include "h2/h2_mirror_client.h"
#include "model/request.h"
#include "replay/replay_options.h"
#include "replay/replay_stats.h"
#include "replay/target.h"

namespace shadowtap::h2 {

struct H2PoolOptions {
  std::vector<sockaddr_storage> addrs;  // the mirror's addresses, tried in turn
  size_t connections = 2;               // HTTP/2 connections kept open
  // Requests waiting in the pool (not yet on a connection), by count and by
  // bytes (header names and values, body, trailer names and values); beyond
  // either, dropPolicy decides which request goes.
  size_t queueCapacity = 10000;
  size_t queueBytes = 64 << 20;
  // kNewest: submit drops the new request (queueFull). kOldest: submit drops
  // the requests queued longest until the new one fits (droppedOldest); a
  // request larger than queueBytes on its own never fits (queueFull).
  replay::DropPolicy dropPolicy = replay::DropPolicy::kNewest;
  // Requests per second admitted by submit (0: unlimited), GCRA with bursts of
  // up to a tenth of a second's worth (at least 1); the excess is dropped
  // (droppedRateLimit). Same semantics as replay::ReplayOptions::maxRps.
  uint32_t maxRps = 0;
  H2ClientOptions client;  // per connection: streams, queue, timeouts (keepResponses is set by the pool)
  std::chrono::milliseconds reconnectBackoff{200};  // after a failed connect, per address

  // "host:port", re-resolved every resolveInterval (0: never) on the pool's
  // own resolver thread with `resolve` (default replay::resolveTarget). A
  // failed or empty resolution keeps the last addresses. New connections use
  // the new list; a connection to an address that left the list takes no new
  // requests and closes once its streams have ended; the others stay.
  std::string target;
  std::chrono::milliseconds resolveInterval{0};
  std::function<replay::ResolveResult(const std::string& hostPort)> resolve;

  // Compare mode, as replay::ReplayOptions: with onMissingResponse set, a
  // request with exchangeId != 0 ends in exactly one call:
  // onKeptResponse(exchangeId, comparePart, response) for a complete response
  // (see H2ClientOptions::keepResponses for what is kept; with keepTrailers the
  // trailer fields follow the regular ones in `headers`), or
  // onMissingResponse(exchangeId, comparePart) for every other ending (drop by
  // queue, rate or shutdown, reset, timeout, connection error, rejected).
  // Called on the pool's loop thread, or on the submitting / stopping thread
  // for requests dropped there; must not block or call back into the pool.
  // Unset onMissingResponse: nothing is kept or reported.
  compare::Part comparePart = compare::Part::kMirror;
  std::function<void(uint64_t exchangeId, compare::Part part, model::Response&& response)> onKeptResponse;
  std::function<void(uint64_t exchangeId, compare::Part part)> onMissingResponse;
  http::ResponseLimits responseLimits;
  bool keepTrailers = true;
};

// Counters of one H2Pool; relaxed atomics, read from any thread. Every
// submitted request ends in exactly one outcome, so after stop():
//   submitted == outcomes() == queueFull + droppedOldest + droppedRateLimit + responses + errors() +
//                              droppedShutdown
struct H2PoolStats {
  std::atomic<uint64_t> submitted{0};
  // Outcomes.
  std::atomic<uint64_t> queueFull{0};         // dropped by submit(): pool queue at capacity (count or bytes)
  std::atomic<uint64_t> droppedOldest{0};     // drop policy oldest: pushed out of the queue by newer requests
  std::atomic<uint64_t> droppedRateLimit{0};  // dropped by submit(): beyond maxRps
  std::atomic<uint64_t> responses{0};         // complete responses, by class below
  std::atomic<uint64_t> errorsConnect{0};     // the connection it waited on never came up
  std::atomic<uint64_t> errorsReset{0};       // the server reset the stream (or refused it after GOAWAY)
  std::atomic<uint64_t> errorsConnection{0};  // its connection failed or closed under it
  std::atomic<uint64_t> errorsTimeout{0};     // no complete response in time
  std::atomic<uint64_t> errorsRejected{0};    // nghttp2 would not submit it
  std::atomic<uint64_t> droppedShutdown{0};   // still queued or in flight when stop()'s drain ran out,
                                              // or submitted after stop()
  // Responses by :status class, and gRPC status where the response carried one.
  std::atomic<uint64_t> responses2xx{0};
  std::atomic<uint64_t> responses3xx{0};
  std::atomic<uint64_t> responses4xx{0};
  std::atomic<uint64_t> responses5xx{0};
  std::atomic<uint64_t> responsesOther{0};
  std::atomic<uint64_t> grpcOk{0};     // grpc-status 0
  std::atomic<uint64_t> grpcError{0};  // grpc-status != 0
  // Activity.
  std::atomic<uint64_t> connectAttempts{0};
  std::atomic<uint64_t> connectionsOpened{0};
  std::atomic<uint64_t> connectionsClosed{0};
  std::atomic<uint64_t> bytesSent{0};
  std::atomic<uint64_t> bytesReceived{0};
  std::atomic<uint64_t> resolves{0};        // re-resolutions of the target
  std::atomic<uint64_t> resolveErrors{0};   // ... that failed or came back empty (last addresses kept)
  std::atomic<uint64_t> addressChanges{0};  // ... that changed the address list
  // Compare mode: requests with an exchange id end in exactly one of these two.
  std::atomic<uint64_t> keptResponses{0};     // handed to onKeptResponse
  std::atomic<uint64_t> missingResponses{0};  // reported to onMissingResponse
  std::atomic<uint64_t> headersTruncated{0};  // kept responses whose header fields passed maxHeaderBytes
  std::atomic<uint64_t> bodiesTruncated{0};   // kept responses whose body passed maxBodyBytes
  // Gauges.
  std::atomic<int64_t> queueDepth{0};
  std::atomic<int64_t> queueBytes{0};
  std::atomic<int64_t> inFlight{0};  // handed to a connection, no outcome yet
  // Submission to nghttp2 until the response completed, of every response.
  base::LatencyHistogram latency;

  uint64_t errors() const {
    return errorsConnect.load(std::memory_order_relaxed) + errorsReset.load(std::memory_order_relaxed) +
           errorsConnection.load(std::memory_order_relaxed) + errorsTimeout.load(std::memory_order_relaxed) +
           errorsRejected.load(std::memory_order_relaxed);
  }
  uint64_t outcomes() const {
    return queueFull.load(std::memory_order_relaxed) + droppedOldest.load(std::memory_order_relaxed) +
           droppedRateLimit.load(std::memory_order_relaxed) + responses.load(std::memory_order_relaxed) + errors() +
           droppedShutdown.load(std::memory_order_relaxed);
  }
};

// Bytes a request holds while queued: what queueBytes limits.
size_t queuedSize(const model::Request& request);

// Mirrors HTTP/2 requests over up to `connections` nghttp2 client connections
// to one target, from its own epoll thread, fire-and-forget: responses are
// counted and discarded (kept in compare mode), requests are never retried.
// The Replayer's shape: submit() never blocks (it takes a mutex held only for
// queue operations), stop(drain) lets in-flight work finish.
// Threads: submit() from any thread; start()/stop() from one control thread.
class H2Pool {
 public:
  explicit H2Pool(H2PoolOptions opts);
  ~H2Pool();  // stop() with no drain time if still running
  H2Pool(const H2Pool&) = delete;
  H2Pool& operator=(const H2Pool&) = delete;

  // Starts the loop thread (and the resolver thread with a resolveInterval);
  // false when it cannot (no address, no epoll/eventfd, twice).
  bool start();
  // Sends `request` as is (rewrite the authority first). False, counted, when
  // beyond maxRps (droppedRateLimit), when the queue is full under drop policy
  // newest or the request alone is over queueBytes (queueFull), or once stop()
  // has begun (droppedShutdown). True when queued, which under drop policy
  // oldest may have pushed older requests out (droppedOldest).
  bool submit(model::Request&& request);
  // Stops taking requests, lets queued and in-flight ones finish for up to
  // `drain`, drops the rest (droppedShutdown), closes every connection and
  // joins the threads. Idempotent. Afterwards submitted == stats().outcomes().
  void stop(std::chrono::milliseconds drain);

  const H2PoolStats& stats() const { return stats_; }

 private:
  struct Conn {
    std::unique_ptr<H2MirrorClient> client;
    bool wantOut = false;  // registered for EPOLLOUT
    bool opened = false;   // counted in connectionsOpened
    bool retired = false;  // its address left the list: no new requests, closed once empty
    size_t addrIndex = 0;  // SIZE_MAX once retired
    sockaddr_storage addr{};
  };
  struct Queued {
    model::Request request;
    size_t bytes = 0;
  };

  void run();
  void resolveLoop();
  bool admitRate();
  void applyAddresses();
  void dispatch(uint64_t now);
  void connectMore(uint64_t now);
  void updateInterest(Conn& c);
  void reap();
  void onOutcome(const H2Outcome& o, uint64_t exchangeId);
  bool idle();
  bool keeping() const { return static_cast<bool>(opts_.onMissingResponse); }
  void reportMissing(uint64_t exchangeId);
  // Under mutex_: takes the queue's front.
  Queued popFront();

  H2PoolOptions opts_;
  H2PoolStats stats_;
  int epollFd_ = -1;
  int wakeFd_ = -1;
  std::thread thread_;
  std::atomic<bool> accepting_{true};  // written under mutex_, so no push follows stop()'s last sweep
  std::atomic<bool> stopRequested_{false};
  std::atomic<int64_t> drainDeadlineNs_{0};
  bool started_ = false;
  bool stopped_ = false;

  // GCRA: the theoretical arrival time of the next request (ns).
  std::atomic<int64_t> rateTatNs_{0};
  int64_t rateIntervalNs_ = 0;
  int64_t rateBurstNs_ = 0;

  std::mutex mutex_;
  std::deque<Queued> queue_;  // guarded by mutex_
  size_t queuedBytes_ = 0;    // guarded by mutex_

  // Resolver thread and the address list it hands to the loop.
  std::thread resolver_;
  std::mutex resolveMutex_;
  std::condition_variable resolveCv_;
  bool resolveStop_ = false;                                // guarded by resolveMutex_
  std::optional<std::vector<sockaddr_storage>> pendingAddrs_;  // guarded by resolveMutex_
  std::atomic<bool> addrsPending_{false};

  // Loop thread only (addrs: opts_.addrs).
  std::vector<std::unique_ptr<Conn>> conns_;
  std::vector<uint64_t> retryAtNs_;  // per address
  size_t nextAddr_ = 0;
};

}  // namespace shadowtap::h2
