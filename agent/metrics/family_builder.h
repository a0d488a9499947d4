#pragma once

#include <prometheus/metric_family.h>

#include <cstdint>
#include <initializer_list>
#include <string>
#include <utility>
#include <vector>

namespace shadowtap::metrics {

using Labels = std::vector<std::pair<std::string, std::string>>;

// Builds one Prometheus metric family sample by sample, for collectors that read
// our own atomic counters at scrape time.
class FamilyBuilder {
 public:
  FamilyBuilder(std::string name, std::string help, prometheus::MetricType type);

  FamilyBuilder& add(double value, const Labels& labels = {});
  // Cumulative histogram: bounds[i] is the upper bound of counts[i] (not
  // cumulative); the last count is the +Inf bucket.
  FamilyBuilder& addHistogram(const std::vector<double>& bounds, const std::vector<uint64_t>& counts,
                              double sum, const Labels& labels = {});

  prometheus::MetricFamily take() { return std::move(family_); }

 private:
  prometheus::MetricFamily family_;
};

}  // namespace shadowtap::metrics
