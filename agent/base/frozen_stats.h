#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "base/stats_sink.h"

namespace shadowtap::base {

// The counters and histograms a stage exported once, written again at every
// export: what a stage counted before it went away (a rule a reload removed),
// so that totals summed over every stage never go backwards. Gauges are not
// kept: a stage that is gone holds nothing.
class FrozenStats final : public StatsSink {
 public:
  void counter(std::string_view name, std::string_view help, double value, const Labels& labels = {}) override {
    Sample s = named(name, help, labels);
    s.value = value;
    samples_.push_back(std::move(s));
  }
  void gauge(std::string_view, std::string_view, double, const Labels& = {}) override {}
  void histogram(std::string_view name, std::string_view help, std::span<const double> bounds,
                 std::span<const uint64_t> counts, double sum, const Labels& labels = {}) override {
    Sample s = named(name, help, labels);
    s.histogram = true;
    s.bounds.assign(bounds.begin(), bounds.end());
    s.counts.assign(counts.begin(), counts.end());
    s.sum = sum;
    samples_.push_back(std::move(s));
  }

  void replay(StatsSink& out) const {
    for (const Sample& s : samples_) {
      if (s.histogram) {
        out.histogram(s.name, s.help, s.bounds, s.counts, s.sum, s.labels);
      } else {
        out.counter(s.name, s.help, s.value, s.labels);
      }
    }
  }
  size_t samples() const { return samples_.size(); }

 private:
  struct Sample {
    std::string name;
    std::string help;
    Labels labels;
    double value = 0;
    bool histogram = false;
    std::vector<double> bounds;
    std::vector<uint64_t> counts;
    double sum = 0;
  };
  static Sample named(std::string_view name, std::string_view help, const Labels& labels) {
    Sample s;
    s.name = name;
    s.help = help;
    s.labels = labels;
    return s;
  }
  std::vector<Sample> samples_;
};

}  // namespace shadowtap::base
