#pragma once

#include <sys/socket.h>

#include <chrono>
#include <cstddef>
#include <vector>

namespace shadowtap::replay {

struct ReplayOptions {
  // Mirror addresses (from resolveTarget); new connections use them in turn.
  std::vector<sockaddr_storage> addrs;
  // Keep-alive pool size. One request in flight per connection (no pipelining).
  size_t maxConnections = 16;
  // Jobs waiting for a connection, by count and by bytes; beyond either, submit drops.
  size_t queueCapacity = 4096;
  size_t queueBytes = 64 << 20;
  std::chrono::milliseconds connectTimeout{1000};
  // From the first byte written until the final response is complete.
  std::chrono::milliseconds responseTimeout{5000};
  // An unused keep-alive connection is closed after this long.
  std::chrono::milliseconds idleTimeout{60000};
  // Bytes read per response (head and body) before the connection is closed
  // and the job counted as errorsResponseTooLarge.
  size_t maxResponseBytes = 16 << 20;
  // After a failed connect to an address, no new connect to it for a backoff
  // that starts here and doubles up to the maximum; reset by a successful connect.
  std::chrono::milliseconds backoffInitial{100};
  std::chrono::milliseconds backoffMax{5000};
};

}  // namespace shadowtap::replay
