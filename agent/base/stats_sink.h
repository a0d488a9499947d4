#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace shadowtap::base {

using Labels = std::vector<std::pair<std::string, std::string>>;

// Where a stage exports its counters, one call per sample: the stage names
// them (Prometheus names and labels), the registry in metrics/ renders them as
// /metrics, the JSON stats dump and the summary. Stages keep their counters as
// relaxed atomics and export them only when asked (at scrape, summary or exit
// time), so the data path pays nothing for this.
class StatsSink {
 public:
  virtual ~StatsSink() = default;
  virtual void counter(std::string_view name, std::string_view help, double value, const Labels& labels = {}) = 0;
  virtual void gauge(std::string_view name, std::string_view help, double value, const Labels& labels = {}) = 0;
  // bounds[i] is the upper bound of counts[i] (not cumulative); counts has one
  // more entry than bounds, the +Inf bucket.
  virtual void histogram(std::string_view name, std::string_view help, std::span<const double> bounds,
                         std::span<const uint64_t> counts, double sum, const Labels& labels = {}) = 0;

  // One counter family with a sample per value of one label.
  void counters(std::string_view name, std::string_view help, std::string_view label,
                std::initializer_list<std::pair<std::string_view, double>> values, const Labels& common = {}) {
    for (const auto& [value, n] : values) {
      Labels l = common;
      l.emplace_back(label, value);
      counter(name, help, n, l);
    }
  }
};

}  // namespace shadowtap::base
