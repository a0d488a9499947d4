#pragma once

#include <sys/socket.h>

#include <array>
#include <atomic>
#include <cstdint>
#include <mutex>
#include <unordered_set>

namespace shadowtap::replay {

// The local (address, port) of every socket the replayers hold open to a
// mirror, so the capture side can decline flows that are our own traffic (a
// mirror on the same node and port as the primary would otherwise be mirrored
// to itself). Written by replay loops, read by the capture thread once per new
// flow. A socket is published before its connect (wildcard address, the port
// bound then) and narrowed to its real address after, so even its SYN is known.
class LocalEndpoints {
 public:
  struct Endpoint {
    uint8_t family = 4;  // 4 or 6
    std::array<uint8_t, 16> addr{};  // network byte order; all zero = any address
    uint16_t port = 0;               // host byte order
    bool operator==(const Endpoint&) const = default;
  };

  // From a sockaddr_in/in6; nullopt-like: port 0 when the family is unknown.
  static Endpoint fromSockaddr(const sockaddr_storage& addr);

  void add(const Endpoint& e);
  void remove(const Endpoint& e);

  // True when (family, addr, port) is one of our sockets' local endpoints.
  // Lock-free when no socket is published.
  bool contains(uint8_t family, const std::array<uint8_t, 16>& addr, uint16_t port) const;

  size_t size() const { return count_.load(std::memory_order_relaxed); }

 private:
  struct Hash {
    size_t operator()(const Endpoint& e) const noexcept;
  };

  mutable std::mutex mutex_;
  std::unordered_multiset<Endpoint, Hash> set_;
  std::atomic<size_t> count_{0};
};

}  // namespace shadowtap::replay
