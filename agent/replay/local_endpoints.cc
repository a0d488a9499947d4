#include "replay/local_endpoints.h"

#include <netinet/in.h>

#include <cstring>

namespace shadowtap::replay {

LocalEndpoints::Endpoint LocalEndpoints::fromSockaddr(const sockaddr_storage& addr) {
  Endpoint e;
  if (addr.ss_family == AF_INET) {
    const auto* in = reinterpret_cast<const sockaddr_in*>(&addr);
    e.family = 4;
    std::memcpy(e.addr.data(), &in->sin_addr, 4);
    e.port = ntohs(in->sin_port);
  } else if (addr.ss_family == AF_INET6) {
    const auto* in6 = reinterpret_cast<const sockaddr_in6*>(&addr);
    // An IPv4-mapped address arrives as IPv4 in the capture records.
    if (IN6_IS_ADDR_V4MAPPED(&in6->sin6_addr)) {
      e.family = 4;
      std::memcpy(e.addr.data(), reinterpret_cast<const uint8_t*>(&in6->sin6_addr) + 12, 4);
    } else {
      e.family = 6;
      std::memcpy(e.addr.data(), &in6->sin6_addr, 16);
    }
    e.port = ntohs(in6->sin6_port);
  }
  return e;
}

size_t LocalEndpoints::Hash::operator()(const Endpoint& e) const noexcept {
  uint64_t a = 0;
  uint64_t b = 0;
  std::memcpy(&a, e.addr.data(), 8);
  std::memcpy(&b, e.addr.data() + 8, 8);
  uint64_t h = (a * 0x9e3779b97f4a7c15ULL) ^ (b + 0xd1b54a32d192ed03ULL + (uint64_t{e.port} << 8) + e.family);
  return static_cast<size_t>(h ^ (h >> 29));
}

void LocalEndpoints::add(const Endpoint& e) {
  std::lock_guard lock(mutex_);
  set_.insert(e);
  count_.store(set_.size(), std::memory_order_relaxed);
  generation_.fetch_add(1, std::memory_order_release);
}

void LocalEndpoints::remove(const Endpoint& e) {
  std::lock_guard lock(mutex_);
  auto it = set_.find(e);
  if (it != set_.end()) {
    set_.erase(it);
  }
  count_.store(set_.size(), std::memory_order_relaxed);
  generation_.fetch_add(1, std::memory_order_release);
}

bool LocalEndpoints::has(const std::unordered_multiset<Endpoint, Hash>& set, uint8_t family,
                         const std::array<uint8_t, 16>& addr, uint16_t port) {
  return set.count(Endpoint{family, addr, port}) != 0 || set.count(Endpoint{family, {}, port}) != 0;
}

bool LocalEndpoints::contains(uint8_t family, const std::array<uint8_t, 16>& addr, uint16_t port) const {
  if (count_.load(std::memory_order_relaxed) == 0) {
    return false;
  }
  std::lock_guard lock(mutex_);
  return has(set_, family, addr, port);
}

bool LocalEndpoints::View::contains(uint8_t family, const std::array<uint8_t, 16>& addr, uint16_t port) {
  const uint64_t now = shared_.generation_.load(std::memory_order_acquire);
  if (now == generation_) {
    return !copy_.empty() && has(copy_, family, addr, port);  // no lock
  }
  // The set changed since the copy: look it up under the lock (O(1)), and copy
  // it only once it has stayed the same since this view's last lookup, so
  // sockets opening and closing in a burst cost one locked lookup each, not a
  // copy of every socket per change.
  std::lock_guard lock(shared_.mutex_);
  const uint64_t current = shared_.generation_.load(std::memory_order_relaxed);
  if (current == lastSeen_) {
    copy_ = shared_.set_;
    generation_ = current;
    ++refreshes_;
  }
  lastSeen_ = current;
  return has(shared_.set_, family, addr, port);
}

}  // namespace shadowtap::replay
