#include "rules/router.h"

#include <algorithm>

#include "base/strings.h"
#include "h2/request_edit.h"
#include "http/host_rewrite.h"

namespace shadowtap::rules {
namespace {

// 2^32 / golden ratio: consecutive multiples of it, modulo 2^32, fill [0, 2^32)
// as evenly as any sequence can (a Weyl sequence), so the share of requests
// taken is within a few of the percentage over any run of requests, without
// the period of a counter (every fifth request) that could line up with a
// client's own pattern.
constexpr uint32_t kGoldenStep = 0x9E3779B9u;
// The other mirrors' steps: the fractional parts of the square roots of 2, 3,
// 7, 11, 13, 17 and 19 (SHA-256's initial hash words; not 5, whose root the
// golden ratio is made of). Together with 1/phi they are linearly independent
// over the rationals, so the mirrors' sequences are jointly equidistributed:
// each keeps its own even share and, over a run of requests, two mirrors take
// the same request as often as independent draws would.
constexpr uint32_t kMirrorSteps[kMaxMirrorsPerRule] = {kGoldenStep, 0x6A09E667u, 0xBB67AE85u, 0xA54FF53Au,
                                                      0x510E527Fu, 0x9B05688Cu, 0x1F83D9ABu, 0x5BE0CD19u};

// Header values hash with a fixed seed: a user's value is in or out on every
// node and across restarts. The first mirror's is the seed; each other
// mirror's is salted with its position.
constexpr uint64_t kHeaderSeed = 0x73686164'6f777461ULL;  // "shadowta"
constexpr uint64_t kConnectionSeed = 0x636f6e6e'65637469ULL;  // "connecti"

uint64_t saltFor(uint64_t seed, size_t mirror) {
  return mirror == 0 ? seed : base::mix64(seed + mirror * 0x9E3779B97F4A7C15ULL);
}

constexpr uint64_t kAll = uint64_t{1} << 32;

uint64_t shareOf(uint32_t basisPoints, uint32_t of) {
  return basisPoints >= of ? kAll : static_cast<uint64_t>(basisPoints) * kAll / of;
}

// The top 32 bits of a salted hash of the connection (its client-to-server key).
uint64_t connectionHash(const model::FlowKey& k, uint64_t seed) {
  uint64_t h = base::fnv1a64(std::string_view(reinterpret_cast<const char*>(k.saddr.data()), k.saddr.size()), seed);
  h = base::fnv1a64(std::string_view(reinterpret_cast<const char*>(k.daddr.data()), k.daddr.size()), h);
  const uint8_t rest[5] = {static_cast<uint8_t>(k.sport >> 8), static_cast<uint8_t>(k.sport),
                           static_cast<uint8_t>(k.dport >> 8), static_cast<uint8_t>(k.dport), k.family};
  h = base::fnv1a64(std::string_view(reinterpret_cast<const char*>(rest), sizeof(rest)), h);
  return base::mix64(h) >> 32;
}

}  // namespace

Router::Router(const Rule& rule)
    : sampleMode_(rule.sampleMode),
      sampleHeader_(rule.sampleHeader),
      methods_(rule.methods),
      drop_(rule.dropHeaders),
      add_(rule.headers),
      http1Edit_(rule.dropHeaders, rule.headers) {
  const uint32_t copied = rule.kernelSampleBasisPoints();
  for (size_t i = 0; i < rule.mirrors.size(); ++i) {
    const MirrorSpec& m = rule.mirrors[i];
    MirrorRoute r;
    r.suffix = m.suffix;
    r.hostMode = m.hostMode;
    r.hostLiteral = m.hostLiteral;
    r.threshold = shareOf(m.sampleBasisPoints(), 10000);
    r.ofCopied = shareOf(m.sampleBasisPoints(), copied);
    r.step = kMirrorSteps[i % kMaxMirrorsPerRule];
    r.seed = saltFor(sampleMode_ == SampleMode::kHeader ? kHeaderSeed : kConnectionSeed, i);
    mirrors_.push_back(std::move(r));
  }
}

bool Router::allows(std::string_view method) const {
  return methods_.empty() || std::find(methods_.begin(), methods_.end(), method) != methods_.end();
}

bool Router::carriesAddedHeaders(const model::Request& request) const {
  return std::all_of(add_.begin(), add_.end(), [&request](const auto& field) {
    if (request.isHttp2()) {
      return request.header(base::toLower(field.first)) == field.second;
    }
    const auto value = http::findHeader(request.bytes, request.bodyOffset, field.first);
    return value && *value == field.second;
  });
}

bool Router::isShadow(const model::Request& request, const MirrorRoute& m) const {
  switch (m.hostMode) {
    case HostMode::kSuffix:
      return http::hostHasSuffix(request.authority(), m.suffix);
    case HostMode::kLiteral:
      return http::hostIsLiteral(request.authority(), m.hostLiteral);
    case HostMode::kKeep:
      return !add_.empty() && carriesAddedHeaders(request);
  }
  return false;
}

bool Router::sampled(const model::Request& request, size_t mirror) {
  MirrorRoute& m = mirrors_[mirror];
  if (sampleMode_ == SampleMode::kConnection) {
    // The kernel copied the connection for the rule's largest share; this
    // mirror takes its part of those (all of them when its share is that one).
    return m.ofCopied >= kAll || connectionHash(request.flow, m.seed) < m.ofCopied;
  }
  if (m.threshold >= kAll) {
    return true;
  }
  if (sampleMode_ == SampleMode::kRequest) {
    m.sequence += m.step;
    return m.sequence < m.threshold;
  }
  // sample=header:NAME: a request without the header hashes as the empty value.
  std::string_view value;
  if (request.isHttp2()) {
    value = request.header(sampleHeader_);
  } else if (auto v = http::findHeader(request.bytes, request.bodyOffset, sampleHeader_)) {
    value = *v;
  }
  return (base::mix64(base::fnv1a64(value, m.seed)) >> 32) < m.threshold;
}

Router::Verdict Router::classify(const model::Request& request, MirrorSet* taken) {
  for (const MirrorRoute& m : mirrors_) {
    if (isShadow(request, m)) {
      return Verdict::kAlreadyShadow;
    }
  }
  MirrorSet set = 0;
  for (size_t i = 0; i < mirrors_.size(); ++i) {
    if (sampled(request, i)) {
      set |= MirrorSet{1} << i;
    }
  }
  if (taken != nullptr) {
    *taken = set;
  }
  if (set == 0) {
    return Verdict::kSampledOut;
  }
  return allows(request.method) ? Verdict::kMirror : Verdict::kMethodFiltered;
}

std::string Router::shadowHost(std::string_view host, size_t mirror) const {
  const MirrorRoute& m = mirrors_[mirror];
  switch (m.hostMode) {
    case HostMode::kSuffix:
      return http::appendShadowSuffix(host, m.suffix);
    case HostMode::kLiteral:
      return http::literalHost(m.hostLiteral, host);
    case HostMode::kKeep:
      break;
  }
  return std::string(host);
}

void Router::rewrite(model::Request& request, size_t mirror) const {
  const MirrorRoute& m = mirrors_[mirror];
  if (request.isHttp2()) {
    if (m.hostMode == HostMode::kSuffix) {
      h2::rewriteAuthority(request, m.suffix);
    } else if (m.hostMode == HostMode::kLiteral) {
      h2::replaceAuthority(request, m.hostLiteral);
    }
    h2::editFields(request, drop_, add_);
    return;
  }
  if (m.hostMode == HostMode::kSuffix) {
    http::rewriteHostInPlace(request, m.suffix);
  } else if (m.hostMode == HostMode::kLiteral) {
    request.bytes = http::replaceRequestHost(request, m.hostLiteral);
  }
  if (http1Edit_.changesHeaders()) {
    request.bytes = http1Edit_.apply(std::move(request.bytes));
  }
}

}  // namespace shadowtap::rules
