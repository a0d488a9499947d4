#pragma once

#include <cstdint>
#include <span>
#include <string_view>

namespace shadowtap::h2 {

// The client connection preface (RFC 9113 3.4) every HTTP/2 client sends
// first, with prior knowledge and after an accepted "Upgrade: h2c" alike.
inline constexpr std::string_view kClientPreface = "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

enum class PrefaceMatch : uint8_t {
  kYes,       // `bytes` starts with the whole preface
  kNo,        // `bytes` cannot be the start of the preface
  kNeedMore,  // `bytes` is a proper prefix of the preface
};

// Classifies the first bytes of a client stream. An HTTP/1 request line never
// starts with "PRI * HTTP/2.0", so three bytes usually decide ("PRI" is no
// registered HTTP/1 method).
PrefaceMatch matchPreface(std::span<const uint8_t> bytes);

}  // namespace shadowtap::h2
