#include "model/flow_key.h"

#include <arpa/inet.h>

namespace shadowtap::model {

namespace {

// Appends "a.b.c.d:port" or "[v6]:port".
void appendEndpoint(std::string& out, uint8_t family, const std::array<uint8_t, 16>& addr,
                    uint16_t port) {
  char text[INET6_ADDRSTRLEN] = {};
  if (family == 6) {
    inet_ntop(AF_INET6, addr.data(), text, sizeof(text));
    out += '[';
    out += text;
    out += ']';
  } else {
    inet_ntop(AF_INET, addr.data(), text, sizeof(text));
    out += text;
  }
  out += ':';
  out += std::to_string(port);
}

}  // namespace

std::string FlowKey::toString() const {
  std::string out;
  out.reserve(2 * (INET6_ADDRSTRLEN + 8) + 2);
  appendEndpoint(out, family, saddr, sport);
  out += "->";
  appendEndpoint(out, family, daddr, dport);
  if (source == FlowSource::kTls) {
    out += " (tls)";
  }
  return out;
}

}  // namespace shadowtap::model
