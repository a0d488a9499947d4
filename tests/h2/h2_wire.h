#pragma once

// Test helpers: real HTTP/2 client byte streams made by nghttp2 client
// sessions, optionally talking to an in-memory nghttp2 server session so the
// stream carries what a real client sends (SETTINGS ACKs, WINDOW_UPDATEs, frames
// sized by the server's settings).

#include <nghttp2/nghttp2.h>

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "model/request.h"

namespace shadowtap::h2::test {

struct ServerSettings {
  uint32_t maxFrameSize = 16384;
  uint32_t initialWindowSize = 65535;
  uint32_t maxConcurrentStreams = 1000;
};

struct RequestSpec {
  std::vector<model::HeaderField> headers;
  std::string body;
  std::vector<model::HeaderField> trailers;
  size_t dataChunk = 0;      // > 0: at most this many body bytes per DATA frame
  bool endStream = true;     // false: leave the stream open after what is given
};

// A client session whose every output byte is captured. With `withServer`, an
// in-memory server session answers (SETTINGS, ACKs, window updates), as the
// real server would.
class WireClient {
 public:
  explicit WireClient(bool withServer = true, ServerSettings server = {}, const std::string* upgradeSettings = nullptr);
  ~WireClient();
  WireClient(const WireClient&) = delete;
  WireClient& operator=(const WireClient&) = delete;

  int32_t submit(const RequestSpec& spec);
  void rst(int32_t streamId);
  void ping();
  void goaway();
  // Moves bytes both ways until neither side has anything to send.
  void pump();
  const std::string& captured() const { return captured_; }
  nghttp2_session* client() { return client_; }

 private:
  struct Body {
    std::string data;
    size_t offset = 0;
    size_t chunk = 0;
    std::vector<model::HeaderField> trailers;
    bool endStream = true;
  };
  static ssize_t readBody(nghttp2_session* session, int32_t streamId, uint8_t* buf, size_t length,
                          uint32_t* flags, nghttp2_data_source* source, void* user);

  nghttp2_session* client_ = nullptr;
  nghttp2_session* server_ = nullptr;
  std::string captured_;
  std::vector<std::unique_ptr<Body>> bodies_;
};

// A request's fields as nghttp2_nv, pointing into `fields`.
std::vector<nghttp2_nv> toNv(const std::vector<model::HeaderField>& fields);

// Frame types of an HTTP/2 client stream (after the preface), with stream ids.
struct FrameInfo {
  uint8_t type;
  uint8_t flags;
  int32_t streamId;
  uint32_t length;
};
std::vector<FrameInfo> frames(const std::string& clientBytes);

}  // namespace shadowtap::h2::test
