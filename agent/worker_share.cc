#include "worker_share.h"

#include <algorithm>

namespace shadowtap {

uint32_t autoWorkers(unsigned cores) { return std::clamp<uint32_t>(cores / 4, 1, 4); }

uint64_t workerShare(uint64_t total, uint32_t workers, uint32_t worker, uint64_t atLeast) {
  if (workers <= 1) {
    return total;
  }
  const uint64_t share = total / workers + (worker < total % workers ? 1 : 0);
  return std::max(share, atLeast);
}

void splitPoolOptions(replay::MirrorPoolOptions& o, uint32_t workers, uint32_t worker,
                      std::shared_ptr<replay::RateLimiter> rate) {
  if (workers <= 1) {
    return;
  }
  o.maxConnections = workerShare(o.maxConnections, workers, worker);
  o.minConnections = workerShare(o.minConnections, workers, worker);
  o.queueCapacity = workerShare(o.queueCapacity, workers, worker);
  o.queueBytes = workerShare(o.queueBytes, workers, worker);
  o.sharedRate = std::move(rate);
}

flow::FlowLimits splitFlowLimits(const flow::FlowLimits& limits, uint32_t workers, uint32_t worker) {
  flow::FlowLimits l = limits;
  l.maxFlows = workerShare(limits.maxFlows, workers, worker);
  l.maxTotalBufferBytes = workerShare(limits.maxTotalBufferBytes, workers, worker, limits.maxFlowBufferBytes);
  return l;
}

}  // namespace shadowtap
