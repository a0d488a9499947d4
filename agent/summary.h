#pragma once

#include <string>
#include <vector>

#include "metrics/registry.h"

namespace shadowtap {

// The periodic and final summary: a few short lines an operator reads at a
// glance, from the same counters as /metrics and the stats dump:
//   requests: 1200 seen -> 1190 to mirrors -> 1185 answered; lost 5 (queue_full 5); not mirrored 10 (...)
//   rule 1 :8000 -> httpbin-mirror:8000: 1200 seen, 1185 answered (2xx 1180, 5xx 5), lost 5, p99 <= 5 ms
//   capture: 5000 packets, 4000 matched, 3990 copied, 0 lost; 12 flows, 0 gaps; http 1200 framed, 0 skipped
//   compare: ... / record: ...   (only when on)
// Zero reasons are left out; the full detail is in /metrics and /stats.
std::vector<std::string> formatSummary(const metrics::Snapshot& snapshot);

}  // namespace shadowtap
