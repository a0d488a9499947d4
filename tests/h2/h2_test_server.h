#pragma once

// A loopback HTTP/2 cleartext server for client tests: an nghttp2 server
// session per accepted connection on its own thread. Records every request
// (fields exactly as decoded, body, trailers) and answers according to
// request fields:
//   x-respond-status: N     -> :status N (default 200)
//   x-respond-grpc: N       -> response trailers with grpc-status N
//   x-respond-reset: 1      -> RST_STREAM (REFUSED_STREAM... INTERNAL_ERROR) instead of a response
//   x-respond-never: 1      -> no answer at all
//   x-respond-header: n=v   -> response header field n: v (repeatable, in order)
//   x-respond-trailer: n=v  -> response trailer field n: v (repeatable, after grpc-status)
//   x-respond-body-size: N  -> a body of N bytes of bodyPattern(N)
//   x-respond-interim: 1    -> a 103 response (with "link: </interim>") before the final one
// The response body is otherwise `responseBody` bytes of 'r'.
// With TlsFiles it speaks HTTP/2 over TLS instead (ALPN h2 only: a client
// that does not offer h2 fails the handshake) and records each connection's
// SNI name and chosen ALPN.

#include <netinet/in.h>
#include <stdlib.h>
#include <sys/socket.h>

#include <atomic>
#include <filesystem>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "model/request.h"

namespace shadowtap::h2::test {

// A directory under /tmp for a test's files, removed with everything in it
// when the test ends, however it ends (a failed ASSERT returns early).
class ScratchDir {
 public:
  ScratchDir() {
    char name[] = "/tmp/st-h2test-XXXXXX";
    if (mkdtemp(name) != nullptr) {
      path_ = name;
    }
  }
  ~ScratchDir() {
    if (!path_.empty()) {
      std::filesystem::remove_all(path_);
    }
  }
  ScratchDir(const ScratchDir&) = delete;
  ScratchDir& operator=(const ScratchDir&) = delete;
  const std::string& path() const { return path_; }  // empty when it could not be made

 private:
  std::string path_;
};

// A PEM certificate and its key.
struct TlsFiles {
  std::string cert;
  std::string key;
  bool alpn = true;  // false: the server chooses no ALPN protocol (an HTTP/1.1-only server)
  // A self-signed certificate for DNS name `name`, written into `dir` with
  // the openssl command; empty files on failure.
  // `san`: the certificate's subjectAltName (default DNS:<name>; IP:127.0.0.1 for an address).
  static TlsFiles selfSigned(const std::string& dir, const std::string& name, const std::string& san = "");
};

class H2TestServer {
 public:
  explicit H2TestServer(uint32_t maxConcurrentStreams = 100, size_t responseBody = 100, const TlsFiles& tls = {});
  ~H2TestServer();

  // TLS mode: what each handshake that completed gave (SNI name, ALPN).
  struct TlsHandshake {
    std::string sni;
    std::string alpn;
  };
  std::vector<TlsHandshake> handshakes();
  size_t failedHandshakes() const { return failedHandshakes_.load(); }

  // The body x-respond-body-size asks for: not one repeated byte, so hashes
  // and prefixes are checked for real.
  static std::string bodyPattern(size_t n);

  uint16_t port() const { return port_; }
  sockaddr_storage address() const;
  std::vector<model::Request> requests();
  size_t requestCount();
  size_t connections() const { return connections_.load(); }
  // Closes every accepted connection at once (abruptly).
  void dropConnections();

 private:
  void acceptLoop();
  void serve(int fd);

  void* tlsCtx_ = nullptr;  // SSL_CTX, TLS mode only
  std::atomic<size_t> failedHandshakes_{0};
  std::vector<TlsHandshake> handshakes_;
  int listenFd_ = -1;
  uint16_t port_ = 0;
  uint32_t maxConcurrent_;
  size_t responseBody_;
  std::atomic<bool> stop_{false};
  std::atomic<size_t> connections_{0};
  std::atomic<uint64_t> dropGeneration_{0};
  std::thread acceptor_;
  std::mutex mutex_;
  std::vector<std::thread> workers_;
  std::vector<model::Request> requests_;
};

}  // namespace shadowtap::h2::test
