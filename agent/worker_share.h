#pragma once

#include <cstdint>
#include <optional>

#include "flow/flow_limits.h"
#include "replay/mirror_pool_options.h"

namespace shadowtap {

// How many workers --workers auto runs on a node with `cores` usable CPUs:
// a quarter of them, at least 1 and at most 4. One worker mirrors about
// 100,000 requests/s (tests/bench/RESULTS.md), so 4 cover a busy node, and
// the agent never takes more than a quarter of the cores production runs on;
// a small node (up to 7 cores) keeps one worker, as before workers existed.
// Under a CPU limit (`cpuLimit` CPUs: a container's limits.cpu) no more than
// one worker per whole CPU of it: more would only share the same quota.
uint32_t autoWorkers(unsigned cores, std::optional<double> cpuLimit = std::nullopt);

// Worker `worker`'s share of a limit of `total` split over `workers`:
// total / workers, plus one for the first total % workers workers (so the
// shares add up to total), and at least `atLeast`.
uint64_t workerShare(uint64_t total, uint32_t workers, uint32_t worker, uint64_t atLeast = 1);

// A rule's mirror pool options for one of `workers` workers (docs/configuration.md,
// "Workers"): connections (the floor and the bound) and the queue bounds split,
// at least one each; max-rps kept whole and enforced by `rate`, a limiter
// shared by the rule's pools in every worker (null with one worker: the pool's
// own). One worker: the options unchanged.
void splitPoolOptions(replay::MirrorPoolOptions& options, uint32_t workers, uint32_t worker,
                      std::shared_ptr<replay::RateLimiter> rate);

// The flow table limits of one worker: the connection count and the buffer
// total split (at least 1 connection, and one connection's buffer);
// per-connection limits unchanged.
flow::FlowLimits splitFlowLimits(const flow::FlowLimits& limits, uint32_t workers, uint32_t worker);

}  // namespace shadowtap
