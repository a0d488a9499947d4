#pragma once

#include <prometheus/collectable.h>

#include "metrics/metrics_server.h"

namespace shadowtap {

class Pipeline;

// Reads every stage's counters at scrape time and answers the health probes.
// Called from the metrics server's threads; reads only atomics, the kernel's
// counter map, and the rule list under the pipeline's rules mutex.
class PipelineMetrics : public prometheus::Collectable, public metrics::HealthProbe {
 public:
  explicit PipelineMetrics(const Pipeline& pipeline) : p_(pipeline) {}

  std::vector<prometheus::MetricFamily> Collect() const override;
  metrics::HealthStatus live() const override;
  metrics::HealthStatus ready() const override;

 private:
  const Pipeline& p_;
};

}  // namespace shadowtap
