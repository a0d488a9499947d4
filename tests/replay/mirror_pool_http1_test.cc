#include "replay/mirror_pool.h"

#include <gtest/gtest.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/resource.h>
#include <unistd.h>

#include <algorithm>
#include <functional>
#include <map>

#include "pool_test_util.h"
#include "test_http_server.h"

namespace shadowtap::replay {
namespace {

using namespace std::chrono_literals;
using namespace testing;

using namespace testing;

MirrorPoolOptions optionsFor(std::vector<sockaddr_storage> addrs) {
  MirrorPoolOptions opts;
  opts.io = ::shadowtap::replay::testing::testIo();
  opts.addrs = std::move(addrs);
  opts.maxConnections = 4;
  opts.connectTimeout = 500ms;
  opts.responseTimeout = 2000ms;
  return opts;
}

model::Request getJob(int seq, const std::string& path = "/") {
  model::Request job;
  job.ruleId = 7;
  job.method = "GET";
  job.bytes = "GET " + path + "?seq=" + std::to_string(seq) +
              " HTTP/1.1\r\nHost: svc-shadow:8000\r\nX-Seq: " + std::to_string(seq) + "\r\n\r\n";
  return job;
}

model::Request postJob(int seq, size_t bodySize, const std::string& extraHeaders = "") {
  model::Request job;
  job.method = "POST";
  std::string body(bodySize, static_cast<char>('a' + seq % 26));
  job.bytes = "POST /upload HTTP/1.1\r\nHost: svc-shadow\r\nX-Seq: " + std::to_string(seq) +
              "\r\nContent-Length: " + std::to_string(bodySize) + "\r\n" + extraHeaders + "\r\n" + body;
  return job;
}

model::Request headJob(int seq) {
  model::Request job;
  job.method = "HEAD";
  job.bytes = "HEAD /h?seq=" + std::to_string(seq) + " HTTP/1.1\r\nHost: svc-shadow\r\n\r\n";
  return job;
}

ServerAction ok(const std::string& body = "hello") { return ServerAction{.response = httpResponse(200, body)}; }

double processCpuSeconds() {
  rusage ru{};
  getrusage(RUSAGE_SELF, &ru);
  return static_cast<double>(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) +
         static_cast<double>(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1e6;
}

uint64_t seqOf(const std::string& request) {
  auto pos = request.find("X-Seq: ");
  EXPECT_NE(pos, std::string::npos);
  return std::stoull(request.substr(pos + 7));
}

TEST(MirrorPoolHttp1, ServerReceivesExactlyTheSubmittedBytesInOrderPerConnection) {
  TestHttpServer server([](const ServerRequest&, size_t, size_t) { return ok(); });
  MirrorPoolOptions opts = optionsFor({server.address()});
  opts.maxConnections = 4;
  MirrorPool pool(opts);
  ASSERT_TRUE(pool.start());

  constexpr int kJobs = 300;
  std::map<uint64_t, std::string> submitted;
  uint64_t totalBytes = 0;
  for (int i = 0; i < kJobs; ++i) {
    model::Request job = (i % 3 == 0) ? postJob(i, static_cast<size_t>(i) * 37) : getJob(i);
    submitted[static_cast<uint64_t>(i)] = job.bytes;
    totalBytes += job.bytes.size();
    ASSERT_TRUE(pool.submit(std::move(job)));
  }
  ASSERT_TRUE(waitFor([&] { return pool.stats().responses.load() == kJobs; }, 10s));
  pool.stop(1s);

  const MirrorStats& s = pool.stats();
  EXPECT_EQ(get(s.responses2xx), static_cast<uint64_t>(kJobs));
  EXPECT_EQ(get(s.sent), static_cast<uint64_t>(kJobs));
  EXPECT_EQ(get(s.bytesSent), totalBytes);
  EXPECT_EQ(s.errors(), 0u);
  expectOutcomesAddUp(s);

  auto byConn = server.requestsByConnection();
  EXPECT_LE(byConn.size(), opts.maxConnections);
  EXPECT_EQ(get(s.connectionsOpened), byConn.size());
  size_t received = 0;
  for (const auto& conn : byConn) {
    uint64_t last = 0;
    bool first = true;
    for (const auto& request : conn) {
      uint64_t seq = seqOf(request);
      ASSERT_TRUE(submitted.count(seq)) << "unknown or duplicated request " << seq;
      EXPECT_EQ(request, submitted[seq]);  // byte for byte
      submitted.erase(seq);
      if (!first) {
        EXPECT_GT(seq, last) << "out of order on one connection";
      }
      first = false;
      last = seq;
      ++received;
    }
  }
  EXPECT_EQ(received, static_cast<size_t>(kJobs));
  EXPECT_TRUE(submitted.empty());
  EXPECT_EQ(server.partialBytes(), 0u);
}

TEST(MirrorPoolHttp1, KeepAliveReusesOneConnectionForSequentialRequests) {
  TestHttpServer server([](const ServerRequest&, size_t, size_t) { return ok(); });
  MirrorPool pool(optionsFor({server.address()}));
  ASSERT_TRUE(pool.start());
  for (int i = 0; i < 50; ++i) {
    ASSERT_TRUE(pool.submit(getJob(i)));
    ASSERT_TRUE(waitFor([&] { return pool.stats().responses.load() == static_cast<uint64_t>(i + 1); }, 2s));
  }
  pool.stop(1s);
  EXPECT_EQ(server.connectionCount(), 1u);
  EXPECT_EQ(server.requestCount(), 50u);
  EXPECT_EQ(get(pool.stats().connectAttempts), 1u);
  EXPECT_EQ(get(pool.stats().connectionsClosed), 1u);  // closed by stop()
  expectOutcomesAddUp(pool.stats());
}

// #16 item 2: a worker submits a ring batch's requests inside a WakeBatch; the
// pool's loop is woken once at its end, not once per request, and every request
// still reaches the mirror byte for byte.
TEST(MirrorPoolHttp1, AWakeBatchWakesThePoolOnceAtItsEnd) {
  TestHttpServer server([](const ServerRequest&, size_t, size_t) { return ok(); });
  MirrorPool pool(optionsFor({server.address()}));
  ASSERT_TRUE(pool.start());
  constexpr uint64_t kBatches = 5;
  constexpr uint64_t kPerBatch = 60;
  for (uint64_t b = 0; b < kBatches; ++b) {
    const uint64_t wakeups = get(pool.stats().wakeups);
    {
      WakeBatch batch;
      for (uint64_t i = 0; i < kPerBatch; ++i) {
        ASSERT_TRUE(pool.submit(getJob(static_cast<int>(b * kPerBatch + i))));
      }
      std::this_thread::sleep_for(30ms);
      // No submit wrote the eventfd: the wake-up waits for the batch's end (a
      // loop still busy with the previous batch may pick requests up meanwhile).
      EXPECT_EQ(get(pool.stats().wakeups), wakeups);
    }
    EXPECT_EQ(get(pool.stats().wakeups), wakeups + 1);
    ASSERT_TRUE(waitFor([&] { return get(pool.stats().responses2xx) == (b + 1) * kPerBatch; }, 10s));
  }
  pool.stop(1s);
  EXPECT_EQ(server.requestCount(), kBatches * kPerBatch);
  EXPECT_EQ(get(pool.stats().wakeups), kBatches);
  std::map<int, std::string> got;
  for (const auto& conn : server.requestsByConnection()) {
    for (const auto& request : conn) {
      got[static_cast<int>(seqOf(request))] = request;
    }
  }
  ASSERT_EQ(got.size(), kBatches * kPerBatch);
  for (const auto& [seq, request] : got) {
    EXPECT_EQ(request, getJob(seq).bytes);
  }
  expectOutcomesAddUp(pool.stats());
}

// Without a batch (tests, `shadowtap replay`) a submit to an idle loop wakes it at once.
TEST(MirrorPoolHttp1, WithoutAWakeBatchASubmitWakesTheLoopAtOnce) {
  TestHttpServer server([](const ServerRequest&, size_t, size_t) { return ok(); });
  MirrorPool pool(optionsFor({server.address()}));
  ASSERT_TRUE(pool.start());
  for (uint64_t i = 0; i < 3; ++i) {
    ASSERT_TRUE(pool.submit(getJob(static_cast<int>(i))));
    ASSERT_TRUE(waitFor([&] { return get(pool.stats().responses2xx) == i + 1; }, 2s));
    EXPECT_EQ(get(pool.stats().wakeups), i + 1);
  }
  pool.stop(1s);
}

TEST(MirrorPoolHttp1, BurstUsesAtMostMaxConnections) {
  TestHttpServer server([](const ServerRequest&, size_t, size_t) { return ServerAction{.delay = 5ms, .response = httpResponse(200, "x")}; });
  MirrorPoolOptions opts = optionsFor({server.address()});
  opts.maxConnections = 3;
  MirrorPool pool(opts);
  ASSERT_TRUE(pool.start());
  for (int i = 0; i < 60; ++i) {
    ASSERT_TRUE(pool.submit(getJob(i)));
  }
  ASSERT_TRUE(waitFor([&] { return pool.stats().responses.load() == 60; }, 10s));
  pool.stop(1s);
  EXPECT_EQ(server.connectionCount(), 3u);  // the pool filled up and was reused
  EXPECT_EQ(server.requestCount(), 60u);
  expectOutcomesAddUp(pool.stats());
}

TEST(MirrorPoolHttp1, HeadResponseWithContentLengthHasNoBody) {
  TestHttpServer server([](const ServerRequest& r, size_t, size_t) {
    if (r.method == "HEAD") {
      return ServerAction{.response = "HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n"};
    }
    return ok("get-body");
  });
  MirrorPoolOptions opts = optionsFor({server.address()});
  opts.maxConnections = 1;
  opts.responseTimeout = 1000ms;
  MirrorPool pool(opts);
  ASSERT_TRUE(pool.start());
  ASSERT_TRUE(pool.submit(headJob(0)));
  ASSERT_TRUE(pool.submit(getJob(1)));
  ASSERT_TRUE(pool.submit(headJob(2)));
  ASSERT_TRUE(pool.submit(getJob(3)));
  ASSERT_TRUE(waitFor([&] { return pool.stats().responses.load() == 4; }, 3s));
  pool.stop(1s);
  EXPECT_EQ(get(pool.stats().responses2xx), 4u);
  EXPECT_EQ(pool.stats().errors(), 0u);
  EXPECT_EQ(server.connectionCount(), 1u);
  expectOutcomesAddUp(pool.stats());
}

// Control for the test above: with any other method the framer waits for a
// body that never comes, so the method is what makes HEAD work. On a fake
// clock: the response timeout fires exactly when it is due.
TEST(MirrorPoolHttp1, HeadWithoutTheMethodTimesOut) {
  TestHttpServer server([](const ServerRequest&, size_t, size_t) {
    return ServerAction{.response = "HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n"};
  });
  base::FakeClock clock;
  MirrorPoolOptions opts = optionsFor({server.address()});
  opts.responseTimeout = 150ms;
  opts.clock = &clock;
  MirrorPool pool(opts);
  ASSERT_TRUE(pool.start());
  model::Request job = headJob(0);
  job.method = "GET";
  ASSERT_TRUE(pool.submit(std::move(job)));
  ASSERT_TRUE(server.waitForRequests(1, 5s));
  ASSERT_TRUE(waitFor([&] { return get(pool.stats().bytesReceived) > 0; }));
  advance(clock, pool, 149ms);
  EXPECT_EQ(get(pool.stats().errorsResponseTimeout), 0u);
  advance(clock, pool, 1ms);
  ASSERT_TRUE(waitFor([&] { return pool.stats().errorsResponseTimeout.load() == 1; }));
  pool.stop(0ms);
  EXPECT_EQ(get(pool.stats().responses), 0u);
  expectOutcomesAddUp(pool.stats());
}

TEST(MirrorPoolHttp1, SkipsInterim100ContinueAndKeepsTheConnection) {
  TestHttpServer server([](const ServerRequest&, size_t, size_t index) {
    ServerAction action{.interim = "HTTP/1.1 100 Continue\r\n\r\n", .response = httpResponse(201, "created")};
    if (index == 1) {
      action.interim += "HTTP/1.1 103 Early Hints\r\nLink: </a.css>; rel=preload\r\n\r\n";
      action.writeChunk = 1;  // the final response arrives byte by byte
    }
    return action;
  });
  MirrorPoolOptions opts = optionsFor({server.address()});
  opts.maxConnections = 1;
  MirrorPool pool(opts);
  ASSERT_TRUE(pool.start());
  ASSERT_TRUE(pool.submit(postJob(0, 1000, "Expect: 100-continue\r\n")));
  ASSERT_TRUE(pool.submit(postJob(1, 10, "Expect: 100-continue\r\n")));
  ASSERT_TRUE(pool.submit(getJob(2)));
  ASSERT_TRUE(waitFor([&] { return pool.stats().responses.load() == 3; }, 5s));
  pool.stop(1s);
  const MirrorStats& s = pool.stats();
  EXPECT_EQ(get(s.responses2xx), 3u);
  EXPECT_EQ(get(s.responses1xx), 0u);  // interim responses are not outcomes
  EXPECT_EQ(s.errors(), 0u);
  EXPECT_EQ(server.connectionCount(), 1u);
  expectOutcomesAddUp(s);
}

TEST(MirrorPoolHttp1, FramesChunkedEofDelimitedAndBodylessResponses) {
  TestHttpServer server([](const ServerRequest& r, size_t, size_t) {
    uint64_t seq = seqOf(r.bytes);
    switch (seq) {
      case 0:
        return ServerAction{.response = "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
                                        "5\r\nhello\r\n6;ext=1\r\n world\r\n0\r\nTrailer: x\r\n\r\n",
                            .writeChunk = 3};
      case 1:
        return ServerAction{.response = "HTTP/1.1 204 No Content\r\n\r\n"};
      case 2:
        return ServerAction{.response = "HTTP/1.1 304 Not Modified\r\nContent-Length: 50\r\n\r\n"};
      case 3:
        // Body runs to EOF: complete only when the server closes.
        return ServerAction{.response = "HTTP/1.1 200 OK\r\n\r\nuntil the end", .closeAfter = true};
      default:
        return ok();
    }
  });
  MirrorPoolOptions opts = optionsFor({server.address()});
  opts.maxConnections = 1;
  opts.responseTimeout = 1000ms;
  MirrorPool pool(opts);
  ASSERT_TRUE(pool.start());
  for (int i = 0; i < 5; ++i) {
    ASSERT_TRUE(pool.submit(getJob(i)));
  }
  ASSERT_TRUE(waitFor([&] { return pool.stats().responses.load() == 5; }, 5s));
  pool.stop(1s);
  const MirrorStats& s = pool.stats();
  EXPECT_EQ(get(s.responses2xx), 4u);
  EXPECT_EQ(get(s.responses3xx), 1u);
  EXPECT_EQ(s.errors(), 0u);
  EXPECT_EQ(server.connectionCount(), 2u);  // the EOF-framed response used up the first
  expectOutcomesAddUp(s);
}

TEST(MirrorPoolHttp1, CountsStatusClasses) {
  TestHttpServer server([](const ServerRequest& r, size_t, size_t) {
    static const int kStatus[] = {200, 302, 404, 503, 299, 101};
    int status = kStatus[seqOf(r.bytes) % 6];
    if (status == 101) {
      return ServerAction{.response = "HTTP/1.1 101 Switching Protocols\r\nUpgrade: foo\r\nConnection: upgrade\r\n\r\n"};
    }
    return ServerAction{.response = httpResponse(status, "b")};
  });
  MirrorPoolOptions opts = optionsFor({server.address()});
  opts.maxConnections = 1;
  MirrorPool pool(opts);
  ASSERT_TRUE(pool.start());
  for (int i = 0; i < 12; ++i) {
    ASSERT_TRUE(pool.submit(getJob(i)));
  }
  ASSERT_TRUE(waitFor([&] { return pool.stats().responses.load() == 12; }, 5s));
  pool.stop(1s);
  const MirrorStats& s = pool.stats();
  EXPECT_EQ(get(s.responses2xx), 4u);
  EXPECT_EQ(get(s.responses3xx), 2u);
  EXPECT_EQ(get(s.responses4xx), 2u);
  EXPECT_EQ(get(s.responses5xx), 2u);
  EXPECT_EQ(get(s.responses1xx), 2u);  // 101 is final; the connection is not reused after it
  EXPECT_EQ(server.connectionCount(), 2u);  // jobs 0-5 and 6-11
  expectOutcomesAddUp(s);
}

TEST(MirrorPoolHttp1, ConnectionCloseFromMirrorReconnects) {
  TestHttpServer server([](const ServerRequest&, size_t, size_t) {
    return ServerAction{.response = httpResponse(200, "bye", "Connection: close\r\n"), .closeAfter = true};
  });
  MirrorPoolOptions opts = optionsFor({server.address()});
  opts.maxConnections = 2;
  MirrorPool pool(opts);
  ASSERT_TRUE(pool.start());
  for (int i = 0; i < 10; ++i) {
    ASSERT_TRUE(pool.submit(getJob(i)));
  }
  ASSERT_TRUE(waitFor([&] { return pool.stats().responses.load() == 10; }, 5s));
  pool.stop(1s);
  EXPECT_EQ(get(pool.stats().responses2xx), 10u);
  EXPECT_EQ(pool.stats().errors(), 0u);
  EXPECT_EQ(server.connectionCount(), 10u);
  EXPECT_EQ(get(pool.stats().connectionsOpened), 10u);
  expectOutcomesAddUp(pool.stats());
}

// On a fake clock: one connection, a mirror that never answers; each request
// waits out its whole timeout, one after the other, and is not retried.
TEST(MirrorPoolHttp1, SlowMirrorHitsResponseTimeout) {
  TestHttpServer server([](const ServerRequest&, size_t, size_t) { return ServerAction{}; });  // never answers
  base::FakeClock clock;
  MirrorPoolOptions opts = optionsFor({server.address()});
  opts.maxConnections = 1;
  opts.responseTimeout = 100ms;
  opts.clock = &clock;
  MirrorPool pool(opts);
  ASSERT_TRUE(pool.start());
  for (int i = 0; i < 3; ++i) {
    ASSERT_TRUE(pool.submit(getJob(i)));
  }
  const MirrorStats& s = pool.stats();
  for (uint64_t i = 1; i <= 3; ++i) {
    ASSERT_TRUE(server.waitForRequests(i, 5s));
    ASSERT_TRUE(waitFor([&] { return get(s.sent) == i; }));
    settle(pool);
    advance(clock, pool, 99ms);
    EXPECT_EQ(get(s.errorsResponseTimeout), i - 1) << "timed out early";
    EXPECT_EQ(server.requestCount(), i) << "the next request went out before this one timed out";
    advance(clock, pool, 1ms);
    ASSERT_TRUE(waitFor([&] { return get(s.errorsResponseTimeout) == i; }));
  }
  pool.stop(0ms);
  EXPECT_EQ(get(s.responses), 0u);
  EXPECT_EQ(server.requestCount(), 3u);  // not retried
  EXPECT_EQ(server.connectionCount(), 3u);  // a timed-out connection is not reused
  expectOutcomesAddUp(s);
}

TEST(MirrorPoolHttp1, BrokenConnectionFailsThatJobOnlyAndIsNotRetried) {
  TestHttpServer server([](const ServerRequest& r, size_t, size_t) {
    switch (seqOf(r.bytes)) {
      case 1:
        return ServerAction{.closeAfter = true};  // read the request, hang up
      case 3:
        return ServerAction{.response = "HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\npartial", .closeAfter = true};
      case 5:
        return ServerAction{.reset = true};  // RST
      default:
        return ok();
    }
  });
  MirrorPoolOptions opts = optionsFor({server.address()});
  opts.maxConnections = 1;
  MirrorPool pool(opts);
  ASSERT_TRUE(pool.start());
  for (int i = 0; i < 7; ++i) {
    ASSERT_TRUE(pool.submit(getJob(i)));
  }
  ASSERT_TRUE(waitFor([&] { return pool.stats().outcomes() == 7; }, 5s));
  pool.stop(1s);
  const MirrorStats& s = pool.stats();
  EXPECT_EQ(get(s.responses2xx), 4u);
  EXPECT_EQ(get(s.errorsReset), 3u);
  EXPECT_EQ(server.requestCount(), 7u);  // each job reached the server exactly once
  EXPECT_EQ(server.connectionCount(), 4u);
  expectOutcomesAddUp(s);
}

TEST(MirrorPoolHttp1, BadResponseAndOversizedResponseCloseTheConnection) {
  TestHttpServer server([](const ServerRequest& r, size_t, size_t) {
    switch (seqOf(r.bytes)) {
      case 0:
        return ServerAction{.response = "SSH-2.0-OpenSSH\r\n\r\n"};
      case 1:
        return ServerAction{.response = httpResponse(200, std::string(200000, 'z'))};
      default:
        return ok();
    }
  });
  MirrorPoolOptions opts = optionsFor({server.address()});
  opts.maxConnections = 1;
  opts.maxResponseBytes = 64 * 1024;
  MirrorPool pool(opts);
  ASSERT_TRUE(pool.start());
  for (int i = 0; i < 3; ++i) {
    ASSERT_TRUE(pool.submit(getJob(i)));
  }
  ASSERT_TRUE(waitFor([&] { return pool.stats().outcomes() == 3; }, 5s));
  pool.stop(1s);
  const MirrorStats& s = pool.stats();
  EXPECT_EQ(get(s.errorsBadResponse), 1u);
  EXPECT_EQ(get(s.errorsResponseTooLarge), 1u);
  EXPECT_EQ(get(s.responses2xx), 1u);
  EXPECT_LE(get(s.bytesReceived), 64u * 1024 + 64 * 1024 + 1000);  // stopped reading near the bound
  EXPECT_EQ(server.connectionCount(), 3u);
  expectOutcomesAddUp(s);
}

TEST(MirrorPoolHttp1, LargeRequestSurvivesPartialWrites) {
  TestHttpServer server([](const ServerRequest&, size_t, size_t) { return ok(); });
  server.setReadDelay(1ms);  // a slow reader fills the socket buffers
  MirrorPoolOptions opts = optionsFor({server.address()});
  opts.responseTimeout = 20s;
  MirrorPool pool(opts);
  ASSERT_TRUE(pool.start());
  model::Request big = postJob(0, 3 << 20);
  std::string expected = big.bytes;
  ASSERT_TRUE(pool.submit(std::move(big)));
  ASSERT_TRUE(pool.submit(getJob(1)));
  ASSERT_TRUE(waitFor([&] { return pool.stats().responses.load() == 2; }, 30s));
  pool.stop(1s);
  auto byConn = server.requestsByConnection();
  bool found = false;
  for (const auto& conn : byConn) {
    for (const auto& request : conn) {
      found = found || request == expected;
    }
  }
  EXPECT_TRUE(found);
  EXPECT_EQ(get(pool.stats().bytesSent), expected.size() + getJob(1).bytes.size());
  expectOutcomesAddUp(pool.stats());
}

// On a fake clock: connects to a refused port back off 20, 40, 80, 80 ms
// (initial 20 ms doubling up to 80), never earlier; each attempt carries one
// request and counts one connect error, and the queue drains that way.
TEST(MirrorPoolHttp1, RefusedPortBacksOffAndDrainsWithoutSpinning) {
  RefusedPort dead;
  base::FakeClock clock;
  MirrorPoolOptions opts = optionsFor({dead.address()});
  opts.maxConnections = 4;
  opts.backoffInitial = 20ms;
  opts.backoffMax = 80ms;
  opts.clock = &clock;
  MirrorPool pool(opts);
  ASSERT_TRUE(pool.start());
  for (int i = 0; i < 40; ++i) {
    ASSERT_TRUE(pool.submit(getJob(i)));
  }
  const MirrorStats& s = pool.stats();
  // One round: attempts until every connection of it has failed.
  auto round = [&] {
    EXPECT_TRUE(waitFor([&] { return get(s.connectAttempts) > 0 && get(s.errorsConnect) == get(s.connectAttempts); }));
    settle(pool);
    return get(s.connectAttempts);
  };
  uint64_t attempts = round();
  EXPECT_GE(attempts, 1u);
  EXPECT_LE(attempts, 4u);
  for (const auto backoff : {20ms, 40ms, 80ms, 80ms}) {
    advance(clock, pool, backoff - 1ms);
    EXPECT_EQ(get(s.connectAttempts), attempts) << "connected again before the " << backoff.count() << " ms backoff";
    advance(clock, pool, 1ms);
    const uint64_t next = round();
    EXPECT_GT(next, attempts) << "no new round after the " << backoff.count() << " ms backoff";
    EXPECT_LE(next, attempts + 4);
    attempts = next;
  }
  for (int i = 0; i < 100 && get(s.errorsConnect) < 40; ++i) {
    advance(clock, pool, 80ms);
    round();
  }
  EXPECT_EQ(get(s.errorsConnect), 40u);
  EXPECT_EQ(get(s.connectAttempts), 40u);  // one connect per request, no hidden retries
  EXPECT_EQ(s.queueDepth.load(), 0);
  pool.stop(0ms);
  EXPECT_EQ(get(s.connectionsOpened), 0u);
  expectOutcomesAddUp(s);
}

TEST(MirrorPoolHttp1, DeadMirrorWithFullQueueCostsLittleCpuAndFewConnects) {
  RefusedPort dead;
  MirrorPoolOptions opts = optionsFor({dead.address()});
  opts.maxConnections = 8;
  opts.queueCapacity = 500;
  MirrorPool pool(opts);  // default backoff: 100 ms doubling to 5 s
  ASSERT_TRUE(pool.start());
  double cpuBefore = processCpuSeconds();
  auto end = std::chrono::steady_clock::now() + 1s;
  int i = 0;
  while (std::chrono::steady_clock::now() < end) {
    for (int k = 0; k < 100; ++k) {
      pool.submit(getJob(i++));
    }
    std::this_thread::sleep_for(10ms);
  }
  double cpu = processCpuSeconds() - cpuBefore;
  const MirrorStats& s = pool.stats();
  // Rounds at about 0, 100, 300 and 700 ms.
  EXPECT_LE(get(s.connectAttempts), 4u * opts.maxConnections + opts.maxConnections);
  EXPECT_GE(get(s.connectAttempts), 2u * opts.maxConnections);
  EXPECT_LE(s.queueDepth.load(), static_cast<int64_t>(opts.queueCapacity));
  EXPECT_GT(get(s.queueFull), 0u);
  EXPECT_LT(cpu, 0.3) << "the loop spins on a dead mirror";
  EXPECT_LT(get(s.wakeups), 50u) << "submit writes the eventfd although the loop cannot take jobs";
  pool.stop(0ms);
  EXPECT_GT(get(s.droppedShutdown), 0u);
  expectOutcomesAddUp(s);
}

TEST(MirrorPoolHttp1, SubmitNeverBlocksOnADeadMirror) {
  RefusedPort dead;
  MirrorPoolOptions opts = optionsFor({dead.address()});
  opts.queueCapacity = 1000;
  MirrorPool pool(opts);
  ASSERT_TRUE(pool.start());
  std::vector<model::Request> jobs;
  for (int i = 0; i < 10000; ++i) {
    jobs.push_back(getJob(i));
  }
  auto begin = std::chrono::steady_clock::now();
  size_t accepted = 0;
  for (auto& job : jobs) {
    accepted += pool.submit(std::move(job)) ? 1 : 0;
  }
  auto elapsed = std::chrono::steady_clock::now() - begin;
  EXPECT_LT(elapsed, 100ms);
  EXPECT_LE(accepted, 1000u + opts.maxConnections * 2);
  EXPECT_GE(accepted, 1000u);
  EXPECT_EQ(get(pool.stats().queueFull), 10000u - accepted);
  pool.stop(0ms);
  expectOutcomesAddUp(pool.stats());
}

TEST(MirrorPoolHttp1, QueueByteLimitRejectsAtOnce) {
  RefusedPort dead;
  MirrorPoolOptions opts = optionsFor({dead.address()});
  opts.queueBytes = 10000;
  opts.backoffInitial = 10s;  // keep the jobs queued
  MirrorPool pool(opts);
  model::Request big = postJob(0, 20000);
  EXPECT_FALSE(pool.submit(std::move(big)));  // larger than the whole budget
  EXPECT_EQ(get(pool.stats().queueFull), 1u);
  const size_t jobSize = postJob(0, 900).bytes.size();
  size_t accepted = 0;
  for (int i = 0; i < 20; ++i) {
    accepted += pool.submit(postJob(i, 900)) ? 1 : 0;
  }
  EXPECT_EQ(accepted, 10000 / jobSize);
  EXPECT_EQ(pool.stats().queueBytes.load(), static_cast<int64_t>(accepted * jobSize));
  pool.stop(0ms);  // never started: the queue is dropped
  EXPECT_EQ(get(pool.stats().droppedShutdown), accepted);
  expectOutcomesAddUp(pool.stats());
}

// Packets to the port vanish: a listener whose accept queue is full drops SYNs.
class BlackholePort {
 public:
  BlackholePort() {
    listenFd_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    addr_ = testing::loopback(AF_INET, 0);
    ::bind(listenFd_, reinterpret_cast<sockaddr*>(&addr_), sizeof(sockaddr_in));
    socklen_t len = sizeof(addr_);
    ::getsockname(listenFd_, reinterpret_cast<sockaddr*>(&addr_), &len);
    ::listen(listenFd_, 0);
    for (int i = 0; i < 16 && !works_; ++i) {
      int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
      ::connect(fd, reinterpret_cast<sockaddr*>(&addr_), sizeof(sockaddr_in));
      pollfd pfd{fd, POLLOUT, 0};
      if (::poll(&pfd, 1, 300) == 0) {
        works_ = true;  // this connect hangs: the port is a black hole now
        ::close(fd);
      } else {
        fillers_.push_back(fd);
      }
    }
  }
  ~BlackholePort() {
    for (int fd : fillers_) {
      ::close(fd);
    }
    ::close(listenFd_);
  }
  bool works() const { return works_; }
  const sockaddr_storage& address() const { return addr_; }

 private:
  int listenFd_ = -1;
  sockaddr_storage addr_{};
  std::vector<int> fillers_;
  bool works_ = false;
};

// On a fake clock: connects to a black hole time out exactly at the connect
// timeout, then the address backs off before the next round.
TEST(MirrorPoolHttp1, BlackholedMirrorHitsConnectTimeoutAndBacksOff) {
  BlackholePort hole;
  if (!hole.works()) {
    GTEST_SKIP() << "this network stack completes connects past a full accept queue";
  }
  base::FakeClock clock;
  MirrorPoolOptions opts = optionsFor({hole.address()});
  opts.maxConnections = 2;
  opts.connectTimeout = 100ms;
  opts.backoffInitial = 50ms;
  opts.clock = &clock;
  MirrorPool pool(opts);
  ASSERT_TRUE(pool.start());
  for (int i = 0; i < 6; ++i) {
    ASSERT_TRUE(pool.submit(getJob(i)));
  }
  const MirrorStats& s = pool.stats();
  ASSERT_TRUE(waitFor([&] { return get(s.connectAttempts) == 2; }));
  // The backoff doubles: each round failed after the previous one's ran out.
  const std::chrono::milliseconds backoffs[] = {50ms, 100ms};
  for (uint64_t timedOut = 2; timedOut <= 6; timedOut += 2) {
    settle(pool);
    advance(clock, pool, 99ms);
    EXPECT_EQ(get(s.errorsConnectTimeout), timedOut - 2) << "timed out early";
    advance(clock, pool, 1ms);
    ASSERT_TRUE(waitFor([&] { return get(s.errorsConnectTimeout) == timedOut; }));
    EXPECT_EQ(get(s.connectAttempts), timedOut) << "connected again without backing off";
    if (timedOut < 6) {
      const auto backoff = backoffs[timedOut / 2 - 1];
      advance(clock, pool, backoff - 1ms);
      EXPECT_EQ(get(s.connectAttempts), timedOut) << "connected again before the backoff ran out";
      advance(clock, pool, 1ms);
      ASSERT_TRUE(waitFor([&] { return get(s.connectAttempts) == timedOut + 2; }));
    }
  }
  EXPECT_EQ(get(s.connectAttempts), 6u);
  pool.stop(0ms);
  expectOutcomesAddUp(s);
}

TEST(MirrorPoolHttp1, StopDrainsQueuedAndInFlightJobs) {
  TestHttpServer server([](const ServerRequest&, size_t, size_t) {
    return ServerAction{.delay = 40ms, .response = httpResponse(200, "ok")};
  });
  MirrorPoolOptions opts = optionsFor({server.address()});
  opts.maxConnections = 1;
  MirrorPool pool(opts);
  ASSERT_TRUE(pool.start());
  for (int i = 0; i < 5; ++i) {
    ASSERT_TRUE(pool.submit(getJob(i)));
  }
  auto begin = std::chrono::steady_clock::now();
  pool.stop(3s);
  auto elapsed = std::chrono::steady_clock::now() - begin;
  EXPECT_LT(elapsed, 2s);  // returned when the work was done, not at the deadline
  EXPECT_EQ(get(pool.stats().responses2xx), 5u);
  EXPECT_EQ(get(pool.stats().droppedShutdown), 0u);
  EXPECT_FALSE(pool.submit(getJob(99)));  // no longer accepting
  EXPECT_EQ(get(pool.stats().droppedShutdown), 1u);
  expectOutcomesAddUp(pool.stats());
}

// On a fake clock: stop(100ms) returns when the pool's clock passes the drain
// deadline, not before, and drops what is left.
TEST(MirrorPoolHttp1, StopDropsWhatTheDrainCannotFinish) {
  TestHttpServer server([](const ServerRequest&, size_t, size_t) { return ServerAction{}; });  // never answers
  base::FakeClock clock;
  MirrorPoolOptions opts = optionsFor({server.address()});
  opts.maxConnections = 2;
  opts.responseTimeout = 10s;
  opts.clock = &clock;
  MirrorPool pool(opts);
  ASSERT_TRUE(pool.start());
  for (int i = 0; i < 6; ++i) {
    ASSERT_TRUE(pool.submit(getJob(i)));
  }
  ASSERT_TRUE(server.waitForRequests(2, 2s));
  std::atomic<bool> stopped{false};
  std::thread stopper([&] {
    pool.stop(100ms);
    stopped = true;
  });
  // Probes until stop() has begun; every request, probes included, ends dropped at shutdown
  // (the two connections are busy for good).
  ASSERT_TRUE(waitFor([&] { return !pool.submit(getJob(99)); }));
  settle(pool);
  advance(clock, pool, 99ms);
  EXPECT_FALSE(stopped.load()) << "the drain ended early";
  clock.advance(1'000'000);
  pool.wake();
  EXPECT_TRUE(waitFor([&] { return stopped.load(); }, 5s));
  stopper.join();
  EXPECT_EQ(get(pool.stats().responses), 0u);
  EXPECT_GE(get(pool.stats().droppedShutdown), 7u);  // 2 in flight + 4 queued + at least 1 probe
  EXPECT_EQ(get(pool.stats().droppedShutdown), get(pool.stats().submitted));
  expectOutcomesAddUp(pool.stats());
}

// On a fake clock: an unused connection closes exactly at the idle timeout.
TEST(MirrorPoolHttp1, IdleConnectionsAreClosedAfterIdleTimeout) {
  TestHttpServer server([](const ServerRequest&, size_t, size_t) { return ok(); });
  base::FakeClock clock;
  MirrorPoolOptions opts = optionsFor({server.address()});
  opts.idleTimeout = 100ms;
  opts.clock = &clock;
  MirrorPool pool(opts);
  ASSERT_TRUE(pool.start());
  ASSERT_TRUE(pool.submit(getJob(0)));
  ASSERT_TRUE(waitFor([&] { return pool.stats().responses.load() == 1; }, 2s));
  settle(pool);
  EXPECT_EQ(pool.stats().openConnections.load(), 1);
  advance(clock, pool, 99ms);
  EXPECT_EQ(pool.stats().openConnections.load(), 1) << "closed before the idle timeout";
  advance(clock, pool, 1ms);
  ASSERT_TRUE(waitFor([&] { return pool.stats().openConnections.load() == 0; }, 2s));
  EXPECT_EQ(get(pool.stats().connectionsClosed), 1u);
  EXPECT_EQ(get(pool.stats().idleClosed), 1u);
  ASSERT_TRUE(pool.submit(getJob(1)));
  ASSERT_TRUE(waitFor([&] { return pool.stats().responses.load() == 2; }, 2s));
  pool.stop(1s);
  EXPECT_EQ(server.connectionCount(), 2u);
  expectOutcomesAddUp(pool.stats());
}

TEST(MirrorPoolHttp1, Ipv6Loopback) {
  TestHttpServer server([](const ServerRequest&, size_t, size_t) { return ok(); }, AF_INET6);
  ResolveResult target = resolveTarget("[::1]:" + std::to_string(testing::portOf(server.address())));
  ASSERT_TRUE(target.error.empty()) << target.error;
  MirrorPool pool(optionsFor(target.addrs));
  ASSERT_TRUE(pool.start());
  std::vector<std::string> sent;
  for (int i = 0; i < 10; ++i) {
    model::Request job = getJob(i);
    sent.push_back(job.bytes);
    ASSERT_TRUE(pool.submit(std::move(job)));
  }
  ASSERT_TRUE(waitFor([&] { return pool.stats().responses2xx.load() == 10; }, 5s));
  pool.stop(1s);
  std::vector<std::string> received;
  for (const auto& conn : server.requestsByConnection()) {
    received.insert(received.end(), conn.begin(), conn.end());
  }
  std::sort(received.begin(), received.end());
  std::sort(sent.begin(), sent.end());
  EXPECT_EQ(received, sent);
  expectOutcomesAddUp(pool.stats());
}

TEST(MirrorPoolHttp1, AddressesAreUsedInTurnAndADeadOneBacksOff) {
  TestHttpServer live([](const ServerRequest&, size_t, size_t) {
    return ServerAction{.delay = 2ms, .response = httpResponse(200, "ok")};
  });
  RefusedPort dead;
  MirrorPoolOptions opts = optionsFor({dead.address(), live.address()});
  opts.maxConnections = 2;
  MirrorPool pool(opts);
  ASSERT_TRUE(pool.start());
  for (int i = 0; i < 100; ++i) {
    ASSERT_TRUE(pool.submit(getJob(i)));
  }
  ASSERT_TRUE(waitFor([&] { return pool.stats().outcomes() == 100; }, 10s));
  pool.stop(1s);
  const MirrorStats& s = pool.stats();
  EXPECT_GE(get(s.errorsConnect), 1u);   // the dead address was tried...
  EXPECT_LE(get(s.errorsConnect), 10u);  // ...and then left alone during its backoff
  EXPECT_EQ(get(s.responses2xx) + get(s.errorsConnect), 100u);
  EXPECT_EQ(live.requestCount(), get(s.responses2xx));
  expectOutcomesAddUp(s);
}

// Many jobs, a mirror that misbehaves in every way, a small queue and a short
// drain: whatever happens, each job is counted exactly once.
TEST(MirrorPoolHttp1, OutcomesAlwaysAddUp) {
  TestHttpServer server([](const ServerRequest& r, size_t, size_t) {
    switch (seqOf(r.bytes) % 6) {
      case 0:
        return ok();
      case 1:
        return ServerAction{.response = httpResponse(500, "err")};
      case 2:
        return ServerAction{.closeAfter = true};
      case 3:
        return ServerAction{.delay = 300ms, .response = httpResponse(200, "slow")};
      case 4:
        return ServerAction{.response = "junk\r\n\r\n"};
      default:
        return ServerAction{.response = httpResponse(200, "bye", "Connection: close\r\n"), .closeAfter = true};
    }
  });
  MirrorPoolOptions opts = optionsFor({server.address()});
  opts.maxConnections = 4;
  opts.queueCapacity = 64;
  opts.responseTimeout = 100ms;
  MirrorPool pool(opts);
  ASSERT_TRUE(pool.start());
  for (int i = 0; i < 600; ++i) {
    pool.submit(getJob(i));
    if (i % 50 == 0) {
      std::this_thread::sleep_for(20ms);
    }
  }
  pool.stop(150ms);
  const MirrorStats& s = pool.stats();
  EXPECT_EQ(get(s.submitted), 600u);
  EXPECT_GT(get(s.responses), 0u);
  EXPECT_GT(s.errors(), 0u);
  EXPECT_GT(get(s.queueFull), 0u);
  expectOutcomesAddUp(s);
}

}  // namespace
}  // namespace shadowtap::replay
