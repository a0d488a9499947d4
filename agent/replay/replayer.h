#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <memory>
#include <mutex>
#include <optional>
#include <thread>
#include <vector>

#include "replay/job_queue.h"
#include "replay/job_sink.h"
#include "replay/mirror_connection.h"
#include "base/rate_limited_log.h"
#include "replay/replay_error.h"
#include "replay/replay_job.h"
#include "replay/replay_options.h"
#include "replay/replay_stats.h"
#include "replay/target.h"

namespace shadowtap::replay {

// Sends jobs to the mirror fire-and-forget from its own event loop thread
// (epoll, non-blocking sockets, keep-alive pool of up to maxConnections, one
// request in flight per connection). Responses are framed and discarded; only
// their status class is counted, except in compare mode, where a job with an
// exchange id keeps its response (see ReplayOptions::onKeptResponse). Jobs are never retried. A dead or slow mirror
// costs at most the bounded queue plus one job per connection, and connects to
// a failing address back off instead of spinning.
//
// Threads: submit() from any thread (normally the capture thread); start() and
// stop() from one control thread; stats() from anywhere.
class Replayer final : public JobSink {
 public:
  explicit Replayer(ReplayOptions opts);
  // Stops with no drain time if still running.
  ~Replayer() override;
  Replayer(const Replayer&) = delete;
  Replayer& operator=(const Replayer&) = delete;

  // Starts the event loop thread. False (logged) when the loop cannot be set up
  // (no epoll/eventfd, no thread) or when called twice.
  bool start();

  // Never blocks and never waits on the loop. Queues the job or drops it:
  // false with droppedRateLimit counted beyond maxRps, false with queueFull
  // counted when the queue is at its job or byte limit, false with
  // droppedShutdown counted once stop() has begun.
  bool submit(ReplayJob&& job) override;

  // Stops taking jobs, lets queued and in-flight jobs finish for up to `drain`,
  // drops the rest (droppedShutdown), closes every socket and joins the loop.
  // Idempotent. Afterwards the outcome counters add up to `submitted`.
  void stop(std::chrono::milliseconds drain);

  const ReplayStats& stats() const { return stats_; }
  const ReplayOptions& options() const { return opts_; }
  // Framing counters of kept responses (compare mode).
  const http::ResponseStats& keptResponseStats() const { return keptStats_; }

 private:
  struct AddrState {
    int64_t retryAtNs = 0;  // no connect before this (backoff)
    int64_t backoffNs = 0;  // 0: last connect succeeded or none failed yet
  };

  void run();
  void resolveLoop();
  bool admitRate();
  // Loop thread: picks up an address list published by the resolver thread.
  void applyAddresses(int64_t now);
  // Loop thread, drop policy oldest: moves queued jobs into the backlog and
  // trims it to the limits from the front.
  void absorbQueue();
  bool jobsWaiting() const;
  // Hands ready jobs to idle connections and new connects. True when it
  // stopped for want of jobs, false when for want of connections.
  bool dispatch(int64_t now);
  void handleStep(MirrorConnection& conn, const MirrorConnection::Step& step, int64_t now);
  void checkDeadlines(int64_t now);
  int timeoutMs(int64_t now) const;
  void reapClosed();
  void dropEverything();
  void dropQueued();
  bool takeJob(ReplayJob& job);
  void countResponse(int status);
  void countError(ReplayError error, const MirrorConnection* conn, int64_t now);
  void noteConnectFailure(size_t addrIndex, int64_t now, ReplayError error, int err);
  int pickAddress(int64_t now);
  size_t liveConnections() const;
  // Compare mode: the job's exchange ends with a kept response or as missing.
  bool keeping() const { return static_cast<bool>(opts_.onMissingResponse); }
  void reportKept(uint64_t exchangeId, model::Response&& response);
  void reportMissing(uint64_t exchangeId);
  size_t jobsOnConnections() const;

  ReplayOptions opts_;
  ReplayStats stats_;
  http::ResponseStats keptStats_;
  JobQueue queue_;
  int epollFd_ = -1;
  int wakeFd_ = -1;
  std::atomic<bool> accepting_{true};
  // Set by submit when it writes the eventfd; cleared by the loop only when it
  // ran out of jobs. So submit writes the eventfd when the queue goes from empty
  // to non-empty, and not at all while the loop is busy or backing off.
  std::atomic<bool> wakePending_{false};
  std::atomic<bool> stopRequested_{false};
  std::atomic<int64_t> drainDeadlineNs_{0};
  std::thread thread_;
  // GCRA rate limit: the theoretical arrival time of the next request (ns).
  std::atomic<int64_t> rateTatNs_{0};
  int64_t rateIntervalNs_ = 0;
  int64_t rateBurstNs_ = 0;
  // Resolver thread and the address list it hands to the loop.
  std::thread resolver_;
  std::mutex resolveMutex_;
  std::condition_variable resolveCv_;
  bool resolveStop_ = false;
  std::optional<std::vector<sockaddr_storage>> pendingAddrs_;
  std::atomic<bool> addrsPending_{false};
  bool started_ = false;
  bool stopped_ = false;

  // Loop thread only.
  std::vector<std::unique_ptr<MirrorConnection>> conns_;
  std::vector<AddrState> addrStates_;
  std::deque<ReplayJob> backlog_;  // drop policy oldest only
  size_t backlogBytes_ = 0;
  size_t nextAddr_ = 0;
  std::vector<char> readBuf_;
  base::RateLimitedLog connectLog_;
  base::RateLimitedLog errorLog_;
};

}  // namespace shadowtap::replay
