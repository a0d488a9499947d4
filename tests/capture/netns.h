#pragma once

// Network namespaces and veth pairs for capture tests, removed on destruction
// (also when an assertion fails). Addresses only from 198.18.0.0/15.

#include <fcntl.h>
#include <gtest/gtest.h>
#include <sched.h>
#include <unistd.h>

#include <cstdlib>
#include <string>

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
    ok_ = sh("ip netns add " + server) == 0 && sh("ip netns add " + client) == 0 &&
          sh("ip -n " + server + " link add " + serverIf + " type veth peer name " + clientIf + " netns " +
             client) == 0;
    for (const auto& [ns, dev, addr] : {std::tuple{server, serverIf, std::string("198.18.4.1/24")},
                                        std::tuple{client, clientIf, std::string("198.18.4.2/24")}}) {
      ok_ = ok_ && sh("ip netns exec " + ns + " sysctl -qw net.ipv6.conf.all.disable_ipv6=1") == 0 &&
            sh("ip netns exec " + ns + " sysctl -qw net.ipv6.conf.default.disable_ipv6=1") == 0 &&
            sh("ip -n " + ns + " addr add " + addr + " dev " + dev) == 0 &&
            sh("ip -n " + ns + " link set " + dev + " up") == 0 && sh("ip -n " + ns + " link set lo up") == 0;
    }
  }
  ~VethPair() {
    sh("ip netns del " + server);  // takes the veth pair with it
    sh("ip netns del " + client);
  }
  VethPair(const VethPair&) = delete;
  VethPair& operator=(const VethPair&) = delete;
  bool ok() const { return ok_; }

  std::string server;
  std::string client;
  std::string serverIf = "st4srv0";
  std::string clientIf = "st4cli0";

 private:
  bool ok_ = false;
};

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
