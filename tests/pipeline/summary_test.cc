#include "summary.h"

#include <gtest/gtest.h>

namespace shadowtap {
namespace {

// Counters of one rule with a mix of outcomes, as the exporters name them.
metrics::Snapshot sample() {
  metrics::Registry r;
  r.add([](base::StatsSink& out) {
    out.gauge("shadowtap_rule_info", "", 1, {{"rule", "1"}, {"port", "8000"}, {"target", "m:80"}});
    out.counter("shadowtap_requests_total", "", 120, {{"rule", "1"}});
    out.counters("shadowtap_requests_not_mirrored_total", "", "reason",
                 {{"method_filtered", 10}, {"already_shadow", 0}, {"record_only", 0}}, {{"rule", "1"}});
    out.counters("shadowtap_mirror_requests_total", "", "outcome",
                 {{"response_2xx", 95}, {"response_5xx", 5}, {"connect_error", 0}, {"queue_full", 6}},
                 {{"rule", "1"}, {"protocol", "http1"}});
    out.counters("shadowtap_mirror_requests_total", "", "outcome", {{"response_2xx", 3}, {"reset", 1}, {"response_timeout", 2}},
                 {{"rule", "1"}, {"protocol", "h2"}});
    out.gauge("shadowtap_mirror_in_flight_requests", "", 0, {{"rule", "1"}, {"protocol", "http1"}});
    const double bounds[] = {0.001, 0.01};
    const uint64_t counts[] = {50, 49, 1};
    out.histogram("shadowtap_mirror_latency_seconds", "", bounds, counts, 0.3, {{"rule", "1"}, {"protocol", "http1"}});
    out.counter("shadowtap_kernel_packets_total", "", 500);
  });
  return r.collect();
}

TEST(Summary, FewShortLinesWithTheFiguresThatAddUp) {
  const std::vector<std::string> lines = formatSummary(sample());
  ASSERT_EQ(lines.size(), 3u);  // requests, the rule, capture; no compare or record line when they are off
  EXPECT_EQ(lines[0],
            "requests: 120 seen -> 110 to mirrors -> 103 answered; lost 9 (queue_full 6, reset 1, response_timeout 2); "
            "not mirrored 10 (method_filtered 10)");
  EXPECT_EQ(lines[1],
            "rule 1 :8000 -> m:80: 120 seen, 103 answered (2xx 98, 5xx 5), lost 9 (queue_full 6, reset 1, response_timeout 2), "
            "p50 <= 1 ms, p99 <= 10 ms");  // 50 of 100 within 1 ms, 99 within 10 ms
  EXPECT_EQ(lines[2].rfind("capture: 500 packets,", 0), 0u) << lines[2];
  for (const std::string& line : lines) {
    EXPECT_LT(line.size(), 220u) << line;
  }
}

// A rule with two mirrors: one line per mirror, and "to mirrors" counts the
// copies (a request sent to both counts twice).
TEST(Summary, ARuleWithTwoMirrorsHasALinePerMirror) {
  metrics::Registry r;
  r.add([](base::StatsSink& out) {
    for (const char* m : {"a:80", "b:80"}) {
      out.gauge("shadowtap_rule_info", "", 1, {{"rule", "1"}, {"port", "8000"}, {"target", m}, {"mirror", m}});
    }
    out.counter("shadowtap_requests_total", "", 100, {{"rule", "1"}});
    out.counters("shadowtap_requests_not_mirrored_total", "", "reason", {{"already_shadow", 2}, {"sampled_out", 0}},
                 {{"rule", "1"}, {"mirror", "a:80"}});
    out.counters("shadowtap_requests_not_mirrored_total", "", "reason", {{"already_shadow", 2}, {"sampled_out", 49}},
                 {{"rule", "1"}, {"mirror", "b:80"}});
    out.counters("shadowtap_mirror_requests_total", "", "outcome", {{"response_2xx", 98}},
                 {{"rule", "1"}, {"mirror", "a:80"}, {"protocol", "http1"}});
    out.counters("shadowtap_mirror_requests_total", "", "outcome", {{"response_2xx", 45}, {"reset", 4}},
                 {{"rule", "1"}, {"mirror", "b:80"}, {"protocol", "http1"}});
  });
  const std::vector<std::string> lines = formatSummary(r.collect());
  ASSERT_EQ(lines.size(), 4u);
  EXPECT_EQ(lines[0],
            "requests: 100 seen -> 147 to mirrors -> 143 answered; lost 4 (reset 4); "
            "not mirrored 53 (already_shadow 4, sampled_out 49)");
  EXPECT_EQ(lines[1], "rule 1 :8000 -> a:80: 100 seen, 98 answered (2xx 98), lost 0");
  EXPECT_EQ(lines[2], "rule 1 :8000 -> b:80: 100 seen, 45 answered (2xx 45), lost 4 (reset 4)");
}

TEST(Summary, KafkaRecordLineSaysDeliveredWaitingAndWhyNot) {
  metrics::Registry r;
  r.add([](base::StatsSink& out) {
    out.counters("shadowtap_record_items_total", "", "outcome",
                 {{"written", 100}, {"dropped_queue_full", 2}, {"malformed", 0}, {"write_error", 38}});
    out.counters("shadowtap_record_kafka_undelivered_total", "", "reason",
                 {{"queue_full", 35}, {"msg_timed_out", 0}, {"purge_queue", 3}});
    out.gauge("shadowtap_record_kafka_producer_queue_messages", "", 5);
  });
  const std::vector<std::string> lines = formatSummary(r.collect());
  ASSERT_EQ(lines.size(), 3u);  // requests, capture, record
  EXPECT_EQ(lines[2],
            "record: 100 delivered to Kafka, 5 waiting in the producer; not delivered 40 "
            "(dropped_queue_full 2, queue_full 35, purge_queue 3)");
}

}  // namespace
}  // namespace shadowtap
