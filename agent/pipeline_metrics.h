#pragma once

#include "base/stats_sink.h"
#include "metrics/metrics_server.h"
#include "metrics/registry.h"

namespace shadowtap {

class Pipeline;
struct RuleRuntime;

// Adds every stage's exporter to the registry: kernel and ring buffer,
// reassembly, framing and decoding, per-rule routing and mirror outcomes,
// compare mode and the recorder. Exporters read atomics, the kernel's counter
// map, and the rule list under the pipeline's rules mutex.
void registerExporters(const Pipeline& pipeline, metrics::Registry& registry);

// One worker's runtime of a rule: its requests and its mirrors' outcomes,
// pools and latencies (not the rule's info gauge). Under the pipeline's rules
// mutex (it reads the runtime's HTTP/2 pools).
void exportRuleCounters(const RuleRuntime& rt, base::StatsSink& out);

// /healthz and /readyz from the pipeline's loop and capture times.
class PipelineHealth final : public metrics::HealthProbe {
 public:
  explicit PipelineHealth(const Pipeline& pipeline) : p_(pipeline) {}
  metrics::HealthStatus live() const override;
  metrics::HealthStatus ready() const override;

 private:
  const Pipeline& p_;
};

}  // namespace shadowtap
