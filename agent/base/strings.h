#pragma once

#include <cstdint>
#include <string>
#include <string_view>

namespace shadowtap::base {

// ASCII case-insensitive equality (HTTP field names).
bool equalsIgnoreCase(std::string_view a, std::string_view b);
std::string toLower(std::string_view s);
// `s` without leading and trailing spaces and tabs (HTTP's OWS).
std::string_view trimOws(std::string_view s);
// `s` without leading and trailing ASCII white space (line ends included).
std::string_view trimSpace(std::string_view s);
// True when `s` is an RFC 9110 token (a valid method or field name): one or
// more letters, digits and !#$%&'*+-.^_`|~.
bool isToken(std::string_view s);

// Incremental 64-bit FNV-1a; fnv1a64(a + b) == fnv1a64(b, fnv1a64(a)).
inline constexpr uint64_t kFnv1aSeed = 0xcbf29ce484222325ULL;
uint64_t fnv1a64(std::string_view bytes, uint64_t hash = kFnv1aSeed);

// MurmurHash3's 64-bit finalizer: spreads every input bit over every output bit
// (FNV-1a's high bits depend little on the last bytes), for hashes whose high
// bits decide something, e.g. a sampling threshold.
constexpr uint64_t mix64(uint64_t h) {
  h ^= h >> 33;
  h *= 0xff51afd7ed558ccdULL;
  h ^= h >> 33;
  h *= 0xc4ceb9fe1a85ec53ULL;
  h ^= h >> 33;
  return h;
}

}  // namespace shadowtap::base
