#pragma once

#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace shadowtap::record {

// Standard base64 (RFC 4648, with padding).
std::string base64Encode(std::string_view data);
// nullopt when `text` is not valid padded base64 (whitespace is not accepted).
std::optional<std::string> base64Decode(std::string_view text);

// True when `data` is well-formed UTF-8 (no overlongs, no surrogates, <= U+10FFFF),
// so it can go into JSON as text and come back byte-identical.
bool isValidUtf8(std::string_view data);

// SHA-256 in lower-case hex. Incremental so large bodies are hashed without copies.
class Sha256 {
 public:
  Sha256();
  void update(std::string_view data);
  std::string hexDigest();  // finishes; call once

 private:
  void block(const uint8_t* p);
  std::array<uint32_t, 8> h_;
  std::array<uint8_t, 64> buf_{};
  size_t bufLen_ = 0;
  uint64_t total_ = 0;
};
std::string sha256Hex(std::string_view data);

// RFC 3339 parse ("2024-05-01T12:00:00.123456Z", "...+02:00", fraction optional)
// into Unix ns. nullopt when malformed or outside what int64 Unix ns can
// hold (1677-09-21T00:12:43.145224192Z to 2262-04-11T23:47:16.854775807Z).
std::optional<int64_t> parseRfc3339(std::string_view text);

}  // namespace shadowtap::record
