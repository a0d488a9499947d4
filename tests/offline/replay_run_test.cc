#include "offline/replay_run.h"

#include <gtest/gtest.h>

#include <limits>

#include "offline/replay_command.h"

namespace shadowtap::offline {
namespace {

// A clock that jumps to whatever time it is asked to sleep until.
class FakeClock final : public Clock {
 public:
  uint64_t nowNs() override { return now; }
  void sleepUntilNs(uint64_t ns) override {
    if (ns > now) {
      now = ns;
    }
    ++sleeps;
  }
  uint64_t now = 1'000'000'000;
  uint64_t sleeps = 0;
};

class Collector final : public replay::MirrorSink {
 public:
  explicit Collector(FakeClock& c) : clock_(c) {}
  bool submit(model::Request&& job) override {
    at.push_back(clock_.nowNs());
    jobs.push_back(std::move(job));
    return accept;
  }
  std::vector<model::Request> jobs;
  std::vector<uint64_t> at;
  bool accept = true;

 private:
  FakeClock& clock_;
};

record::RecordedRequest req(int64_t unixNs, std::string method = "GET", std::string target = "/api/x") {
  record::RecordedRequest r;
  r.unixNs = unixNs;
  r.method = std::move(method);
  r.target = std::move(target);
  r.headers = {{"Host", "svc:80"}};
  return r;
}

constexpr int64_t kSec = 1'000'000'000;

TEST(Pacer, OriginalPacingScaledBySpeed) {
  for (double speed : {1.0, 2.0, 0.5}) {
    FakeClock clock;
    Collector sink(clock);
    ReplayPlan plan;
    plan.speed = speed;
    plan.requests = {req(100 * kSec), req(100 * kSec + kSec / 2), req(103 * kSec), req(103 * kSec)};
    std::atomic<bool> stop{false};
    RunCounters c;
    runPlan(plan, sink, clock, stop, nullptr, nullptr, c);
    ASSERT_EQ(sink.at.size(), 4u);
    const uint64_t t0 = sink.at[0];
    EXPECT_EQ(t0, 1'000'000'000u);  // the first goes at once
    EXPECT_EQ(sink.at[1] - t0, static_cast<uint64_t>(kSec / 2 / speed));
    EXPECT_EQ(sink.at[2] - t0, static_cast<uint64_t>(3 * kSec / speed));
    EXPECT_EQ(sink.at[3], sink.at[2]);
    EXPECT_EQ(c.submitted, 4u);
    EXPECT_EQ(c.passes, 1u);
    EXPECT_EQ(sink.jobs[0].bytes, "GET /api/x HTTP/1.1\r\nHost: svc-shadow:80\r\n\r\n");
    EXPECT_EQ(sink.jobs[0].method, "GET");
    EXPECT_FALSE(sink.jobs[0].isHttp2());
  }
}

TEST(Pacer, TinySpeedClampsTheDueTimeInsteadOfOverflowing) {
  constexpr uint64_t kEnd = std::numeric_limits<uint64_t>::max();
  Pacer p(1e-12, 0);
  p.startPass(kSec);
  EXPECT_EQ(p.due(100 * kSec), static_cast<uint64_t>(kSec));
  EXPECT_EQ(p.due(200 * kSec), kEnd);  // 100 s / 1e-12: 1e26 ns, past what uint64 holds
  // Recorded times at both ends of int64: the gap itself does not fit an int64.
  Pacer q(0.5, 0);
  q.startPass(0);
  EXPECT_EQ(q.due(std::numeric_limits<int64_t>::min()), 0u);
  EXPECT_EQ(q.due(std::numeric_limits<int64_t>::max()), 2 * Pacer::kMaxGapNs);
}

TEST(Pacer, GapsLongerThanTheMaximumArePlayedAsTheMaximum) {
  constexpr int64_t kHour = 3600 * kSec;
  constexpr int64_t kYear = 365 * 24 * kHour;
  static_assert(Pacer::kMaxGapNs == kHour);
  const int64_t t0 = int64_t{1714564800} * kSec;
  Pacer p(2.0, 0);
  for (int pass = 0; pass < 2; ++pass) {  // a --loop pass starts over
    p.startPass(kSec);
    EXPECT_EQ(p.due(t0), static_cast<uint64_t>(kSec));
    EXPECT_EQ(p.due(t0 + 10 * kSec), static_cast<uint64_t>(kSec + 5 * kSec));
    // A clock that jumped 176 years: an hour's wait (at speed 2, half of it), not 88 years.
    EXPECT_EQ(p.due(t0 + 176 * kYear), static_cast<uint64_t>(kSec + 5 * kSec + kHour / 2));
    EXPECT_EQ(p.due(t0 + 176 * kYear + 4 * kSec), static_cast<uint64_t>(kSec + 7 * kSec + kHour / 2));
    // An hour exactly is played as recorded.
    EXPECT_EQ(p.due(t0 + 176 * kYear + 4 * kSec + kHour), static_cast<uint64_t>(kSec + 7 * kSec + kHour));
  }
  // Out of order: a time before the pass's first is due at once, and moves nothing after it.
  p.startPass(0);
  EXPECT_EQ(p.due(t0), 0u);
  EXPECT_EQ(p.due(t0 - 50 * kYear), 0u);
  EXPECT_EQ(p.due(t0 + 2 * kSec), static_cast<uint64_t>(kSec));
}

TEST(Pacer, SpeedZeroWithMaxRpsAndBackpressure) {
  FakeClock clock;
  Collector sink(clock);
  ReplayPlan plan;
  plan.speed = 0;
  plan.maxRps = 10;
  plan.requests = {req(0), req(50 * kSec), req(99 * kSec), req(5 * kSec)};
  std::atomic<bool> stop{false};
  RunCounters c;
  int busyCalls = 0;
  // Saturated for the first three polls of the second request.
  auto busy = [&] { return sink.jobs.size() == 1 && ++busyCalls <= 3; };
  runPlan(plan, sink, clock, stop, busy, nullptr, c);
  ASSERT_EQ(sink.at.size(), 4u);
  EXPECT_EQ(sink.at[1] - sink.at[0], 100'000'000u + 3'000'000u);  // 1/10 s, then 3 polls of 1 ms
  EXPECT_EQ(sink.at[2] - sink.at[1], 100'000'000u);
  EXPECT_EQ(sink.at[3] - sink.at[2], 100'000'000u);
}

TEST(Pacer, LoopsRestartPacingAndStopEnds) {
  FakeClock clock;
  Collector sink(clock);
  ReplayPlan plan;
  plan.speed = 1;
  plan.passes = 3;
  plan.requests = {req(10 * kSec), req(12 * kSec)};
  std::atomic<bool> stop{false};
  RunCounters c;
  runPlan(plan, sink, clock, stop, nullptr, nullptr, c);
  ASSERT_EQ(sink.at.size(), 6u);
  EXPECT_EQ(sink.at[2], sink.at[1]);  // the next pass starts right after the previous one
  EXPECT_EQ(sink.at[3] - sink.at[2], 2u * kSec);
  EXPECT_EQ(c.passes, 3u);

  // Forever, until stopped from the tick.
  Collector sink2(clock);
  plan.passes = 0;
  RunCounters c2;
  runPlan(plan, sink2, clock, stop, nullptr, [&] { stop = sink2.jobs.size() >= 7; }, c2);
  EXPECT_EQ(sink2.jobs.size(), 7u);
  EXPECT_EQ(c2.passes, 3u);
}

TEST(Pacer, RefusedJobsAreCounted) {
  FakeClock clock;
  Collector sink(clock);
  sink.accept = false;
  ReplayPlan plan;
  plan.speed = 0;
  plan.requests = {req(0), req(0)};
  std::atomic<bool> stop{false};
  RunCounters c;
  runPlan(plan, sink, clock, stop, nullptr, nullptr, c);
  EXPECT_EQ(c.submitted, 2u);
  EXPECT_EQ(c.refused, 2u);
}

TEST(RequestFilter, MethodsAndPathPrefixes) {
  RequestFilter f{{"GET", "HEAD"}, {"/api", "/v2/"}};
  EXPECT_TRUE(f.matches(req(0, "GET", "/api/x?y")));
  EXPECT_TRUE(f.matches(req(0, "HEAD", "http://h:80/v2/z")));
  EXPECT_FALSE(f.matches(req(0, "POST", "/api/x")));
  EXPECT_FALSE(f.matches(req(0, "GET", "/other?/api")));
  EXPECT_TRUE(RequestFilter{}.matches(req(0, "PATCH", "*")));
  EXPECT_EQ(targetPath("/a/b?c#d"), "/a/b");
  EXPECT_EQ(targetPath("http://h"), "/");
}

TEST(ReplayCommand, SummaryAndProgressShowEveryOutcome) {
  replay::MirrorStats rs;
  rs.submitted = 10;
  rs.responses = 7;
  rs.responses2xx = 6;
  rs.responses5xx = 1;
  rs.errorsReset = 2;
  rs.queueFull = 1;
  ReplaySummary s;
  s.files = 2;
  s.requestsRead = 12;
  s.filtered = 2;
  s.submitted = 10;
  s.passes = 1;
  s.seconds = 2;
  const std::string t = formatSummary(s, rs);
  // The value on the row whose label (after the indent) is `label`.
  auto value = [&](const std::string& label) {
    size_t pos = 0;
    while ((pos = t.find(label, pos)) != std::string::npos) {
      const size_t bol = t.rfind('\n', pos) + 1;
      const size_t eol = t.find('\n', pos);
      if (t.substr(bol, pos - bol).find_first_not_of(' ') == std::string::npos &&
          t.substr(pos + label.size(), 2) == "  ") {
        std::string v = t.substr(pos + label.size(), eol - pos - label.size());
        return v.substr(v.find_first_not_of(' '));
      }
      pos = eol;
    }
    return std::string("missing");
  };
  EXPECT_EQ(value("requests read"), "12") << t;
  EXPECT_EQ(value("filtered out"), "2") << t;
  EXPECT_EQ(value("2xx"), "6") << t;
  EXPECT_EQ(value("5xx"), "1") << t;
  EXPECT_EQ(value("errors"), "2") << t;
  EXPECT_EQ(value("reset"), "2") << t;
  EXPECT_EQ(value("dropped"), "1") << t;
  EXPECT_EQ(value("queue full"), "1") << t;
  EXPECT_EQ(value("requests per second"), "5.0") << t;
  const std::string p = formatProgress(10, 20, 2.0, rs);
  EXPECT_EQ(p, "replay 2.0s sent 10/20 (5.0 req/s) | 2xx 6 3xx 0 4xx 0 5xx 1 | errors 2 | dropped 1 | in flight 0");
}

int runCli(std::vector<std::string> args) {
  std::vector<char*> argv;
  for (auto& a : args) {
    argv.push_back(a.data());
  }
  return runReplayCommand(static_cast<int>(argv.size()), argv.data());
}

TEST(ReplayCommand, BadFlagsAndFilesExitNonZero) {
  testing::internal::CaptureStderr();
  EXPECT_EQ(runCli({"replay", "/nonexistent.har", "--mirror", "127.0.0.1:1"}), 2);
  EXPECT_EQ(runCli({"replay", "/etc/hostname"}), 2);  // no --mirror
  EXPECT_EQ(runCli({"replay", "/etc/hostname", "--mirror", "127.0.0.1:1", "--speed", "-1"}), 2);
  EXPECT_EQ(runCli({"replay", "/etc/hostname", "--mirror", "127.0.0.1:1", "--loop", "x"}), 2);
  EXPECT_EQ(runCli({"replay", "/etc/hostname", "--mirror", "127.0.0.1:1"}), 1);  // not a recording
  const std::string err = testing::internal::GetCapturedStderr();
  EXPECT_NE(err.find("shadowtap replay: /etc/hostname: neither HAR nor shadowtap JSON lines"), std::string::npos)
      << err;
}

}  // namespace
}  // namespace shadowtap::offline
