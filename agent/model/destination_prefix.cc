#include "model/destination_prefix.h"

#include <arpa/inet.h>

#include <charconv>
#include <string>


namespace shadowtap::model {

std::optional<DestinationPrefix> parseDestinationPrefix(std::string_view text, std::string* error) {
  const std::string quoted = "'" + std::string(text) + "'";
  auto slash = text.find('/');
  std::string addr(text.substr(0, slash));
  DestinationPrefix p;
  if (inet_pton(AF_INET, addr.c_str(), p.addr.data()) == 1) {
    p.family = 4;
  } else if (inet_pton(AF_INET6, addr.c_str(), p.addr.data()) == 1) {
    p.family = 6;
  } else {
    *error = quoted + " is not an IPv4 or IPv6 address or CIDR prefix (e.g. 10.0.0.0/24, 2001:db8::/64)";
    return std::nullopt;
  }
  const unsigned maxLen = p.family == 4 ? 32 : 128;
  unsigned len = maxLen;
  if (slash != std::string_view::npos) {
    std::string_view lenText = text.substr(slash + 1);
    auto [end, ec] = std::from_chars(lenText.data(), lenText.data() + lenText.size(), len);
    if (ec != std::errc() || end != lenText.data() + lenText.size() || lenText.empty() || len > maxLen) {
      *error = quoted + ": prefix length must be a number from 0 to " + std::to_string(maxLen);
      return std::nullopt;
    }
  }
  p.length = static_cast<uint8_t>(len);
  // Host bits set below the prefix are a typo more often than not: clear them,
  // as `ip route` does, so the rule means what the prefix says.
  for (unsigned bit = len; bit < maxLen; ++bit) {
    p.addr[bit / 8] &= static_cast<uint8_t>(~(0x80u >> (bit % 8)));
  }
  return p;
}

}  // namespace shadowtap::model
