#include "metrics/registry.h"

#include <gtest/gtest.h>

#include <atomic>

namespace shadowtap::metrics {
namespace {

TEST(Registry, GroupsSamplesOfAFamilyFromEveryExporterInOrder) {
  Registry r;
  std::atomic<uint64_t> one{3}, two{4};
  r.add([&](base::StatsSink& out) {
    out.counters("t_requests_total", "Requests.", "outcome", {{"ok", double(one)}, {"error", 1}}, {{"rule", "1"}});
    out.gauge("t_queue", "Queue.", 2);
  });
  r.add([&](base::StatsSink& out) {
    out.counters("t_requests_total", "Requests.", "outcome", {{"ok", double(two)}, {"error", 0}}, {{"rule", "2"}});
  });
  const Snapshot s = r.collect();
  ASSERT_EQ(s.families().size(), 2u);
  EXPECT_EQ(s.families()[0].name, "t_requests_total");
  EXPECT_EQ(s.families()[0].samples.size(), 4u);  // both exporters' samples in one family
  EXPECT_EQ(s.sum("t_requests_total"), 8);
  EXPECT_EQ(s.sum("t_requests_total", {{"outcome", "ok"}}), 7);
  EXPECT_EQ(s.sum("t_requests_total", {{"rule", "2"}, {"outcome", "ok"}}), 4);
  EXPECT_EQ(s.sum("t_missing"), 0);
  EXPECT_EQ(s.labelValues("t_requests_total", "rule"), (std::vector<std::string>{"1", "2"}));
  // Read at collect time, not at add time.
  two = 10;
  EXPECT_EQ(r.collect().sum("t_requests_total", {{"outcome", "ok"}}), 13);
}

TEST(Registry, PrometheusFamiliesKeepOneEntryPerName) {
  Registry r;
  r.add([](base::StatsSink& out) { out.counter("a_total", "A.", 1, {{"rule", "1"}}); });
  r.add([](base::StatsSink& out) { out.counter("a_total", "A.", 2, {{"rule", "2"}}); });
  const auto families = r.Collect();
  ASSERT_EQ(families.size(), 1u);
  EXPECT_EQ(families[0].metric.size(), 2u);
  EXPECT_EQ(families[0].metric[1].counter.value, 2);
}

// Workers export their own stages' counters under the same names and labels;
// the scrape shows one sample per label set holding their total.
TEST(Registry, SamplesExportedAgainWithTheSameLabelsAddUp) {
  Registry r;
  const std::vector<double> bounds = {1, 10};
  for (uint64_t worker = 1; worker <= 3; ++worker) {
    r.add([worker, &bounds](base::StatsSink& out) {
      out.counter("w_segments_total", "Segments.", double(worker));
      out.counters("w_requests_total", "Requests.", "outcome", {{"ok", double(10 * worker)}}, {{"rule", "1"}});
      out.gauge("w_flows", "Flows.", 2);
      const std::vector<uint64_t> counts = {worker, 0, 1};
      out.histogram("w_latency", "Latency.", bounds, counts, 5.0, {{"rule", "1"}});
    });
  }
  r.add([](base::StatsSink& out) { out.counters("w_requests_total", "Requests.", "outcome", {{"ok", 7}}, {{"rule", "2"}}); });
  const Snapshot s = r.collect();
  ASSERT_EQ(s.find("w_segments_total")->samples.size(), 1u);
  EXPECT_EQ(s.sum("w_segments_total"), 6);
  EXPECT_EQ(s.find("w_requests_total")->samples.size(), 2u);  // rule 1 summed, rule 2 apart
  EXPECT_EQ(s.sum("w_requests_total", {{"rule", "1"}}), 60);
  EXPECT_EQ(s.sum("w_requests_total", {{"rule", "2"}}), 7);
  EXPECT_EQ(s.sum("w_flows"), 6);
  const Sample& h = s.find("w_latency")->samples.at(0);
  EXPECT_EQ(h.counts, (std::vector<uint64_t>{6, 0, 3}));
  EXPECT_EQ(h.sum, 15);
  EXPECT_EQ(h.value, 9);
}

}  // namespace
}  // namespace shadowtap::metrics
