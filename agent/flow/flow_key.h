#pragma once

#include <array>
#include <cstdint>
#include <cstring>
#include <functional>
#include <string>

namespace shadowtap::flow {

// One direction of a TCP connection: client (source) to server (destination).
// Addresses are in network byte order; an IPv4 address fills the first 4 bytes.
struct FlowKey {
  std::array<uint8_t, 16> saddr{};
  std::array<uint8_t, 16> daddr{};
  uint16_t sport = 0;  // host byte order
  uint16_t dport = 0;  // host byte order
  uint8_t family = 4;  // 4 or 6

  bool operator==(const FlowKey&) const = default;

  // "198.18.0.1:40000->198.18.0.2:8000" / "[2001:db8::1]:40000->[2001:db8::2]:80".
  std::string toString() const;
};

struct FlowKeyHash {
  size_t operator()(const FlowKey& k) const noexcept {
    // FNV-1a over the fields; flows are not attacker-chosen enough to need SipHash
    // here, and the table is bounded anyway.
    uint64_t h = 1469598103934665603ULL;
    auto mix = [&h](const uint8_t* p, size_t n) {
      for (size_t i = 0; i < n; ++i) {
        h ^= p[i];
        h *= 1099511628211ULL;
      }
    };
    mix(k.saddr.data(), k.family == 4 ? 4 : 16);
    mix(k.daddr.data(), k.family == 4 ? 4 : 16);
    uint8_t ports[4] = {uint8_t(k.sport >> 8), uint8_t(k.sport), uint8_t(k.dport >> 8),
                        uint8_t(k.dport)};
    mix(ports, 4);
    return static_cast<size_t>(h);
  }
};

}  // namespace shadowtap::flow
