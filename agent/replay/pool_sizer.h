#pragma once

#include <cstddef>
#include <cstdint>

namespace shadowtap::replay {

// Decides when a mirror pool may open one more connection (issue 21): a slow
// mirror needs many requests in flight, a fast one few, and the pool should
// hold what the mirror needs, not a fixed number.
//
// - Up to `floor` connections open on demand, at once (what a fixed pool of
//   `floor` does; floor == max is a fixed pool).
// - Beyond the floor, one more opens only while requests wait for room (the
//   pool asks only then), and only when all of these hold:
//     * a response latency has been measured (no measurement, no growth: a
//       mirror that never answered gets no more than the floor);
//     * the requests in flight are fewer than Little's law wants for the
//       arrivals plus draining what waits within a second:
//       wanted = ceil((arrival rate + waiting / 1 s) x mean latency x 1.25) + 1;
//     * the last growth connect was at least `paceNs` ago (no burst of
//       connects: at most 1 s / paceNs new connections a second);
//     * no growth hold is running: a connect refused or timed out, or a
//       response timed out, stops growth for holdInitialNs, doubling up to
//       holdMaxNs while such failures keep coming within a hold's length of
//       the previous one; the per-address connect backoff applies on top;
//     * the process has descriptors: after EMFILE/ENFILE the pool stays at
//       the size it had for holdInitialNs.
// - Growth must pay (checkGrowth): a mirror at its capacity answers later the
//   more requests wait in it, so Little's law would ask for ever more
//   connections that carry nothing more. When the pool has doubled from the
//   size where growth last paid, it grows no further until judged: the
//   answers a second at the new size are counted (over 200 ms and a round of
//   answers, one per connection and at least 16, of stretches that began with
//   requests waiting, so the count is the mirror's pace, not the arrivals')
//   and must have risen by at least a quarter of the growth over the bar
//   where growth last paid. If so, this is where growth last paid; if not,
//   growth stays stopped and is judged again, counted afresh, after a hold
//   (1 s, doubling to holdMaxNs while it keeps failing; connections that
//   close meanwhile are replaced up to the doubled size). Two counts in a row
//   below 80 % of the bar mean the mirror itself changed: judged from here.
//   At or below the floor, and after the pool shrank, the size there is where
//   growth last paid; the bar stays what was counted at a larger size until
//   counted there.
// - Shrinking is the pool's: connections beyond the floor close once idle for
//   its shrink time (requests go to the most recently used connection first,
//   so the surplus is what stays idle).
//
// Loop thread only; times are the pool's clock.
class PoolSizer {
 public:
  struct Options {
    size_t floor = 16;
    size_t max = 16;
    uint64_t paceNs = 5'000'000;
    uint64_t holdInitialNs = 1'000'000'000;
    uint64_t holdMaxNs = 16'000'000'000;
  };

  explicit PoolSizer(const Options& options);

  // Measurements. `arrivals` is the running total of requests offered to the
  // pool (rate limited ones left out); sampled at most every 100 ms.
  void arrivals(uint64_t total, uint64_t nowNs);
  void latency(uint64_t ns);
  // A connect refused or timed out, or a response timed out.
  void distress(uint64_t nowNs);
  // socket() failed for want of descriptors with `live` connections open.
  void noDescriptors(uint64_t nowNs, size_t live);
  // Each loop turn, with `live` connections (retired ones left out) just
  // given what they can hold and `waiting` requests left queued: does the
  // growth since it last paid still pay? True when it did not and a hold began.
  bool checkGrowth(uint64_t nowNs, size_t live, size_t waiting);

  // May a connection be opened now, with `live` connections (retired ones
  // left out) holding `inFlight` requests, while `waiting` requests wait for room?
  bool mayOpen(uint64_t nowNs, size_t live, size_t inFlight, size_t waiting) const;
  // A connection was opened; `live` now counts it.
  void opened(uint64_t nowNs, size_t live);
  // When a refusal for reasons of time (pacing, hold) may turn; UINT64_MAX
  // when time alone changes nothing.
  uint64_t nextChanceNs(uint64_t nowNs, size_t live) const;

  size_t floor() const { return floor_; }
  size_t max() const { return max_; }
  // Requests in flight Little's law asks for with `waiting` requests queued
  // (0 before a latency is known).
  size_t wanted(size_t waiting) const;
  double ratePerSecond() const { return rate_; }
  uint64_t latencyNs() const { return static_cast<uint64_t>(latencyNs_); }
  // Holds after failures (distress); judgements that growth did not pay.
  uint64_t holds() const { return holds_; }
  uint64_t saturations() const { return saturations_; }
  // Where growth last paid: the connections, and the answers a second then.
  size_t paidConnections() const { return paidLive_; }
  double paidAnswersPerSecond() const { return paidAnswers_; }
  // Answers a second counted at the last judgement.
  double measuredAnswersPerSecond() const { return measuredAnswers_; }
  uint64_t holdUntilNs() const { return failureHold_.untilNs; }
  uint64_t saturatedUntilNs() const { return saturatedHold_.untilNs; }

 private:
  // A growth hold: holdInitialNs, twice as long again within a hold's length
  // of the last one ending, up to holdMaxNs.
  struct Hold {
    uint64_t untilNs = 0;
    uint64_t lengthNs = 0;
    void begin(uint64_t nowNs, uint64_t initialNs, uint64_t maxNs);
  };

  size_t ceiling(uint64_t nowNs) const;
  void paid(size_t live, double answersPerSecond);
  void resetCount(uint64_t nowNs);
  void countTurn(uint64_t nowNs, size_t waiting);
  bool counted(size_t live) const;
  double countedRate() const;
  // Doubled from where growth last paid, not judged to pay yet: no growth.
  bool awaitsJudgement(size_t live) const;

  size_t floor_;
  size_t max_;
  uint64_t paceNs_;
  uint64_t holdInitialNs_;
  uint64_t holdMaxNs_;
  // Arrival rate: EWMA of per-window rates, windows of at least 100 ms.
  double rate_ = 0;
  bool haveRate_ = false;
  uint64_t windowStartNs_ = 0;
  uint64_t windowStartTotal_ = 0;
  // Mean latency of responses: EWMA.
  double latencyNs_ = 0;
  bool haveLatency_ = false;
  uint64_t nextOpenNs_ = 0;
  Hold failureHold_;    // distress
  Hold saturatedHold_;  // growth that did not pay
  uint64_t holds_ = 0;
  uint64_t saturations_ = 0;
  size_t paidLive_ = 0;
  double paidAnswers_ = 0;
  bool reached_ = false;    // doubled from paidLive_, answers counted there
  bool staleOnce_ = false;  // the last count read below kStale of the bar
  uint64_t answers_ = 0;    // responses so far (latency samples)
  // The count: time and answers of the stretches between turns that began
  // with requests waiting, since countSinceNs_.
  uint64_t countSinceNs_ = 0;
  uint64_t countNs_ = 0;
  uint64_t countAnswers_ = 0;
  uint64_t lastTurnNs_ = 0;
  uint64_t lastTurnAnswers_ = 0;
  bool waitedLastTurn_ = false;
  double measuredAnswers_ = 0;
  uint64_t fdHoldUntilNs_ = 0;
  size_t fdCeiling_ = 0;
};

}  // namespace shadowtap::replay
