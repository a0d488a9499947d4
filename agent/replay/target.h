#pragma once

#include <sys/socket.h>

#include <string>
#include <vector>

namespace shadowtap::replay {

// Addresses of a mirror target, or why there are none. Exactly one of the two
// is non-empty.
struct ResolveResult {
  std::vector<sockaddr_storage> addrs;
  std::string error;  // one line: what is wrong and how to fix it
};

// Parses "host:port", "[v6addr]:port" or "1.2.3.4:port" and resolves the host
// with getaddrinfo (TCP, IPv4 and IPv6, duplicates removed, resolver order
// kept). Blocking: call at startup or from a control thread, never from the
// capture or replay loop.
ResolveResult resolveTarget(const std::string& hostPort);

// "1.2.3.4:80" / "[::1]:8080" for logs and errors.
std::string formatAddress(const sockaddr_storage& addr);

}  // namespace shadowtap::replay
