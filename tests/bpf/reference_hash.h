#pragma once

// An implementation of the kernel's connection hash (bpf/flow_hash.h) and its
// worker choice (capture_abi.h) written from their documentation, so the tests
// can predict what the program decides.

#include <array>
#include <cstdint>
#include <utility>
#include <vector>

#include "packet_builder.h"
#include "shadowtap/capture_abi.h"

namespace shadowtap::bpftest {

inline uint32_t rotl(uint32_t x, int r) { return (x << r) | (x >> (32 - r)); }

inline uint32_t referenceFlowHash(const Ip6Addr& a, uint16_t ap, const Ip6Addr& b, uint16_t bp, uint32_t seed) {
  auto words = [](const Ip6Addr& x) {
    std::array<uint32_t, 4> w{};
    for (int i = 0; i < 4; ++i) {
      w[i] = (uint32_t{x[4 * i]} << 24) | (uint32_t{x[4 * i + 1]} << 16) | (uint32_t{x[4 * i + 2]} << 8) |
             x[4 * i + 3];
    }
    return w;
  };
  auto ea = std::make_pair(words(a), ap);
  auto eb = std::make_pair(words(b), bp);
  if (eb < ea) {
    std::swap(ea, eb);
  }
  std::vector<uint32_t> k(ea.first.begin(), ea.first.end());
  k.insert(k.end(), eb.first.begin(), eb.first.end());
  k.push_back((uint32_t{ea.second} << 16) | eb.second);
  uint32_t h = seed;
  for (uint32_t w : k) {
    w *= 0xcc9e2d51;
    w = rotl(w, 15);
    w *= 0x1b873593;
    h ^= w;
    h = rotl(h, 13);
    h = h * 5 + 0xe6546b64;
  }
  h ^= 36;
  h ^= h >> 16;
  h *= 0x85ebca6b;
  h ^= h >> 13;
  h *= 0xc2b2ae35;
  h ^= h >> 16;
  return h;
}

// The worker a connection with `hash` goes to, of `workers`.
inline uint32_t referenceWorker(uint32_t hash, uint32_t workers) {
  if (workers <= 1) {
    return 0;
  }
  return static_cast<uint32_t>((uint64_t{static_cast<uint32_t>(hash * ST_WORKER_MULTIPLIER)} * workers) >> 32);
}

}  // namespace shadowtap::bpftest
