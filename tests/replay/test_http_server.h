#pragma once

#include <sys/socket.h>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

namespace shadowtap::replay::testing {

// A request as the test server received it: the exact bytes and the method.
struct ServerRequest {
  std::string bytes;
  std::string method;
};

// What the server does once a request is complete.
struct ServerAction {
  std::chrono::milliseconds delay{0};  // before answering
  std::string interim;                 // sent first (e.g. "HTTP/1.1 100 Continue\r\n\r\n")
  std::string response;                // then this
  size_t writeChunk = 0;               // 0: one send; else pieces of this size, a short pause apart
  bool closeAfter = false;             // close the connection after the response
  bool reset = false;                  // close with RST (SO_LINGER 0) instead of FIN
};

using Handler = std::function<ServerAction(const ServerRequest& request, size_t connection, size_t index)>;

// "HTTP/1.1 <status> X\r\nContent-Length: <n>\r\n[extra]\r\n<body>".
std::string httpResponse(int status, const std::string& body, const std::string& extraHeaders = "");

// Tiny HTTP/1.1 server on loopback for tests: one thread accepts, one thread per
// connection frames requests with llhttp, records their bytes per connection
// and answers as the handler says.
class TestHttpServer {
 public:
  explicit TestHttpServer(Handler handler, int family = AF_INET);
  ~TestHttpServer();

  const sockaddr_storage& address() const { return addr_; }
  // Pause between recv calls, to make the client's writes hit a full socket buffer.
  void setReadDelay(std::chrono::milliseconds delay) { readDelayMs_ = static_cast<int>(delay.count()); }

  size_t connectionCount();
  size_t requestCount();
  std::vector<std::vector<std::string>> requestsByConnection();
  // Bytes that arrived after the last complete request on each connection.
  size_t partialBytes();
  bool waitForRequests(size_t count, std::chrono::milliseconds timeout);
  void stop();

 private:
  void acceptLoop();
  void serve(int fd, size_t connection);

  Handler handler_;
  int listenFd_ = -1;
  sockaddr_storage addr_{};
  std::atomic<bool> stop_{false};
  std::atomic<int> readDelayMs_{0};
  std::thread acceptThread_;
  std::mutex mutex_;
  std::vector<std::thread> connThreads_;
  std::vector<std::vector<std::string>> requests_;
  size_t partialBytes_ = 0;
};

// A loopback port that refuses connections: bound, never listening, held open
// so nothing else can take it while the test runs.
class RefusedPort {
 public:
  explicit RefusedPort(int family = AF_INET);
  ~RefusedPort();
  const sockaddr_storage& address() const { return addr_; }

 private:
  int fd_ = -1;
  sockaddr_storage addr_{};
};

sockaddr_storage loopback(int family, uint16_t port);
uint16_t portOf(const sockaddr_storage& addr);

}  // namespace shadowtap::replay::testing
