#include "replay/tls_client.h"

#include <arpa/inet.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include <cerrno>

namespace shadowtap::replay {
namespace {

std::string lastError(const char* what) {
  const unsigned long e = ERR_get_error();
  char buf[256];
  ERR_error_string_n(e, buf, sizeof(buf));
  ERR_clear_error();
  return std::string(what) + (e != 0 ? std::string(": ") + buf : std::string());
}

bool isAddressLiteral(const std::string& host) {
  unsigned char buf[16];
  return inet_pton(AF_INET, host.c_str(), buf) == 1 || inet_pton(AF_INET6, host.c_str(), buf) == 1;
}

// "name:port" / "[v6]:port" / "name" -> the host part.
std::string hostOf(const std::string& hostPort) {
  if (!hostPort.empty() && hostPort.front() == '[') {
    const size_t close = hostPort.find(']');
    return close == std::string::npos ? hostPort : hostPort.substr(1, close - 1);
  }
  const size_t colon = hostPort.rfind(':');
  return colon == std::string::npos || hostPort.find(':') != colon ? hostPort : hostPort.substr(0, colon);
}

}  // namespace

std::string tlsPeer(const std::string& literalHost, const std::string& mirrorHostPort) {
  return hostOf(literalHost.empty() ? mirrorHostPort : literalHost);
}

std::shared_ptr<const TlsClientConfig> TlsClientConfig::make(bool verify, const std::string& caFile,
                                                             const std::string& peer, std::string* error) {
  auto config = std::shared_ptr<TlsClientConfig>(new TlsClientConfig());
  config->ctx_ = SSL_CTX_new(TLS_client_method());
  if (!config->ctx_) {
    *error = lastError("cannot create a TLS client context");
    return nullptr;
  }
  SSL_CTX_set_min_proto_version(config->ctx_, TLS1_2_VERSION);
  SSL_CTX_set_mode(config->ctx_, SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
  config->verify_ = verify;
  (isAddressLiteral(peer) ? config->address_ : config->serverName_) = peer;
  if (verify) {
    SSL_CTX_set_verify(config->ctx_, SSL_VERIFY_PEER, nullptr);
    const int ok = caFile.empty() ? SSL_CTX_set_default_verify_paths(config->ctx_)
                                  : SSL_CTX_load_verify_locations(config->ctx_, caFile.c_str(), nullptr);
    if (ok != 1) {
      *error = lastError(caFile.empty() ? "cannot load the system's CA certificates"
                                        : ("tls-ca=" + caFile + ": cannot load the CA certificates").c_str());
      return nullptr;
    }
  } else {
    SSL_CTX_set_verify(config->ctx_, SSL_VERIFY_NONE, nullptr);
  }
  return config;
}

TlsClientConfig::~TlsClientConfig() {
  if (ctx_) {
    SSL_CTX_free(ctx_);
  }
}

std::string TlsSession::alpnChosen() const {
  const unsigned char* name = nullptr;
  unsigned int len = 0;
  if (ssl_) {
    SSL_get0_alpn_selected(ssl_, &name, &len);
  }
  return name == nullptr ? std::string() : std::string(reinterpret_cast<const char*>(name), len);
}

TlsSession::TlsSession(const TlsClientConfig& config, int fd, Alpn alpn) : ssl_(SSL_new(config.context())) {
  if (!ssl_) {
    return;
  }
  // Offer only the protocol the connection speaks (wire format: length, name):
  // a server that offers h2 then stays on HTTP/1.1 with an HTTP/1.1 connection.
  static const unsigned char kHttp1[] = {8, 'h', 't', 't', 'p', '/', '1', '.', '1'};
  static const unsigned char kH2[] = {2, 'h', '2'};
  if (alpn == Alpn::kH2) {
    SSL_set_alpn_protos(ssl_, kH2, sizeof(kH2));
  } else {
    SSL_set_alpn_protos(ssl_, kHttp1, sizeof(kHttp1));
  }
  SSL_set_fd(ssl_, fd);
  SSL_set_connect_state(ssl_);
  if (!config.serverName().empty()) {
    SSL_set_tlsext_host_name(ssl_, config.serverName().c_str());
    if (config.verify()) {
      SSL_set1_host(ssl_, config.serverName().c_str());
    }
  } else if (config.verify() && !config.address().empty()) {
    // A mirror given by address: its certificate must name that address
    // (an iPAddress subjectAltName), not merely chain to a trusted CA.
    X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(ssl_), config.address().c_str());
  }
}

TlsSession::~TlsSession() {
  if (ssl_) {
    SSL_free(ssl_);
  }
}

ssize_t TlsSession::fail(int ret) {
  const int e = SSL_get_error(ssl_, ret);
  wantWrite_ = e == SSL_ERROR_WANT_WRITE;
  if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE) {
    errno = EAGAIN;
    return -1;
  }
  if (e == SSL_ERROR_ZERO_RETURN) {
    return 0;
  }
  if (e == SSL_ERROR_SYSCALL && errno == 0) {
    return 0;  // EOF without close_notify: the peer closed
  }
  const long verify = SSL_get_verify_result(ssl_);
  error_ = verify != X509_V_OK ? std::string("certificate: ") + X509_verify_cert_error_string(verify)
                               : lastError("TLS");
  if (e != SSL_ERROR_SYSCALL) {
    errno = EPROTO;
  }
  return -1;
}

int TlsSession::handshake() {
  if (!ssl_) {
    error_ = "cannot create a TLS session";
    return -1;
  }
  ERR_clear_error();
  const int r = SSL_connect(ssl_);
  if (r == 1) {
    wantWrite_ = false;
    return 1;
  }
  const ssize_t f = fail(r);
  if (f < 0 && errno == EAGAIN) {
    return 0;
  }
  if (error_.empty()) {
    error_ = "the server closed the connection during the TLS handshake";
  }
  return -1;
}

ssize_t TlsSession::send(const void* data, size_t len) {
  ERR_clear_error();
  size_t written = 0;
  const int r = SSL_write_ex(ssl_, data, len, &written);
  if (r == 1) {
    wantWrite_ = false;
    return static_cast<ssize_t>(written);
  }
  const ssize_t f = fail(r);
  if (f == 0) {
    errno = EPIPE;
    return -1;
  }
  return f;
}

ssize_t TlsSession::recv(void* data, size_t len) {
  ERR_clear_error();
  size_t got = 0;
  const int r = SSL_read_ex(ssl_, data, len, &got);
  if (r == 1) {
    wantWrite_ = false;
    return static_cast<ssize_t>(got);
  }
  return fail(r);
}

}  // namespace shadowtap::replay
