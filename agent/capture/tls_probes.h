#pragma once

#include <cstdint>
#include <memory>
#include <string>

#include "capture/xdp_attachment.h"

struct capture_tls;
struct bpf_link;

namespace shadowtap::capture {

// --tls: the capture_tls programs (uprobes and uretprobes on OpenSSL 3's
// SSL_set_fd, SSL_read[_ex], SSL_write[_ex] and SSL_free) loaded over the
// maps every attachment shares (XdpShared: rules, rings, counters, settings)
// and attached to one libssl file, for every process that maps it, now or
// later. The links are file descriptors of this process: they go with
// it, also on SIGKILL. Detached and unloaded on destruction.
class TlsProbes {
 public:
  // `library` empty: the libssl.so.3 this process's loader finds
  // (defaultLibrary()). nullptr and *error set (one line) on failure.
  static std::unique_ptr<TlsProbes> open(const XdpShared& shared, const std::string& library, std::string* error);
  ~TlsProbes();
  TlsProbes(const TlsProbes&) = delete;
  TlsProbes& operator=(const TlsProbes&) = delete;

  // The file the probes are on (resolved: no symlinks).
  const std::string& library() const { return library_; }
  // How many uprobes/uretprobes are attached.
  int links() const { return nlinks_; }

  // The libssl.so.3 the dynamic loader resolves for this process (its real
  // path), or empty and *error set.
  static std::string defaultLibrary(std::string* error);

 private:
  TlsProbes() = default;
  std::string attach();

  capture_tls* skel_ = nullptr;
  static constexpr int kMaxLinks = 10;
  bpf_link* links_[kMaxLinks] = {};
  int nlinks_ = 0;
  std::string library_;
};

}  // namespace shadowtap::capture
