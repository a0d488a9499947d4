#pragma once

#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace shadowtap::model {

// A destination address prefix narrowing a rule ("10.0.0.0/24", "2001:db8::/64",
// a plain address is a full-length prefix). Address in network byte order.
struct DestinationPrefix {
  uint8_t family = 4;  // 4 or 6
  std::array<uint8_t, 16> addr{};
  uint8_t length = 0;  // prefix length in bits
  bool operator==(const DestinationPrefix&) const = default;
};

// Parses "ADDR" or "ADDR/LEN" for IPv4 or IPv6. nullopt and *error set (one
// sentence quoting the text) when it is not one.
std::optional<DestinationPrefix> parseDestinationPrefix(std::string_view text, std::string* error);

}  // namespace shadowtap::model
