#pragma once

#include <prometheus/collectable.h>
#include <prometheus/metric_family.h>

#include <functional>
#include <mutex>
#include <string>
#include <string_view>
#include <vector>

#include "base/stats_sink.h"

namespace shadowtap::metrics {

enum class Kind { kCounter, kGauge, kHistogram };

struct Sample {
  base::Labels labels;
  double value = 0;  // counter, gauge; a histogram's sample count
  // Histograms only: per-bucket (not cumulative) counts, the last one +Inf.
  std::vector<double> bounds;
  std::vector<uint64_t> counts;
  double sum = 0;
};

struct Family {
  std::string name;
  std::string help;
  Kind kind = Kind::kCounter;
  std::vector<Sample> samples;
};

// Every stage's counters at one moment, in the order the exporters gave them.
class Snapshot {
 public:
  const std::vector<Family>& families() const { return families_; }
  const Family* find(std::string_view name) const;
  // Sum of the samples of `name` whose labels include every pair of `match`
  // (0 when there are none).
  double sum(std::string_view name, const base::Labels& match = {}) const;
  // The values one label takes among the samples of `name`, in first-seen order.
  std::vector<std::string> labelValues(std::string_view name, std::string_view label) const;

  // /metrics: Prometheus families.
  std::vector<prometheus::MetricFamily> toPrometheus() const;
  // The stats dump: {"name": {"type": "counter", "help": ..., "samples": [{"labels": {...}, "value": N}, ...]}}
  // with histograms as {"labels", "count", "sum", "buckets": [[bound, count], ...]}.
  std::string toJson() const;

 private:
  friend class Collector;
  std::vector<Family> families_;
};

// The one place stages' counters are gathered: each stage adds an exporter
// (a function that writes its counters into a StatsSink); collect() runs them
// all. Exporters run on the caller's thread (a scrape, the summary timer, the
// exit path) and must only read atomics or take short locks.
class Registry final : public prometheus::Collectable {
 public:
  using Exporter = std::function<void(base::StatsSink&)>;

  void add(Exporter exporter);
  Snapshot collect() const;

  std::vector<prometheus::MetricFamily> Collect() const override { return collect().toPrometheus(); }

 private:
  mutable std::mutex mutex_;
  std::vector<Exporter> exporters_;
};

}  // namespace shadowtap::metrics
