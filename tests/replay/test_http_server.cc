#include "test_http_server.h"

#include <arpa/inet.h>
#include <llhttp.h>
#include <netinet/in.h>
#include <poll.h>
#include <unistd.h>

#include <cstring>
#include <stdexcept>

namespace shadowtap::replay::testing {
namespace {

struct RequestParser {
  llhttp_t http;
  llhttp_settings_t settings;
  std::string method;
  bool complete = false;
};

int onMessageComplete(llhttp_t* http) {
  auto* parser = static_cast<RequestParser*>(http->data);
  parser->method = llhttp_method_name(static_cast<llhttp_method_t>(http->method));
  parser->complete = true;
  return HPE_PAUSED;
}

socklen_t addrLen(const sockaddr_storage& addr) {
  return addr.ss_family == AF_INET6 ? sizeof(sockaddr_in6) : sizeof(sockaddr_in);
}

bool sendAll(int fd, const std::string& bytes, size_t chunk) {
  size_t off = 0;
  while (off < bytes.size()) {
    size_t len = bytes.size() - off;
    if (chunk > 0) {
      len = std::min(len, chunk);
    }
    ssize_t n = ::send(fd, bytes.data() + off, len, MSG_NOSIGNAL);
    if (n <= 0) {
      return false;
    }
    off += static_cast<size_t>(n);
    if (chunk > 0 && off < bytes.size()) {
      std::this_thread::sleep_for(std::chrono::milliseconds(2));
    }
  }
  return true;
}

}  // namespace

std::string httpResponse(int status, const std::string& body, const std::string& extraHeaders) {
  return "HTTP/1.1 " + std::to_string(status) + " X\r\nContent-Length: " + std::to_string(body.size()) + "\r\n" +
         extraHeaders + "\r\n" + body;
}

sockaddr_storage loopback(int family, uint16_t port) {
  sockaddr_storage addr{};
  if (family == AF_INET6) {
    auto* in6 = reinterpret_cast<sockaddr_in6*>(&addr);
    in6->sin6_family = AF_INET6;
    in6->sin6_addr = in6addr_loopback;
    in6->sin6_port = htons(port);
  } else {
    auto* in = reinterpret_cast<sockaddr_in*>(&addr);
    in->sin_family = AF_INET;
    in->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    in->sin_port = htons(port);
  }
  return addr;
}

uint16_t portOf(const sockaddr_storage& addr) {
  if (addr.ss_family == AF_INET6) {
    return ntohs(reinterpret_cast<const sockaddr_in6*>(&addr)->sin6_port);
  }
  return ntohs(reinterpret_cast<const sockaddr_in*>(&addr)->sin_port);
}

static int boundSocket(int family, sockaddr_storage& addr) {
  int fd = ::socket(family, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) {
    throw std::runtime_error("socket failed");
  }
  addr = loopback(family, 0);
  if (::bind(fd, reinterpret_cast<sockaddr*>(&addr), addrLen(addr)) != 0) {
    ::close(fd);
    throw std::runtime_error(std::string("bind failed: ") + std::strerror(errno));
  }
  socklen_t len = sizeof(addr);
  ::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len);
  return fd;
}

TestHttpServer::TestHttpServer(Handler handler, int family) : handler_(std::move(handler)) {
  listenFd_ = boundSocket(family, addr_);
  if (::listen(listenFd_, 128) != 0) {
    throw std::runtime_error("listen failed");
  }
  acceptThread_ = std::thread([this] { acceptLoop(); });
}

TestHttpServer::~TestHttpServer() { stop(); }

void TestHttpServer::stop() {
  if (stop_.exchange(true)) {
    return;
  }
  acceptThread_.join();
  std::vector<std::thread> threads;
  {
    std::lock_guard<std::mutex> lock(mutex_);
    threads.swap(connThreads_);
  }
  for (auto& t : threads) {
    t.join();
  }
  ::close(listenFd_);
}

