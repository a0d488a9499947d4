#pragma once

#include <sys/socket.h>

#include <array>
#include <atomic>
#include <cstdint>
#include <deque>
#include <memory>
#include <mutex>
#include <utility>
#include <vector>

#include "model/request.h"
#include "record/dry_run_writer.h"
#include "replay/mirror_pool.h"
#include "replay/rate_limiter.h"
#include "rules/router.h"
#include "rules/rule.h"

namespace shadowtap {

// Request-level outcomes decided between framing and the replay queue, over
// all rules; one per worker (summed at scrape).
struct PipelineStats {
  std::atomic<uint64_t> requests{0};       // complete requests out of the framer
  std::atomic<uint64_t> h2Requests{0};     // complete requests out of the HTTP/2 decoders
  std::atomic<uint64_t> unknownRule{0};    // carried the id of a rule a reload removed (never installed: a bug)
  std::atomic<uint64_t> ownTrafficSegments{0};  // segments of our own mirror connections, never reassembled
  // Compare mode: response segments (egress capture) into the response flow
  // table, and those of our own mirror connections, skipped.
  std::atomic<uint64_t> responseSegments{0};
  std::atomic<uint64_t> ownResponseSegments{0};
  // Records this worker read from its ring buffer, and the batches they came in.
  std::atomic<uint64_t> segments{0};
  std::atomic<uint64_t> batches{0};
};

// Per-rule request counts before the mirrors: every request of the rule
// (HTTP/1 and HTTP/2 alike) is counted here, and for each of the rule's
// mirrors it is exactly one of loopSkipped (the rule's), recordOnly (the
// rule's: no mirror), or that mirror's filtered, sampledOut or submitted
// (whose outcome the mirror's pools' stats then give; submitted = queued +
// dropped by submit).
struct RuleStats {
  // Sizes of the requests the rule saw, for the request size histogram.
  static constexpr std::array<uint64_t, 8> kSizeBounds = {256, 1024, 4096, 16384, 65536, 262144, 1048576, 4194304};
  std::array<std::atomic<uint64_t>, kSizeBounds.size() + 1> sizeBuckets{};  // not cumulative; last is +Inf
  std::atomic<uint64_t> sizeSum{0};
  void observeSize(uint64_t size) {
    size_t b = 0;
    while (b < kSizeBounds.size() && size > kSizeBounds[b]) {
      ++b;
    }
    sizeBuckets[b].fetch_add(1, std::memory_order_relaxed);
    sizeSum.fetch_add(size, std::memory_order_relaxed);
  }

  std::atomic<uint64_t> requests{0};
  std::atomic<uint64_t> loopSkipped{0};  // already a shadow (the router's loop guard): never mirrored twice
  std::atomic<uint64_t> h2Requests{0};   // HTTP/2 (counted in requests too)
  std::atomic<uint64_t> recordOnly{0};   // the rule has no mirror: captured for --record only
  // Compare mode: streamed requests (over --max-request-mib) mirrored but not compared.
  std::atomic<uint64_t> streamedNotCompared{0};
  // Compared HTTP/2 requests the secondary did not get: no HTTP/2 pool to it could be started.
  std::atomic<uint64_t> h2SecondaryUnavailable{0};
};

// One mirror's share of a rule's requests (MirrorRuntime).
struct MirrorCounters {
  std::atomic<uint64_t> filtered{0};    // in its share, but the method is not in the rule's allow-list
  std::atomic<uint64_t> sampledOut{0};  // not in its share (sample=request|header, or several mirrors)
  std::atomic<uint64_t> submitted{0};
  std::atomic<uint64_t> queued{0};   // taken by a pool's queue (dry run: printed)
  std::atomic<uint64_t> dropped{0};  // refused by submit (queue full, rate limit, shutdown)
  std::atomic<uint64_t> h2PoolUnavailable{0};  // submitted, but no HTTP/2 pool could be started (dropped)
  // A streamed request (over --max-request-mib) in this mirror's share that
  // an earlier mirror of the rule took: its body has one reader, so it goes to
  // the first mirror that takes it and is counted here for the others.
  std::atomic<uint64_t> streamedElsewhere{0};
};

// One mirror of a rule as one worker runs it: its pools (the worker's share of
// the mirror's limits; one per protocol) and its counters.
struct MirrorRuntime {
  rules::MirrorSpec spec;
  std::unique_ptr<replay::MirrorPool> replayer;  // HTTP/1 to the mirror; null in dry-run and record-only mode
  // HTTP/2 requests go to their own pool of h2c (prior knowledge) connections
  // to the same target, started on the mirror's first HTTP/2 request in this
  // worker (so a mirror that never sees HTTP/2 never gets an h2c connection).
  // Set by the worker under the pipeline's rules mutex; other threads read it
  // under that mutex.
  std::unique_ptr<replay::MirrorPool> h2Pool;
  std::vector<sockaddr_storage> addrs;  // resolved when the rule was made (off the workers)
  bool h2PoolFailed = false;            // start() failed once: not retried
  // The mirror's max-rps for HTTP/2, one limiter shared by every worker's h2
  // pool of the mirror (null: unlimited, or one worker).
  std::shared_ptr<replay::RateLimiter> h2Rate;
  MirrorCounters stats;

