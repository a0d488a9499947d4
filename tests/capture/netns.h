#pragma once

// Network namespaces and veth pairs for capture tests, removed on destruction
// (also when an assertion fails). Addresses only from 198.18.0.0/15.

#include <arpa/inet.h>
#include <fcntl.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <poll.h>
#include <sched.h>
#include <sys/socket.h>
#include <sys/utsname.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <thread>

#include "capture/capture.h"

namespace shadowtap::capturetest {

inline bool ciStrict() {
  const char* ci = std::getenv("CI");
  return ci != nullptr && std::string(ci) == "true";
}

// Runs a shell command; returns its exit status.
inline int sh(const std::string& cmd) {
  int rc = std::system((cmd + " >/dev/null 2>&1").c_str());
  return WIFEXITED(rc) ? WEXITSTATUS(rc) : -1;
}

// While alive, this thread is in network namespace `name`.
class NetnsScope {
 public:
  explicit NetnsScope(const std::string& name) {
    self_ = open("/proc/thread-self/ns/net", O_RDONLY | O_CLOEXEC);
    int fd = open(("/var/run/netns/" + name).c_str(), O_RDONLY | O_CLOEXEC);
    ok_ = self_ >= 0 && fd >= 0 && setns(fd, CLONE_NEWNET) == 0;
    if (fd >= 0) {
      close(fd);
    }
  }
  ~NetnsScope() {
    if (self_ >= 0) {
      setns(self_, CLONE_NEWNET);
      close(self_);
    }
  }
  NetnsScope(const NetnsScope&) = delete;
  NetnsScope& operator=(const NetnsScope&) = delete;
  bool ok() const { return ok_; }

 private:
  int self_ = -1;
  bool ok_ = false;
};

// Server namespace S with veth `serverIf` (198.18.4.1/24) and client namespace C
// with its peer `clientIf` (198.18.4.2/24). IPv6 is off so that no neighbour
// discovery chatter lands in packet counts.
class VethPair {
 public:
  VethPair() {
    static int seq = 0;
    const std::string tag = std::to_string(getpid()) + "-" + std::to_string(seq++);
    server = "st4s-" + tag;
    client = "st4c-" + tag;
    // Few processes on purpose: in the kernel matrix's emulated guests each one
    // costs a tenth of a second or more.
    ok_ = sh("ip netns add " + server + " && ip netns add " + client + " && ip -n " + server + " link add " +
             serverIf + " type veth peer name " + clientIf + " netns " + client) == 0 &&
          disableIpv6(server) && disableIpv6(client) &&
          sh("ip -n " + server + " addr add 198.18.4.1/24 dev " + serverIf + " && ip -n " + server + " link set " +
             serverIf + " up && ip -n " + server + " link set lo up && ip -n " + client +
             " addr add 198.18.4.2/24 dev " + clientIf + " && ip -n " + client + " link set " + clientIf +
             " up && ip -n " + client + " link set lo up") == 0;
  }
  ~VethPair() {
    sh("ip netns del " + server + "; ip netns del " + client);  // takes the veth pair with it
  }
  VethPair(const VethPair&) = delete;
  VethPair& operator=(const VethPair&) = delete;
  bool ok() const { return ok_; }

  std::string server;
  std::string client;
  std::string serverIf = "st4srv0";
  std::string clientIf = "st4cli0";

 private:
  // net.ipv6.conf.{all,default}.disable_ipv6=1 in `ns`, written from this thread
  // while it is in the namespace (/proc/sys/net is the opener's namespace's).
  static bool disableIpv6(const std::string& ns) {
    NetnsScope in(ns);
    if (!in.ok()) {
      return false;
    }
    for (const char* path : {"/proc/sys/net/ipv6/conf/all/disable_ipv6", "/proc/sys/net/ipv6/conf/default/disable_ipv6"}) {
      const int fd = open(path, O_WRONLY | O_CLOEXEC);
      const bool written = fd >= 0 && write(fd, "1", 1) == 1;
      if (fd >= 0) {
        close(fd);
      }
      if (!written) {
        return false;
      }
    }
    return true;
  }

