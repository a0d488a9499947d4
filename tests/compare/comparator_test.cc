#include "compare/comparator.h"

#include <gtest/gtest.h>

#include "compare/json_path.h"
#include "compare_test_util.h"

namespace shadowtap::compare {
namespace {

using test::jsonResponse;
using test::makeResponse;

std::unique_ptr<Comparator> comparator(CompareOptions o = {}) {
  std::string error;
  auto c = Comparator::create(o, &error);
  EXPECT_NE(c, nullptr) << error;
  return c;
}

std::vector<std::string> paths(const CompareResult& r) {
  std::vector<std::string> out;
  for (const Difference& d : r.differences) {
    out.push_back(d.path);
  }
  return out;
}

TEST(Comparator, EqualResponsesAreEqual) {
  auto c = comparator();
  const model::Response a = jsonResponse(200, R"({"a":1})");
  const CompareResult r = c->compare("GET", "/x/1", a, a);
  EXPECT_EQ(r.outcome, Outcome::kEqual);
  EXPECT_TRUE(r.differences.empty());
  EXPECT_EQ(r.endpoint, "GET /x/{n}");
}

TEST(Comparator, StatusDifference) {
  auto c = comparator();
  const CompareResult r =
      c->compare("GET", "/", makeResponse(200, {}, "same"), makeResponse(500, {}, "same"));
  EXPECT_EQ(r.outcome, Outcome::kDifferent);
  ASSERT_EQ(r.differences.size(), 1u);
  EXPECT_EQ(r.differences[0].path, "status");
  EXPECT_EQ(r.differences[0].primary, "200");
  EXPECT_EQ(r.differences[0].mirror, "500");
  EXPECT_FALSE(r.differences[0].noisy);
}

TEST(Comparator, HeaderIgnoreList) {
  const model::Response a = makeResponse(200,
                                  {{"Date", "Mon, 01 Jan 2024 00:00:00 GMT"},
                                   {"Server", "v1"},
                                   {"Connection", "close"},
                                   {"X-Version", "1"},
                                   {"Vary", "Accept"},
                                   {"Vary", "Origin"}},
                                  "body");
  const model::Response b = makeResponse(200,
                                  {{"date", "Tue, 02 Jan 2024 00:00:00 GMT"},
                                   {"Server", "v2"},
                                   {"X-Version", "2"},
                                   {"VARY", "Accept"},
                                   {"Vary", "Cookie"},
                                   {"X-New", "yes"}},
                                  "body");
  auto c = comparator();
  CompareResult r = c->compare("GET", "/", a, b);
  EXPECT_EQ(paths(r), (std::vector<std::string>{"headers.x-version", "headers.vary", "headers.x-new"}));
  EXPECT_EQ(r.differences[1].primary, "Accept, Origin");
  EXPECT_EQ(r.differences[1].mirror, "Accept, Cookie");
  EXPECT_EQ(r.differences[2].primary, std::nullopt);

  CompareOptions o;
  o.ignoreHeaders = {"x-VERSION", "Vary", "X-New"};
  EXPECT_EQ(comparator(o)->compare("GET", "/", a, b).outcome, Outcome::kEqual);
  o.compareHeaders = false;
  o.ignoreHeaders.clear();
  EXPECT_EQ(comparator(o)->compare("GET", "/", a, b).outcome, Outcome::kEqual);
}

TEST(Comparator, ContentLengthOnlyWhenBodiesDiffer) {
  auto c = comparator();
  // Same JSON, other spacing: the bodies compare equal, so their lengths do not matter.
  CompareResult r = c->compare("GET", "/", jsonResponse(200, R"({"a":1,"b":[1,2]})"),
                               jsonResponse(200, R"({ "b": [1, 2], "a": 1 })"));
  EXPECT_EQ(r.outcome, Outcome::kEqual) << ::testing::PrintToString(paths(r));
  EXPECT_TRUE(r.jsonBodies);
  r = c->compare("GET", "/", jsonResponse(200, R"({"a":1})"), jsonResponse(200, R"({"a":22})"));
  EXPECT_EQ(paths(r), (std::vector<std::string>{"headers.content-length", "$.a"}));
  // Chunked on one side, Content-Length on the other: framing, not content.
  model::Response chunked = makeResponse(200, {{"Transfer-Encoding", "chunked"}}, "same");
  model::Response sized = makeResponse(200, {{"Content-Length", "4"}}, "same");
  EXPECT_EQ(c->compare("GET", "/", chunked, sized).outcome, Outcome::kEqual);
}

TEST(Comparator, JsonFieldDifferencesWithIgnorePaths) {
  const model::Response a = jsonResponse(
      200, R"({"id":1,"name":"ann","timestamp":100,"items":[{"id":1,"price":2},{"id":2,"price":3}],"meta":{"t":1}})");
  const model::Response b = jsonResponse(
      200, R"({"id":1,"name":"bob","timestamp":200,"items":[{"id":9,"price":2},{"id":8,"price":4.5}],"meta":{"t":2},"extra":true})");
  CompareOptions o;
  o.ignorePaths = {"$.timestamp", "$.items[*].id", "$.meta"};
  o.compareHeaders = false;
  CompareResult r = comparator(o)->compare("GET", "/", a, b);
  EXPECT_EQ(r.outcome, Outcome::kDifferent);
  EXPECT_EQ(paths(r), (std::vector<std::string>{"$.items[1].price", "$.name", "$.extra"}));
  EXPECT_EQ(r.differences[0].primary, "3");
  EXPECT_EQ(r.differences[0].mirror, "4.5");
  EXPECT_EQ(r.differences[0].genericPath, "$.items[*].price");
  EXPECT_EQ(r.differences[1].primary, "\"ann\"");
  EXPECT_EQ(r.differences[1].mirror, "\"bob\"");
  EXPECT_EQ(r.differences[2].primary, std::nullopt);
  EXPECT_EQ(r.differences[2].mirror, "true");

  // Without ignore paths every field shows.
  o.ignorePaths.clear();
  r = comparator(o)->compare("GET", "/", a, b);
  EXPECT_EQ(r.differences.size(), 7u) << ::testing::PrintToString(paths(r));
}

TEST(Comparator, ArrayLengthsAndTypes) {
  CompareOptions o;
  o.compareHeaders = false;
  CompareResult r = comparator(o)->compare("GET", "/", jsonResponse(200, R"([1,2,3])"),
                                           jsonResponse(200, R"([1,"2"])"));
  EXPECT_EQ(paths(r), (std::vector<std::string>{"$[1]", "$[2]"}));
  EXPECT_EQ(r.differences[0].mirror, "\"2\"");
  EXPECT_EQ(r.differences[1].mirror, std::nullopt);
  // 1 and 1.0 are the same number.
  EXPECT_EQ(comparator(o)->compare("GET", "/", jsonResponse(200, R"({"n":1})"), jsonResponse(200, R"({"n":1.0})")).outcome,
            Outcome::kEqual);
}

TEST(Comparator, NonJsonBodiesCompareByBytes) {
  CompareOptions o;
  o.compareHeaders = false;
  CompareResult r = comparator(o)->compare("GET", "/", makeResponse(200, {{"Content-Type", "text/plain"}}, "hello world"),
                                           makeResponse(200, {{"Content-Type", "text/plain"}}, "hello there"));
  ASSERT_EQ(paths(r), (std::vector<std::string>{"body"}));
  EXPECT_EQ(r.differences[0].primary, "hello world");
  EXPECT_FALSE(r.jsonBodies);
  // JSON on one side only: bytes.
  r = comparator(o)->compare("GET", "/", jsonResponse(200, R"({"a":1})"),
                             makeResponse(200, {{"Content-Type", "text/html"}}, R"({"a": 1})"));
  EXPECT_EQ(paths(r), (std::vector<std::string>{"body"}));
}

TEST(Comparator, TruncatedBodiesCompareByLengthAndHash) {
  CompareOptions o;
  o.compareHeaders = false;
  auto c = comparator(o);
  auto truncated = [](const std::string& whole) {
    model::Response r = makeResponse(200, {}, whole);
    r.body.resize(4);
    r.bodyTruncated = true;
    return r;
  };
  EXPECT_EQ(c->compare("GET", "/", truncated("abcdefgh"), truncated("abcdefgh")).outcome, Outcome::kEqual);
  EXPECT_EQ(c->compare("GET", "/", truncated("abcdefgh"), truncated("abcdefgX")).outcome, Outcome::kDifferent);
}

TEST(Comparator, NoiseFromASecondaryIsNotARegression) {
  CompareOptions o;
  auto c = comparator(o);
  const model::Response primary = jsonResponse(200, R"({"now":"12:00:01","items":[{"ts":1,"v":1}],"v":1})");
  const model::Response secondary = jsonResponse(200, R"({"now":"12:00:02","items":[{"ts":2,"v":1}],"v":1})");
  const model::Response mirror = jsonResponse(200, R"({"now":"12:00:03","items":[{"ts":3,"v":1},{"ts":4,"v":1}],"v":1})");
  CompareResult r = c->compare("GET", "/clock/1", primary, mirror, &secondary);
  // items[1] is missing on the primary side: not noise.
  EXPECT_EQ(r.outcome, Outcome::kDifferent);
  EXPECT_EQ(r.noisyPaths, (std::vector<std::string>{"$.items[*].ts", "$.now"}));

  const model::Response mirror2 = jsonResponse(200, R"({"now":"12:00:09","items":[{"ts":9,"v":1}],"v":1})");
  r = c->compare("GET", "/clock/2", primary, mirror2);  // same endpoint, no secondary this time
  EXPECT_EQ(r.outcome, Outcome::kNoisy);
  ASSERT_EQ(r.differences.size(), 2u);
  EXPECT_TRUE(r.differences[0].noisy);
  EXPECT_TRUE(r.differences[1].noisy);

  const model::Response mirror3 = jsonResponse(200, R"({"now":"12:00:09","items":[{"ts":9,"v":1}],"v":2})");
  r = c->compare("GET", "/clock/3", primary, mirror3);
  EXPECT_EQ(r.outcome, Outcome::kDifferent);
  for (const Difference& d : r.differences) {
    EXPECT_EQ(d.noisy, d.path != "$.v" && d.path != "headers.content-length") << d.path;
  }
  // Noise belongs to its endpoint.
  EXPECT_EQ(c->compare("GET", "/other", primary, mirror2).outcome, Outcome::kDifferent);
  EXPECT_EQ(c->noisyPaths("GET /clock/{n}").size(), 2u);
}

TEST(Comparator, LengthHeaderFollowsNoise) {
  // Bodies that differ only in noisy fields may differ in length too.
  auto c = comparator();
  const model::Response primary = jsonResponse(200, R"({"t":"1"})");
  const model::Response secondary = jsonResponse(200, R"({"t":"2"})");  // same length
  c->compare("GET", "/t", primary, primary, &secondary);
  const CompareResult r = c->compare("GET", "/t", primary, jsonResponse(200, R"({"t":"12345"})"));
  EXPECT_EQ(r.outcome, Outcome::kNoisy) << ::testing::PrintToString(paths(r));
}

TEST(Comparator, BoundsDifferencesAndValues) {
  CompareOptions o;
  o.maxDifferences = 3;
  o.maxValueBytes = 5;
  o.compareHeaders = false;
  CompareResult r = comparator(o)->compare("GET", "/", jsonResponse(200, R"({"a":"0123456789","b":1,"c":1,"d":1})"),
                                           jsonResponse(200, R"({"a":"x","b":2,"c":2,"d":2})"));
  EXPECT_EQ(r.differences.size(), 3u);
  EXPECT_EQ(r.differencesOmitted, 1u);
  EXPECT_EQ(r.differences[0].primary, "\"0123...");
  EXPECT_EQ(r.outcome, Outcome::kDifferent);
}

TEST(Comparator, DeepJsonComparesByBytes) {
  CompareOptions o;
  o.maxJsonDepth = 10;
  o.compareHeaders = false;
  const std::string deep = std::string(50, '[') + "1" + std::string(50, ']');
  const std::string deep2 = std::string(50, '[') + "2" + std::string(50, ']');
  CompareResult r = comparator(o)->compare("GET", "/", jsonResponse(200, deep), jsonResponse(200, deep2));
  EXPECT_FALSE(r.jsonBodies);
  EXPECT_EQ(paths(r), (std::vector<std::string>{"body"}));
}

TEST(Comparator, BadIgnorePathIsAnError) {
  CompareOptions o;
  o.ignorePaths = {"timestamp"};
  std::string error;
  EXPECT_EQ(Comparator::create(o, &error), nullptr);
  EXPECT_NE(error.find("must start with '$'"), std::string::npos) << error;
}

TEST(JsonPathPattern, Subset) {
  auto match = [](const std::string& pattern, std::vector<PathStep> path) {
    std::string error;
    auto p = JsonPathPattern::parse(pattern, &error);
    EXPECT_TRUE(p.has_value()) << error;
    return p && p->matches(path);
  };
  const PathStep items{false, "items", 0};
  const PathStep i3{true, {}, 3};
  const PathStep id{false, "id", 0};
  EXPECT_TRUE(match("$.items[*].id", {items, i3, id}));
  EXPECT_TRUE(match("$.items[3]", {items, i3, id}));  // prefix: the subtree
  EXPECT_FALSE(match("$.items[2]", {items, i3, id}));
  EXPECT_TRUE(match("$..id", {items, i3, id}));
  EXPECT_TRUE(match("$..id", {id}));
  EXPECT_FALSE(match("$..id", {items, i3}));
  EXPECT_TRUE(match("$.*[3]", {items, i3}));
  EXPECT_TRUE(match("$['items'][*]['id']", {items, i3, id}));
  EXPECT_TRUE(match("$['a b']", {{false, "a b", 0}}));
  EXPECT_FALSE(match("$.items.id", {items, i3, id}));
  std::string error;
  for (const char* bad : {"", "$.", "$[x]", "$.a[", "$..", "a.b"}) {
    EXPECT_FALSE(JsonPathPattern::parse(bad, &error).has_value()) << bad;
  }
  EXPECT_EQ(formatPath({items, i3, {false, "a b", 0}}), "$.items[3]['a b']");
  EXPECT_EQ(formatPathGeneric({items, i3, id}), "$.items[*].id");
}

}  // namespace
}  // namespace shadowtap::compare