  explicit MirrorRuntime(rules::MirrorSpec s) : spec(std::move(s)) {}
};

// One installed rule as one worker runs it: its router, its mirrors (each with
// its pools and counters) and its counters. Only its worker's thread uses the
// router and submits; other threads read the counters and the pools' stats.
struct RuleRuntime {
  rules::Rule rule;
  uint32_t ruleId = 0;
  uint32_t worker = 0;
  rules::Router router;
  // One per rule.mirrors, in order (std::deque: a MirrorRuntime does not move).
  std::deque<MirrorRuntime> mirrors;
  std::unique_ptr<record::DryRunWriter> dryRun;  // only in dry-run mode
  // Compare mode, with the first mirror: exchanges begun for this rule's
  // requests to it (HTTP/1 and HTTP/2) go to the engine; the secondary
  // (rule.secondary) gets the same requests, HTTP/2 ones on a pool of its own,
  // made like a mirror's h2Pool.
  bool compared = false;
  std::unique_ptr<replay::MirrorPool> secondary;
  std::unique_ptr<replay::MirrorPool> h2SecondaryPool;
  std::vector<sockaddr_storage> secondaryAddrs;
  bool h2SecondaryFailed = false;
  std::shared_ptr<replay::RateLimiter> h2SecondaryRate;
  RuleStats stats;

  RuleRuntime(rules::Rule r, uint32_t id, uint32_t w) : rule(std::move(r)), ruleId(id), worker(w), router(rule) {
    for (const rules::MirrorSpec& m : rule.mirrors) {
      mirrors.emplace_back(m);
    }
  }
  // Whether the rule sends anywhere (false: dry run, or record only).
  bool sends() const { return mirrors.front().replayer != nullptr; }
};

// The installed rules as every worker sees them, immutable once published:
// perWorker[w][ruleId - 1] is worker w's runtime of the rule (null where a
// reload removed it). A reload publishes a new set whose kept rules are the
// same runtimes (their connections stay).
struct RuleSet {
  uint64_t generation = 0;
  std::vector<std::vector<std::shared_ptr<RuleRuntime>>> perWorker;
  // successors[ruleId - 1]: for a rule a reload changed (a new rule for the
  // same port and destination took its place), the new rule's id; 0 for a
  // rule removed outright or still installed. A connection keeps the id it
  // began with, so without it every connection open across a reload that
  // changed its rule would go unmirrored until it reconnected. Always a
  // higher id (a reload numbers its new rules after all earlier ones).
  std::vector<uint32_t> successors;

  size_t rules() const { return perWorker.empty() ? 0 : perWorker[0].size(); }
  // Worker w's runtime of rule `ruleId`, or of the rule that replaced it
  // (successors); null when unknown or removed.
  RuleRuntime* find(uint32_t w, uint32_t ruleId) const {
    const auto& mine = perWorker[w];
    while (ruleId != 0 && ruleId <= mine.size()) {
      if (RuleRuntime* rt = mine[ruleId - 1].get()) {
        return rt;
      }
      const uint32_t next = ruleId <= successors.size() ? successors[ruleId - 1] : 0;
      ruleId = next > ruleId ? next : 0;
    }
    return nullptr;
  }
};

// Where the current RuleSet is published: one writer (the reload, on the main
// thread), any number of readers. Readers compare generation() with the one
// they hold, an atomic load, and load() the set only when it changed (after a
// reload): the mutex is taken once per reload and reader, never per request.
// (Not std::atomic<std::shared_ptr>: GCC 12's unlocks its load with relaxed
// order, which ThreadSanitizer reports as a race with the next store.)
class RuleSnapshot {
 public:
  std::shared_ptr<const RuleSet> load() const {
    std::lock_guard<std::mutex> lock(mutex_);
    return current_;
  }
  uint64_t generation() const { return generation_.load(std::memory_order_acquire); }
  // The set's generation must be above the current one.
  void publish(std::shared_ptr<const RuleSet> next) {
    const uint64_t g = next->generation;
    std::shared_ptr<const RuleSet> previous;  // freed outside the lock
    {
      std::lock_guard<std::mutex> lock(mutex_);
      previous = std::exchange(current_, std::move(next));
    }
    generation_.store(g, std::memory_order_release);
  }

 private:
  mutable std::mutex mutex_;
  std::shared_ptr<const RuleSet> current_;
  std::atomic<uint64_t> generation_{0};
};

}  // namespace shadowtap
