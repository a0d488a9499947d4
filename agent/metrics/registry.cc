#include "metrics/registry.h"

#include <nlohmann/json.hpp>

#include <algorithm>
#include <cmath>
#include <map>

#include "metrics/family_builder.h"

namespace shadowtap::metrics {

// Groups samples into families by name (a stage may export a family's samples
// in several calls, e.g. once per rule).
class Collector final : public base::StatsSink {
 public:
  void counter(std::string_view name, std::string_view help, double value, const base::Labels& labels) override {
    family(name, help, Kind::kCounter).samples.push_back({labels, value, {}, {}, 0});
  }
  void gauge(std::string_view name, std::string_view help, double value, const base::Labels& labels) override {
    family(name, help, Kind::kGauge).samples.push_back({labels, value, {}, {}, 0});
  }
  void histogram(std::string_view name, std::string_view help, std::span<const double> bounds,
                 std::span<const uint64_t> counts, double sum, const base::Labels& labels) override {
    Sample s{labels, 0, {bounds.begin(), bounds.end()}, {counts.begin(), counts.end()}, sum};
    for (uint64_t c : counts) {
      s.value += static_cast<double>(c);
    }
    family(name, help, Kind::kHistogram).samples.push_back(std::move(s));
  }

  Snapshot take() {
    Snapshot out;
    out.families_ = std::move(families_);
    return out;
  }

 private:
  Family& family(std::string_view name, std::string_view help, Kind kind) {
    auto [it, added] = index_.try_emplace(std::string(name), families_.size());
    if (added) {
      families_.push_back({std::string(name), std::string(help), kind, {}});
    }
    return families_[it->second];
  }

  std::vector<Family> families_;
  std::map<std::string, size_t, std::less<>> index_;
};

namespace {

bool hasLabels(const base::Labels& labels, const base::Labels& match) {
  return std::all_of(match.begin(), match.end(), [&labels](const auto& m) {
    return std::find(labels.begin(), labels.end(), m) != labels.end();
  });
}

prometheus::MetricType typeOf(Kind kind) {
  switch (kind) {
    case Kind::kCounter:
      return prometheus::MetricType::Counter;
    case Kind::kGauge:
      return prometheus::MetricType::Gauge;
    case Kind::kHistogram:
      return prometheus::MetricType::Histogram;
  }
  return prometheus::MetricType::Untyped;
}

const char* nameOf(Kind kind) {
  return kind == Kind::kCounter ? "counter" : kind == Kind::kGauge ? "gauge" : "histogram";
}

}  // namespace

const Family* Snapshot::find(std::string_view name) const {
  for (const Family& f : families_) {
    if (f.name == name) {
      return &f;
    }
  }
  return nullptr;
}

double Snapshot::sum(std::string_view name, const base::Labels& match) const {
  const Family* f = find(name);
  double total = 0;
  if (f != nullptr) {
    for (const Sample& s : f->samples) {
      if (hasLabels(s.labels, match)) {
        total += s.value;
      }
    }
  }
  return total;
}

std::vector<std::string> Snapshot::labelValues(std::string_view name, std::string_view label) const {
  std::vector<std::string> out;
  if (const Family* f = find(name)) {
    for (const Sample& s : f->samples) {
      for (const auto& [k, v] : s.labels) {
        if (k == label && std::find(out.begin(), out.end(), v) == out.end()) {
          out.push_back(v);
        }
      }
    }
  }
  return out;
}

std::vector<prometheus::MetricFamily> Snapshot::toPrometheus() const {
  std::vector<prometheus::MetricFamily> out;
  out.reserve(families_.size());
  for (const Family& f : families_) {
    FamilyBuilder b(f.name, f.help, typeOf(f.kind));
    for (const Sample& s : f.samples) {
      if (f.kind == Kind::kHistogram) {
        b.addHistogram(s.bounds, s.counts, s.sum, s.labels);
      } else {
        b.add(s.value, s.labels);
      }
    }
    out.push_back(b.take());
  }
  return out;
}

std::string Snapshot::toJson() const {
  nlohmann::ordered_json root = nlohmann::ordered_json::object();
  for (const Family& f : families_) {
    nlohmann::ordered_json samples = nlohmann::ordered_json::array();
    for (const Sample& s : f.samples) {
      nlohmann::ordered_json j;
      nlohmann::ordered_json labels = nlohmann::ordered_json::object();
      for (const auto& [k, v] : s.labels) {
        labels[k] = v;
      }
      j["labels"] = std::move(labels);
      if (f.kind == Kind::kHistogram) {
        j["count"] = s.value;
        j["sum"] = s.sum;
        nlohmann::ordered_json buckets = nlohmann::ordered_json::array();
        for (size_t i = 0; i < s.counts.size(); ++i) {
          const double bound = i < s.bounds.size() ? s.bounds[i] : INFINITY;
          buckets.push_back({std::isinf(bound) ? nlohmann::ordered_json("+Inf") : nlohmann::ordered_json(bound),
                             s.counts[i]});
        }
        j["buckets"] = std::move(buckets);
      } else {
        j["value"] = s.value;
      }
      samples.push_back(std::move(j));
    }
    root[f.name] = {{"type", nameOf(f.kind)}, {"help", f.help}, {"samples", std::move(samples)}};
  }
  return root.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

void Registry::add(Exporter exporter) {
  std::lock_guard lock(mutex_);
  exporters_.push_back(std::move(exporter));
}

Snapshot Registry::collect() const {
  Collector c;
  std::lock_guard lock(mutex_);
  for (const Exporter& e : exporters_) {
    e(c);
  }
  return c.take();
}

}  // namespace shadowtap::metrics
