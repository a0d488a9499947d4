#pragma once

// Config -> each stage's options: pure functions (no I/O, no clock, no
// randomness), so the translation of every flag is unit-tested on its own
// (tests/pipeline/pipeline_options_test.cc). The pipeline only wires.
#include <cstdint>
#include <vector>

#include "capture/capture_options.h"
#include "capture/port_rule.h"
#include "compare/compare_engine.h"
#include "config.h"
#include "flow/flow_limits.h"
#include "h2/h2_stream_decoder.h"
#include "http/request_framer.h"
#include "replay/mirror_pool_options.h"
#include "rules/rule.h"

namespace shadowtap {

// The capture's options for `rules` and `workers` rings; `hashSeed` seeds the
// kernel's flow hash (random per run, given by the caller).
capture::CaptureOptions captureOptionsOf(const Config& config, std::vector<capture::PortRule> rules, uint32_t workers,
                                         uint32_t hashSeed);

// The HTTP/1 framer's limits (--max-request-mib, --max-header-kib, ...).
http::FramerLimits framerLimitsOf(const Config& config);

// HTTP/2 streams get the same request and header limits as HTTP/1.
h2::H2DecoderLimits h2LimitsOf(const Config& config);

// Compare mode's engine: the bound on responses held (--compare-max-mib).
compare::EngineOptions engineOptionsOf(const Config& config);

// Reassembly limits for the whole agent (splitFlowLimits gives each worker its share).
flow::FlowLimits flowLimitsOf(const Config& config);

// A mirror's pool options, whole (splitPoolOptions gives each worker its
// share): its limits from the rule, the timeouts from the flags. The caller
// adds what is not configuration (the local endpoints registry, a shared rate
// limiter, the TLS client).
replay::MirrorPoolOptions poolOptionsOf(const Config& config, const rules::MirrorSpec& mirror,
                                        const std::vector<sockaddr_storage>& addrs);

}  // namespace shadowtap
