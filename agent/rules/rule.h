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

// One mirror of a rule (issue 19: a rule may have several, as the Gateway API
// allows several mirror filters per rule): its target and the settings that
// are each mirror's own: its share, host mode, pool, limits and TLS. The
// rule's own keys are every mirror's defaults; keys given inside
// mirror=HOST:PORT;key=value;... are that mirror's.
struct MirrorSpec {
  std::string target;  // host:port; empty only when the rule names no mirror (--dry-run, --record)
  double percentage = 100.0;
  std::string suffix;
  HostMode hostMode = HostMode::kSuffix;
  std::string hostLiteral;  // kLiteral: "name" or "name:port"

  // The pool's limits. Connections: `connections` open on demand (the floor),
  // grown up to `maxConnections` as the mirror's latency needs; the key
  // connections=N sets both, a fixed pool of N.
  size_t connections = 16;
  size_t maxConnections = 1024;
  size_t queue = 4096;
  size_t queueMiB = 64;
  uint32_t maxRps = 0;
  DropPolicy dropPolicy = DropPolicy::kNewest;

  // TLS to the mirror (issue 18): tls=true originates TLS (HTTP/1.1 with
  // ALPN http/1.1, HTTP/2 with ALPN h2), verifying the certificate (against tlsCa, or the system's CAs) unless
  // tls-verify=false.
  bool tls = false;
  bool tlsVerify = true;
  std::string tlsCa;
  // tlsCa's modification time (ns) when the rule was parsed: a reload that
  // finds the file rotated (same path, new certificates) makes a new rule,
  // whose connections load them.
  int64_t tlsCaStamp = 0;

  // Basis points of `percentage`.
  uint32_t sampleBasisPoints() const;
  bool operator==(const MirrorSpec&) const = default;
};

// At most this many mirrors per rule: each has a pool per worker.
constexpr size_t kMaxMirrorsPerRule = 8;

// One mirroring rule: traffic to `port` (optionally only to destinations in
// `dst`) is mirrored to each of `mirrors`, with the rule's sample mode, method
// allow-list, header switches and compare mode. Built only by parseRule, so
// every field is valid.
struct Rule {
  std::string text;  // as the user wrote it, for messages
  uint16_t port = 0;
  // At least one, in the order given; mirrors[0].target is empty when the rule
  // names no mirror (dry run, record only): its host mode still applies.
  std::vector<MirrorSpec> mirrors = {MirrorSpec{}};
  SampleMode sampleMode = SampleMode::kConnection;
  std::string sampleHeader;  // kHeader: the header's name, lower case
  std::optional<model::DestinationPrefix> dst;
  std::string dstText;

  // Safety switches, the same for every mirror; empty means off.
  std::vector<std::string> methods;                          // allow-list, upper case
  std::vector<std::pair<std::string, std::string>> headers;  // added, in order
  std::vector<std::string> dropHeaders;                      // removed, lower case

  // Compare mode (issue 9): the primary's responses are captured too and
  // compared with the first mirror's. `secondary` (HOST:PORT, optional, needs
  // compare) runs the primary's version and gets the same requests, so fields
  // that differ between primary and secondary are known as noise.
  bool compare = false;
  std::string secondary;
  // secondary=HOST:PORT;tls=true[;tls-verify=false][;tls-ca=FILE]: the
  // secondary's own TLS keys, as a mirror's (none taken from the rule's).
  bool secondaryTls = false;
  bool secondaryTlsVerify = true;
  std::string secondaryTlsCa;
  int64_t secondaryTlsCaStamp = 0;  // as MirrorSpec::tlsCaStamp

  const MirrorSpec& first() const { return mirrors.front(); }
  // Whether the rule sends anywhere (false: dry run or record only).
  bool hasMirror() const { return !mirrors.front().target.empty(); }
  // The share of connections the kernel copies: with connection sampling the
  // largest of the mirrors' percentages (each mirror then takes its share of
  // those in the agent), all of them when requests are picked in the agent.
  uint32_t kernelSampleBasisPoints() const;
  // "port=8000 -> httpbin-mirror:8000 (50%)" for logs; several mirrors are
  // listed with " + ".
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
//   compare=true|false          secondary=HOST:PORT[;tls=true;tls-verify=..;tls-ca=..] (needs compare=true)
//   tls=true|false  tls-verify=true|false  tls-ca=FILE (the last two need tls=true)
//   host=suffix|keep|HOST[:PORT]  sample=connection|request|header:NAME
// mirror= is repeatable (up to kMaxMirrorsPerRule, each target once) and may
// carry the mirror's own keys: mirror=HOST:PORT;percentage=P;host=keep;...
// (percentage, suffix, host, the pool keys and the tls keys; the rule's keys
// are the defaults). Values cannot contain ',' (nor ';' inside mirror=).
// nullopt and *error (one line quoting the rule and the offending part) when
// the text is not a valid rule.
std::optional<Rule> parseRule(std::string_view text, const RuleDefaults& defaults, bool mirrorOptional,
                              std::string* error);

// Checks a set of rules together (no two rules for the same port and
// destination). Empty when fine, else one line.
std::string checkRuleSet(const std::vector<Rule>& rules);

// Shared with config: valid shadow suffix and mirror address.
std::string checkSuffix(std::string_view s);   // empty when valid
std::string checkHostPort(std::string_view s); // empty when valid

}  // namespace shadowtap::rules
