#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <utility>

#include "compare/comparator.h"

namespace shadowtap::compare {

// Outcomes of the comparisons of one rule or one endpoint.
//   compared == equal + different + noisy
struct CompareCounters {
  std::atomic<uint64_t> compared{0};
  std::atomic<uint64_t> equal{0};
  std::atomic<uint64_t> different{0};
  std::atomic<uint64_t> noisy{0};
};

// Counters of the comparison side output, read by metrics at scrape time.
//
// Every exchange begun ends in exactly one of (exact once nothing is pending):
//   exchanges == compared + noPrimary + noMirror + expired + queueFull + pending + queued
// and compared == equal + different + noisy, summed over rules (and over endpoints).
class CompareStats {
 public:
  // Endpoints beyond maxEndpoints (all rules together) are counted under "(other)".
  explicit CompareStats(size_t maxEndpoints = 1024) : maxEndpoints_(maxEndpoints) {}

  // Counts one comparison under its rule and endpoint.
  void count(uint32_t ruleId, const std::string& endpoint, Outcome outcome);

  // Visits every rule / endpoint seen so far (under a lock; keep `fn` short).
  void forEachRule(const std::function<void(uint32_t, const CompareCounters&)>& fn) const;
  void forEachEndpoint(const std::function<void(uint32_t, const std::string&, const CompareCounters&)>& fn) const;

  std::atomic<uint64_t> exchanges{0};        // begun
  std::atomic<uint64_t> refused{0};          // not begun: maxPending reached
  std::atomic<uint64_t> compared{0};
  std::atomic<uint64_t> noPrimary{0};        // the primary's response will not come (see the framer's reasons)
  std::atomic<uint64_t> noMirror{0};         // the mirror's response will not come (error, drop)
  std::atomic<uint64_t> noSecondary{0};      // compared without the secondary's response it expected (included in compared)
  std::atomic<uint64_t> expired{0};          // a response never came within the timeout
  std::atomic<uint64_t> queueFull{0};        // complete, but the comparison queue was full
  std::atomic<uint64_t> unknownParts{0};     // a response for an exchange not pending (late or duplicate)
  std::atomic<uint64_t> endpointsOverflow{0};  // comparisons counted under "(other)"
  std::atomic<uint64_t> pending{0};          // gauge: waiting for responses
  std::atomic<uint64_t> queued{0};           // gauge: waiting for the comparison thread
  // Responses not kept: the engine held EngineOptions::maxHeldBytes. Their part
  // counts as missing (the exchange ends no_primary or no_mirror, or is
  // compared without its secondary).
  std::atomic<uint64_t> overMemory{0};
  std::atomic<uint64_t> heldBytes{0};        // gauge: bytes of the responses kept

 private:
  CompareCounters& rule(uint32_t ruleId);
  CompareCounters& endpoint(uint32_t ruleId, const std::string& endpoint);

  const size_t maxEndpoints_;
  mutable std::mutex mutex_;
  // unique_ptr: counters stay put while the maps grow.
  std::map<uint32_t, std::unique_ptr<CompareCounters>> rules_;
  std::map<std::pair<uint32_t, std::string>, std::unique_ptr<CompareCounters>> endpoints_;
};

}  // namespace shadowtap::compare