void TestHttpServer::acceptLoop() {
  while (!stop_.load()) {
    pollfd pfd{listenFd_, POLLIN, 0};
    if (::poll(&pfd, 1, 20) <= 0) {
      continue;
    }
    int fd = ::accept4(listenFd_, nullptr, nullptr, SOCK_CLOEXEC);
    if (fd < 0) {
      continue;
    }
    std::lock_guard<std::mutex> lock(mutex_);
    size_t connection = requests_.size();
    requests_.emplace_back();
    connThreads_.emplace_back([this, fd, connection] { serve(fd, connection); });
  }
}

void TestHttpServer::serve(int fd, size_t connection) {
  RequestParser parser;
  llhttp_settings_init(&parser.settings);
  parser.settings.on_message_complete = onMessageComplete;
  llhttp_init(&parser.http, HTTP_REQUEST, &parser.settings);
  parser.http.data = &parser;
  std::string current;
  char buf[16384];
  bool open = true;
  while (open && !stop_.load()) {
    pollfd pfd{fd, POLLIN, 0};
    if (::poll(&pfd, 1, 20) <= 0) {
      continue;
    }
    int delay = readDelayMs_.load();
    ssize_t n = ::recv(fd, buf, delay > 0 ? 4096 : sizeof(buf), 0);
    if (n <= 0) {
      break;
    }
    if (delay > 0) {
      std::this_thread::sleep_for(std::chrono::milliseconds(delay));
    }
    const char* p = buf;
    const char* end = buf + n;
    while (open && p < end) {
      llhttp_errno_t err = llhttp_execute(&parser.http, p, static_cast<size_t>(end - p));
      if (err == HPE_OK) {
        current.append(p, end);
        p = end;
        break;
      }
      if (err != HPE_PAUSED || !parser.complete) {
        open = false;  // not HTTP: hang up
        break;
      }
      const char* pos = llhttp_get_error_pos(&parser.http);
      current.append(p, pos);
      p = pos;
      llhttp_resume(&parser.http);
      parser.complete = false;
      ServerRequest request{std::move(current), parser.method};
      current.clear();
      size_t index = 0;
      {
        std::lock_guard<std::mutex> lock(mutex_);
        requests_[connection].push_back(request.bytes);
        index = requests_[connection].size() - 1;
      }
      ServerAction action = handler_(request, connection, index);
      if (action.delay.count() > 0) {
        std::this_thread::sleep_for(action.delay);
      }
      bool ok = sendAll(fd, action.interim, 0) && sendAll(fd, action.response, action.writeChunk);
      if (!ok || action.closeAfter || action.reset) {
        if (action.reset) {
          linger lg{1, 0};
          ::setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg));
        }
        open = false;
      }
    }
  }
  {
    std::lock_guard<std::mutex> lock(mutex_);
    partialBytes_ += current.size();
  }
  ::close(fd);
}

size_t TestHttpServer::connectionCount() {
  std::lock_guard<std::mutex> lock(mutex_);
  return requests_.size();
}

size_t TestHttpServer::requestCount() {
  std::lock_guard<std::mutex> lock(mutex_);
  size_t count = 0;
  for (const auto& conn : requests_) {
    count += conn.size();
  }
  return count;
}

std::vector<std::vector<std::string>> TestHttpServer::requestsByConnection() {
  std::lock_guard<std::mutex> lock(mutex_);
  return requests_;
}

size_t TestHttpServer::partialBytes() {
  std::lock_guard<std::mutex> lock(mutex_);
  return partialBytes_;
}

bool TestHttpServer::waitForRequests(size_t count, std::chrono::milliseconds timeout) {
  auto deadline = std::chrono::steady_clock::now() + timeout;
  while (std::chrono::steady_clock::now() < deadline) {
    if (requestCount() >= count) {
      return true;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(2));
  }
  return requestCount() >= count;
}

RefusedPort::RefusedPort(int family) { fd_ = boundSocket(family, addr_); }

RefusedPort::~RefusedPort() { ::close(fd_); }

}  // namespace shadowtap::replay::testing
