#pragma once

#include <cstdint>
#include <string>

#include "model/request.h"
#include "model/request.h"

namespace shadowtap::h2 {

// An HTTP/1.1 request that asks for "Upgrade: h2c" (RFC 7540 3.2), turned into
// what the HTTP/2 decoder needs to take over the connection.
//
// How the connection continues: the client sends the whole HTTP/1.1 request
// (body included), then waits for the server's answer, which we do not see.
// If the server accepted (101), the client's next bytes are the connection
// preface and HTTP/2 frames, and the server answers the upgrade request itself
// on stream 1; the client's own streams start at 3. If the server declined, the
// client goes on with HTTP/1.1. So the caller must look at the bytes after the
// request (matchPreface): preface -> hand them to an H2StreamDecoder built with
// this H2cUpgrade, which emits `request` as stream 1 as soon as the preface is
// confirmed; anything else -> the upgrade was declined, and the request is an
// ordinary HTTP/1.1 request (mirror it as HTTP/1 if wanted; the HTTP/2 decoder
// never emits it).
struct H2cUpgrade {
  std::string settingsPayload;  // HTTP2-Settings, base64url-decoded (SETTINGS frame payload)
  bool headRequest = false;
  // Stream 1: the HTTP/1.1 request as HTTP/2 fields. :method, :scheme "http",
  // :authority (from Host), :path (the target; an absolute-form target gives
  // its path), then the other fields in order with lowercase names, without the
  // connection-specific ones HTTP/2 forbids (Connection and the fields it names,
  // Upgrade, HTTP2-Settings, Keep-Alive, Proxy-Connection, Transfer-Encoding,
  // Host, and TE unless it is "trailers"). Body decoded from Content-Length or
  // chunked framing; chunked trailer fields become trailers.
  model::Request request;
};

enum class UpgradeParse : uint8_t {
  kNotUpgrade,  // no "Upgrade: h2c" (with "Connection: Upgrade, HTTP2-Settings"): HTTP/1 as usual
  kUpgrade,     // `out` filled
  kInvalid,     // asks for h2c but cannot be one (no or bad HTTP2-Settings, several of them,
                // HTTP/1.0, bad framing): a conforming server does not upgrade it either
};

// Looks at one framed HTTP/1.x request (from http::RequestFramer).
UpgradeParse parseH2cUpgrade(const model::Request& request, H2cUpgrade& out);

// base64url without padding (RFC 4648 5), as HTTP2-Settings uses; padding '='
// is tolerated. False on any other character or an impossible length.
bool decodeBase64Url(std::string_view in, std::string& out);

}  // namespace shadowtap::h2
