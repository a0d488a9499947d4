#pragma once

#include <sys/socket.h>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <deque>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>

#include "h2/h2_mirror_client.h"
#include "h2/h2_request.h"

namespace shadowtap::h2 {

struct H2PoolOptions {
  std::vector<sockaddr_storage> addrs;  // the mirror's addresses, tried in turn
  size_t connections = 2;               // HTTP/2 connections kept open
  size_t queueCapacity = 10000;         // requests waiting in the pool (not yet on a connection)
  H2ClientOptions client;               // per connection: streams, queue, timeouts
  std::chrono::milliseconds reconnectBackoff{200};  // after a failed connect, per address
};

// Counters of one H2Pool; relaxed atomics, read from any thread. Every
// submitted request ends in exactly one outcome, so after stop():
//   submitted == queueFull + responses + errors() + droppedShutdown
struct H2PoolStats {
  std::atomic<uint64_t> submitted{0};
  // Outcomes.
  std::atomic<uint64_t> queueFull{0};         // dropped by submit(): pool queue at capacity
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
  // Gauges.
  std::atomic<int64_t> queueDepth{0};
  std::atomic<int64_t> inFlight{0};  // handed to a connection, no outcome yet

  uint64_t errors() const {
    return errorsConnect.load(std::memory_order_relaxed) + errorsReset.load(std::memory_order_relaxed) +
           errorsConnection.load(std::memory_order_relaxed) + errorsTimeout.load(std::memory_order_relaxed) +
           errorsRejected.load(std::memory_order_relaxed);
  }
  uint64_t outcomes() const {
    return queueFull.load(std::memory_order_relaxed) + responses.load(std::memory_order_relaxed) + errors() +
           droppedShutdown.load(std::memory_order_relaxed);
  }
};

// Mirrors HTTP/2 requests over up to `connections` nghttp2 client connections
// to one target, from its own epoll thread, fire-and-forget: responses are
// counted and discarded, requests are never retried. The Replayer's shape:
// submit() never blocks, stop(drain) lets in-flight work finish.
// Threads: submit() from any thread; start()/stop() from one control thread.
class H2Pool {
 public:
  explicit H2Pool(H2PoolOptions opts);
  ~H2Pool();  // stop() with no drain time if still running
  H2Pool(const H2Pool&) = delete;
  H2Pool& operator=(const H2Pool&) = delete;

  // Starts the loop thread; false when it cannot (no epoll/eventfd, twice).
  bool start();
  // Sends `request` as is (rewrite the authority first). False, counted, when
  // the pool queue is full or stop() has begun.
  bool submit(H2Request&& request);
  // Stops taking requests, lets queued and in-flight ones finish for up to
  // `drain`, drops the rest (droppedShutdown), closes every connection and
  // joins the loop. Idempotent.
  void stop(std::chrono::milliseconds drain);

  const H2PoolStats& stats() const { return stats_; }

 private:
  struct Conn {
    std::unique_ptr<H2MirrorClient> client;
    bool wantOut = false;  // registered for EPOLLOUT
    bool opened = false;   // counted in connectionsOpened
    size_t addrIndex = 0;
  };

  void run();
  void dispatch(uint64_t now);
  void connectMore(uint64_t now);
  void updateInterest(Conn& c);
  void reap();
  void onOutcome(const H2Outcome& o);
  bool idle();

  H2PoolOptions opts_;
  H2PoolStats stats_;
  int epollFd_ = -1;
  int wakeFd_ = -1;
  std::thread thread_;
  std::atomic<bool> accepting_{true};
  std::atomic<bool> stopRequested_{false};
  std::atomic<int64_t> drainDeadlineNs_{0};
  bool started_ = false;
  bool stopped_ = false;

  std::mutex mutex_;
  std::deque<H2Request> queue_;  // guarded by mutex_

  // Loop thread only.
  std::vector<std::unique_ptr<Conn>> conns_;
  std::vector<uint64_t> retryAtNs_;  // per address
  size_t nextAddr_ = 0;
};

}  // namespace shadowtap::h2
