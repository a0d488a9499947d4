#include "replay/pool_sizer.h"

#include <algorithm>
#include <cmath>

namespace shadowtap::replay {
namespace {

constexpr uint64_t kWindowNs = 100'000'000;
// A window this long covers an idle stretch: its rate replaces the estimate.
constexpr uint64_t kStaleWindowNs = 1'000'000'000;
constexpr double kRateWeight = 0.3;      // per window
constexpr double kLatencyWeight = 0.125;  // per response
constexpr double kHeadroom = 1.25;
// What waits in the queue should be gone within this long.
constexpr double kDrainSeconds = 1.0;
// Growth is judged each time the pool has grown this many times over from
// where it last paid, and pays when the answers a second rose by at least this
// share of the growth (doubling: at least 25 % more answers a second).
constexpr double kCheckStep = 2.0;
constexpr double kPayoff = 0.25;

}  // namespace

PoolSizer::PoolSizer(const Options& options)
    : floor_(std::min(options.floor, std::max<size_t>(1, options.max))),
      max_(std::max<size_t>(1, options.max)),
      paceNs_(options.paceNs),
      holdInitialNs_(options.holdInitialNs),
      holdMaxNs_(std::max(options.holdInitialNs, options.holdMaxNs)) {}

void PoolSizer::arrivals(uint64_t total, uint64_t nowNs) {
  if (windowStartNs_ == 0) {
    windowStartNs_ = nowNs;
    windowStartTotal_ = total;
    return;
  }
  const uint64_t elapsed = nowNs - windowStartNs_;
  if (elapsed < kWindowNs) {
    return;
  }
  const double sample = static_cast<double>(total - windowStartTotal_) * 1e9 / static_cast<double>(elapsed);
  rate_ = !haveRate_ || elapsed >= kStaleWindowNs ? sample : rate_ + kRateWeight * (sample - rate_);
  haveRate_ = true;
  windowStartNs_ = nowNs;
  windowStartTotal_ = total;
}

void PoolSizer::latency(uint64_t ns) {
  const auto sample = static_cast<double>(ns);
  latencyNs_ = haveLatency_ ? latencyNs_ + kLatencyWeight * (sample - latencyNs_) : sample;
  haveLatency_ = true;
}

void PoolSizer::distress(uint64_t nowNs) {
  if (nowNs < holdUntilNs_) {
    return;  // failures of one episode come together: one hold for them
  }
  hold(nowNs);
  ++holds_;
}

void PoolSizer::hold(uint64_t nowNs) {
  // Again within a hold's length of the last one ending: twice as long.
  const bool again = holdUntilNs_ != 0 && nowNs - holdUntilNs_ < holdNs_;
  holdNs_ = again ? std::min(holdNs_ * 2, holdMaxNs_) : holdInitialNs_;
  holdUntilNs_ = nowNs + holdNs_;
}

double PoolSizer::answersPerSecond(size_t live) const {
  return haveLatency_ && latencyNs_ > 0 ? static_cast<double>(live) * 1e9 / latencyNs_ : 0;
}

bool PoolSizer::checkGrowth(uint64_t nowNs, size_t live, size_t waiting) {
  if (!haveLatency_ || live == 0) {
    return false;
  }
  const double answers = answersPerSecond(live);
  if (live <= floor_ || live < paidLive_ || paidLive_ == 0) {
    paidLive_ = live;
    paidAnswers_ = answers;
    return false;
  }
  if (waiting == 0 || nowNs < holdUntilNs_ ||
      static_cast<double>(live) < static_cast<double>(paidLive_) * kCheckStep) {
    return false;
  }
  const double growth = static_cast<double>(live - paidLive_) / static_cast<double>(paidLive_);
  if (answers >= paidAnswers_ * (1 + kPayoff * growth)) {
    paidLive_ = live;
    paidAnswers_ = answers;
    return false;
  }
  hold(nowNs);
  ++saturations_;
  return true;
}

void PoolSizer::noDescriptors(uint64_t nowNs, size_t live) {
  fdHoldUntilNs_ = nowNs + holdInitialNs_;
  fdCeiling_ = live;
}

size_t PoolSizer::ceiling(uint64_t nowNs) const { return nowNs < fdHoldUntilNs_ ? fdCeiling_ : max_; }

size_t PoolSizer::wanted(size_t waiting) const {
  if (!haveLatency_) {
    return 0;
  }
  const double perSecond = rate_ + static_cast<double>(waiting) / kDrainSeconds;
  const double inFlight = perSecond * latencyNs_ / 1e9 * kHeadroom;
  return static_cast<size_t>(std::ceil(inFlight)) + 1;
}

bool PoolSizer::mayOpen(uint64_t nowNs, size_t live, size_t inFlight, size_t waiting) const {
  if (live >= ceiling(nowNs)) {
    return false;
  }
  if (live < floor_) {
    return true;
  }
  return haveLatency_ && nowNs >= holdUntilNs_ && nowNs >= nextOpenNs_ && inFlight < wanted(waiting);
}

void PoolSizer::opened(uint64_t nowNs, size_t live) {
  if (live > floor_) {
    nextOpenNs_ = nowNs + paceNs_;
  }
}

uint64_t PoolSizer::nextChanceNs(uint64_t nowNs, size_t live) const {
  uint64_t next = UINT64_MAX;
  if (live >= ceiling(nowNs)) {
    return nowNs < fdHoldUntilNs_ && live < max_ ? fdHoldUntilNs_ : next;
  }
  if (live < floor_ || !haveLatency_) {
    return next;
  }
  const uint64_t at = std::max(nextOpenNs_, holdUntilNs_);
  return at > nowNs ? at : next;
}

}  // namespace shadowtap::replay
