#pragma once

#include <sys/types.h>

#include <cstdint>
#include <memory>
#include <string>

struct ssl_ctx_st;
struct ssl_st;

namespace shadowtap::replay {

// What a connection offers in ALPN: HTTP/1.1 connections "http/1.1" (a
// server that offers h2 then stays on HTTP/1.1), HTTP/2 ones "h2".
enum class Alpn : uint8_t { kHttp1, kH2 };

// How a rule with tls=true talks to its mirror: an OpenSSL client context
// (TLS 1.2+, the certificate verified against `caFile` or the system's CAs
// unless verify is off, its name checked against the SNI name) and the name
// sent as SNI. Shared by the rule's connections, HTTP/1.1 and HTTP/2 (each
// session offers its own ALPN); immutable once made.
class TlsClientConfig {
 public:
  // `peer` (tlsPeer()): a name is sent as SNI and, with verify, must be on
  // the certificate; an IP address is not sent (SNI carries names only) and,
  // with verify, must be on the certificate as an IP address; empty: no SNI
  // and no name check. nullptr and *error (one line) when the context or the
  // CA file cannot be set up.
  static std::shared_ptr<const TlsClientConfig> make(bool verify, const std::string& caFile, const std::string& peer,
                                                     std::string* error);
  ~TlsClientConfig();
  TlsClientConfig(const TlsClientConfig&) = delete;
  TlsClientConfig& operator=(const TlsClientConfig&) = delete;

  ssl_ctx_st* context() const { return ctx_; }
  // The SNI name (empty for an address); the address checked instead.
  const std::string& serverName() const { return serverName_; }
  const std::string& address() const { return address_; }
  bool verify() const { return verify_; }

 private:
  TlsClientConfig() = default;
  ssl_ctx_st* ctx_ = nullptr;
  std::string serverName_;
  std::string address_;
  bool verify_ = true;
};

// The peer of a rule's mirror connections, whose certificate is checked: the
// host the requests are rewritten to when the rule names one (host=HOST[:PORT]),
// else the mirror target's host, a name (sent as SNI) or an address (not).
std::string tlsPeer(const std::string& literalHost, const std::string& mirrorHostPort);

// TLS over one connected non-blocking socket, client side. Calls look like
// send/recv: >0 bytes, 0 for the peer's close_notify or EOF (recv), -1 with
// errno EAGAIN when the socket must become readable or writable first (see
// wantsWrite()), any other errno for a failure.
class TlsSession {
 public:
  TlsSession(const TlsClientConfig& config, int fd, Alpn alpn = Alpn::kHttp1);
  ~TlsSession();
  TlsSession(const TlsSession&) = delete;
  TlsSession& operator=(const TlsSession&) = delete;

  // Drives the handshake: 1 done, 0 in progress (wait as wantsWrite() says),
  // -1 failed (error() says why).
  int handshake();
  ssize_t send(const void* data, size_t len);
  ssize_t recv(void* data, size_t len);
  // The last call stopped because the socket must become writable (not readable).
  bool wantsWrite() const { return wantWrite_; }
  // The protocol the server chose in ALPN once the handshake is done (empty:
  // it chose none).
  std::string alpnChosen() const;
  // Why the handshake or an I/O call failed, for the log.
  const std::string& error() const { return error_; }

 private:
  // Maps SSL_get_error of a call that returned `ret`: -1 with errno set.
  ssize_t fail(int ret);

  ssl_st* ssl_ = nullptr;
  bool wantWrite_ = false;
  std::string error_;
};

}  // namespace shadowtap::replay
