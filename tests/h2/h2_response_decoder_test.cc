#include "base/strings.h"
#include "h2/h2_response_decoder.h"

#include <gtest/gtest.h>
#include <nghttp2/nghttp2.h>

#include <cstring>
#include <deque>
#include <map>
#include <random>
#include <sstream>

#include "response_test_util.h"

namespace shadowtap::h2 {
namespace {

using shadowtap::test::asBytes;
using shadowtap::test::load;
using Fields = std::vector<std::pair<std::string, std::string>>;

// ---------------------------------------------------------------------------
// Hand-built server byte streams: frames written here, header blocks by
// nghttp2's HPACK deflater (one per connection, so the dynamic table carries
// across blocks as a real server's does).

class H2Writer {
 public:
  explicit H2Writer(bool preface = true, size_t tableMax = 4096) {
    nghttp2_hd_deflate_new(&deflater_, tableMax);
    if (preface) {
      // SETTINGS: MAX_CONCURRENT_STREAMS = 100.
      frame(0x4, 0, 0, std::string("\x00\x03\x00\x00\x00\x64", 6));
    }
  }
  ~H2Writer() { nghttp2_hd_deflate_del(deflater_); }

  std::string block(const Fields& fields) {
    std::vector<nghttp2_nv> nva;
    for (const auto& [n, v] : fields) {
      nva.push_back({reinterpret_cast<uint8_t*>(const_cast<char*>(n.data())),
                     reinterpret_cast<uint8_t*>(const_cast<char*>(v.data())), n.size(), v.size(),
                     NGHTTP2_NV_FLAG_NONE});
    }
    std::string out(nghttp2_hd_deflate_bound(deflater_, nva.data(), nva.size()), '\0');
    const ssize_t n = nghttp2_hd_deflate_hd(deflater_, reinterpret_cast<uint8_t*>(out.data()), out.size(),
                                            nva.data(), nva.size());
    EXPECT_GE(n, 0);
    out.resize(n < 0 ? 0 : static_cast<size_t>(n));
    return out;
  }

  void frame(uint8_t type, uint8_t flags, int32_t stream, const std::string& payload) {
    const size_t len = payload.size();
    out += static_cast<char>((len >> 16) & 0xff);
    out += static_cast<char>((len >> 8) & 0xff);
    out += static_cast<char>(len & 0xff);
    out += static_cast<char>(type);
    out += static_cast<char>(flags);
    out += be32(static_cast<uint32_t>(stream));
    out += payload;
  }

  // HEADERS (+ CONTINUATIONs when `pieces` > 1), optional padding and priority.
  void headers(int32_t stream, const Fields& fields, bool endStream, size_t pad = 0, bool priority = false,
               size_t pieces = 1) {
    const std::string hb = block(fields);
    const size_t step = pieces > 1 ? (hb.size() + pieces - 1) / pieces : hb.size();
    std::string first = hb.substr(0, step);
    uint8_t flags = (endStream ? 0x1 : 0) | (step >= hb.size() ? 0x4 : 0);
    std::string payload;
    if (pad > 0) {
      flags |= 0x8;
      payload += static_cast<char>(pad);
    }
    if (priority) {
      flags |= 0x20;
      payload += be32(0) + std::string(1, '\x0f');
    }
    payload += first + std::string(pad, '\0');
    frame(0x1, flags, stream, payload);
    for (size_t at = step; at < hb.size(); at += step) {
      frame(0x9, at + step >= hb.size() ? 0x4 : 0, stream, hb.substr(at, step));
    }
  }

  void data(int32_t stream, const std::string& body, bool endStream, size_t pad = 0) {
    std::string payload;
    uint8_t flags = endStream ? 0x1 : 0;
    if (pad > 0) {
      flags |= 0x8;
      payload += static_cast<char>(pad);
    }
    payload += body + std::string(pad, '\0');
    frame(0x0, flags, stream, payload);
  }

  void pushPromise(int32_t stream, int32_t promised, const Fields& fields) {
    frame(0x5, 0x4, stream, be32(static_cast<uint32_t>(promised)) + block(fields));
  }
  void rst(int32_t stream) { frame(0x3, 0, stream, be32(2)); }
  void goAway(int32_t last) { frame(0x7, 0, 0, be32(static_cast<uint32_t>(last)) + be32(0)); }
  void ping() { frame(0x6, 0, 0, std::string(8, 'p')); }
  void windowUpdate(int32_t stream) { frame(0x8, 0, stream, be32(1000)); }

  nghttp2_hd_deflater* deflater() { return deflater_; }
  std::string out;

