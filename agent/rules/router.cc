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

// Header values hash with a fixed seed: a user's value is in or out on every
// node and across restarts.
constexpr uint64_t kHeaderSeed = 0x73686164'6f777461ULL;  // "shadowta"

}  // namespace

Router::Router(const Rule& rule)
    : suffix_(rule.suffix),
      hostMode_(rule.hostMode),
      hostLiteral_(rule.hostLiteral),
      sampleMode_(rule.sampleMode),
      sampleHeader_(rule.sampleHeader),
      sampleThreshold_(static_cast<uint64_t>(rule.sampleBasisPoints()) * (uint64_t{1} << 32) / 10000),
      methods_(rule.methods),
      drop_(rule.dropHeaders),
      add_(rule.headers),
      http1Edit_(rule.dropHeaders, rule.headers) {}

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

bool Router::isShadow(const model::Request& request) const {
  switch (hostMode_) {
    case HostMode::kSuffix:
      return http::hostHasSuffix(request.authority(), suffix_);
    case HostMode::kLiteral:
      return http::hostIsLiteral(request.authority(), hostLiteral_);
    case HostMode::kKeep:
      return !add_.empty() && carriesAddedHeaders(request);
  }
  return false;
}

bool Router::sampled(const model::Request& request) {
  if (sampleThreshold_ >= (uint64_t{1} << 32)) {
    return true;
  }
  if (sampleMode_ == SampleMode::kRequest) {
    sequence_ += kGoldenStep;
    return sequence_ < sampleThreshold_;
  }
  // sample=header:NAME: a request without the header hashes as the empty value.
  std::string_view value;
  if (request.isHttp2()) {
    value = request.header(sampleHeader_);
  } else if (auto v = http::findHeader(request.bytes, request.bodyOffset, sampleHeader_)) {
    value = *v;
  }
  return (base::mix64(base::fnv1a64(value, kHeaderSeed)) >> 32) < sampleThreshold_;
}

Router::Verdict Router::classify(const model::Request& request) {
  if (isShadow(request)) {
    return Verdict::kAlreadyShadow;
  }
  if (sampleMode_ != SampleMode::kConnection && !sampled(request)) {
    return Verdict::kSampledOut;
  }
  return allows(request.method) ? Verdict::kMirror : Verdict::kMethodFiltered;
}

std::string Router::shadowHost(std::string_view host) const {
  switch (hostMode_) {
    case HostMode::kSuffix:
      return http::appendShadowSuffix(host, suffix_);
    case HostMode::kLiteral:
      return http::literalHost(hostLiteral_, host);
    case HostMode::kKeep:
      break;
  }
  return std::string(host);
}

void Router::rewrite(model::Request& request) const {
  if (request.isHttp2()) {
    if (hostMode_ == HostMode::kSuffix) {
      h2::rewriteAuthority(request, suffix_);
    } else if (hostMode_ == HostMode::kLiteral) {
      h2::replaceAuthority(request, hostLiteral_);
    }
    h2::editFields(request, drop_, add_);
    return;
  }
  if (hostMode_ == HostMode::kSuffix) {
    http::rewriteHostInPlace(request, suffix_);
  } else if (hostMode_ == HostMode::kLiteral) {
    request.bytes = http::replaceRequestHost(request, hostLiteral_);
  }
  if (http1Edit_.changesHeaders()) {
    request.bytes = http1Edit_.apply(std::move(request.bytes));
  }
}

}  // namespace shadowtap::rules
