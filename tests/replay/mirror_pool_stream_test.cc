// Streamed requests through the HTTP/1 pool to a real loopback server: the head
// goes out, the body as its stream releases it, and an aborted stream closes
// the connection mid-request (the server never frames a complete request).
#include <gtest/gtest.h>

#include <memory>
#include <string>
#include <thread>

#include "model/body_stream.h"
#include "pool_test_util.h"
#include "replay/mirror_pool.h"
#include "test_http_server.h"

namespace shadowtap::replay {
namespace {

using namespace std::chrono_literals;
using namespace testing;
using End = model::BodyStream::End;

ServerAction answerOk(const ServerRequest&, size_t, size_t) { return ServerAction{.response = httpResponse(200, "ok")}; }

model::Request plainGet() { return model::Request{.method = "GET", .bytes = "GET / HTTP/1.1\r\nHost: svc-shadow\r\n\r\n"}; }

MirrorPoolOptions streamOptions(const sockaddr_storage& addr) {
  MirrorPoolOptions o;
  o.io = ::shadowtap::replay::testing::testIo();
  o.addrs = {addr};
  o.maxConnections = 2;
  o.minConnections = 2;
  o.connectTimeout = 1000ms;
  o.responseTimeout = 3000ms;
  return o;
}

std::string bodyOf(size_t n) {
  std::string body(n, 'x');
  for (size_t i = 0; i < n; ++i) {
    body[i] = static_cast<char>('a' + (i * 7) % 26);
  }
  return body;
}

// A streamed request whose head (and `first` body bytes) is in `bytes`.
model::Request streamed(const std::string& head, const std::string& first, size_t window) {
  model::Request r;
  r.method = "POST";
  r.bytes = head + first;
  r.bodyOffset = head.size();
  r.bodyStream = std::make_shared<model::BodyStream>(window);
  return r;
}

// Feeds `body` to the stream in pieces, waiting for room in the window as a
// slow capture would never do (the framer aborts instead): the mirror gets it all.
void produce(model::BodyStream& s, const std::string& body, size_t piece) {
  for (size_t off = 0; off < body.size();) {
    const size_t n = std::min(piece, body.size() - off);
    if (s.held() + n > s.window()) {
      std::this_thread::sleep_for(100us);
      continue;
    }
    ASSERT_TRUE(s.append(body.data() + off, n));
    off += n;
  }
}

TEST(MirrorPoolStream, ContentLengthBodyArrivesWhole) {
  TestHttpServer server(answerOk);
  MirrorPool pool(streamOptions(server.address()));
  ASSERT_TRUE(pool.start());
  const std::string body = bodyOf(8 << 20);
  const std::string head = "POST /up HTTP/1.1\r\nHost: svc-shadow\r\nContent-Length: " + std::to_string(body.size()) +
                           "\r\n\r\n";
  model::Request r = streamed(head, body.substr(0, 1000), 256 << 10);
  std::shared_ptr<model::BodyStream> s = r.bodyStream;
  ASSERT_TRUE(pool.submit(std::move(r)));
  std::thread producer([&] {
    produce(*s, body.substr(1000), 16 << 10);
    s->finish(End::kComplete);
  });
  producer.join();
  ASSERT_TRUE(server.waitForRequests(1, 20s));
  ASSERT_TRUE(waitFor([&] { return get(pool.stats().responses) == 1; }));
  EXPECT_EQ(server.requestsByConnection()[0][0], head + body);
  EXPECT_EQ(get(pool.stats().streamsStarted), 1u);
  EXPECT_EQ(get(pool.stats().streamsSent), 1u);
  EXPECT_EQ(get(pool.stats().sent), 1u);
  // The connection is kept alive for the next request.
  ASSERT_TRUE(pool.submit(plainGet()));
  ASSERT_TRUE(waitFor([&] { return get(pool.stats().responses) == 2; }));
  pool.stop(1000ms);
  EXPECT_EQ(pool.stats().submitted, pool.stats().outcomes());
  EXPECT_EQ(server.connectionCount(), 1u);
}

TEST(MirrorPoolStream, ChunkedBodyArrivesWhole) {
  TestHttpServer server(answerOk);
  MirrorPool pool(streamOptions(server.address()));
  ASSERT_TRUE(pool.start());
  std::string wire;
  for (int i = 0; i < 200; ++i) {
    const std::string data = bodyOf(4096 + static_cast<size_t>(i));
    char size[16];
    std::snprintf(size, sizeof(size), "%zx", data.size());
    wire += std::string(size) + "\r\n" + data + "\r\n";
  }
  wire += "0\r\n\r\n";
  const std::string head = "POST /c HTTP/1.1\r\nHost: svc-shadow\r\nTransfer-Encoding: chunked\r\n\r\n";
  model::Request r = streamed(head, "", 64 << 10);
  std::shared_ptr<model::BodyStream> s = r.bodyStream;
  ASSERT_TRUE(pool.submit(std::move(r)));
  produce(*s, wire, 3000);
  s->finish(End::kComplete);
  ASSERT_TRUE(server.waitForRequests(1, 20s));
  EXPECT_EQ(server.requestsByConnection()[0][0], head + wire);
  ASSERT_TRUE(waitFor([&] { return get(pool.stats().responses) == 1; }));
  pool.stop(1000ms);
  EXPECT_EQ(pool.stats().submitted, pool.stats().outcomes());
}

// A gap mid-body: the connection closes mid-request, the server never frames a
// complete request, the outcome is aborted_gap, and the pool goes on.
TEST(MirrorPoolStream, GapMidBodyClosesTheConnection) {
  TestHttpServer server(answerOk);
  MirrorPool pool(streamOptions(server.address()));
  ASSERT_TRUE(pool.start());
  const std::string body = bodyOf(1 << 20);
  const std::string head = "POST /up HTTP/1.1\r\nHost: svc-shadow\r\nContent-Length: " + std::to_string(body.size()) +
                           "\r\n\r\n";
  model::Request r = streamed(head, "", 128 << 10);
  std::shared_ptr<model::BodyStream> s = r.bodyStream;
  ASSERT_TRUE(pool.submit(std::move(r)));
  produce(*s, body.substr(0, body.size() / 2), 8192);
  ASSERT_TRUE(waitFor([&] { return get(pool.stats().streamsStarted) == 1 && s->held() == 0; }));
  s->finish(End::kGap);
  ASSERT_TRUE(waitFor([&] { return get(pool.stats().abortedGap) == 1; }));
  EXPECT_TRUE(s->cancelled());
  ASSERT_TRUE(waitFor([&] { return server.partialBytes() == head.size() + body.size() / 2; }))
      << server.partialBytes();
  EXPECT_EQ(server.requestCount(), 0u);
  EXPECT_EQ(get(pool.stats().streamsSent), 0u);
  ASSERT_TRUE(pool.submit(plainGet()));
  ASSERT_TRUE(waitFor([&] { return get(pool.stats().responses) == 1; }));
  pool.stop(1000ms);
  EXPECT_EQ(pool.stats().submitted, pool.stats().outcomes());
}

// Aborted before a connection took it: nothing goes out, the connection stays.
TEST(MirrorPoolStream, AbortedBeforeSendingSendsNothing) {
  TestHttpServer server(answerOk);
  MirrorPool pool(streamOptions(server.address()));
  model::Request r = streamed("POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 100000\r\n\r\n", "", 1024);
  r.bodyStream->finish(End::kOverflow);
  ASSERT_TRUE(pool.submit(std::move(r)));
  ASSERT_TRUE(pool.start());
  ASSERT_TRUE(waitFor([&] { return get(pool.stats().abortedWindow) == 1; }));
  EXPECT_EQ(get(pool.stats().bytesSent), 0u);
  pool.stop(1000ms);
  EXPECT_EQ(pool.stats().submitted, pool.stats().outcomes());
  EXPECT_EQ(server.partialBytes(), 0u);
}

// The mirror stops reading: the producer's window fills (its append fails,
// the framer's overflow), and the pool's request ends aborted_window.
TEST(MirrorPoolStream, SlowMirrorFillsTheWindow) {
  TestHttpServer server(answerOk);
  server.setReadDelay(2000ms);
  MirrorPool pool(streamOptions(server.address()));
  ASSERT_TRUE(pool.start());
  const std::string head = "POST /up HTTP/1.1\r\nHost: svc-shadow\r\nContent-Length: 100000000\r\n\r\n";
  model::Request r = streamed(head, "", 256 << 10);
  std::shared_ptr<model::BodyStream> s = r.bodyStream;
  ASSERT_TRUE(pool.submit(std::move(r)));
  const std::string piece(16 << 10, 'z');
  bool refused = false;
  for (int i = 0; i < 20000 && !refused; ++i) {
    refused = !s->append(piece.data(), piece.size());
    EXPECT_LE(s->held(), s->window());
  }
  EXPECT_TRUE(refused);
  EXPECT_EQ(s->end(), End::kOverflow);
  ASSERT_TRUE(waitFor([&] { return get(pool.stats().abortedWindow) == 1; }));
  pool.stop(100ms);
  EXPECT_EQ(pool.stats().submitted, pool.stats().outcomes());
}

}  // namespace
}  // namespace shadowtap::replay
