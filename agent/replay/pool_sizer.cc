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
// Below this share of the answers a second where growth last paid, the mirror
// itself changed (slower per request, or less capacity): that point is stale.
constexpr double kStale = 0.8;
// Answers a second are counted over a stretch of turns that all had requests
// waiting (so the count is what the mirror can answer, not what arrived) of
// at least this long and at least a round of answers (one per connection, at
// least kMinRound): long enough to smooth a mirror that answers in bursts.
constexpr uint64_t kCountNs = 200'000'000;
constexpr uint64_t kMinRound = 16;

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
  ++answers_;
  const auto sample = static_cast<double>(ns);
  latencyNs_ = haveLatency_ ? latencyNs_ + kLatencyWeight * (sample - latencyNs_) : sample;
  haveLatency_ = true;
}

void PoolSizer::Hold::begin(uint64_t nowNs, uint64_t initialNs, uint64_t maxNs) {
  // Again within a hold's length of the last one ending: twice as long.
  const bool again = untilNs != 0 && nowNs - untilNs < lengthNs;
  lengthNs = again ? std::min(lengthNs * 2, maxNs) : initialNs;
  untilNs = nowNs + lengthNs;
}

void PoolSizer::distress(uint64_t nowNs) {
  if (nowNs < failureHold_.untilNs) {
    return;  // failures of one episode come together: one hold for them
  }
  failureHold_.begin(nowNs, holdInitialNs_, holdMaxNs_);
  ++holds_;
}

void PoolSizer::resetCount(uint64_t nowNs) {
  countSinceNs_ = nowNs;
  countNs_ = 0;
  countAnswers_ = 0;
}

void PoolSizer::countTurn(uint64_t nowNs, size_t waiting) {
  // The stretch since the last turn counts when requests waited at its start:
  // every connection held one then, so its answers are the mirror's pace.
  // Other stretches are left out, not counted as a pause of the mirror.
  if (waitedLastTurn_ && nowNs > lastTurnNs_) {
    countNs_ += nowNs - lastTurnNs_;
    countAnswers_ += answers_ - lastTurnAnswers_;
  }
  lastTurnNs_ = nowNs;
  lastTurnAnswers_ = answers_;
  waitedLastTurn_ = waiting > 0;
}

bool PoolSizer::counted(size_t live) const {
  return countNs_ >= kCountNs && countAnswers_ >= std::max<uint64_t>(live, kMinRound);
}

double PoolSizer::countedRate() const {
  return static_cast<double>(countAnswers_) * 1e9 / static_cast<double>(countNs_);
}

void PoolSizer::paid(size_t live, double answersPerSecond) {
  paidLive_ = live;
  paidAnswers_ = answersPerSecond;
  reached_ = false;
  staleOnce_ = false;
}

bool PoolSizer::awaitsJudgement(size_t live) const {
  return paidLive_ != 0 && static_cast<double>(live) >= static_cast<double>(paidLive_) * kCheckStep;
}

bool PoolSizer::checkGrowth(uint64_t nowNs, size_t live, size_t waiting) {
  countTurn(nowNs, waiting);
  if (live == 0) {
    return false;
  }
  if (live <= floor_ || live < paidLive_ || paidLive_ == 0) {
    if (live != paidLive_ || reached_) {
      // At the floor, or the pool shrank: this is where growth last paid. The
      // bar stays what was counted at a larger size until counted here (a
      // smaller pool answering as many would not be growth that paid).
      paid(live, paidAnswers_);
      resetCount(nowNs);
    } else if (counted(live)) {
      paidAnswers_ = countedRate();
      resetCount(nowNs);
    }
    return false;
  }
  if (!awaitsJudgement(live)) {
    return false;
  }
  if (!reached_) {
    reached_ = true;  // doubled: count the answers at this size from here
    resetCount(nowNs);
    return false;
  }
  if (nowNs < saturatedHold_.untilNs) {
    return false;
  }
  if (countSinceNs_ < saturatedHold_.untilNs) {
    resetCount(nowNs);  // a hold ended: counted afresh
    return false;
  }
  if (waiting == 0 || !counted(live)) {
    return false;
  }
  measuredAnswers_ = countedRate();
  const double growth = static_cast<double>(live - paidLive_) / static_cast<double>(paidLive_);
  if (paidAnswers_ == 0 || measuredAnswers_ >= paidAnswers_ * (1 + kPayoff * growth)) {
    paid(live, measuredAnswers_);  // it paid (or nothing was counted where it last paid)
    return false;
  }
  if (measuredAnswers_ < paidAnswers_ * kStale) {
    // Fewer answers than where growth last paid. Twice in a row: the mirror
    // changed by itself, so judge from here. Once may be a burst: count again.
    if (staleOnce_) {
      paid(live, measuredAnswers_);
    } else {
      staleOnce_ = true;
      resetCount(nowNs);
    }
    return false;
  }
  staleOnce_ = false;
  saturatedHold_.begin(nowNs, holdInitialNs_, holdMaxNs_);
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
  return haveLatency_ && nowNs >= failureHold_.untilNs && nowNs >= nextOpenNs_ && !awaitsJudgement(live) &&
         inFlight < wanted(waiting);
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
  if (awaitsJudgement(live)) {
    // Answers turn it (the loop wakes for them), or a saturation hold's end.
    return saturatedHold_.untilNs > nowNs ? saturatedHold_.untilNs : next;
  }
  const uint64_t at = std::max(nextOpenNs_, failureHold_.untilNs);
  return at > nowNs ? at : next;
}

}  // namespace shadowtap::replay
