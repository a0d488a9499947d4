#pragma once

// A tiny frame builder for feeding kernel programs through bpf_prog_test_run_opts.
// Each layer function takes the already built upper layer and wraps it, so a test
// reads like the frame: ethernet(kEthIpv4, ipv4(..., tcp(...))). Checksums are left
// zero: the programs under test never look at them.

#include <array>
#include <cstddef>
#include <cstdint>
#include <span>
#include <vector>

namespace shadowtap::bpftest {

using Bytes = std::vector<uint8_t>;
using Ip6Addr = std::array<uint8_t, 16>;
using Ip4Addr = std::array<uint8_t, 4>;

inline constexpr uint16_t kEthIpv4 = 0x0800;
inline constexpr uint16_t kEthIpv6 = 0x86DD;
inline constexpr uint16_t kEthArp = 0x0806;
inline constexpr uint16_t kEthVlan = 0x8100;
inline constexpr uint16_t kEthQinQ = 0x88A8;

inline constexpr uint8_t kProtoTcp = 6;
inline constexpr uint8_t kProtoUdp = 17;
inline constexpr uint8_t kExtHopByHop = 0;
inline constexpr uint8_t kExtRouting = 43;
inline constexpr uint8_t kExtFragment = 44;
inline constexpr uint8_t kExtDestOpts = 60;

inline void put16(Bytes& b, uint16_t v) {
  b.push_back(static_cast<uint8_t>(v >> 8));
  b.push_back(static_cast<uint8_t>(v));
}

inline void put32(Bytes& b, uint32_t v) {
  put16(b, static_cast<uint16_t>(v >> 16));
  put16(b, static_cast<uint16_t>(v));
}

inline void append(Bytes& b, std::span<const uint8_t> tail) { b.insert(b.end(), tail.begin(), tail.end()); }

// Ethernet II with optional in-band VLAN tags (outermost first, given as TPIDs),
// zero-padded to padTo bytes when shorter (as NICs pad runt frames to 60).
inline Bytes ethernet(uint16_t etherType, std::span<const uint8_t> l3, std::span<const uint16_t> vlanTpids = {},
                      size_t padTo = 0) {
  Bytes b = {0x02, 0, 0, 0, 0, 0x02, 0x02, 0, 0, 0, 0, 0x01};
  uint16_t vid = 100;
  for (uint16_t tpid : vlanTpids) {
    put16(b, tpid);
    put16(b, vid++);
  }
  put16(b, etherType);
  append(b, l3);
  if (b.size() < padTo) {
    b.resize(padTo, 0);
  }
  return b;
}

// TCP header with optionBytes (multiple of 4) of NOP options, then the payload.
inline Bytes tcp(uint16_t sport, uint16_t dport, uint32_t seq, uint32_t ack, uint8_t flags,
                 std::span<const uint8_t> payload, size_t optionBytes = 0) {
  Bytes b;
  put16(b, sport);
  put16(b, dport);
  put32(b, seq);
  put32(b, ack);
  b.push_back(static_cast<uint8_t>(((20 + optionBytes) / 4) << 4));
  b.push_back(flags);
  put16(b, 65535);  // window
  put16(b, 0);      // checksum
  put16(b, 0);      // urgent
  b.insert(b.end(), optionBytes, 0x01);
  append(b, payload);
  return b;
}

inline Bytes udp(uint16_t sport, uint16_t dport, std::span<const uint8_t> payload) {
  Bytes b;
  put16(b, sport);
  put16(b, dport);
  put16(b, static_cast<uint16_t>(8 + payload.size()));
  put16(b, 0);
  append(b, payload);
  return b;
}

struct Ipv4Options {
  size_t optionBytes = 0;      // multiple of 4, filled with NOP
  uint16_t fragField = 0x4000;  // flags + offset; default DF
  bool zeroTotalLength = false;  // as BIG TCP sends
  int totalLengthDelta = 0;      // lie about tot_len (truncated frames)
};

inline Bytes ipv4(uint8_t proto, Ip4Addr src, Ip4Addr dst, std::span<const uint8_t> l4, Ipv4Options o = {}) {
  Bytes b;
  const size_t hlen = 20 + o.optionBytes;
  b.push_back(static_cast<uint8_t>(0x40 | (hlen / 4)));
  b.push_back(0);
  const int totLen = static_cast<int>(hlen + l4.size()) + o.totalLengthDelta;
  put16(b, o.zeroTotalLength ? 0 : static_cast<uint16_t>(totLen));
  put16(b, 0x1234);  // id
  put16(b, o.fragField);
  b.push_back(64);
  b.push_back(proto);
  put16(b, 0);
  append(b, src);
  append(b, dst);
  b.insert(b.end(), o.optionBytes, 0x01);
  append(b, l4);
  return b;
}

// One IPv6 extension header: type and total length in bytes (multiple of 8, AH aside).
struct Ipv6Ext {
  uint8_t type;
  size_t bytes = 8;
};

inline Bytes ipv6(uint8_t proto, const Ip6Addr& src, const Ip6Addr& dst, std::span<const uint8_t> l4,
                  std::span<const Ipv6Ext> exts = {}, bool zeroPayloadLength = false) {
  Bytes ext;
  for (size_t i = 0; i < exts.size(); ++i) {
    const uint8_t next = i + 1 < exts.size() ? exts[i + 1].type : proto;
    ext.push_back(next);
    ext.push_back(static_cast<uint8_t>(exts[i].bytes / 8 - 1));
    ext.insert(ext.end(), exts[i].bytes - 2, 0);  // Pad1 options
  }
  Bytes b;
  put32(b, 0x60000000);
  put16(b, zeroPayloadLength ? 0 : static_cast<uint16_t>(ext.size() + l4.size()));
  b.push_back(exts.empty() ? proto : exts[0].type);
  b.push_back(64);
  append(b, src);
  append(b, dst);
  append(b, ext);
  append(b, l4);
  return b;
}

inline Bytes arpRequest() {
  Bytes b;
  put16(b, 1);       // Ethernet
  put16(b, 0x0800);  // IPv4
  b.push_back(6);
  b.push_back(4);
  put16(b, 1);  // request
  append(b, Bytes{0x02, 0x02, 0, 0, 0, 0x01, 198, 18, 0, 1});
  append(b, Bytes{0, 0, 0, 0, 0, 0, 198, 18, 0, 2});
  return b;
}

}  // namespace shadowtap::bpftest
