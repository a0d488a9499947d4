#pragma once

#include <array>
#include <cstdint>
#include <cstring>
#include <functional>
#include <string>

namespace shadowtap::model {

// One direction of a TCP connection: client (source) to server (destination).
// Addresses are in network byte order; an IPv4 address fills the first 4 bytes.
// Where a flow's bytes come from: TCP segments, or the TLS plaintext of the
// same connection (--tls; its own flow, so the wire's ciphertext and the
// plaintext never mix).
enum class FlowSource : uint8_t { kWire = 0, kTls = 1 };

struct FlowKey {
  std::array<uint8_t, 16> saddr{};
  std::array<uint8_t, 16> daddr{};
  uint16_t sport = 0;  // host byte order
  uint16_t dport = 0;  // host byte order
  uint8_t family = 4;  // 4 or 6
  FlowSource source = FlowSource::kWire;

  bool operator==(const FlowKey&) const = default;

  // "198.18.0.1:40000->198.18.0.2:8000" / "[2001:db8::1]:40000->[2001:db8::2]:80",
  // followed by " (tls)" for a TLS plaintext flow.
  std::string toString() const;
};

// Word-wise multiply-xor mix: several times faster than a byte loop, which
// matters because every captured segment is hashed once.
struct FlowKeyHash {
  size_t operator()(const FlowKey& k) const noexcept {
    uint64_t w[4];
    std::memcpy(w, k.saddr.data(), 16);
    std::memcpy(w + 2, k.daddr.data(), 16);
    const uint64_t ports = (uint64_t{k.sport} << 16) | k.dport | (uint64_t{k.family} << 32) |
                           (uint64_t{static_cast<uint8_t>(k.source)} << 40);
    auto mix = [](uint64_t a, uint64_t b) {
      const __uint128_t m = static_cast<__uint128_t>(a ^ 0x9e3779b97f4a7c15ULL) *
                            (b ^ 0xd1b54a32d192ed03ULL);
      return static_cast<uint64_t>(m) ^ static_cast<uint64_t>(m >> 64);
    };
    return static_cast<size_t>(mix(mix(w[0], w[1]) ^ ports, mix(w[2], w[3])));
  }
};

}  // namespace shadowtap::model
