#include "worker_share.h"

#include <algorithm>

namespace shadowtap {

uint32_t autoWorkers(unsigned cores, std::optional<double> cpuLimit) {
  uint32_t n = cores / 4;
  if (cpuLimit) {
    n = std::min<uint32_t>(n, static_cast<uint32_t>(std::min(*cpuLimit, 64.0)));
  }
  return std::clamp<uint32_t>(n, 1, 4);
}

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
