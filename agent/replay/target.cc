#include "replay/target.h"

#include <arpa/inet.h>
#include <netdb.h>
#include <netinet/in.h>

#include <charconv>
#include <cstring>
#include <utility>

namespace shadowtap::replay {
namespace {

constexpr const char* kExpected = "expected host:port, e.g. httpbin-mirror:8000, 10.0.0.7:80 or [::1]:8080";

std::string fail(const std::string& hostPort, const std::string& what) {
  return "mirror target '" + hostPort + "': " + what + "; " + kExpected;
}

bool sameAddress(const sockaddr_storage& a, const sockaddr_storage& b) {
  if (a.ss_family != b.ss_family) {
    return false;
  }
  size_t len = a.ss_family == AF_INET ? sizeof(sockaddr_in) : sizeof(sockaddr_in6);
  return std::memcmp(&a, &b, len) == 0;
}

// Splits "host:port" / "[v6]:port" and checks the port; the error (for
// fail()) when it cannot.
std::string splitHostPort(const std::string& hostPort, std::string& host, std::string& port) {
  if (hostPort.front() == '[') {
    size_t close = hostPort.find(']');
    if (close == std::string::npos) {
      return fail(hostPort, "missing ']' after the IPv6 address");
    }
    host = hostPort.substr(1, close - 1);
    if (close + 1 >= hostPort.size() || hostPort[close + 1] != ':') {
      return fail(hostPort, "missing ':port' after ']'");
    }
    port = hostPort.substr(close + 2);
  } else {
    size_t colon = hostPort.rfind(':');
    if (colon == std::string::npos) {
      return fail(hostPort, "no port");
    }
    if (hostPort.find(':') != colon) {
      return fail(hostPort, "an IPv6 address must be written in brackets, e.g. [::1]:8080");
    }
    host = hostPort.substr(0, colon);
    port = hostPort.substr(colon + 1);
  }

  if (host.empty()) {
    return fail(hostPort, "empty host");
  }
  if (port.empty()) {
    return fail(hostPort, "empty port");
  }
  unsigned portNumber = 0;
  auto [end, ec] = std::from_chars(port.data(), port.data() + port.size(), portNumber);
  if (ec == std::errc::result_out_of_range ||
      (ec == std::errc() && end == port.data() + port.size() && (portNumber == 0 || portNumber > 65535))) {
    return fail(hostPort, "port " + port + " is out of range 1-65535");
  }
  if (ec != std::errc() || end != port.data() + port.size()) {
    return fail(hostPort, "port '" + port + "' is not a number");
  }
  return {};
}

}  // namespace

ResolveResult resolveTarget(const std::string& hostPort) {
  ResolveResult result;
  if (hostPort.empty()) {
    result.error = fail(hostPort, "empty");
    return result;
  }

  std::string host;
  std::string port;
  if (std::string error = splitHostPort(hostPort, host, port); !error.empty()) {
    result.error = std::move(error);
    return result;
  }

  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_protocol = IPPROTO_TCP;
  // No AI_ADDRCONFIG: it hides loopback targets in namespaces that only have lo.
  hints.ai_flags = AI_NUMERICSERV;
  addrinfo* list = nullptr;
  int rc = getaddrinfo(host.c_str(), port.c_str(), &hints, &list);
  if (rc != 0) {
    result.error = "mirror target '" + hostPort + "': cannot resolve '" + host + "' (" + gai_strerror(rc) +
                   "); check the name and the node's resolver, or give an IP address";
    return result;
  }
  for (addrinfo* ai = list; ai != nullptr; ai = ai->ai_next) {
    if ((ai->ai_family != AF_INET && ai->ai_family != AF_INET6) || ai->ai_addrlen > sizeof(sockaddr_storage)) {
      continue;
    }
    sockaddr_storage addr{};
    std::memcpy(&addr, ai->ai_addr, ai->ai_addrlen);
    bool seen = false;
    for (const auto& known : result.addrs) {
      seen = seen || sameAddress(known, addr);
    }
    if (!seen) {
      result.addrs.push_back(addr);
    }
  }
  freeaddrinfo(list);
  if (result.addrs.empty()) {
    result.error = "mirror target '" + hostPort + "': '" + host + "' has no IPv4 or IPv6 address";
  }
  return result;
}

std::string formatAddress(const sockaddr_storage& addr) {
  char text[INET6_ADDRSTRLEN] = {};
  if (addr.ss_family == AF_INET) {
    const auto* in = reinterpret_cast<const sockaddr_in*>(&addr);
    inet_ntop(AF_INET, &in->sin_addr, text, sizeof(text));
    return std::string(text) + ":" + std::to_string(ntohs(in->sin_port));
  }
  if (addr.ss_family == AF_INET6) {
    const auto* in6 = reinterpret_cast<const sockaddr_in6*>(&addr);
    inet_ntop(AF_INET6, &in6->sin6_addr, text, sizeof(text));
    return "[" + std::string(text) + "]:" + std::to_string(ntohs(in6->sin6_port));
  }
  return "<family " + std::to_string(addr.ss_family) + ">";
}

}  // namespace shadowtap::replay
