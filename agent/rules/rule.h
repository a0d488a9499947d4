#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "base/drop_policy.h"
#include "model/destination_prefix.h"

namespace shadowtap::rules {

using base::DropPolicy;

// Settings a rule inherits when it does not name them (from the global flags).
struct RuleDefaults {
  std::string suffix = "-shadow";
  size_t connections = 16;
  size_t maxConnections = 1024;
  size_t queue = 4096;
  size_t queueMiB = 64;
  uint32_t maxRps = 0;  // 0: unlimited
  DropPolicy dropPolicy = DropPolicy::kNewest;
};

// What a mirrored request's host becomes (issue 19): the suffix appended to the
// host part (Envoy's and the seed's default), the host kept as it is, or a
// literal host (its port kept unless the literal names one).
enum class HostMode { kSuffix, kKeep, kLiteral };

// How the rule's percentage picks what is mirrored: whole connections (in the
// kernel, by a symmetric hash of the connection), each request on its own
// (Gateway API's percent), or by the value of one request header (the same
// user or tenant always in or always out).
enum class SampleMode { kConnection, kRequest, kHeader };

// One mirroring rule: traffic to `port` (optionally only to destinations in
// `dst`) is mirrored to `mirror`, with its own percentage, suffix, limits and
// safety switches. Built only by parseRule, so every field is valid.
struct Rule {
  std::string text;  // as the user wrote it, for messages
  uint16_t port = 0;
  std::string mirror;  // host:port; empty only in dry-run mode
  double percentage = 100.0;
  std::string suffix;
  HostMode hostMode = HostMode::kSuffix;
  std::string hostLiteral;  // kLiteral: "name" or "name:port"
  SampleMode sampleMode = SampleMode::kConnection;
  std::string sampleHeader;  // kHeader: the header's name, lower case
  std::optional<model::DestinationPrefix> dst;
  std::string dstText;

  // Safety switches; empty means off.
  std::vector<std::string> methods;                          // allow-list, upper case
  std::vector<std::pair<std::string, std::string>> headers;  // added, in order
  std::vector<std::string> dropHeaders;                      // removed, lower case

  // Per-target limits. Connections: `connections` open on demand (the floor),
  // grown up to `maxConnections` as the mirror's latency needs; the key
  // connections=N sets both, a fixed pool of N.
  size_t connections = 16;
  size_t maxConnections = 1024;
  size_t queue = 4096;
  size_t queueMiB = 64;
  uint32_t maxRps = 0;
  DropPolicy dropPolicy = DropPolicy::kNewest;

  // Compare mode (issue 9): the primary's responses are captured too and
  // compared with the mirror's. `secondary` (HOST:PORT, optional, needs
  // compare) runs the primary's version and gets the same requests, so fields
  // that differ between primary and secondary are known as noise.
  bool compare = false;
  std::string secondary;

  // TLS to the mirror (issue 18): tls=true originates TLS (HTTP/1 only),
  // verifying the certificate (against tlsCa, or the system's CAs) unless
  // tls-verify=false.
  bool tls = false;
  bool tlsVerify = true;
  std::string tlsCa;

  // Basis points of `percentage`.
  uint32_t sampleBasisPoints() const;
  // The share of connections the kernel copies: the percentage when sampling
  // connections, all of them when requests are picked in the agent.
  uint32_t kernelSampleBasisPoints() const;
  // "port=8000 -> httpbin-mirror:8000 (50%)" for logs.
  std::string describe() const;
  // Same in every setting that matters (the text may be spelt differently).
  bool sameAs(const Rule& other) const;
};

// Parses "key=value,key=value,...". Keys:
//   port=N (required)           mirror=HOST:PORT (required unless mirrorOptional)
//   percentage=P (0-100)        suffix=S                  dst=CIDR
//   methods=GET|HEAD            header=NAME:VALUE (repeatable)
//   drop-header=NAME (repeatable)
//   connections=N  queue=N  queue-mib=N  max-rps=N  drop-policy=newest|oldest
//   compare=true|false          secondary=HOST:PORT (needs compare=true)
//   tls=true|false  tls-verify=true|false  tls-ca=FILE (the last two need tls=true)
//   host=suffix|keep|HOST[:PORT]  sample=connection|request|header:NAME
// Values cannot contain ','. nullopt and *error (one line quoting the rule and
// the offending part) when the text is not a valid rule.
std::optional<Rule> parseRule(std::string_view text, const RuleDefaults& defaults, bool mirrorOptional,
                              std::string* error);

// Checks a set of rules together (no two rules for the same port and
// destination). Empty when fine, else one line.
std::string checkRuleSet(const std::vector<Rule>& rules);

// Shared with config: valid HTTP header name (RFC 9110 token) and shadow suffix.
bool isToken(std::string_view s);
std::string checkSuffix(std::string_view s);   // empty when valid
std::string checkHostPort(std::string_view s); // empty when valid

}  // namespace shadowtap::rules
