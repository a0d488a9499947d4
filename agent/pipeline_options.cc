#include "pipeline_options.h"

#include <utility>

namespace shadowtap {

capture::CaptureOptions captureOptionsOf(const Config& config, std::vector<capture::PortRule> rules, uint32_t workers,
                                         uint32_t hashSeed) {
  capture::CaptureOptions co;
  co.interfaces = config.interfaces;
  co.rules = std::move(rules);
  co.ringBufferBytes = static_cast<uint32_t>(config.ringBufferMiB) << 20;
  co.workers = workers;
  co.tcPriority = config.tcPriority;
  co.stateDir = config.stateDir;
  co.attach = *capture::parseAttachMode(config.attach);  // validated by parseConfig
  co.adaptiveWakeups = config.adaptiveWakeups;
  co.tls = config.tls;
  co.tlsLibrary = config.tlsLibrary;
  co.hashSeed = hashSeed;
  return co;
}

http::FramerLimits framerLimitsOf(const Config& config) {
  http::FramerLimits fl;
  fl.maxRequestBytes = config.maxRequestMiB << 20;
  fl.streamWindowBytes = config.streamWindowKiB << 10;
  fl.maxHeaderBytes = config.maxHeaderKiB << 10;
  fl.maxRequestLineBytes = config.maxRequestLineKiB << 10;
  fl.maxResyncScanBytes = config.maxResyncScanKiB << 10;
  return fl;
}

h2::H2DecoderLimits h2LimitsOf(const Config& config) {
  const http::FramerLimits fl = framerLimitsOf(config);
  h2::H2DecoderLimits hl;
  hl.maxStreamBodyBytes = fl.maxRequestBytes;
  hl.maxHeaderListBytes = fl.maxHeaderBytes;
  return hl;
}

compare::EngineOptions engineOptionsOf(const Config& config) {
  compare::EngineOptions o;
  o.maxHeldBytes = static_cast<uint64_t>(config.compareMaxMiB) << 20;
  return o;
}

flow::FlowLimits flowLimitsOf(const Config& config) {
  flow::FlowLimits limits;
  limits.maxFlows = config.maxFlows;
  limits.maxFlowBufferBytes = config.maxFlowBufferMiB << 20;
  limits.maxTotalBufferBytes = config.maxTotalBufferMiB << 20;
  limits.idleTimeoutNs = uint64_t(config.idleTimeoutSec) * 1'000'000'000ULL;
  limits.gapTimeoutNs = uint64_t(config.gapTimeoutMs) * 1'000'000ULL;
  limits.maxFlowBufferSegments = config.maxFlowBufferSegments;
  limits.closedLingerNs = uint64_t(config.closedLingerMs) * 1'000'000ULL;
  return limits;
}

replay::MirrorPoolOptions poolOptionsOf(const Config& config, const rules::MirrorSpec& m,
                                        const std::vector<sockaddr_storage>& addrs) {
  replay::MirrorPoolOptions ro;
  ro.target = m.target;
  ro.addrs = addrs;
  ro.resolveInterval = std::chrono::milliseconds(uint64_t(config.resolveIntervalSec) * 1000);
  ro.minConnections = m.connections;
  ro.maxConnections = m.maxConnections;
  ro.queueCapacity = m.queue;
  ro.queueBytes = m.queueMiB << 20;
  ro.dropPolicy = m.dropPolicy == rules::DropPolicy::kOldest ? replay::DropPolicy::kOldest : replay::DropPolicy::kNewest;
  ro.maxRps = m.maxRps;
  ro.connectTimeout = std::chrono::milliseconds(config.connectTimeoutMs);
  ro.responseTimeout = std::chrono::milliseconds(config.responseTimeoutMs);
  ro.idleTimeout = std::chrono::milliseconds(config.idleTimeoutMs);
  ro.io = config.mirrorIo == "uring"   ? replay::MirrorIo::kUring
          : config.mirrorIo == "epoll" ? replay::MirrorIo::kEpoll
                                       : replay::MirrorIo::kAuto;  // validated by parseConfig
  return ro;
}

}  // namespace shadowtap
