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

void PoolSizer::distress(uint64_t nowNs) {
  if (nowNs < holdUntilNs_) {
    return;  // failures of one episode come together: one hold for them
  }
  // Again within a hold's length of the last one ending: twice as long.
  const bool again = holdUntilNs_ != 0 && nowNs - holdUntilNs_ < holdNs_;
  holdNs_ = again ? std::min(holdNs_ * 2, holdMaxNs_) : holdInitialNs_;
  holdUntilNs_ = nowNs + holdNs_;
  ++holds_;
}

void PoolSizer::startCount(uint64_t nowNs) {
  countStartNs_ = nowNs;
  countStartAnswers_ = answers_;
}

bool PoolSizer::counted(uint64_t nowNs, size_t live) const {
  return countStartNs_ != 0 && nowNs - countStartNs_ >= kCountNs &&
         answers_ - countStartAnswers_ >= std::max<uint64_t>(live, kMinRound);
}

double PoolSizer::countedRate(uint64_t nowNs) const {
  return static_cast<double>(answers_ - countStartAnswers_) * 1e9 / static_cast<double>(nowNs - countStartNs_);
}

void PoolSizer::paid(size_t live, double answersPerSecond) {
  paidLive_ = live;
  paidAnswers_ = answersPerSecond;
  reached_ = false;
}

bool PoolSizer::awaitsJudgement(size_t live) const {
  return reached_ && static_cast<double>(live) >= static_cast<double>(paidLive_) * kCheckStep;
}

bool PoolSizer::checkGrowth(uint64_t nowNs, size_t live, size_t waiting) {
  if (waiting == 0 || live == 0) {
    countStartNs_ = 0;  // counts only while requests wait
    return false;
  }
  if (countStartNs_ == 0) {
    startCount(nowNs);
  }
  if (live <= floor_ || live < paidLive_ || paidLive_ == 0) {
    // Where growth last paid: here, counted while the pool stays here.
    if (live != paidLive_ || reached_) {
      paid(live, 0);
      startCount(nowNs);
    } else if (counted(nowNs, live)) {
      paidAnswers_ = countedRate(nowNs);
      startCount(nowNs);
    }
    return false;
  }
  if (static_cast<double>(live) < static_cast<double>(paidLive_) * kCheckStep) {
    return false;
  }
  if (!reached_ || countStartNs_ < saturatedUntilNs_) {
    // Doubled, or a hold ended: count the answers at this size from here.
    reached_ = true;
    startCount(nowNs);
    return false;
  }
  if (nowNs < saturatedUntilNs_ || !counted(nowNs, live)) {
    return false;
  }
  measuredAnswers_ = countedRate(nowNs);
  const double growth = static_cast<double>(live - paidLive_) / static_cast<double>(paidLive_);
  if (paidAnswers_ == 0 || measuredAnswers_ >= paidAnswers_ * (1 + kPayoff * growth) ||
      measuredAnswers_ < paidAnswers_ * kStale) {
    // It paid (or nothing was counted where it last paid); or the mirror
    // answers fewer than there: it changed by itself, so judge from here.
    paid(live, measuredAnswers_);
    return false;
  }
  // Again within a hold's length of the last one ending: twice as long.
  const bool again = saturatedUntilNs_ != 0 && nowNs - saturatedUntilNs_ < saturatedNs_;
  saturatedNs_ = again ? std::min(saturatedNs_ * 2, holdMaxNs_) : holdInitialNs_;
  saturatedUntilNs_ = nowNs + saturatedNs_;
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
  return haveLatency_ && nowNs >= holdUntilNs_ && nowNs >= nextOpenNs_ && !awaitsJudgement(live) &&
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
    return saturatedUntilNs_ > nowNs ? saturatedUntilNs_ : next;
  }
  const uint64_t at = std::max(nextOpenNs_, holdUntilNs_);
  return at > nowNs ? at : next;
}

}  // namespace shadowtap::replay