 private:
  static std::string be32(uint32_t v) {
    std::string s(4, '\0');
    s[0] = static_cast<char>(v >> 24);
    s[1] = static_cast<char>(v >> 16);
    s[2] = static_cast<char>(v >> 8);
    s[3] = static_cast<char>(v);
    return s;
  }
  nghttp2_hd_deflater* deflater_ = nullptr;
};

// ---------------------------------------------------------------------------
// Real server byte streams: an nghttp2 client session sends requests to an
// nghttp2 server session in memory; what the server sends is the fixture.

struct ResponseSpec {
  int status = 200;
  Fields headers;
  std::string body;
  Fields trailers;
  std::vector<int> interim;   // 1xx statuses sent before the response
  int64_t resetAfter = -1;    // RST_STREAM after this many body bytes
  size_t chunk = 16384;       // DATA frame size
};

struct ServerOptions {
  size_t padTo = 0;           // frames padded up to this length (select_padding_callback)
  bool upgrade = false;       // stream 1 comes from "Upgrade: h2c"; no client session
  bool reverse = false;       // submit responses from the last stream to the first
};

class Nghttp2Server {
 public:
  std::string run(const std::vector<ResponseSpec>& specs, const ServerOptions& options) {
    specs_ = specs;
    options_ = options;
    nghttp2_session_callbacks* cb = nullptr;
    nghttp2_session_callbacks_new(&cb);
    if (options.padTo > 0) {
      nghttp2_session_callbacks_set_select_padding_callback(cb, &Nghttp2Server::selectPadding);
    }
    nghttp2_session_server_new(&server_, cb, this);
    nghttp2_session_callbacks_del(cb);
    nghttp2_settings_entry iv[] = {{NGHTTP2_SETTINGS_MAX_CONCURRENT_STREAMS, 100}};
    nghttp2_submit_settings(server_, NGHTTP2_FLAG_NONE, iv, 1);

    std::vector<int32_t> streams;
    if (options.upgrade) {
      uint8_t payload[64];
      nghttp2_settings_entry civ[] = {{NGHTTP2_SETTINGS_INITIAL_WINDOW_SIZE, (1 << 30)}};
      const ssize_t n = nghttp2_pack_settings_payload(payload, sizeof(payload), civ, 1);
      EXPECT_EQ(nghttp2_session_upgrade2(server_, payload, static_cast<size_t>(n), 0, nullptr), 0);
      streams.push_back(1);
    } else {
      streams = sendRequests(specs.size());
    }
    EXPECT_EQ(streams.size(), specs.size());
    std::vector<size_t> order(specs.size());
    for (size_t i = 0; i < order.size(); ++i) {
      order[i] = options.reverse ? order.size() - 1 - i : i;
    }
    state_.resize(specs.size());
    for (size_t i : order) {
      submit(streams[i], i);
    }
    std::string out;
    for (;;) {
      const uint8_t* data = nullptr;
      const ssize_t n = nghttp2_session_mem_send(server_, &data);
      EXPECT_GE(n, 0);
      if (n <= 0) {
        break;
      }
      out.append(reinterpret_cast<const char*>(data), static_cast<size_t>(n));
    }
    nghttp2_session_del(server_);
    return out;
  }

 private:
  struct StreamState {
    size_t spec = 0;
    size_t sent = 0;
  };

  std::vector<int32_t> sendRequests(size_t count) {
    nghttp2_session_callbacks* cb = nullptr;
    nghttp2_session_callbacks_new(&cb);
    nghttp2_session* client = nullptr;
    nghttp2_session_client_new(&client, cb, nullptr);
    nghttp2_session_callbacks_del(cb);
    // Big windows, so the server sends every body without waiting for WINDOW_UPDATEs.
    nghttp2_settings_entry iv[] = {{NGHTTP2_SETTINGS_INITIAL_WINDOW_SIZE, (1 << 30)}};
    nghttp2_submit_settings(client, NGHTTP2_FLAG_NONE, iv, 1);
    nghttp2_submit_window_update(client, NGHTTP2_FLAG_NONE, 0, 1 << 30);
    std::vector<int32_t> ids;
    for (size_t i = 0; i < count; ++i) {
      const std::string path = "/r" + std::to_string(i);
      nghttp2_nv nva[] = {
          {(uint8_t*)":method", (uint8_t*)"GET", 7, 3, NGHTTP2_NV_FLAG_NONE},
          {(uint8_t*)":scheme", (uint8_t*)"http", 7, 4, NGHTTP2_NV_FLAG_NONE},
          {(uint8_t*)":authority", (uint8_t*)"example.test", 10, 12, NGHTTP2_NV_FLAG_NONE},
          {(uint8_t*)":path", (uint8_t*)path.data(), 5, path.size(), NGHTTP2_NV_FLAG_NONE},
      };
      ids.push_back(nghttp2_submit_request(client, nullptr, nva, 4, nullptr, nullptr));
    }
    std::string wire;
    for (;;) {
      const uint8_t* data = nullptr;
      const ssize_t n = nghttp2_session_mem_send(client, &data);
      if (n <= 0) {
        break;
      }
      wire.append(reinterpret_cast<const char*>(data), static_cast<size_t>(n));
    }
    nghttp2_session_del(client);
    const ssize_t read = nghttp2_session_mem_recv(server_, reinterpret_cast<const uint8_t*>(wire.data()), wire.size());
    EXPECT_EQ(read, static_cast<ssize_t>(wire.size()));
    return ids;
  }

  static std::vector<nghttp2_nv> nvs(const Fields& fields) {
    std::vector<nghttp2_nv> out;
    for (const auto& [n, v] : fields) {
      out.push_back({(uint8_t*)n.data(), (uint8_t*)v.data(), n.size(), v.size(), NGHTTP2_NV_FLAG_NONE});
    }
    return out;
  }

  void submit(int32_t stream, size_t i) {
    const ResponseSpec& spec = specs_[i];
    state_[i].spec = i;
    for (int code : spec.interim) {
      statusText_.push_back(std::to_string(code));
      Fields f = {{":status", statusText_.back()}};
      auto nva = nvs(f);
      nghttp2_submit_headers(server_, NGHTTP2_FLAG_NONE, stream, nullptr, nva.data(), nva.size(), nullptr);
    }
    statusText_.push_back(std::to_string(spec.status));
    Fields f = {{":status", statusText_.back()}};
    f.insert(f.end(), spec.headers.begin(), spec.headers.end());
    fieldStore_.push_back(f);
    auto nva = nvs(fieldStore_.back());
    nghttp2_data_provider prd;
    prd.source.ptr = &state_[i];
    prd.read_callback = &Nghttp2Server::read;
    const bool withData = !spec.body.empty() || !spec.trailers.empty() || spec.resetAfter >= 0;
    nghttp2_submit_response(server_, stream, nva.data(), nva.size(), withData ? &prd : nullptr);
  }

