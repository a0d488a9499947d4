#include "summary.h"

#include <spdlog/fmt/fmt.h>

#include <cstdint>
#include <set>
#include <string_view>

namespace shadowtap {
namespace {

using metrics::Family;
using metrics::Sample;
using metrics::Snapshot;

constexpr std::string_view kOutcomes = "shadowtap_mirror_requests_total";

uint64_t n(double v) { return static_cast<uint64_t>(v); }

std::string labelOf(const Sample& s, std::string_view key) {
  for (const auto& [k, v] : s.labels) {
    if (k == key) {
      return v;
    }
  }
  return "";
}

// A response of any status ("response_2xx", "response_other"), not an error
// named after the response ("response_timeout", "response_too_large").
bool isAnswer(const std::string& outcome) {
  return outcome.starts_with("response_") && outcome != "response_timeout" && outcome != "response_too_large";
}

// " (a 1, b 2)" over the samples of `name` matching `match`, summed by `label`,
// non-zero ones only, optionally filtered; "" when all are zero.
std::string reasons(const Snapshot& s, std::string_view name, std::string_view label, const base::Labels& match,
                    bool (*keep)(const std::string&) = nullptr) {
  std::string out;
  for (const std::string& value : s.labelValues(name, label)) {
    if (keep != nullptr && !keep(value)) {
      continue;
    }
    base::Labels m = match;
    m.emplace_back(label, value);
    const uint64_t count = n(s.sum(name, m));
    if (count != 0) {
      std::string_view shown = value;
      if (isAnswer(value)) {
        shown.remove_prefix(9);  // "2xx 57", not "response_2xx 57"
      }
      out += fmt::format("{}{} {}", out.empty() ? "" : ", ", shown, count);
    }
  }
  return out.empty() ? "" : " (" + out + ")";
}

bool isLoss(const std::string& outcome) { return !isAnswer(outcome) && outcome != "dry_run_printed"; }
bool isStatusClass(const std::string& outcome) { return isAnswer(outcome); }

// The labels that pick one mirror of a rule out of a rule_info sample: the
// rule, and for a rule with several mirrors the mirror.
base::Labels mirrorOf(const Sample& info) {
  base::Labels l = {{"rule", labelOf(info, "rule")}};
  if (const std::string mirror = labelOf(info, "mirror"); !mirror.empty()) {
    l.emplace_back("mirror", mirror);
  }
  return l;
}

// Smallest latency bucket bound below which `q` of the mirror's responses fall.
std::string latencyBound(const Snapshot& s, const base::Labels& mirror, double q) {
  const Family* f = s.find("shadowtap_mirror_latency_seconds");
  if (f == nullptr) {
    return "";
  }
  std::vector<double> bounds;
  std::vector<uint64_t> counts;
  for (const Sample& sample : f->samples) {
    bool matches = true;
    for (const auto& [k, v] : mirror) {
      matches = matches && labelOf(sample, k) == v;
    }
    if (!matches) {
      continue;
    }
    bounds = sample.bounds;
    counts.resize(sample.counts.size());
    for (size_t i = 0; i < sample.counts.size(); ++i) {
      counts[i] += sample.counts[i];
    }
  }
  uint64_t total = 0;
  for (uint64_t c : counts) {
    total += c;
  }
  if (total == 0) {
    return "";
  }
  uint64_t seen = 0;
  for (size_t i = 0; i < counts.size(); ++i) {
    seen += counts[i];
    if (static_cast<double>(seen) >= q * static_cast<double>(total)) {
      return i < bounds.size() ? fmt::format("{:g} ms", bounds[i] * 1000) : "inf";
    }
  }
  return "inf";
}

// Requests handed to mirrors, a request sent to two mirrors counted twice:
// for each rule and mirror (those a reload removed included), the rule's
// requests less those not mirrored to it.
uint64_t toMirrors(const Snapshot& s) {
  const Family* notMirrored = s.find("shadowtap_requests_not_mirrored_total");
  if (notMirrored == nullptr) {
    return 0;
  }
  std::set<base::Labels> mirrors;
  for (const Sample& sample : notMirrored->samples) {
    mirrors.insert(mirrorOf(sample));
  }
  uint64_t total = 0;
  for (const base::Labels& l : mirrors) {
    total += n(s.sum("shadowtap_requests_total", {l.front()})) - n(s.sum("shadowtap_requests_not_mirrored_total", l));
  }
  return total;
}

std::string requestsLine(const Snapshot& s) {
  const uint64_t seen = n(s.sum("shadowtap_requests_total"));
  const uint64_t notMirrored = n(s.sum("shadowtap_requests_not_mirrored_total"));
  uint64_t answered = 0, lost = 0, printed = 0;
  for (const std::string& outcome : s.labelValues(kOutcomes, "outcome")) {
    const uint64_t count = n(s.sum(kOutcomes, {{"outcome", outcome}}));
    (isAnswer(outcome) ? answered : outcome == "dry_run_printed" ? printed : lost) += count;
  }
  const uint64_t waiting =
      n(s.sum("shadowtap_mirror_queue_requests") + s.sum("shadowtap_mirror_in_flight_requests"));
  std::string line = fmt::format("requests: {} seen -> {} to mirrors -> {} answered", seen,
                                 toMirrors(s), answered);
  if (printed != 0) {
    line += fmt::format(", {} printed (dry run)", printed);
  }
  line += fmt::format("; lost {}{}", lost, reasons(s, kOutcomes, "outcome", {}, isLoss));
  line += fmt::format("; not mirrored {}{}", notMirrored,
                      reasons(s, "shadowtap_requests_not_mirrored_total", "reason", {}));
  if (waiting != 0) {
    line += fmt::format("; {} waiting", waiting);
  }
  return line;
}

// One line per rule and mirror (rule_info has a sample for each).
std::string ruleLine(const Snapshot& s, const Sample& info) {
  const std::string rule = labelOf(info, "rule");
  const base::Labels r = mirrorOf(info);
  uint64_t answered = 0, lost = 0;
  for (const std::string& outcome : s.labelValues(kOutcomes, "outcome")) {
    base::Labels m = r;
    m.emplace_back("outcome", outcome);
    const uint64_t count = n(s.sum(kOutcomes, m));
    if (isAnswer(outcome)) {
      answered += count;
    } else if (isLoss(outcome)) {
      lost += count;
    }
  }
  std::string line = fmt::format("rule {} :{} -> {}: {} seen, {} answered{}, lost {}{}", rule,
                                 labelOf(info, "port"), labelOf(info, "target"),
                                 n(s.sum("shadowtap_requests_total", {r.front()})), answered,
                                 reasons(s, kOutcomes, "outcome", r, isStatusClass), lost,
                                 reasons(s, kOutcomes, "outcome", r, isLoss));
  if (const std::string p99 = latencyBound(s, r, 0.99); !p99.empty()) {
    line += fmt::format(", p50 <= {}, p99 <= {}", latencyBound(s, r, 0.5), p99);
  }
  if (const uint64_t conns = n(s.sum("shadowtap_mirror_connections", r)); conns != 0) {
    line += fmt::format(", {} connections", conns);
  }
  return line;
}

std::string captureLine(const Snapshot& s) {
  return fmt::format(
      "capture: {} packets, {} matched, {} sampled out, {} segments copied, {} records lost; {} flows, {} gaps; "
      "http {} framed, {} skipped, {} connections abandoned; h2 {} connections, {} requests",
      n(s.sum("shadowtap_kernel_packets_total")), n(s.sum("shadowtap_kernel_packets_matched_total")),
      n(s.sum("shadowtap_kernel_packets_sampled_out_total")), n(s.sum("shadowtap_kernel_segments_copied_total")),
      n(s.sum("shadowtap_kernel_records_lost_total")), n(s.sum("shadowtap_flows")),
      n(s.sum("shadowtap_flow_gaps_total")), n(s.sum("shadowtap_http_requests_parsed_total")),
      n(s.sum("shadowtap_http_requests_skipped_total")), n(s.sum("shadowtap_http_connections_abandoned_total")),
      n(s.sum("shadowtap_h2_connections_total")), n(s.sum("shadowtap_h2_streams_total", {{"outcome", "request"}})));
}

std::string compareLine(const Snapshot& s) {
  return fmt::format("compare: {} exchanges, {} equal, {} different, {} noisy; not compared {}{}",
                     n(s.sum("shadowtap_compare_exchanges_begun_total")),
                     n(s.sum("shadowtap_compare_exchanges_total", {{"result", "equal"}})),
                     n(s.sum("shadowtap_compare_exchanges_total", {{"result", "different"}})),
                     n(s.sum("shadowtap_compare_exchanges_total", {{"result", "noisy"}})),
                     n(s.sum("shadowtap_compare_exchanges_uncompared_total")),
                     reasons(s, "shadowtap_compare_exchanges_uncompared_total", "reason", {}));
}

std::string recordLine(const Snapshot& s) {
  if (s.find("shadowtap_record_kafka_undelivered_total") != nullptr) {
    // Kafka: write errors are the undelivered records, by librdkafka's reason.
    std::string why = reasons(s, "shadowtap_record_items_total", "outcome", {},
                              [](const std::string& o) { return o != "written" && o != "write_error"; });
    const std::string kafka = reasons(s, "shadowtap_record_kafka_undelivered_total", "reason", {});
    if (!why.empty() && !kafka.empty()) {
      why = why.substr(0, why.size() - 1) + ", " + kafka.substr(2);
    } else {
      why += kafka;
    }
    return fmt::format("record: {} delivered to Kafka, {} waiting in the producer; not delivered {}{}",
                       n(s.sum("shadowtap_record_items_total", {{"outcome", "written"}})),
                       n(s.sum("shadowtap_record_kafka_producer_queue_messages")),
                       n(s.sum("shadowtap_record_items_total")) -
                           n(s.sum("shadowtap_record_items_total", {{"outcome", "written"}})),
                       why);
  }
  return fmt::format("record: {} written, {} bytes on disk; not written {}{}",
                     n(s.sum("shadowtap_record_items_total", {{"outcome", "written"}})),
                     n(s.sum("shadowtap_record_disk_bytes")),
                     n(s.sum("shadowtap_record_items_total")) -
                         n(s.sum("shadowtap_record_items_total", {{"outcome", "written"}})),
                     reasons(s, "shadowtap_record_items_total", "outcome", {},
                             [](const std::string& o) { return o != "written"; }));
}

}  // namespace

std::vector<std::string> formatSummary(const Snapshot& s) {
  std::vector<std::string> lines = {requestsLine(s)};
  if (const Family* info = s.find("shadowtap_rule_info")) {
    for (const Sample& rule : info->samples) {
      lines.push_back(ruleLine(s, rule));
    }
  }
  lines.push_back(captureLine(s));
  if (s.find("shadowtap_compare_exchanges_begun_total") != nullptr) {
    lines.push_back(compareLine(s));
  }
  if (s.find("shadowtap_record_items_total") != nullptr) {
    lines.push_back(recordLine(s));
  }
  return lines;
}

}  // namespace shadowtap
