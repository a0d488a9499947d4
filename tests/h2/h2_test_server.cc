#include "h2_test_server.h"

#include <arpa/inet.h>
#include <nghttp2/nghttp2.h>
#include <openssl/ssl.h>
#include <poll.h>
#include <signal.h>
#include <unistd.h>

#include <cstdlib>

#include <cstring>
#include <functional>
#include <utility>
#include <vector>
#include <map>
#include <memory>
#include <string>

namespace shadowtap::h2::test {
namespace {

struct Conn {
  H2TestServer* server;
  std::map<int32_t, model::Request> streams;
  std::map<int32_t, std::string> bodies;  // response bodies being sent
  std::map<int32_t, std::vector<std::pair<std::string, std::string>>> trailers;
  std::function<void(model::Request&&)> record;
  size_t responseBody;
  bool inTrailers = false;
};

std::string_view field(const model::Request& r, std::string_view name) { return r.header(name); }

using Fields = std::vector<std::pair<std::string, std::string>>;

std::vector<nghttp2_nv> toNv(const Fields& fields) {
  std::vector<nghttp2_nv> nv;
  for (const auto& [n, v] : fields) {
    nv.push_back({reinterpret_cast<uint8_t*>(const_cast<char*>(n.data())),
                  reinterpret_cast<uint8_t*>(const_cast<char*>(v.data())), n.size(), v.size(), NGHTTP2_NV_FLAG_NONE});
  }
  return nv;
}

// Every "name=value" value of the request field `name`, in order.
Fields pairs(const model::Request& r, std::string_view name) {
  Fields out;
  for (const model::HeaderField& f : r.headers) {
    const size_t eq = f.value.find('=');
    if (f.name == name && eq != std::string::npos) {
      out.emplace_back(f.value.substr(0, eq), f.value.substr(eq + 1));
    }
  }
  return out;
}

ssize_t readResponse(nghttp2_session* session, int32_t id, uint8_t* buf, size_t len, uint32_t* flags,
                     nghttp2_data_source*, void* user) {
  Conn& c = *static_cast<Conn*>(user);
  std::string& b = c.bodies[id];
  const size_t n = std::min(len, b.size());
  std::memcpy(buf, b.data(), n);
  b.erase(0, n);
  if (b.empty()) {
    *flags |= NGHTTP2_DATA_FLAG_EOF;
    auto t = c.trailers.find(id);
    if (t != c.trailers.end()) {
      *flags |= NGHTTP2_DATA_FLAG_NO_END_STREAM;
      std::vector<nghttp2_nv> nv = toNv(t->second);
      nghttp2_submit_trailer(session, id, nv.data(), nv.size());
      c.trailers.erase(t);
    }
  }
  return static_cast<ssize_t>(n);
}

int onBeginHeaders(nghttp2_session*, const nghttp2_frame* frame, void* user) {
  Conn& c = *static_cast<Conn*>(user);
  if (frame->hd.type == NGHTTP2_HEADERS && frame->headers.cat == NGHTTP2_HCAT_REQUEST) {
    c.streams[frame->hd.stream_id].streamId = frame->hd.stream_id;
  }
  return 0;
}

int onHeader(nghttp2_session*, const nghttp2_frame* frame, const uint8_t* name, size_t namelen,
             const uint8_t* value, size_t valuelen, uint8_t flags, void* user) {
  Conn& c = *static_cast<Conn*>(user);
  model::Request& r = c.streams[frame->hd.stream_id];
  model::HeaderField f{std::string(reinterpret_cast<const char*>(name), namelen),
                std::string(reinterpret_cast<const char*>(value), valuelen), (flags & NGHTTP2_NV_FLAG_NO_INDEX) != 0};
  (frame->headers.cat == NGHTTP2_HCAT_REQUEST ? r.headers : r.trailers).push_back(std::move(f));
  return 0;
}

int onData(nghttp2_session*, uint8_t, int32_t id, const uint8_t* data, size_t len, void* user) {
  static_cast<Conn*>(user)->streams[id].body.append(reinterpret_cast<const char*>(data), len);
  return 0;
}

int onFrame(nghttp2_session* session, const nghttp2_frame* frame, void* user) {
  Conn& c = *static_cast<Conn*>(user);
  const int32_t id = frame->hd.stream_id;
  if ((frame->hd.type != NGHTTP2_HEADERS && frame->hd.type != NGHTTP2_DATA) ||
      (frame->hd.flags & NGHTTP2_FLAG_END_STREAM) == 0 || !c.streams.contains(id)) {
    return 0;
  }
  model::Request r = std::move(c.streams[id]);
  r.finishHttp2();
  c.streams.erase(id);
  const bool never = field(r, "x-respond-never") == "1";
  const bool reset = field(r, "x-respond-reset") == "1";
  const bool interim = field(r, "x-respond-interim") == "1";
  std::string status(field(r, "x-respond-status").empty() ? "200" : field(r, "x-respond-status"));
  std::string grpc(field(r, "x-respond-grpc"));
  std::string bodySize(field(r, "x-respond-body-size"));
  Fields headers = {{":status", status}};
  for (auto& f : pairs(r, "x-respond-header")) {
    headers.push_back(std::move(f));
  }
  Fields trailers;
  if (!grpc.empty()) {
    trailers.emplace_back("grpc-status", grpc);
  }
  for (auto& f : pairs(r, "x-respond-trailer")) {
    trailers.push_back(std::move(f));
  }
  c.record(std::move(r));
  if (never) {
    return 0;
  }
  if (reset) {
    nghttp2_submit_rst_stream(session, NGHTTP2_FLAG_NONE, id, NGHTTP2_INTERNAL_ERROR);
    return 0;
  }
  if (interim) {
    const Fields early = {{":status", "103"}, {"link", "</interim>"}};
    std::vector<nghttp2_nv> nv = toNv(early);
    nghttp2_submit_headers(session, NGHTTP2_FLAG_NONE, id, nullptr, nv.data(), nv.size(), nullptr);
  }
  if (!trailers.empty()) {
    c.trailers[id] = std::move(trailers);
  }
  c.bodies[id] = bodySize.empty() ? std::string(c.responseBody, 'r') : H2TestServer::bodyPattern(std::stoul(bodySize));
  std::vector<nghttp2_nv> nv = toNv(headers);
  nghttp2_data_provider dp{};
  dp.read_callback = readResponse;
  nghttp2_submit_response(session, id, nv.data(), nv.size(), &dp);
  return 0;
}

}  // namespace

std::string H2TestServer::bodyPattern(size_t n) {
  std::string s(n, '\0');
  for (size_t i = 0; i < n; ++i) {
    s[i] = static_cast<char>('a' + (i * 7 + i / 26) % 26);
  }
  return s;
}

TlsFiles TlsFiles::selfSigned(const std::string& dir, const std::string& name, const std::string& san) {
  TlsFiles f{dir + "/" + name + ".crt", dir + "/" + name + ".key"};
  const std::string cmd = "openssl req -x509 -newkey rsa:2048 -nodes -days 1 -subj /CN=" + name +
                          " -addext subjectAltName=" + (san.empty() ? "DNS:" + name : san) + " -keyout " + f.key +
                          " -out " + f.cert +
                          " >/dev/null 2>&1";
  if (std::system(cmd.c_str()) != 0) {
    return {};
  }
  return f;
}

namespace {

// ALPN: h2 or nothing (the handshake then fails with no_application_protocol).
int selectH2(SSL*, const unsigned char** out, unsigned char* outlen, const unsigned char* in, unsigned int inlen,
             void*) {
  static const unsigned char kH2[] = {2, 'h', '2'};
  unsigned char* chosen = nullptr;
  if (SSL_select_next_proto(&chosen, outlen, kH2, sizeof(kH2), in, inlen) != OPENSSL_NPN_NEGOTIATED) {
    return SSL_TLSEXT_ERR_ALERT_FATAL;
  }
  *out = chosen;
  return SSL_TLSEXT_ERR_OK;
}

}  // namespace

H2TestServer::H2TestServer(uint32_t maxConcurrentStreams, size_t responseBody, const TlsFiles& tls)
    : maxConcurrent_(maxConcurrentStreams), responseBody_(responseBody) {
  if (!tls.cert.empty()) {
    // OpenSSL writes with write(), not send(MSG_NOSIGNAL): a peer that went
    // would end the test process (the agent ignores SIGPIPE too, main.cc).
    signal(SIGPIPE, SIG_IGN);
    SSL_CTX* ctx = SSL_CTX_new(TLS_server_method());
    SSL_CTX_use_certificate_chain_file(ctx, tls.cert.c_str());
    SSL_CTX_use_PrivateKey_file(ctx, tls.key.c_str(), SSL_FILETYPE_PEM);
    if (tls.alpn) {
      SSL_CTX_set_alpn_select_cb(ctx, selectH2, nullptr);
    }
    tlsCtx_ = ctx;
  }
  listenFd_ = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  bind(listenFd_, reinterpret_cast<sockaddr*>(&a), sizeof(a));
  listen(listenFd_, 64);
  socklen_t len = sizeof(a);
  getsockname(listenFd_, reinterpret_cast<sockaddr*>(&a), &len);
  port_ = ntohs(a.sin_port);
  acceptor_ = std::thread([this] { acceptLoop(); });
}

H2TestServer::~H2TestServer() {
  stop_ = true;
  shutdown(listenFd_, SHUT_RDWR);
  acceptor_.join();
  close(listenFd_);
  for (auto& t : workers_) {
    t.join();
  }
  SSL_CTX_free(static_cast<SSL_CTX*>(tlsCtx_));
}

std::vector<H2TestServer::TlsHandshake> H2TestServer::handshakes() {
  std::lock_guard<std::mutex> lock(mutex_);
  return handshakes_;
}

sockaddr_storage H2TestServer::address() const {
  sockaddr_storage ss{};
  auto* a = reinterpret_cast<sockaddr_in*>(&ss);
  a->sin_family = AF_INET;
  a->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  a->sin_port = htons(port_);
  return ss;
}

std::vector<model::Request> H2TestServer::requests() {
  std::lock_guard<std::mutex> lock(mutex_);
  return requests_;
}

size_t H2TestServer::requestCount() {
  std::lock_guard<std::mutex> lock(mutex_);
  return requests_.size();
}

void H2TestServer::dropConnections() { ++dropGeneration_; }

void H2TestServer::acceptLoop() {
  while (!stop_) {
    pollfd p{listenFd_, POLLIN, 0};
    if (poll(&p, 1, 20) <= 0) {
      continue;
    }
    const int fd = accept4(listenFd_, nullptr, nullptr, SOCK_CLOEXEC);
    if (fd < 0) {
      continue;
    }
    ++connections_;
    std::lock_guard<std::mutex> lock(mutex_);
    workers_.emplace_back([this, fd] { serve(fd); });
  }
}

void H2TestServer::serve(int fd) {
  const uint64_t generation = dropGeneration_;
  SSL* ssl = nullptr;
  if (tlsCtx_ != nullptr) {
    // A client that stops mid-handshake or mid-record cannot hold the server's stop.
    const timeval bound{5, 0};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &bound, sizeof(bound));
    ssl = SSL_new(static_cast<SSL_CTX*>(tlsCtx_));
    SSL_set_fd(ssl, fd);
    if (SSL_accept(ssl) != 1) {
      ++failedHandshakes_;
      SSL_free(ssl);
      close(fd);
      return;
    }
    const unsigned char* alpn = nullptr;
    unsigned int alpnLen = 0;
    SSL_get0_alpn_selected(ssl, &alpn, &alpnLen);
    const char* sni = SSL_get_servername(ssl, TLSEXT_NAMETYPE_host_name);
    std::lock_guard<std::mutex> lock(mutex_);
    handshakes_.push_back({sni != nullptr ? sni : "", std::string(reinterpret_cast<const char*>(alpn), alpnLen)});
  }
  // The connection's bytes, through TLS in TLS mode.
  const auto out = [&](const uint8_t* data, size_t n) {
    return ssl != nullptr ? SSL_write(ssl, data, static_cast<int>(n)) == static_cast<int>(n)
                          : send(fd, data, n, MSG_NOSIGNAL) == static_cast<ssize_t>(n);
  };
  const auto in = [&](uint8_t* buf, size_t n) -> ssize_t {
    if (ssl == nullptr) {
      return recv(fd, buf, n, 0);
    }
    size_t got = 0;
    return SSL_read_ex(ssl, buf, n, &got) == 1 ? static_cast<ssize_t>(got) : -1;
  };
  Conn c{this, {}, {}, {}, [this](model::Request&& r) {
           std::lock_guard<std::mutex> lock(mutex_);
           requests_.push_back(std::move(r));
         },
         responseBody_};
  nghttp2_session_callbacks* cb = nullptr;
  nghttp2_session_callbacks_new(&cb);
  nghttp2_session_callbacks_set_on_begin_headers_callback(cb, onBeginHeaders);
  nghttp2_session_callbacks_set_on_header_callback(cb, onHeader);
  nghttp2_session_callbacks_set_on_data_chunk_recv_callback(cb, onData);
  nghttp2_session_callbacks_set_on_frame_recv_callback(cb, onFrame);
  nghttp2_session* s = nullptr;
  nghttp2_session_server_new(&s, cb, &c);
  nghttp2_session_callbacks_del(cb);
  const nghttp2_settings_entry iv[] = {{NGHTTP2_SETTINGS_MAX_CONCURRENT_STREAMS, maxConcurrent_}};
  nghttp2_submit_settings(s, NGHTTP2_FLAG_NONE, iv, 1);
  uint8_t buf[16384];
  while (!stop_ && dropGeneration_ == generation) {
    const uint8_t* data = nullptr;
    ssize_t n;
    bool failed = false;
    while ((n = nghttp2_session_mem_send(s, &data)) > 0) {
      if (!out(data, static_cast<size_t>(n))) {
        failed = true;
        break;
      }
    }
    if (failed || (!nghttp2_session_want_read(s) && !nghttp2_session_want_write(s))) {
      break;
    }
    pollfd p{fd, POLLIN, 0};
    const bool buffered = ssl != nullptr && SSL_pending(ssl) > 0;
    if (!buffered && poll(&p, 1, 20) <= 0) {
      continue;
    }
    n = in(buf, sizeof(buf));
    if (n <= 0 || nghttp2_session_mem_recv(s, buf, static_cast<size_t>(n)) < 0) {
      break;
    }
  }
  nghttp2_session_del(s);
  if (ssl != nullptr) {
    SSL_free(ssl);
  }
  close(fd);
}

}  // namespace shadowtap::h2::test
