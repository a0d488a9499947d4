#include "replay/replayer.h"

#include <gtest/gtest.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/resource.h>
#include <unistd.h>

#include <algorithm>
#include <functional>
#include <map>

#include "test_http_server.h"

namespace shadowtap::replay {
namespace {

using namespace std::chrono_literals;
using testing::httpResponse;
using testing::RefusedPort;
using testing::ServerAction;
using testing::ServerRequest;
using testing::TestHttpServer;

ReplayOptions optionsFor(std::vector<sockaddr_storage> addrs) {
  ReplayOptions opts;
  opts.addrs = std::move(addrs);
  opts.maxConnections = 4;
  opts.connectTimeout = 500ms;
  opts.responseTimeout = 2000ms;
  return opts;
}

ReplayJob getJob(int seq, const std::string& path = "/") {
  ReplayJob job;
  job.ruleId = 7;
  job.bytes = "GET " + path + "?seq=" + std::to_string(seq) +
              " HTTP/1.1\r\nHost: svc-shadow:8000\r\nX-Seq: " + std::to_string(seq) + "\r\n\r\n";
  return job;
}

ReplayJob postJob(int seq, size_t bodySize, const std::string& extraHeaders = "") {
  ReplayJob job;
  std::string body(bodySize, static_cast<char>('a' + seq % 26));
  job.bytes = "POST /upload HTTP/1.1\r\nHost: svc-shadow\r\nX-Seq: " + std::to_string(seq) +
              "\r\nContent-Length: " + std::to_string(bodySize) + "\r\n" + extraHeaders + "\r\n" + body;
  return job;
}

ReplayJob headJob(int seq) {
  ReplayJob job;
  job.isHead = true;
  job.bytes = "HEAD /h?seq=" + std::to_string(seq) + " HTTP/1.1\r\nHost: svc-shadow\r\n\r\n";
  return job;
}

ServerAction ok(const std::string& body = "hello") { return ServerAction{.response = httpResponse(200, body)}; }

bool waitFor(const std::function<bool()>& done, std::chrono::milliseconds timeout) {
  auto deadline = std::chrono::steady_clock::now() + timeout;
  while (std::chrono::steady_clock::now() < deadline) {
    if (done()) {
      return true;
    }
    std::this_thread::sleep_for(2ms);
  }
  return done();
}

uint64_t get(const std::atomic<uint64_t>& counter) { return counter.load(); }

// Every job ends in exactly one outcome; checked after stop().
void expectOutcomesAddUp(const ReplayStats& s) {
  EXPECT_EQ(get(s.submitted), s.outcomes())
      << "responses " << get(s.responses) << " errors " << s.errors() << " queueFull " << get(s.queueFull)
      << " droppedShutdown " << get(s.droppedShutdown);
  EXPECT_EQ(get(s.responses), get(s.responses1xx) + get(s.responses2xx) + get(s.responses3xx) +
                                  get(s.responses4xx) + get(s.responses5xx) + get(s.responsesOther));
  EXPECT_EQ(s.queueDepth.load(), 0);
  EXPECT_EQ(s.queueBytes.load(), 0);
  EXPECT_EQ(s.inFlight.load(), 0);
  EXPECT_EQ(s.openConnections.load(), 0);
}

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

TEST(Replayer, ServerReceivesExactlyTheSubmittedBytesInOrderPerConnection) {
  TestHttpServer server([](const ServerRequest&, size_t, size_t) { return ok(); });
  ReplayOptions opts = optionsFor({server.address()});
  opts.maxConnections = 4;
  Replayer replayer(opts);
  ASSERT_TRUE(replayer.start());

  constexpr int kJobs = 300;
  std::map<uint64_t, std::string> submitted;
  uint64_t totalBytes = 0;
  for (int i = 0; i < kJobs; ++i) {
    ReplayJob job = (i % 3 == 0) ? postJob(i, static_cast<size_t>(i) * 37) : getJob(i);
    submitted[static_cast<uint64_t>(i)] = job.bytes;
    totalBytes += job.bytes.size();
    ASSERT_TRUE(replayer.submit(std::move(job)));
  }
  ASSERT_TRUE(waitFor([&] { return replayer.stats().responses.load() == kJobs; }, 10s));
  replayer.stop(1s);

  const ReplayStats& s = replayer.stats();
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

TEST(Replayer, KeepAliveReusesOneConnectionForSequentialRequests) {
  TestHttpServer server([](const ServerRequest&, size_t, size_t) { return ok(); });
  Replayer replayer(optionsFor({server.address()}));
  ASSERT_TRUE(replayer.start());
  for (int i = 0; i < 50; ++i) {
    ASSERT_TRUE(replayer.submit(getJob(i)));
    ASSERT_TRUE(waitFor([&] { return replayer.stats().responses.load() == static_cast<uint64_t>(i + 1); }, 2s));
  }
  replayer.stop(1s);
  EXPECT_EQ(server.connectionCount(), 1u);
  EXPECT_EQ(server.requestCount(), 50u);
  EXPECT_EQ(get(replayer.stats().connectAttempts), 1u);
  EXPECT_EQ(get(replayer.stats().connectionsClosed), 1u);  // closed by stop()
  expectOutcomesAddUp(replayer.stats());
}

TEST(Replayer, BurstUsesAtMostMaxConnections) {
  TestHttpServer server([](const ServerRequest&, size_t, size_t) { return ServerAction{.delay = 5ms, .response = httpResponse(200, "x")}; });
  ReplayOptions opts = optionsFor({server.address()});
  opts.maxConnections = 3;
  Replayer replayer(opts);
  ASSERT_TRUE(replayer.start());
  for (int i = 0; i < 60; ++i) {
    ASSERT_TRUE(replayer.submit(getJob(i)));
  }
  ASSERT_TRUE(waitFor([&] { return replayer.stats().responses.load() == 60; }, 10s));
  replayer.stop(1s);
  EXPECT_EQ(server.connectionCount(), 3u);  // the pool filled up and was reused
  EXPECT_EQ(server.requestCount(), 60u);
  expectOutcomesAddUp(replayer.stats());
}

TEST(Replayer, HeadResponseWithContentLengthHasNoBody) {
  TestHttpServer server([](const ServerRequest& r, size_t, size_t) {
    if (r.method == "HEAD") {
      return ServerAction{.response = "HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n"};
    }
    return ok("get-body");
  });
  ReplayOptions opts = optionsFor({server.address()});
  opts.maxConnections = 1;
  opts.responseTimeout = 1000ms;
  Replayer replayer(opts);
  ASSERT_TRUE(replayer.start());
  ASSERT_TRUE(replayer.submit(headJob(0)));
  ASSERT_TRUE(replayer.submit(getJob(1)));
  ASSERT_TRUE(replayer.submit(headJob(2)));
  ASSERT_TRUE(replayer.submit(getJob(3)));
  ASSERT_TRUE(waitFor([&] { return replayer.stats().responses.load() == 4; }, 3s));
  replayer.stop(1s);
  EXPECT_EQ(get(replayer.stats().responses2xx), 4u);
  EXPECT_EQ(replayer.stats().errors(), 0u);
  EXPECT_EQ(server.connectionCount(), 1u);
  expectOutcomesAddUp(replayer.stats());
}

// Control for the test above: without isHead the framer waits for a body that
// never comes, so the flag is what makes HEAD work.
TEST(Replayer, HeadWithoutFlagTimesOut) {
  TestHttpServer server([](const ServerRequest&, size_t, size_t) {
    return ServerAction{.response = "HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n"};
  });
  ReplayOptions opts = optionsFor({server.address()});
  opts.responseTimeout = 150ms;
  Replayer replayer(opts);
  ASSERT_TRUE(replayer.start());
  ReplayJob job = headJob(0);
  job.isHead = false;
  ASSERT_TRUE(replayer.submit(std::move(job)));
  ASSERT_TRUE(waitFor([&] { return replayer.stats().errorsResponseTimeout.load() == 1; }, 3s));
  replayer.stop(0ms);
  EXPECT_EQ(get(replayer.stats().responses), 0u);
  expectOutcomesAddUp(replayer.stats());
}

TEST(Replayer, SkipsInterim100ContinueAndKeepsTheConnection) {
  TestHttpServer server([](const ServerRequest&, size_t, size_t index) {
    ServerAction action{.interim = "HTTP/1.1 100 Continue\r\n\r\n", .response = httpResponse(201, "created")};
    if (index == 1) {
      action.interim += "HTTP/1.1 103 Early Hints\r\nLink: </a.css>; rel=preload\r\n\r\n";
      action.writeChunk = 1;  // the final response arrives byte by byte
    }
    return action;
  });
  ReplayOptions opts = optionsFor({server.address()});
  opts.maxConnections = 1;
  Replayer replayer(opts);
  ASSERT_TRUE(replayer.start());
  ASSERT_TRUE(replayer.submit(postJob(0, 1000, "Expect: 100-continue\r\n")));
  ASSERT_TRUE(replayer.submit(postJob(1, 10, "Expect: 100-continue\r\n")));
  ASSERT_TRUE(replayer.submit(getJob(2)));
  ASSERT_TRUE(waitFor([&] { return replayer.stats().responses.load() == 3; }, 5s));
  replayer.stop(1s);
  const ReplayStats& s = replayer.stats();
  EXPECT_EQ(get(s.responses2xx), 3u);
  EXPECT_EQ(get(s.responses1xx), 0u);  // interim responses are not outcomes
  EXPECT_EQ(s.errors(), 0u);
  EXPECT_EQ(server.connectionCount(), 1u);
  expectOutcomesAddUp(s);
}

TEST(Replayer, FramesChunkedEofDelimitedAndBodylessResponses) {
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
  ReplayOptions opts = optionsFor({server.address()});
  opts.maxConnections = 1;
  opts.responseTimeout = 1000ms;
  Replayer replayer(opts);
  ASSERT_TRUE(replayer.start());
  for (int i = 0; i < 5; ++i) {
    ASSERT_TRUE(replayer.submit(getJob(i)));
  }
  ASSERT_TRUE(waitFor([&] { return replayer.stats().responses.load() == 5; }, 5s));
  replayer.stop(1s);
  const ReplayStats& s = replayer.stats();
  EXPECT_EQ(get(s.responses2xx), 4u);
  EXPECT_EQ(get(s.responses3xx), 1u);
  EXPECT_EQ(s.errors(), 0u);
  EXPECT_EQ(server.connectionCount(), 2u);  // the EOF-framed response used up the first
  expectOutcomesAddUp(s);
}

TEST(Replayer, CountsStatusClasses) {
  TestHttpServer server([](const ServerRequest& r, size_t, size_t) {
    static const int kStatus[] = {200, 302, 404, 503, 299, 101};
    int status = kStatus[seqOf(r.bytes) % 6];
    if (status == 101) {
      return ServerAction{.response = "HTTP/1.1 101 Switching Protocols\r\nUpgrade: foo\r\nConnection: upgrade\r\n\r\n"};
    }
    return ServerAction{.response = httpResponse(status, "b")};
  });
  ReplayOptions opts = optionsFor({server.address()});
  opts.maxConnections = 1;
  Replayer replayer(opts);
  ASSERT_TRUE(replayer.start());
  for (int i = 0; i < 12; ++i) {
    ASSERT_TRUE(replayer.submit(getJob(i)));
  }
  ASSERT_TRUE(waitFor([&] { return replayer.stats().responses.load() == 12; }, 5s));
  replayer.stop(1s);
  const ReplayStats& s = replayer.stats();
  EXPECT_EQ(get(s.responses2xx), 4u);
  EXPECT_EQ(get(s.responses3xx), 2u);
  EXPECT_EQ(get(s.responses4xx), 2u);
  EXPECT_EQ(get(s.responses5xx), 2u);
  EXPECT_EQ(get(s.responses1xx), 2u);  // 101 is final; the connection is not reused after it
  EXPECT_EQ(server.connectionCount(), 2u);  // jobs 0-5 and 6-11
  expectOutcomesAddUp(s);
}

TEST(Replayer, ConnectionCloseFromMirrorReconnects) {
  TestHttpServer server([](const ServerRequest&, size_t, size_t) {
    return ServerAction{.response = httpResponse(200, "bye", "Connection: close\r\n"), .closeAfter = true};
  });
  ReplayOptions opts = optionsFor({server.address()});
  opts.maxConnections = 2;
  Replayer replayer(opts);
  ASSERT_TRUE(replayer.start());
  for (int i = 0; i < 10; ++i) {
    ASSERT_TRUE(replayer.submit(getJob(i)));
  }
  ASSERT_TRUE(waitFor([&] { return replayer.stats().responses.load() == 10; }, 5s));
  replayer.stop(1s);
  EXPECT_EQ(get(replayer.stats().responses2xx), 10u);
  EXPECT_EQ(replayer.stats().errors(), 0u);
  EXPECT_EQ(server.connectionCount(), 10u);
  EXPECT_EQ(get(replayer.stats().connectionsOpened), 10u);
  expectOutcomesAddUp(replayer.stats());
}

TEST(Replayer, SlowMirrorHitsResponseTimeout) {
  TestHttpServer server([](const ServerRequest&, size_t, size_t) {
    return ServerAction{.delay = 400ms, .response = httpResponse(200, "late")};
  });
  ReplayOptions opts = optionsFor({server.address()});
  opts.maxConnections = 1;
  opts.responseTimeout = 100ms;
  Replayer replayer(opts);
  ASSERT_TRUE(replayer.start());
  auto begin = std::chrono::steady_clock::now();
  for (int i = 0; i < 3; ++i) {
    ASSERT_TRUE(replayer.submit(getJob(i)));
  }
  ASSERT_TRUE(waitFor([&] { return replayer.stats().errorsResponseTimeout.load() == 3; }, 5s));
  auto elapsed = std::chrono::steady_clock::now() - begin;
  EXPECT_GE(elapsed, 300ms);  // one after the other, each waited out its timeout
  EXPECT_LT(elapsed, 1000ms);
  replayer.stop(0ms);
  EXPECT_EQ(get(replayer.stats().responses), 0u);
  EXPECT_EQ(server.requestCount(), 3u);  // not retried
  expectOutcomesAddUp(replayer.stats());
}

TEST(Replayer, BrokenConnectionFailsThatJobOnlyAndIsNotRetried) {
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
  ReplayOptions opts = optionsFor({server.address()});
  opts.maxConnections = 1;
  Replayer replayer(opts);
  ASSERT_TRUE(replayer.start());
  for (int i = 0; i < 7; ++i) {
    ASSERT_TRUE(replayer.submit(getJob(i)));
  }
  ASSERT_TRUE(waitFor([&] { return replayer.stats().outcomes() == 7; }, 5s));
  replayer.stop(1s);
  const ReplayStats& s = replayer.stats();
  EXPECT_EQ(get(s.responses2xx), 4u);
  EXPECT_EQ(get(s.errorsReset), 3u);
  EXPECT_EQ(server.requestCount(), 7u);  // each job reached the server exactly once
  EXPECT_EQ(server.connectionCount(), 4u);
  expectOutcomesAddUp(s);
}

TEST(Replayer, BadResponseAndOversizedResponseCloseTheConnection) {
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
  ReplayOptions opts = optionsFor({server.address()});
  opts.maxConnections = 1;
  opts.maxResponseBytes = 64 * 1024;
  Replayer replayer(opts);
  ASSERT_TRUE(replayer.start());
  for (int i = 0; i < 3; ++i) {
    ASSERT_TRUE(replayer.submit(getJob(i)));
  }
  ASSERT_TRUE(waitFor([&] { return replayer.stats().outcomes() == 3; }, 5s));
  replayer.stop(1s);
  const ReplayStats& s = replayer.stats();
  EXPECT_EQ(get(s.errorsBadResponse), 1u);
  EXPECT_EQ(get(s.errorsResponseTooLarge), 1u);
  EXPECT_EQ(get(s.responses2xx), 1u);
  EXPECT_LE(get(s.bytesReceived), 64u * 1024 + 64 * 1024 + 1000);  // stopped reading near the bound
  EXPECT_EQ(server.connectionCount(), 3u);
  expectOutcomesAddUp(s);
}

TEST(Replayer, LargeRequestSurvivesPartialWrites) {
  TestHttpServer server([](const ServerRequest&, size_t, size_t) { return ok(); });
  server.setReadDelay(1ms);  // a slow reader fills the socket buffers
  ReplayOptions opts = optionsFor({server.address()});
  opts.responseTimeout = 20s;
  Replayer replayer(opts);
  ASSERT_TRUE(replayer.start());
  ReplayJob big = postJob(0, 3 << 20);
  std::string expected = big.bytes;
  ASSERT_TRUE(replayer.submit(std::move(big)));
  ASSERT_TRUE(replayer.submit(getJob(1)));
  ASSERT_TRUE(waitFor([&] { return replayer.stats().responses.load() == 2; }, 30s));
  replayer.stop(1s);
  auto byConn = server.requestsByConnection();
  bool found = false;
  for (const auto& conn : byConn) {
    for (const auto& request : conn) {
      found = found || request == expected;
    }
  }
  EXPECT_TRUE(found);
  EXPECT_EQ(get(replayer.stats().bytesSent), expected.size() + getJob(1).bytes.size());
  expectOutcomesAddUp(replayer.stats());
}

TEST(Replayer, RefusedPortCountsConnectErrorsAndDrainsWithoutSpinning) {
  RefusedPort dead;
  ReplayOptions opts = optionsFor({dead.address()});
  opts.maxConnections = 4;
  opts.backoffInitial = 20ms;
  opts.backoffMax = 80ms;
  Replayer replayer(opts);
  ASSERT_TRUE(replayer.start());
  for (int i = 0; i < 40; ++i) {
    ASSERT_TRUE(replayer.submit(getJob(i)));
  }
  // 4 jobs per round, rounds 20, 40, 80, 80... ms apart: well under 2 s.
  ASSERT_TRUE(waitFor([&] { return replayer.stats().errorsConnect.load() == 40; }, 5s));
  const ReplayStats& s = replayer.stats();
  EXPECT_EQ(get(s.connectAttempts), 40u);  // one connect per job, no hidden retries
  EXPECT_EQ(s.queueDepth.load(), 0);
  replayer.stop(0ms);
  EXPECT_EQ(get(s.connectionsOpened), 0u);
  expectOutcomesAddUp(s);
}

TEST(Replayer, DeadMirrorWithFullQueueCostsLittleCpuAndFewConnects) {
  RefusedPort dead;
  ReplayOptions opts = optionsFor({dead.address()});
  opts.maxConnections = 8;
  opts.queueCapacity = 500;
  Replayer replayer(opts);  // default backoff: 100 ms doubling to 5 s
  ASSERT_TRUE(replayer.start());
  double cpuBefore = processCpuSeconds();
  auto end = std::chrono::steady_clock::now() + 1s;
  int i = 0;
  while (std::chrono::steady_clock::now() < end) {
    for (int k = 0; k < 100; ++k) {
      replayer.submit(getJob(i++));
    }
    std::this_thread::sleep_for(10ms);
  }
  double cpu = processCpuSeconds() - cpuBefore;
  const ReplayStats& s = replayer.stats();
  // Rounds at about 0, 100, 300 and 700 ms.
  EXPECT_LE(get(s.connectAttempts), 4u * opts.maxConnections + opts.maxConnections);
  EXPECT_GE(get(s.connectAttempts), 2u * opts.maxConnections);
  EXPECT_LE(s.queueDepth.load(), static_cast<int64_t>(opts.queueCapacity));
  EXPECT_GT(get(s.queueFull), 0u);
  EXPECT_LT(cpu, 0.3) << "the loop spins on a dead mirror";
  EXPECT_LT(get(s.wakeups), 50u) << "submit writes the eventfd although the loop cannot take jobs";
  replayer.stop(0ms);
  EXPECT_GT(get(s.droppedShutdown), 0u);
  expectOutcomesAddUp(s);
}

TEST(Replayer, SubmitNeverBlocksOnADeadMirror) {
  RefusedPort dead;
  ReplayOptions opts = optionsFor({dead.address()});
  opts.queueCapacity = 1000;
  Replayer replayer(opts);
  ASSERT_TRUE(replayer.start());
  std::vector<ReplayJob> jobs;
  for (int i = 0; i < 10000; ++i) {
    jobs.push_back(getJob(i));
  }
  auto begin = std::chrono::steady_clock::now();
  size_t accepted = 0;
  for (auto& job : jobs) {
    accepted += replayer.submit(std::move(job)) ? 1 : 0;
  }
  auto elapsed = std::chrono::steady_clock::now() - begin;
  EXPECT_LT(elapsed, 100ms);
  EXPECT_LE(accepted, 1000u + opts.maxConnections * 2);
  EXPECT_GE(accepted, 1000u);
  EXPECT_EQ(get(replayer.stats().queueFull), 10000u - accepted);
  replayer.stop(0ms);
  expectOutcomesAddUp(replayer.stats());
}

TEST(Replayer, QueueByteLimitRejectsAtOnce) {
  RefusedPort dead;
  ReplayOptions opts = optionsFor({dead.address()});
  opts.queueBytes = 10000;
  opts.backoffInitial = 10s;  // keep the jobs queued
  Replayer replayer(opts);
  ReplayJob big = postJob(0, 20000);
  EXPECT_FALSE(replayer.submit(std::move(big)));  // larger than the whole budget
  EXPECT_EQ(get(replayer.stats().queueFull), 1u);
  const size_t jobSize = postJob(0, 900).bytes.size();
  size_t accepted = 0;
  for (int i = 0; i < 20; ++i) {
    accepted += replayer.submit(postJob(i, 900)) ? 1 : 0;
  }
  EXPECT_EQ(accepted, 10000 / jobSize);
  EXPECT_EQ(replayer.stats().queueBytes.load(), static_cast<int64_t>(accepted * jobSize));
  replayer.stop(0ms);  // never started: the queue is dropped
  EXPECT_EQ(get(replayer.stats().droppedShutdown), accepted);
  expectOutcomesAddUp(replayer.stats());
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

TEST(Replayer, BlackholedMirrorHitsConnectTimeoutAndBacksOff) {
  BlackholePort hole;
  if (!hole.works()) {
    GTEST_SKIP() << "this network stack completes connects past a full accept queue";
  }
  ReplayOptions opts = optionsFor({hole.address()});
  opts.maxConnections = 2;
  opts.connectTimeout = 100ms;
  opts.backoffInitial = 50ms;
  Replayer replayer(opts);
  ASSERT_TRUE(replayer.start());
  for (int i = 0; i < 6; ++i) {
    ASSERT_TRUE(replayer.submit(getJob(i)));
  }
  ASSERT_TRUE(waitFor([&] { return replayer.stats().errorsConnectTimeout.load() == 6; }, 5s));
  EXPECT_EQ(get(replayer.stats().connectAttempts), 6u);
  replayer.stop(0ms);
  expectOutcomesAddUp(replayer.stats());
}

TEST(Replayer, StopDrainsQueuedAndInFlightJobs) {
  TestHttpServer server([](const ServerRequest&, size_t, size_t) {
    return ServerAction{.delay = 40ms, .response = httpResponse(200, "ok")};
  });
  ReplayOptions opts = optionsFor({server.address()});
  opts.maxConnections = 1;
  Replayer replayer(opts);
  ASSERT_TRUE(replayer.start());
  for (int i = 0; i < 5; ++i) {
    ASSERT_TRUE(replayer.submit(getJob(i)));
  }
  auto begin = std::chrono::steady_clock::now();
  replayer.stop(3s);
  auto elapsed = std::chrono::steady_clock::now() - begin;
  EXPECT_LT(elapsed, 2s);  // returned when the work was done, not at the deadline
  EXPECT_EQ(get(replayer.stats().responses2xx), 5u);
  EXPECT_EQ(get(replayer.stats().droppedShutdown), 0u);
  EXPECT_FALSE(replayer.submit(getJob(99)));  // no longer accepting
  EXPECT_EQ(get(replayer.stats().droppedShutdown), 1u);
  expectOutcomesAddUp(replayer.stats());
}

TEST(Replayer, StopDropsWhatTheDrainCannotFinish) {
  TestHttpServer server([](const ServerRequest&, size_t, size_t) {
    return ServerAction{.delay = 800ms, .response = httpResponse(200, "ok")};
  });
  ReplayOptions opts = optionsFor({server.address()});
  opts.maxConnections = 2;
  Replayer replayer(opts);
  ASSERT_TRUE(replayer.start());
  for (int i = 0; i < 6; ++i) {
    ASSERT_TRUE(replayer.submit(getJob(i)));
  }
  ASSERT_TRUE(server.waitForRequests(2, 2s));
  auto begin = std::chrono::steady_clock::now();
  replayer.stop(100ms);
  auto elapsed = std::chrono::steady_clock::now() - begin;
  EXPECT_GE(elapsed, 90ms);
  EXPECT_LT(elapsed, 500ms);
  EXPECT_EQ(get(replayer.stats().responses), 0u);
  EXPECT_EQ(get(replayer.stats().droppedShutdown), 6u);  // 2 in flight + 4 queued
  expectOutcomesAddUp(replayer.stats());
}

TEST(Replayer, IdleConnectionsAreClosedAfterIdleTimeout) {
  TestHttpServer server([](const ServerRequest&, size_t, size_t) { return ok(); });
  ReplayOptions opts = optionsFor({server.address()});
  opts.idleTimeout = 100ms;
  Replayer replayer(opts);
  ASSERT_TRUE(replayer.start());
  ASSERT_TRUE(replayer.submit(getJob(0)));
  ASSERT_TRUE(waitFor([&] { return replayer.stats().responses.load() == 1; }, 2s));
  EXPECT_EQ(replayer.stats().openConnections.load(), 1);
  ASSERT_TRUE(waitFor([&] { return replayer.stats().openConnections.load() == 0; }, 2s));
  EXPECT_EQ(get(replayer.stats().connectionsClosed), 1u);
  ASSERT_TRUE(replayer.submit(getJob(1)));
  ASSERT_TRUE(waitFor([&] { return replayer.stats().responses.load() == 2; }, 2s));
  replayer.stop(1s);
  EXPECT_EQ(server.connectionCount(), 2u);
  expectOutcomesAddUp(replayer.stats());
}

TEST(Replayer, Ipv6Loopback) {
  TestHttpServer server([](const ServerRequest&, size_t, size_t) { return ok(); }, AF_INET6);
  ResolveResult target = resolveTarget("[::1]:" + std::to_string(testing::portOf(server.address())));
  ASSERT_TRUE(target.error.empty()) << target.error;
  Replayer replayer(optionsFor(target.addrs));
  ASSERT_TRUE(replayer.start());
  std::vector<std::string> sent;
  for (int i = 0; i < 10; ++i) {
    ReplayJob job = getJob(i);
    sent.push_back(job.bytes);
    ASSERT_TRUE(replayer.submit(std::move(job)));
  }
  ASSERT_TRUE(waitFor([&] { return replayer.stats().responses2xx.load() == 10; }, 5s));
  replayer.stop(1s);
  std::vector<std::string> received;
  for (const auto& conn : server.requestsByConnection()) {
    received.insert(received.end(), conn.begin(), conn.end());
  }
  std::sort(received.begin(), received.end());
  std::sort(sent.begin(), sent.end());
  EXPECT_EQ(received, sent);
  expectOutcomesAddUp(replayer.stats());
}

TEST(Replayer, AddressesAreUsedInTurnAndADeadOneBacksOff) {
  TestHttpServer live([](const ServerRequest&, size_t, size_t) {
    return ServerAction{.delay = 2ms, .response = httpResponse(200, "ok")};
  });
  RefusedPort dead;
  ReplayOptions opts = optionsFor({dead.address(), live.address()});
  opts.maxConnections = 2;
  Replayer replayer(opts);
  ASSERT_TRUE(replayer.start());
  for (int i = 0; i < 100; ++i) {
    ASSERT_TRUE(replayer.submit(getJob(i)));
  }
  ASSERT_TRUE(waitFor([&] { return replayer.stats().outcomes() == 100; }, 10s));
  replayer.stop(1s);
  const ReplayStats& s = replayer.stats();
  EXPECT_GE(get(s.errorsConnect), 1u);   // the dead address was tried...
  EXPECT_LE(get(s.errorsConnect), 10u);  // ...and then left alone during its backoff
  EXPECT_EQ(get(s.responses2xx) + get(s.errorsConnect), 100u);
  EXPECT_EQ(live.requestCount(), get(s.responses2xx));
  expectOutcomesAddUp(s);
}

// Many jobs, a mirror that misbehaves in every way, a small queue and a short
// drain: whatever happens, each job is counted exactly once.
TEST(Replayer, OutcomesAlwaysAddUp) {
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
  ReplayOptions opts = optionsFor({server.address()});
  opts.maxConnections = 4;
  opts.queueCapacity = 64;
  opts.responseTimeout = 100ms;
  Replayer replayer(opts);
  ASSERT_TRUE(replayer.start());
  for (int i = 0; i < 600; ++i) {
    replayer.submit(getJob(i));
    if (i % 50 == 0) {
      std::this_thread::sleep_for(20ms);
    }
  }
  replayer.stop(150ms);
  const ReplayStats& s = replayer.stats();
  EXPECT_EQ(get(s.submitted), 600u);
  EXPECT_GT(get(s.responses), 0u);
  EXPECT_GT(s.errors(), 0u);
  EXPECT_GT(get(s.queueFull), 0u);
  expectOutcomesAddUp(s);
}

}  // namespace
}  // namespace shadowtap::replay
