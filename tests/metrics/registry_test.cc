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

}  // namespace
}  // namespace shadowtap::metrics
