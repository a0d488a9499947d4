#include "metrics/family_builder.h"

#include <limits>

namespace shadowtap::metrics {
namespace {

std::vector<prometheus::ClientMetric::Label> toLabels(const Labels& labels) {
  std::vector<prometheus::ClientMetric::Label> out;
  out.reserve(labels.size());
  for (const auto& [k, v] : labels) {
    out.push_back({k, v});
  }
  return out;
}

}  // namespace

FamilyBuilder::FamilyBuilder(std::string name, std::string help, prometheus::MetricType type) {
  family_.name = std::move(name);
  family_.help = std::move(help);
  family_.type = type;
}

FamilyBuilder& FamilyBuilder::add(double value, const Labels& labels) {
  prometheus::ClientMetric m;
  m.label = toLabels(labels);
  if (family_.type == prometheus::MetricType::Counter) {
    m.counter.value = value;
  } else {
    m.gauge.value = value;
  }
  family_.metric.push_back(std::move(m));
  return *this;
}

FamilyBuilder& FamilyBuilder::addHistogram(const std::vector<double>& bounds, const std::vector<uint64_t>& counts,
                                           double sum, const Labels& labels) {
  prometheus::ClientMetric m;
  m.label = toLabels(labels);
  uint64_t cumulative = 0;
  for (size_t i = 0; i < counts.size(); ++i) {
    cumulative += counts[i];
    double bound = i < bounds.size() ? bounds[i] : std::numeric_limits<double>::infinity();
    m.histogram.bucket.push_back({cumulative, bound});
  }
  m.histogram.sample_count = cumulative;
  m.histogram.sample_sum = sum;
  family_.metric.push_back(std::move(m));
  return *this;
}

}  // namespace shadowtap::metrics
