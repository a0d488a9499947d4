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
// to itself). Written by replay loops, read by every worker once per new flow
// (and per response segment in compare mode) through its own View, which takes
// no lock unless a socket was published or removed since its last look. A
// socket is published before its connect (wildcard address, the port bound
// then) and narrowed to its real address after, so even its SYN is known.
class LocalEndpoints {
 public:
  struct Endpoint {
    uint8_t family = 4;  // 4 or 6
    std::array<uint8_t, 16> addr{};  // network byte order; all zero = any address
    uint16_t port = 0;               // host byte order
    bool operator==(const Endpoint&) const = default;
  };

  struct Hash {
    size_t operator()(const Endpoint& e) const noexcept;
  };

  // From a sockaddr_in/in6; nullopt-like: port 0 when the family is unknown.
  static Endpoint fromSockaddr(const sockaddr_storage& addr);

  void add(const Endpoint& e);
  void remove(const Endpoint& e);

  // True when (family, addr, port) is one of our sockets' local endpoints.
  // Takes the lock unless no socket is published (for occasional callers).
  bool contains(uint8_t family, const std::array<uint8_t, 16>& addr, uint16_t port) const;

  // One thread's copy of the set, for the hot path: contains() takes no lock
  // while the set is as copied; after a change (a mirror connection opened or
  // closed) it looks the shared set up under its lock, and copies it again once
  // it has stayed the same between two lookups.
  class View {
   public:
    explicit View(const LocalEndpoints& shared) : shared_(shared) {}
    bool contains(uint8_t family, const std::array<uint8_t, 16>& addr, uint16_t port);
    // Copies of the shared set taken (a counter for tests and profiles).
    uint64_t refreshes() const { return refreshes_; }

   private:
    const LocalEndpoints& shared_;
    uint64_t generation_ = 0;  // of copy_ (0: the empty set, before any change)
    uint64_t lastSeen_ = 0;    // the generation at this view's last locked lookup
    uint64_t refreshes_ = 0;
    std::unordered_multiset<Endpoint, Hash> copy_;
  };

  size_t size() const { return count_.load(std::memory_order_relaxed); }

 private:
  static bool has(const std::unordered_multiset<Endpoint, Hash>& set, uint8_t family,
                  const std::array<uint8_t, 16>& addr, uint16_t port);

  mutable std::mutex mutex_;
  std::unordered_multiset<Endpoint, Hash> set_;
  std::atomic<size_t> count_{0};
  // Bumped (release) after every change, under the lock; starts at 0 = empty.
  std::atomic<uint64_t> generation_{0};
};

}  // namespace shadowtap::replay
