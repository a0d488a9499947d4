#include "compare/compare_engine.h"

#include <gtest/gtest.h>

#include <map>

#include <thread>

#include "compare/pool_observer.h"
#include "compare_test_util.h"

namespace shadowtap::compare {
namespace {

using test::jsonResponse;
using test::load;

std::vector<std::unique_ptr<Comparator>> comparators(size_t rules) {
  std::vector<std::unique_ptr<Comparator>> out;
  for (size_t i = 0; i < rules; ++i) {
    std::string error;
    out.push_back(Comparator::create({}, &error));
  }
  return out;
}

void expectIdentity(const CompareStats& s) {
  EXPECT_EQ(load(s.exchanges), load(s.compared) + load(s.noPrimary) + load(s.noMirror) + load(s.expired) +
                                   load(s.queueFull) + load(s.pending) + load(s.queued));
  uint64_t compared = 0, parts = 0;
  s.forEachRule([&](uint32_t, const CompareCounters& c) {
    compared += load(c.compared);
    parts += load(c.equal) + load(c.different) + load(c.noisy);
  });
  EXPECT_EQ(compared, load(s.compared));
  EXPECT_EQ(parts, compared);
}

TEST(CompareEngine, JoinsPartsInAnyOrder) {
  CompareEngine engine(EngineOptions{}, comparators(2), nullptr);
  const uint64_t a = engine.begin(1, "GET", "/users/1", false, 0);
  const uint64_t b = engine.begin(2, "GET", "/users/2", false, 0);
  ASSERT_NE(a, 0u);
  ASSERT_NE(b, a);
  engine.onResponse(a, Part::kMirror, jsonResponse(200, R"({"n":1})"));
  EXPECT_EQ(load(engine.stats().pending), 2u);
  engine.onResponse(a, Part::kPrimary, jsonResponse(200, R"({"n":1})"));
  engine.sink(Part::kPrimary).onResponse(b, jsonResponse(200, R"({"n":1})"));
  engine.sink(Part::kMirror).onResponse(b, jsonResponse(200, R"({"n":2})"));
  const CompareStats& s = engine.stats();
  EXPECT_EQ(load(s.compared), 2u);
  EXPECT_EQ(load(s.pending), 0u);
  std::map<std::pair<uint32_t, std::string>, std::pair<uint64_t, uint64_t>> seen;
  s.forEachEndpoint([&](uint32_t rule, const std::string& ep, const CompareCounters& c) {
    seen[{rule, ep}] = {load(c.equal), load(c.different)};
  });
  EXPECT_EQ(seen.size(), 2u);
  EXPECT_EQ(seen[std::make_pair(1u, std::string("GET /users/{n}"))], std::make_pair(uint64_t{1}, uint64_t{0}));
  EXPECT_EQ(seen[std::make_pair(2u, std::string("GET /users/{n}"))], std::make_pair(uint64_t{0}, uint64_t{1}));
  expectIdentity(s);
}

TEST(CompareEngine, MissingPartsAreCountedOnce) {
  CompareEngine engine(EngineOptions{}, comparators(1), nullptr);
  const uint64_t a = engine.begin(1, "GET", "/", false, 0);
  const uint64_t b = engine.begin(1, "GET", "/", false, 0);
  engine.sink(Part::kPrimary).onNoResponse(a, http::NoResponse::kGap);
  EXPECT_EQ(load(engine.stats().noPrimary), 0u);  // still waiting for the mirror's
  engine.onResponse(a, Part::kMirror, jsonResponse(200, "{}"));
  EXPECT_EQ(load(engine.stats().noPrimary), 1u);
  engine.onResponse(b, Part::kPrimary, jsonResponse(200, "{}"));
  engine.onMissing(b, Part::kMirror);
  EXPECT_EQ(load(engine.stats().noMirror), 1u);
  engine.onResponse(b, Part::kMirror, jsonResponse(200, "{}"));  // late
  engine.onResponse(999, Part::kPrimary, jsonResponse(200, "{}"));
  EXPECT_EQ(load(engine.stats().unknownParts), 2u);
  EXPECT_EQ(engine.begin(5, "GET", "/", false, 0), 0u);  // rule without comparator
  expectIdentity(engine.stats());
}

TEST(CompareEngine, SecondaryMakesNoise) {
  CompareEngine engine(EngineOptions{}, comparators(1), nullptr);
  const uint64_t a = engine.begin(1, "GET", "/clock", true, 0);
  engine.onResponse(a, Part::kPrimary, jsonResponse(200, R"({"t":"1","v":1})"));
  engine.onResponse(a, Part::kMirror, jsonResponse(200, R"({"t":"3","v":1})"));
  EXPECT_EQ(load(engine.stats().compared), 0u);  // waits for the secondary
  engine.onResponse(a, Part::kSecondary, jsonResponse(200, R"({"t":"2","v":1})"));
  EXPECT_EQ(load(engine.stats().compared), 1u);
  EXPECT_EQ(engine.noisyPaths(1, "GET /clock"), std::vector<std::string>{"$.t"});
  // A secondary that never comes: compared without it.
  const uint64_t b = engine.begin(1, "GET", "/clock", true, 0);
  engine.onResponse(b, Part::kPrimary, jsonResponse(200, R"({"t":"1","v":1})"));
  engine.onResponse(b, Part::kMirror, jsonResponse(200, R"({"t":"5","v":1})"));
  engine.onMissing(b, Part::kSecondary);
  EXPECT_EQ(load(engine.stats().noSecondary), 1u);
  uint64_t noisy = 0;
  engine.stats().forEachRule([&](uint32_t, const CompareCounters& c) { noisy = load(c.noisy); });
  EXPECT_EQ(noisy, 2u);
  expectIdentity(engine.stats());
}

// A rule a reload changed (new id 3) adopts its predecessor's comparator:
// compared, counted under its own id, with the noise the predecessor learned;
// adopting nothing takes a reused id's adoption back.
TEST(CompareEngine, AChangedRuleAdoptsItsPredecessorsComparatorAndNoise) {
  CompareEngine engine(EngineOptions{}, comparators(1), nullptr);
  EXPECT_FALSE(engine.compares(3));
  const uint64_t a = engine.begin(1, "GET", "/clock", true, 0);
  engine.onResponse(a, Part::kPrimary, jsonResponse(200, R"({"t":"1","v":1})"));
  engine.onResponse(a, Part::kMirror, jsonResponse(200, R"({"t":"3","v":1})"));
  engine.onResponse(a, Part::kSecondary, jsonResponse(200, R"({"t":"2","v":1})"));
  engine.adopt(3, 1);
  EXPECT_TRUE(engine.compares(3));
  EXPECT_EQ(engine.noisyPaths(3, "GET /clock"), std::vector<std::string>{"$.t"});
  // No secondary any more: the noise learned under rule 1 still holds for rule 3.
  const uint64_t b = engine.begin(3, "GET", "/clock", false, 0);
  ASSERT_NE(b, 0u);
  engine.onResponse(b, Part::kPrimary, jsonResponse(200, R"({"t":"4","v":1})"));
  engine.onResponse(b, Part::kMirror, jsonResponse(200, R"({"t":"5","v":1})"));
  std::map<uint32_t, uint64_t> noisy;
  engine.stats().forEachRule([&](uint32_t rule, const CompareCounters& c) { noisy[rule] = load(c.noisy); });
  EXPECT_EQ(noisy, (std::map<uint32_t, uint64_t>{{1, 1}, {3, 1}})) << "each rule counts its own";
  engine.adopt(4, 3);
  EXPECT_TRUE(engine.compares(4)) << "a successor's successor";
  engine.adopt(3, 0);
  EXPECT_FALSE(engine.compares(3));
  EXPECT_EQ(engine.begin(3, "GET", "/clock", false, 0), 0u);
  engine.adopt(1, 0);
  EXPECT_TRUE(engine.compares(1)) << "a rule of the start keeps its own";
  expectIdentity(engine.stats());
}

// The mirror pools report through PoolObserver, each as its part.
TEST(CompareEngine, PoolObserversReportTheirPart) {
  CompareEngine engine(EngineOptions{}, comparators(1), nullptr);
  PoolObserver mirror(engine, Part::kMirror);
  PoolObserver secondary(engine, Part::kSecondary);
  const uint64_t a = engine.begin(1, "GET", "/clock", true, 0);
  engine.onResponse(a, Part::kPrimary, jsonResponse(200, R"({"t":"1","v":1})"));
  secondary.onResponse(a, jsonResponse(200, R"({"t":"2","v":1})"));
  EXPECT_EQ(load(engine.stats().compared), 0u);  // waits for the mirror
  mirror.onResponse(a, jsonResponse(200, R"({"t":"3","v":1})"));
  EXPECT_EQ(load(engine.stats().compared), 1u);
  EXPECT_EQ(engine.noisyPaths(1, "GET /clock"), std::vector<std::string>{"$.t"});
  const uint64_t b = engine.begin(1, "GET", "/clock", true, 0);
  engine.onResponse(b, Part::kPrimary, jsonResponse(200, "{}"));
  mirror.onResponse(b, jsonResponse(200, "{}"));
  secondary.onMissing(b);
  EXPECT_EQ(load(engine.stats().noSecondary), 1u);
  const uint64_t c = engine.begin(1, "GET", "/clock", false, 0);
  engine.onResponse(c, Part::kPrimary, jsonResponse(200, "{}"));
  mirror.onMissing(c);
  EXPECT_EQ(load(engine.stats().noMirror), 1u);
  // A rule without a secondary: compared, and not counted as without one.
  const uint64_t d = engine.begin(1, "GET", "/clock", false, 0);
  engine.onResponse(d, Part::kPrimary, jsonResponse(200, "{}"));
  mirror.onResponse(d, jsonResponse(200, "{}"));
  EXPECT_EQ(load(engine.stats().compared), 3u);
  EXPECT_EQ(load(engine.stats().noSecondary), 1u) << "only exchanges that expected a secondary";
  expectIdentity(engine.stats());
}

TEST(CompareEngine, ExpiresAndBoundsPending) {
  EngineOptions o;
  o.maxPending = 2;
  o.pendingTimeoutNs = 100;
  CompareEngine engine(o, comparators(1), nullptr);
  EXPECT_NE(engine.begin(1, "GET", "/", false, 10), 0u);
  EXPECT_NE(engine.begin(1, "GET", "/", false, 50), 0u);
  EXPECT_EQ(engine.begin(1, "GET", "/", false, 50), 0u);
  EXPECT_EQ(load(engine.stats().refused), 1u);
  engine.expire(120);
  EXPECT_EQ(load(engine.stats().expired), 1u);
  EXPECT_EQ(load(engine.stats().pending), 1u);
  expectIdentity(engine.stats());
}

TEST(CompareEngine, KeptResponsesAreBoundedInBytesAndLetGoOfWhenTheirExchangeEnds) {
  const model::Response one = jsonResponse(200, R"({"v":1})");
  const uint64_t size = heldBytes(one);
  ASSERT_GT(size, 7u);
  EngineOptions o;
  o.maxHeldBytes = 2 * size;
  o.pendingTimeoutNs = 100;
  CompareEngine engine(o, comparators(1), nullptr);
  const uint64_t a = engine.begin(1, "GET", "/a", false, 0);
  const uint64_t b = engine.begin(1, "GET", "/b", false, 0);
  const uint64_t c = engine.begin(1, "GET", "/c", false, 50);
  engine.onResponse(a, Part::kPrimary, model::Response(one));
  engine.onResponse(b, Part::kPrimary, model::Response(one));
  const CompareStats& s = engine.stats();
  EXPECT_EQ(load(s.heldBytes), 2 * size);
  engine.onResponse(a, Part::kMirror, model::Response(one));  // would go over: not kept
  EXPECT_EQ(load(s.overMemory), 1u);
  EXPECT_EQ(load(s.noMirror), 1u) << "its part counts as missing";
  EXPECT_EQ(load(s.heldBytes), size) << "the ended exchange's primary is let go of";
  engine.onResponse(b, Part::kMirror, model::Response(one));
  EXPECT_EQ(load(s.compared), 1u);
  engine.onResponse(c, Part::kPrimary, model::Response(one));
  EXPECT_EQ(load(s.heldBytes), size);
  engine.expire(200);
  EXPECT_EQ(load(s.expired), 1u);
  EXPECT_EQ(load(s.heldBytes), 0u) << "an expired exchange's responses are let go of";
  expectIdentity(s);
}

// A response that completes an exchange while stop() runs is compared, not
// left in a queue the thread no longer reads.
TEST(CompareEngine, ExchangesCompletedWhileStoppingAreCompared) {
  for (int round = 0; round < 200; ++round) {
    CompareEngine engine(EngineOptions{}, comparators(1), nullptr);
    ASSERT_TRUE(engine.start());
    constexpr int kN = 64;
    std::vector<uint64_t> ids;
    for (int i = 0; i < kN; ++i) {
      ids.push_back(engine.begin(1, "GET", "/", false, 0));
      engine.onResponse(ids.back(), Part::kPrimary, jsonResponse(200, "{}"));
    }
    std::thread mirror([&] {
      for (uint64_t id : ids) {
        engine.onResponse(id, Part::kMirror, jsonResponse(200, "{}"));
      }
    });
    engine.stop();
    mirror.join();
    const CompareStats& s = engine.stats();
    ASSERT_EQ(load(s.queued), 0u) << "round " << round;
    ASSERT_EQ(load(s.compared) + load(s.queueFull), uint64_t{kN});
    ASSERT_EQ(load(s.heldBytes), 0u);
  }
}

TEST(CompareEngine, ComparesOnItsOwnThread) {
  CompareEngine engine(EngineOptions{}, comparators(1), nullptr);
  ASSERT_TRUE(engine.start());
  constexpr int kN = 2000;
  std::vector<uint64_t> ids;
  for (int i = 0; i < kN; ++i) {
    ids.push_back(engine.begin(1, "GET", "/item/" + std::to_string(i), false, 0));
  }
  std::thread mirror([&] {
    for (int i = 0; i < kN; ++i) {
      engine.onResponse(ids[i], Part::kMirror, jsonResponse(200, i % 10 == 0 ? R"({"v":2})" : R"({"v":1})"));
    }
  });
  for (int i = 0; i < kN; ++i) {
    engine.onResponse(ids[i], Part::kPrimary, jsonResponse(200, R"({"v":1})"));
  }
  mirror.join();
  engine.stop();
  const CompareStats& s = engine.stats();
  EXPECT_EQ(load(s.compared) + load(s.queueFull), uint64_t{kN});
  EXPECT_EQ(load(s.queued), 0u);
  expectIdentity(s);
}

}  // namespace
}  // namespace shadowtap::compare