  bool ok_ = false;
};

// One TCP exchange over a fresh connection from the client namespace to
// 198.18.4.1:`port` in the server namespace: the client writes `request`; the
// server reads it whole (or to EOF), answers `response` (may be empty), and
// closes its side; the client reads the answer to EOF and closes. The sockets
// are made in their namespaces, then both ends run on threads of their own.
class TcpExchange {
 public:
  TcpExchange(const VethPair& net, uint16_t port, std::string request, std::string response = "")
      : request_(std::move(request)), response_(std::move(response)) {
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_port = htons(port);
    inet_pton(AF_INET, "198.18.4.1", &a.sin_addr);
    {
      NetnsScope in(net.server);
      listener_ = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
      int one = 1;
      setsockopt(listener_, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
      ok_ = in.ok() && bind(listener_, reinterpret_cast<sockaddr*>(&a), sizeof(a)) == 0 && listen(listener_, 4) == 0;
    }
    {
      NetnsScope in(net.client);
      client_ = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
      ok_ = ok_ && in.ok() && client_ >= 0;
      // Bound now, so that the connection's client port is known before it starts.
      sockaddr_in local{};
      local.sin_family = AF_INET;
      socklen_t len = sizeof(local);
      ok_ = ok_ && bind(client_, reinterpret_cast<sockaddr*>(&local), sizeof(local)) == 0 &&
            getsockname(client_, reinterpret_cast<sockaddr*>(&local), &len) == 0;
      clientPort_ = ntohs(local.sin_port);
    }
    if (!ok_) {
      return;
    }
    server_ = std::thread([this] {
      const int c = accept(listener_, nullptr, nullptr);
      if (c < 0) {
        return;
      }
      std::string buf(1 << 16, '\0');
      ssize_t n;
      while (serverReceived_ < request_.size() && (n = read(c, buf.data(), buf.size())) > 0) {
        serverReceived_ += static_cast<size_t>(n);
      }
      writeAll(c, response_);
      shutdown(c, SHUT_WR);
      while (read(c, buf.data(), buf.size()) > 0) {
      }
      close(c);
    });
    client_thread_ = std::thread([this, a] {
      if (connect(client_, reinterpret_cast<const sockaddr*>(&a), sizeof(a)) == 0) {
        writeAll(client_, request_);
        std::string buf(1 << 16, '\0');
        ssize_t n;
        while ((n = read(client_, buf.data(), buf.size())) > 0) {
          clientReceived_ += static_cast<size_t>(n);
        }
      }
      shutdown(client_, SHUT_WR);
      done_ = true;
    });
  }
  ~TcpExchange() { join(); }
  TcpExchange(const TcpExchange&) = delete;
  TcpExchange& operator=(const TcpExchange&) = delete;

  void join() {
    for (std::thread* t : {&client_thread_, &server_}) {
      if (t->joinable()) {
        t->join();
      }
    }
    for (int* fd : {&client_, &listener_}) {
      if (*fd >= 0) {
        close(*fd);
        *fd = -1;
      }
    }
  }
  bool ok() const { return ok_; }
  bool done() const { return done_; }
  uint16_t clientPort() const { return clientPort_; }
  size_t serverReceived() const { return serverReceived_; }  // request bytes that arrived
  size_t clientReceived() const { return clientReceived_; }  // response bytes that arrived

 private:
  static void writeAll(int fd, const std::string& s) {
    size_t off = 0;
    while (off < s.size()) {
      const ssize_t n = write(fd, s.data() + off, s.size() - off);
      if (n <= 0) {
        return;
      }
      off += static_cast<size_t>(n);
    }
  }

  const std::string request_;
  const std::string response_;
  int listener_ = -1;
  int client_ = -1;
  uint16_t clientPort_ = 0;
  bool ok_ = false;
  std::atomic<bool> done_{false};
  std::atomic<size_t> serverReceived_{0};
  std::atomic<size_t> clientReceived_{0};
  std::thread server_;
  std::thread client_thread_;
};

// Consumes `cap` into `sink` until pred() holds or the deadline passes, waiting on
// the capture's fd in between.
template <typename Pred>
bool pump(capture::Capture& cap, capture::SegmentSink& sink, Pred pred, std::chrono::milliseconds timeout) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  while (std::chrono::steady_clock::now() < deadline) {
    pollfd p{cap.fd(), POLLIN, 0};
    poll(&p, 1, 20);
    cap.consume(sink);
    if (pred()) {
      return true;
    }
  }
  return false;
}

// Whether this kernel has tcx hooks: Linux 6.6 and later. Read from the release,
// not from the agent's own probe, so that a wrong probe cannot agree with itself.
inline bool kernelHasTcx() {
  utsname u{};
  int major = 0;
  int minor = 0;
  if (uname(&u) != 0 || std::sscanf(u.release, "%d.%d", &major, &minor) != 2) {
    ADD_FAILURE() << "cannot read the kernel release";
    return false;
  }
  return major > 6 || (major == 6 && minor >= 6);
}

inline std::string kernelRelease() {
  utsname u{};
  return uname(&u) == 0 ? u.release : "?";
}

// tcx mode on a kernel without tcx: Capture::open must refuse it with one line
// that names tcx and the way out (--attach tc or auto). Returns true when it
// checked that; the caller then returns, as tcx mode has nothing else to test
// on this kernel. False (nothing checked) for other modes and on 6.6+.
inline bool checkedTcxRefused(const capture::CaptureOptions& o) {
  if (o.attach != capture::AttachMode::kTcx || kernelHasTcx()) {
    return false;
  }
  std::string error;
  auto cap = capture::Capture::open(o, &error);
  EXPECT_EQ(cap, nullptr) << "tcx mode must be refused on " << kernelRelease() << " (tcx is in Linux 6.6+)";
  EXPECT_NE(error.find("tcx"), std::string::npos) << error;
  EXPECT_NE(error.find("--attach tc"), std::string::npos) << "the error must say what to do: " << error;
  return true;
}

#define ST_REQUIRE_ROOT()                                                            \
  do {                                                                               \
    if (geteuid() != 0) {                                                            \
      if (ciStrict()) {                                                              \
        FAIL() << "capture namespace tests need root (CI=true: failure, not skip)"; \
      }                                                                              \
      GTEST_SKIP() << "capture namespace tests need root";                           \
    }                                                                                \
  } while (0)

}  // namespace shadowtap::capturetest