  static ssize_t read(nghttp2_session* session, int32_t stream, uint8_t* buf, size_t length, uint32_t* flags,
                      nghttp2_data_source* source, void* user) {
    auto& self = *static_cast<Nghttp2Server*>(user);
    auto& st = *static_cast<StreamState*>(source->ptr);
    const ResponseSpec& spec = self.specs_[st.spec];
    if (spec.resetAfter >= 0 && st.sent >= static_cast<size_t>(spec.resetAfter)) {
      return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE;  // nghttp2 resets the stream
    }
    size_t n = std::min({length, spec.chunk, spec.body.size() - st.sent});
    if (spec.resetAfter >= 0) {
      n = std::min(n, static_cast<size_t>(spec.resetAfter) - st.sent);
    }
    std::memcpy(buf, spec.body.data() + st.sent, n);
    st.sent += n;
    if (st.sent == spec.body.size() && spec.resetAfter < 0) {
      *flags |= NGHTTP2_DATA_FLAG_EOF;
      if (!spec.trailers.empty()) {
        *flags |= NGHTTP2_DATA_FLAG_NO_END_STREAM;
        auto nva = nvs(spec.trailers);
        nghttp2_submit_trailer(session, stream, nva.data(), nva.size());
      }
    }
    return static_cast<ssize_t>(n);
  }

  static ssize_t selectPadding(nghttp2_session*, const nghttp2_frame* frame, size_t maxPayloadLen, void* user) {
    auto& self = *static_cast<Nghttp2Server*>(user);
    return static_cast<ssize_t>(std::min(maxPayloadLen, std::max(frame->hd.length, self.options_.padTo)));
  }

  nghttp2_session* server_ = nullptr;
  std::vector<ResponseSpec> specs_;
  ServerOptions options_;
  std::vector<StreamState> state_;
  std::deque<std::string> statusText_;
  std::deque<Fields> fieldStore_;
};

std::string serve(const std::vector<ResponseSpec>& specs, const ServerOptions& options = {}) {
  return Nghttp2Server().run(specs, options);
}

// Frame headers of a server byte stream (after an optional 101 head).
struct FrameInfo {
  uint8_t type;
  uint8_t flags;
  int32_t stream;
  uint32_t length;
};
std::vector<FrameInfo> frames(std::string_view s) {
  if (!s.empty() && s[0] == 'H') {
    s.remove_prefix(s.find("\r\n\r\n") + 4);
  }
  std::vector<FrameInfo> out;
  const auto* p = reinterpret_cast<const uint8_t*>(s.data());
  size_t at = 0;
  while (at + 9 <= s.size()) {
    FrameInfo f;
    f.length = (uint32_t{p[at]} << 16) | (uint32_t{p[at + 1]} << 8) | p[at + 2];
    f.type = p[at + 3];
    f.flags = p[at + 4];
    f.stream = static_cast<int32_t>(((uint32_t{p[at + 5]} << 24) | (uint32_t{p[at + 6]} << 16) |
                                     (uint32_t{p[at + 7]} << 8) | p[at + 8]) & 0x7fffffff);
    out.push_back(f);
    at += 9 + f.length;
  }
  return out;
}

// ---------------------------------------------------------------------------

struct Collect : H2ResponseHandler {
  // A damaged stream may open a stream id again after it closed (the decoder
  // keeps no set of closed ids); valid streams never do.
  void onH2Response(int32_t id, model::Response&& r) override {
    EXPECT_FALSE(ended) << "outcome after the end";
    EXPECT_TRUE(damaged || responses.count(id) + missing.count(id) == 0) << "two outcomes for stream " << id;
    order.push_back(id);
    responses.emplace(id, std::move(r));
  }
  void onH2NoResponse(int32_t id, http::NoResponse reason) override {
    EXPECT_FALSE(ended) << "outcome after the end";
    EXPECT_TRUE(damaged || responses.count(id) + missing.count(id) == 0) << "two outcomes for stream " << id;
    order.push_back(-id);
    missing.emplace(id, reason);
  }
  void onH2GoAway(int32_t last) override { goAways.push_back(last); }
  void onH2End(http::NoResponse reason) override {
    EXPECT_FALSE(ended);
    ended = true;
    endReason = reason;
  }

  // Everything observable, for comparing two decodings.
  std::string summary() const {
    std::ostringstream os;
    for (const auto& [id, r] : responses) {
      os << id << ":" << r.status << "|";
      for (const model::HeaderField& h : r.headers) {
        os << h.name << "=" << h.value << ";";
      }
      os << "|" << r.body << "|" << r.bodyLength << "|" << r.bodyHash << "|" << r.bodyTruncated
         << r.headersTruncated << "|" << r.tsNs << "\n";
    }
    for (const auto& [id, reason] : missing) {
      os << "missing " << id << " " << toString(reason) << "\n";
    }
    for (int32_t id : order) {
      os << id << ",";
    }
    for (int32_t g : goAways) {
      os << " goaway " << g;
    }
    os << " end " << ended << toString(endReason);
    return os.str();
  }

