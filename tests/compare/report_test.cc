#include "compare/report.h"

#include <gtest/gtest.h>

#include <cstdio>
#include <fstream>
#include <sstream>

#include "compare/compare_engine.h"
#include "compare_test_util.h"

namespace shadowtap::compare {
namespace {

using test::jsonResponse;

// Runs exchanges through the engine and writer, as the agent would, and
// returns the JSON lines.
std::string generateDiffs() {
  char* data = nullptr;
  size_t size = 0;
  std::FILE* f = open_memstream(&data, &size);
  {
    DiffWriter writer(f, DiffWriterOptions{});
    std::vector<std::unique_ptr<Comparator>> cs;
    std::string error;
    cs.push_back(Comparator::create({}, &error));
    CompareEngine engine(EngineOptions{}, std::move(cs), &writer);
    auto exchange = [&](const std::string& target, const model::Response& p, const model::Response& m, const model::Response* s) {
      const uint64_t id = engine.begin(1, "GET", target, s != nullptr, 0);
      engine.onResponse(id, Part::kPrimary, model::Response(p));
      engine.onResponse(id, Part::kMirror, model::Response(m));
      if (s != nullptr) {
        engine.onResponse(id, Part::kSecondary, model::Response(*s));
      }
    };
    // /users/{n}: 1 of 4 differ (25 %). /orders/{n}: 2 of 2 differ (100 %, status).
    // /time: timestamp noise only. /health: always equal.
    for (int i = 0; i < 4; ++i) {
      exchange("/users/" + std::to_string(i), jsonResponse(200, R"({"name":"ann"})"),
               jsonResponse(200, i == 0 ? R"({"name":"<b>bob</b>"})" : R"({"name":"ann"})"), nullptr);
    }
    for (int i = 0; i < 2; ++i) {
      exchange("/orders/" + std::to_string(i), jsonResponse(200, "{}"), jsonResponse(500, "{}"), nullptr);
    }
    for (int i = 0; i < 3; ++i) {
      const model::Response p = jsonResponse(200, R"({"timestamp":")" + std::to_string(100 + i) + R"("})");
      const model::Response s = jsonResponse(200, R"({"timestamp":")" + std::to_string(200 + i) + R"("})");
      const model::Response m = jsonResponse(200, R"({"timestamp":")" + std::to_string(300 + i) + R"("})");
      exchange("/time", p, m, &s);
    }
    exchange("/health", jsonResponse(200, "{}"), jsonResponse(200, "{}"), nullptr);
    writer.writeSummary(engine.stats());
  }
  std::fclose(f);
  std::string out(data, size);
  std::free(data);
  return out;
}

TEST(Report, EndpointsByDifferenceRateWithExamplesAndNoise) {
  std::istringstream in(generateDiffs() + "not json\n");
  ReportSummary summary;
  const std::string html = renderReport(in, ReportOptions{}, &summary);
  EXPECT_EQ(summary.endpoints, 4u);
  EXPECT_EQ(summary.badLines, 1u);
  EXPECT_EQ(summary.summaryLines, 4u);
  EXPECT_EQ(summary.diffLines, 1u + 2u + 3u);

  const size_t orders = html.find("<section class=\"endpoint\" id=\"ep-0\" data-endpoint=\"GET /orders/{n}\"");
  const size_t users = html.find("<section class=\"endpoint\" id=\"ep-1\" data-endpoint=\"GET /users/{n}\"");
  const size_t time = html.find("data-endpoint=\"GET /time\"", users);
  const size_t health = html.find("data-endpoint=\"GET /health\"", users);
  ASSERT_NE(orders, std::string::npos) << html;
  ASSERT_NE(users, std::string::npos);
  ASSERT_NE(time, std::string::npos);
  ASSERT_NE(health, std::string::npos);
  EXPECT_LT(orders, users);
  // /time and /health both have rate 0; the name breaks the tie.
  EXPECT_LT(health, time);

  EXPECT_NE(html.find("data-different=\"1\" data-compared=\"4\""), std::string::npos);
  EXPECT_NE(html.find("<li data-field=\"status\"><code>status</code> in 2 pairs</li>"), std::string::npos);
  EXPECT_NE(html.find("<li data-field=\"$.name\"><code>$.name</code> in 1 pair</li>"), std::string::npos);
  // The timestamp is listed as noise, not as a regression.
  const size_t noisy = html.find("<ul class=\"noisy-fields\"><li data-field=\"$.timestamp\">", time);
  EXPECT_NE(noisy, std::string::npos);
  EXPECT_EQ(html.find("<ul class=\"regressions\"><li data-field=\"$.timestamp\""), std::string::npos);
  // Side by side, escaped.
  EXPECT_NE(html.find("<pre class=\"mirror\">HTTP 200\nContent-Type: application/json\nContent-Length: 21\n\n"
                      "{&quot;name&quot;:&quot;&lt;b&gt;bob&lt;/b&gt;&quot;}</pre>"),
            std::string::npos);
  EXPECT_EQ(html.find("<b>bob"), std::string::npos);
  // Self-contained: nothing fetched from anywhere.
  EXPECT_EQ(html.find("http://"), std::string::npos);
  EXPECT_EQ(html.find("https://"), std::string::npos);
  EXPECT_EQ(html.find(" src="), std::string::npos);
}

TEST(Report, WithoutSummaryLinesTheDiffLinesCount) {
  std::istringstream in(
      R"({"type":"diff","rule":1,"endpoint":"GET /a","outcome":"different","differences":[{"path":"status","field":"status","primary":"200","mirror":"500","noisy":false}]})"
      "\n"
      R"({"type":"diff","rule":1,"endpoint":"GET /b","outcome":"noisy","differences":[{"path":"$.t","field":"$.t","primary":"1","mirror":"2","noisy":true}]})"
      "\n");
  const std::string html = renderReport(in, ReportOptions{});
  EXPECT_LT(html.find("data-endpoint=\"GET /a\" data-rule=\"1\" data-different=\"1\" data-compared=\"1\""),
            html.find("data-endpoint=\"GET /b\" data-rule=\"1\" data-different=\"0\" data-compared=\"1\""));
  EXPECT_NE(html.find("noise only</span></h2>"), std::string::npos);
}

TEST(Report, CommandWritesTheFileAndRefusesBadInput) {
  char dir[] = "/tmp/st-report-XXXXXX";
  ASSERT_NE(mkdtemp(dir), nullptr);
  const std::string in = std::string(dir) + "/diffs.jsonl";
  const std::string out = std::string(dir) + "/report.html";
  {
    std::ofstream f(in);
    f << generateDiffs();
  }
  std::vector<std::string> args = {"report", in, "-o", out, "--examples", "1"};
  std::vector<char*> argv;
  for (auto& a : args) {
    argv.push_back(a.data());
  }
  EXPECT_EQ(runReportCommand(static_cast<int>(argv.size()), argv.data()), 0);
  std::ifstream html(out);
  std::stringstream ss;
  ss << html.rdbuf();
  EXPECT_NE(ss.str().find("GET /orders/{n}"), std::string::npos);
  EXPECT_EQ(ss.str().find("data-outcome=\"different\"", ss.str().find("data-outcome=\"different\"", ss.str().find("GET /orders/{n}\"")) + 1),
            ss.str().find("data-outcome=\"different\"", ss.str().find("id=\"ep-1\"")));  // one example per endpoint

  auto run = [](std::vector<std::string> a) {
    std::vector<char*> v;
    for (auto& s : a) {
      v.push_back(s.data());
    }
    return runReportCommand(static_cast<int>(v.size()), v.data());
  };
  EXPECT_EQ(run({"report"}), 2);
  EXPECT_EQ(run({"report", std::string(dir) + "/missing.jsonl", "-o", out}), 2);
  EXPECT_EQ(run({"report", in, "--examples", "x"}), 2);
  EXPECT_EQ(run({"report", in, "--bogus"}), 2);
  EXPECT_EQ(run({"report", in, "-o"}), 2);
  const std::string garbage = std::string(dir) + "/garbage.txt";
  {
    std::ofstream f(garbage);
    f << "hello\nworld\n";
  }
  EXPECT_EQ(run({"report", garbage, "-o", out}), 2);
  std::remove(in.c_str());
  std::remove(out.c_str());
  std::remove(garbage.c_str());
  rmdir(dir);
}

}  // namespace
}  // namespace shadowtap::compare