  bool damaged = false;
  std::map<int32_t, model::Response> responses;
  std::map<int32_t, http::NoResponse> missing;
  std::vector<int32_t> order;
  std::vector<int32_t> goAways;
  bool ended = false;
  http::NoResponse endReason = http::NoResponse::kUnpairable;
};

void expectIdentities(const H2ResponseStats& s) {
  EXPECT_EQ(load(s.streamsOpened), load(s.responses) + load(s.reset) + load(s.evicted) + load(s.malformedStreams) +
                                       load(s.abandoned) + load(s.openStreams));
  EXPECT_EQ(load(s.bytesIn), load(s.bytesDecoded) + load(s.bytesIgnored));
}

struct Decoded {
  Collect out;
  H2ResponseStats stats;
};

// Decodes `bytes` cut at `cuts` (ascending offsets), chunk i stamped i + 1, then ends it.
std::unique_ptr<Decoded> decode(const std::string& bytes, const std::vector<size_t>& cuts = {},
                            http::ResponseLimits rl = {}, H2ResponseLimits hl = {}, bool damaged = false) {
  auto run = std::make_unique<Decoded>();
  run->out.damaged = damaged;
  {
    H2ResponseDecoder d(run->out, rl, hl, run->stats);
    size_t at = 0;
    uint64_t ts = 1;
    for (size_t c : cuts) {
      d.onData(asBytes(std::string_view(bytes).substr(at, c - at)), ts++);
      at = c;
    }
    d.onData(asBytes(std::string_view(bytes).substr(at)), ts);
    d.onEnd(flow::EndReason::kFin);
    EXPECT_EQ(d.bufferedBytes(), 0u);
  }
  expectIdentities(run->stats);
  return run;
}

std::string bodyOf(size_t n, char seed) {
  std::string s(n, '\0');
  for (size_t i = 0; i < n; ++i) {
    s[i] = static_cast<char>('a' + (seed + i * 7) % 26);
  }
  return s;
}

// ---------------------------------------------------------------------------

TEST(H2ResponseDecoder, ConcurrentStreamsInterleaveAndSplitBodies) {
  std::vector<ResponseSpec> specs(3);
  specs[0].body = bodyOf(1000, 1);
  specs[0].chunk = 100;
  specs[0].headers = {{"content-type", "text/plain"}, {"x-a", "1"}};
  specs[1].status = 404;
  specs[1].body = bodyOf(5000, 2);
  specs[1].chunk = 100;
  specs[2].body = bodyOf(70000, 3);  // more than one default window: the big windows are used
  specs[2].chunk = 1000;
  const std::string bytes = serve(specs);
  // The fixture really interleaves: DATA frames switch between streams and
  // come back.
  int32_t last = 0;
  size_t switches = 0;
  size_t dataFrames = 0;
  for (const FrameInfo& f : frames(bytes)) {
    if (f.type == 0) {
      ++dataFrames;
      switches += (last != 0 && f.stream != last) ? 1 : 0;
      last = f.stream;
    }
  }
  EXPECT_GT(dataFrames, 100u);
  EXPECT_GT(switches, 3u);

  auto run = decode(bytes);
  ASSERT_EQ(run->out.responses.size(), 3u);
  const model::Response& a = run->out.responses.at(1);
  EXPECT_EQ(a.status, 200);
  EXPECT_EQ(a.body, specs[0].body);
  EXPECT_EQ(a.header("content-type"), "text/plain");
  EXPECT_EQ(a.header("x-a"), "1");
  EXPECT_EQ(run->out.responses.at(3).status, 404);
  EXPECT_EQ(run->out.responses.at(3).body, specs[1].body);
  const model::Response& c = run->out.responses.at(5);
  EXPECT_EQ(c.bodyLength, 70000u);
  EXPECT_EQ(c.bodyHash, base::fnv1a64(specs[2].body));
  EXPECT_FALSE(c.bodyTruncated);
  for (const auto& [id, r] : run->out.responses) {
    for (const model::HeaderField& h : r.headers) {
      EXPECT_NE(h.name[0], ':');  // pseudo-headers are not headers
    }
  }
  EXPECT_EQ(load(run->stats.responses), 3u);
  EXPECT_EQ(load(run->stats.openStreams), 0u);
  EXPECT_TRUE(run->out.ended);
  EXPECT_EQ(run->out.endReason, http::NoResponse::kStreamEnded);
}

TEST(H2ResponseDecoder, GrpcTrailersAreAppendedAfterTheHeaders) {
  std::vector<ResponseSpec> specs(2);
  specs[0].headers = {{"content-type", "application/grpc"}};
  specs[0].body = std::string("\0\0\0\0\x03" "abc", 8);
  specs[0].trailers = {{"grpc-status", "0"}, {"grpc-message", "ok"}};
  // Trailers-only: one HEADERS with END_STREAM.
  specs[1].headers = {{"content-type", "application/grpc"}, {"grpc-status", "5"}};
  const std::string bytes = serve(specs);
  auto run = decode(bytes);
  ASSERT_EQ(run->out.responses.size(), 2u);
  const model::Response& r = run->out.responses.at(1);
  ASSERT_EQ(r.headers.size(), 3u);
  EXPECT_EQ(r.headers[0].name, "content-type");
  EXPECT_EQ(r.headers[1].name, "grpc-status");
  EXPECT_EQ(r.headers[1].value, "0");
  EXPECT_EQ(r.headers[2].value, "ok");
  EXPECT_EQ(r.body, specs[0].body);
  EXPECT_EQ(run->out.responses.at(3).header("grpc-status"), "5");
  EXPECT_EQ(run->out.responses.at(3).bodyLength, 0u);
  EXPECT_EQ(load(run->stats.trailers), 1u);
}

TEST(H2ResponseDecoder, InterimResponsesAreSkipped) {
  std::vector<ResponseSpec> specs(1);
  specs[0].interim = {100, 103};
  specs[0].status = 201;
  specs[0].body = "made";
  auto run = decode(serve(specs));
  ASSERT_EQ(run->out.responses.size(), 1u);
  EXPECT_EQ(run->out.responses.at(1).status, 201);
  EXPECT_EQ(run->out.responses.at(1).body, "made");
  EXPECT_EQ(load(run->stats.interim), 2u);
  EXPECT_EQ(load(run->stats.streamsOpened), 1u);
}

TEST(H2ResponseDecoder, ResetStreamGetsNoResponseOthersDo) {
  std::vector<ResponseSpec> specs(2);
  specs[0].body = bodyOf(500, 4);
  specs[0].chunk = 100;
  specs[0].resetAfter = 200;
  specs[1].body = "fine";
  const std::string bytes = serve(specs);
  bool sawRst = false;
  for (const FrameInfo& f : frames(bytes)) {
    sawRst = sawRst || (f.type == 3 && f.stream == 1);
  }
  ASSERT_TRUE(sawRst);
  auto run = decode(bytes);
  ASSERT_EQ(run->out.missing.size(), 1u);
  EXPECT_EQ(run->out.missing.at(1), http::NoResponse::kStreamEnded);
  EXPECT_EQ(run->out.responses.at(3).body, "fine");
  EXPECT_EQ(load(run->stats.reset), 1u);
}

TEST(H2ResponseDecoder, PaddedFramesFromNghttp2) {
  std::vector<ResponseSpec> specs(2);
  specs[0].body = bodyOf(3000, 5);
  specs[0].chunk = 300;
  specs[0].trailers = {{"x-checksum", "abc"}};
  specs[1].body = "x";
  ServerOptions o;
  o.padTo = 512;
  const std::string bytes = serve(specs, o);
  size_t padded = 0;
  for (const FrameInfo& f : frames(bytes)) {
    padded += (f.flags & 0x8) != 0 ? 1 : 0;
  }
  EXPECT_GT(padded, 5u);
  auto run = decode(bytes);
  EXPECT_EQ(run->out.responses.at(1).body, specs[0].body);
  EXPECT_EQ(run->out.responses.at(1).header("x-checksum"), "abc");
  EXPECT_EQ(run->out.responses.at(3).body, "x");
}

TEST(H2ResponseDecoder, LargeHeaderBlockComesInContinuations) {
  std::vector<ResponseSpec> specs(1);
  specs[0].headers = {{"x-big", std::string(40000, 'v')}, {"x-after", "yes"}};
  specs[0].body = "b";
  const std::string bytes = serve(specs);
  size_t continuations = 0;
  for (const FrameInfo& f : frames(bytes)) {
    continuations += f.type == 9 ? 1 : 0;
  }
  ASSERT_GE(continuations, 2u);
  auto run = decode(bytes);
  const model::Response& r = run->out.responses.at(1);
  EXPECT_EQ(r.header("x-big").size(), 40000u);
  EXPECT_EQ(r.header("x-after"), "yes");
  EXPECT_FALSE(r.headersTruncated);
  // The same over the header limit: the response is kept, the fields are cut.
  http::ResponseLimits small;
  small.maxHeaderBytes = 1000;
  auto cut = decode(bytes, {}, small);
  EXPECT_TRUE(cut->out.responses.at(1).headersTruncated);
  EXPECT_FALSE(cut->out.responses.at(1).hasHeader("x-big"));
  EXPECT_EQ(load(cut->stats.headersTruncated), 1u);
}

TEST(H2ResponseDecoder, DynamicTableCarriesAcrossStreams) {
  std::vector<ResponseSpec> specs(6);
  for (auto& s : specs) {
    s.headers = {{"x-custom-header", "a fairly long value that the encoder indexes"}, {"server", "fixture"}};
    s.body = "ok";
  }
  const std::string bytes = serve(specs);
  std::vector<uint32_t> blockSizes;
  for (const FrameInfo& f : frames(bytes)) {
    if (f.type == 1) {
      blockSizes.push_back(f.length);
    }
  }
  ASSERT_EQ(blockSizes.size(), 6u);
  EXPECT_LT(blockSizes[5] * 3, blockSizes[0]);  // later blocks only reference the table
  auto run = decode(bytes);
  ASSERT_EQ(run->out.responses.size(), 6u);
  for (const auto& [id, r] : run->out.responses) {
    EXPECT_EQ(r.header("x-custom-header"), "a fairly long value that the encoder indexes") << id;
    EXPECT_EQ(r.header("server"), "fixture");
  }
}

TEST(H2ResponseDecoder, UpgradeHeadIsSkippedAndStreamOneAnswers) {
  std::vector<ResponseSpec> specs(1);
  specs[0].body = "upgraded";
  ServerOptions o;
  o.upgrade = true;
  const std::string head = "HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: h2c\r\n\r\n";
  const std::string bytes = head + serve(specs, o);
  auto run = decode(bytes);
  ASSERT_EQ(run->out.responses.size(), 1u);
  EXPECT_EQ(run->out.responses.at(1).body, "upgraded");
  EXPECT_EQ(load(run->stats.upgraded), 1u);
  EXPECT_EQ(load(run->stats.decodeErrors), 0u);
  // Byte by byte, the head too.
  std::vector<size_t> cuts;
  for (size_t i = 1; i < bytes.size(); ++i) {
    cuts.push_back(i);
  }
  auto split = decode(bytes, cuts);
  EXPECT_EQ(split->out.responses.at(1).body, "upgraded");
  // A head that is not a 101 is not HTTP/2.
  auto bad = decode("HTTP/1.1 200 OK\r\n\r\n" + serve(specs, o));
  EXPECT_EQ(load(bad->stats.badPreface), 1u);
  EXPECT_TRUE(bad->out.responses.empty());
}

// A compact stream with every feature the frame parser handles, for the cut tests.
std::string richFixture() {
  H2Writer w;
  w.windowUpdate(0);
  w.headers(1, {{":status", "103"}, {"link", "</a.css>"}}, false);
  w.headers(3, {{":status", "200"}, {"x-k", "v"}}, false, 3, true, 3);  // padded, priority, 2 CONTINUATIONs
  w.headers(1, {{":status", "200"}, {"x-k", "v"}, {"content-type", "text/plain"}}, false, 0, true);
  w.pushPromise(1, 2, {{":method", "GET"}, {":path", "/pushed"}, {"x-pushed", "abc"}});
  w.data(3, "hel", false, 4);
  w.ping();
  w.data(1, "one", false);
  w.headers(2, {{":status", "200"}, {"x-pushed", "abc"}}, false);  // pushed stream: ignored
  w.data(2, "pushed body", true);
  w.data(3, "lo", false);
  w.headers(5, {{":status", "500"}, {"x-pushed", "abc"}}, false);
  w.rst(5);
  w.data(1, "", false, 2);
  w.headers(3, {{"grpc-status", "0"}}, true, 1, false, 2);  // trailers in 2 pieces
  w.headers(7, {{":status", "204"}, {"x-k", "v"}}, true);
  w.goAway(9);
  w.data(1, "!", true);
  w.headers(9, {{":status", "200"}}, false);  // left open at the end
  return w.out;
}

void checkRich(const Decoded& run) {
  ASSERT_EQ(run.out.responses.size(), 3u) << run.out.summary();
  const model::Response& one = run.out.responses.at(1);
  EXPECT_EQ(one.status, 200);
  EXPECT_EQ(one.body, "one!");
  EXPECT_EQ(one.header("content-type"), "text/plain");
  const model::Response& three = run.out.responses.at(3);
  EXPECT_EQ(three.body, "hello");
  ASSERT_EQ(three.headers.size(), 2u);
  EXPECT_EQ(three.headers[1].name, "grpc-status");
  EXPECT_EQ(run.out.responses.at(7).status, 204);
  EXPECT_EQ(run.out.missing.at(5), http::NoResponse::kStreamEnded);
  EXPECT_EQ(run.out.missing.at(9), http::NoResponse::kStreamEnded);
  EXPECT_EQ(run.out.goAways, std::vector<int32_t>{9});
  EXPECT_EQ(load(run.stats.pushPromises), 1u);
  EXPECT_EQ(load(run.stats.interim), 1u);
  EXPECT_EQ(load(run.stats.reset), 1u);
  EXPECT_EQ(load(run.stats.abandoned), 1u);
  EXPECT_EQ(load(run.stats.decodeErrors), 0u);
}

TEST(H2ResponseDecoder, RichFixtureDecodes) {
  auto run = decode(richFixture());
  checkRich(*run);
  // tsNs is the chunk of the stream's first HEADERS byte.
  const std::string bytes = richFixture();
  auto byByte = decode(bytes, [&] {
    std::vector<size_t> c;
    for (size_t i = 1; i < bytes.size(); ++i) {
      c.push_back(i);
    }
    return c;
  }());
  checkRich(*byByte);
  const size_t firstHeaders1 = 9 + 6 + 9 + 4;  // SETTINGS, WINDOW_UPDATE
  EXPECT_EQ(byByte->out.responses.at(1).tsNs, firstHeaders1 + 1);
}

TEST(H2ResponseDecoder, ResultDoesNotDependOnTheCuts) {
  const std::string bytes = richFixture();
  const std::string whole = decode(bytes)->out.summary();
  // Timestamps depend on the cuts; everything else must not.
  auto strip = [](const Decoded& r) {
    Collect c;
    for (const auto& [id, resp] : r.out.responses) {
      model::Response copy = resp;
      copy.tsNs = 0;
      c.responses.emplace(id, std::move(copy));
    }
    c.missing = r.out.missing;
    c.order = r.out.order;
    c.goAways = r.out.goAways;
    c.ended = r.out.ended;
    c.endReason = r.out.endReason;
    // The counters too, bytes included.
    const H2ResponseStats& st = r.stats;
    std::string counters;
    for (const std::atomic<uint64_t>* v :
         {&st.frames, &st.framesIgnored, &st.streamsOpened, &st.responses, &st.reset, &st.abandoned, &st.interim,
          &st.trailers, &st.pushPromises, &st.bytesDecoded, &st.bytesIgnored}) {
      counters += std::to_string(load(*v)) + ",";
    }
    return c.summary() + " " + counters;
  };
  const std::string expected = strip(*decode(bytes));
  for (size_t i = 1; i < bytes.size(); ++i) {
    ASSERT_EQ(strip(*decode(bytes, {i})), expected) << "cut at " << i;
  }
  for (size_t i = 1; i < bytes.size(); ++i) {
    for (size_t j = i + 1; j < bytes.size(); ++j) {
      auto run = decode(bytes, {i, j});
      ASSERT_EQ(strip(*run), expected) << "cuts at " << i << ", " << j;
    }
  }
  (void)whole;
}

TEST(H2ResponseDecoder, Nghttp2StreamDoesNotDependOnTheCuts) {
  std::vector<ResponseSpec> specs(3);
  specs[0].body = bodyOf(2000, 6);
  specs[0].chunk = 150;
  specs[0].trailers = {{"grpc-status", "0"}};
  specs[1].interim = {103};
  specs[1].body = bodyOf(700, 7);
  specs[1].chunk = 64;
  specs[2].resetAfter = 10;
  specs[2].body = bodyOf(100, 8);
  ServerOptions o;
  o.padTo = 80;
  const std::string bytes = serve(specs, o);
  auto whole = decode(bytes);
  ASSERT_EQ(whole->out.responses.size(), 2u);
  for (size_t i = 1; i < bytes.size(); ++i) {
    auto run = decode(bytes, {i});
    ASSERT_EQ(run->out.responses.size(), 2u) << i;
    ASSERT_EQ(run->out.responses.at(1).bodyHash, whole->out.responses.at(1).bodyHash) << i;
    ASSERT_EQ(run->out.responses.at(3).body, whole->out.responses.at(3).body) << i;
    ASSERT_EQ(run->out.responses.at(1).headers.size(), whole->out.responses.at(1).headers.size()) << i;
    ASSERT_EQ(run->out.missing, whole->out.missing) << i;
  }
}

TEST(H2ResponseDecoder, GapAbandonsOpenStreams) {
  H2Writer w;
  w.headers(1, {{":status", "200"}}, false);
  w.headers(3, {{":status", "200"}}, false);
  w.data(1, "abc", false);
  Decoded run;
  {
    H2ResponseDecoder d(run.out, {}, {}, run.stats);
    d.onData(asBytes(w.out), 1);
    EXPECT_EQ(d.openStreams(), 2u);
    EXPECT_GT(d.bufferedBytes(), 0u);
    d.onGap(100);
    EXPECT_FALSE(d.decoding());
    EXPECT_EQ(d.bufferedBytes(), 0u);
    d.onData(asBytes("more bytes"), 2);
  }
  EXPECT_EQ(run.out.missing.at(1), http::NoResponse::kGap);
  EXPECT_EQ(run.out.missing.at(3), http::NoResponse::kGap);
  EXPECT_EQ(run.out.order, (std::vector<int32_t>{-1, -3}));
  EXPECT_EQ(run.out.endReason, http::NoResponse::kGap);
  EXPECT_EQ(load(run.stats.gaps), 1u);
  EXPECT_EQ(load(run.stats.bytesIgnored), 10u);
  expectIdentities(run.stats);
}

TEST(H2ResponseDecoder, MalformedInputIsCountedNotFatal) {
  // Not starting with SETTINGS.
  {
    H2Writer w(false);
    w.ping();
    auto run = decode(w.out);
    EXPECT_EQ(load(run->stats.badPreface), 1u);
    EXPECT_EQ(load(run->stats.decodeErrors), 1u);
  }
  // A frame over the length limit.
  {
    H2Writer w;
    w.headers(1, {{":status", "200"}}, false);
    w.data(1, std::string(2000, 'x'), true);
    H2ResponseLimits hl;
    hl.maxFrameLength = 1000;
    auto run = decode(w.out, {}, {}, hl);
    EXPECT_EQ(load(run->stats.frameTooLarge), 1u);
    EXPECT_EQ(run->out.missing.at(1), http::NoResponse::kParseError);
  }
  // A header block that does not inflate.
  {
    H2Writer w;
    w.frame(0x1, 0x4, 1, std::string("\xff\xff\xff\xff\xff", 5));
    auto run = decode(w.out);
    EXPECT_EQ(load(run->stats.hpackErrors), 1u);
  }
  // Padding longer than the frame, CONTINUATION out of place, DATA on stream 0.
  for (int variant = 0; variant < 3; ++variant) {
    H2Writer w;
    if (variant == 0) {
      w.frame(0x0, 0x8, 1, std::string("\x09xyz", 4));
    } else if (variant == 1) {
      w.frame(0x9, 0x4, 1, "");
    } else {
      w.frame(0x0, 0, 0, "abc");
    }
    auto run = decode(w.out);
    EXPECT_EQ(load(run->stats.decodeErrors), 1u) << variant;
  }
  // Stream-level: no :status, DATA before headers, trailers without END_STREAM, a bad status.
  {
    H2Writer w;
    w.headers(1, {{"x-no-status", "1"}}, false);   // ignored: nothing to pair
    w.headers(3, {{":status", "103"}}, false);
    w.data(3, "early", true);                       // DATA before the final headers
    w.headers(5, {{":status", "200"}}, false);
    w.headers(5, {{"x-trailer", "1"}}, false);      // trailers must end the stream
    w.headers(7, {{":status", "2x0"}}, true);
    w.headers(9, {{":status", "200"}}, false);
    w.headers(9, {{":status", "200"}, {"x-t", "1"}}, true);  // trailers with a pseudo-header
    w.headers(11, {{":status", "200"}}, true);
    auto run = decode(w.out);
    EXPECT_EQ(load(run->stats.headerBlocksIgnored), 1u);
    EXPECT_EQ(load(run->stats.malformedStreams), 3u);
    EXPECT_EQ(run->out.missing.at(3), http::NoResponse::kParseError);
    EXPECT_EQ(run->out.missing.at(5), http::NoResponse::kParseError);
    EXPECT_EQ(run->out.missing.at(7), http::NoResponse::kParseError);
    EXPECT_EQ(load(run->stats.badTrailers), 1u);
    EXPECT_FALSE(run->out.responses.at(9).hasHeader("x-t"));
    EXPECT_EQ(run->out.responses.at(11).status, 200);
  }
}

TEST(H2ResponseDecoder, RandomDamageNeverBreaksTheAccounting) {
  const std::string good = richFixture();
  std::mt19937 rng(12345);
  for (int round = 0; round < 3000; ++round) {
    std::string bytes = good;
    const int edits = 1 + static_cast<int>(rng() % 4);
    for (int e = 0; e < edits; ++e) {
      const size_t at = rng() % bytes.size();
      switch (rng() % 3) {
        case 0:
          bytes[at] = static_cast<char>(rng());
          break;
        case 1:
          bytes.erase(at, 1 + rng() % 8);
          break;
        default:
          bytes.insert(at, std::string(1 + rng() % 8, static_cast<char>(rng())));
          break;
      }
      if (bytes.empty()) {
        bytes = "x";
      }
    }
    const size_t cut = rng() % bytes.size();
    auto run = decode(bytes, cut == 0 ? std::vector<size_t>{} : std::vector<size_t>{cut}, {}, {}, true);
    ASSERT_TRUE(run->out.ended);
  }
  // Pure garbage.
  for (int round = 0; round < 500; ++round) {
    std::string bytes(1 + rng() % 200, '\0');
    for (char& c : bytes) {
      c = static_cast<char>(rng());
    }
    auto run = decode(bytes, {}, {}, {}, true);
    ASSERT_TRUE(run->out.ended);
  }
}

TEST(H2ResponseDecoder, LimitsAreCounted) {
  // Streams: the least recently used is evicted.
  {
    H2Writer w;
    w.headers(1, {{":status", "200"}}, false);
    w.headers(3, {{":status", "200"}}, false);
    w.data(1, "a", false);
    w.headers(5, {{":status", "200"}}, false);  // evicts 3
    w.data(3, "late", false);                    // ignored
    w.headers(3, {{"grpc-status", "0"}}, true);  // trailers of an evicted stream: ignored
    w.data(1, "b", true);
    w.data(5, "c", true);
    H2ResponseLimits hl;
    hl.maxStreams = 2;
    auto run = decode(w.out, {}, {}, hl);
    EXPECT_EQ(run->out.missing.at(3), http::NoResponse::kUnpairable);
    EXPECT_EQ(run->out.responses.at(1).body, "ab");
    EXPECT_EQ(run->out.responses.at(5).body, "c");
    EXPECT_EQ(load(run->stats.evicted), 1u);
    EXPECT_EQ(load(run->stats.headerBlocksIgnored), 1u);
    EXPECT_GE(load(run->stats.framesIgnored), 1u);
  }
  // Body: a prefix is kept, the hash and length cover all.
  {
    H2Writer w;
    w.headers(1, {{":status", "200"}}, false);
    w.data(1, "0123456789", false);
    w.data(1, "abcdef", true);
    http::ResponseLimits rl;
    rl.maxBodyBytes = 12;
    auto run = decode(w.out, {}, rl);
    const model::Response& r = run->out.responses.at(1);
    EXPECT_EQ(r.body, "0123456789ab");
    EXPECT_EQ(r.bodyLength, 16u);
    EXPECT_EQ(r.bodyHash, base::fnv1a64("0123456789abcdef"));
    EXPECT_TRUE(r.bodyTruncated);
    EXPECT_EQ(load(run->stats.bodiesTruncated), 1u);
  }
  // Buffered bytes across streams.
  {
    H2Writer w;
    w.headers(1, {{":status", "200"}}, false);
    w.headers(3, {{":status", "200"}}, false);
    w.data(1, std::string(60, 'a'), false);
    w.data(3, std::string(60, 'b'), false);
    w.data(1, "", true);
    w.data(3, "", true);
    H2ResponseLimits hl;
    hl.maxBufferedBytes = 100;
    auto run = decode(w.out, {}, {}, hl);
    EXPECT_EQ(run->out.responses.at(1).body.size(), 60u);
    EXPECT_EQ(run->out.responses.at(3).body.size(), 40u);
    EXPECT_EQ(run->out.responses.at(3).bodyLength, 60u);
    EXPECT_TRUE(run->out.responses.at(3).bodyTruncated);
    EXPECT_EQ(load(run->stats.bufferLimited), 1u);
  }
  // The HPACK table: up to the limit is fine, beyond is a decode error.
  for (size_t table : {size_t{60000}, size_t{100000}}) {
    H2Writer w(true, table);
    nghttp2_hd_deflate_change_table_size(w.deflater(), table);
    w.headers(1, {{":status", "200"}, {"x-v", std::string(100, 'q')}}, true);
    auto run = decode(w.out);
    if (table <= H2ResponseLimits().maxDynamicTableSize) {
      EXPECT_EQ(run->out.responses.size(), 1u);
    } else {
      EXPECT_EQ(load(run->stats.hpackErrors), 1u);
      EXPECT_TRUE(run->out.responses.empty());
    }
  }
}

TEST(H2ResponseDecoder, EndWithoutEndStreamAbandons) {
  H2Writer w;
  w.headers(1, {{":status", "200"}}, false);
  w.data(1, "partial", false);
  w.out += std::string("\x00\x00", 2);  // half a frame header
  auto run = decode(w.out);
  EXPECT_EQ(run->out.missing.at(1), http::NoResponse::kStreamEnded);
  EXPECT_EQ(load(run->stats.abandoned), 1u);
  EXPECT_EQ(load(run->stats.openStreams), 0u);
}

}  // namespace
}  // namespace shadowtap::h2
