#include "replay/mirror_socket.h"

#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <unistd.h>

namespace shadowtap::replay {
namespace {

socklen_t lengthOf(const sockaddr_storage& addr) {
  return addr.ss_family == AF_INET6 ? sizeof(sockaddr_in6) : sizeof(sockaddr_in);
}

}  // namespace

int MirrorSocket::connect(const sockaddr_storage& addr, LocalEndpoints* endpoints) {
  close();
  fd_ = ::socket(addr.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, IPPROTO_TCP);
  if (fd_ < 0) {
    return errno;
  }
  remote_ = addr;
  int one = 1;
  // Requests are written whole; Nagle would only delay the last segment.
  ::setsockopt(fd_, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
  if (endpoints != nullptr) {
    // Bind the local port before connecting so it can be published before the
    // SYN leaves: the capture thread may see that SYN before connect() returns.
    sockaddr_storage any{};
    any.ss_family = addr.ss_family;
    sockaddr_storage local{};
    socklen_t localLen = sizeof(local);
    if (::bind(fd_, reinterpret_cast<const sockaddr*>(&any), lengthOf(addr)) == 0 &&
        ::getsockname(fd_, reinterpret_cast<sockaddr*>(&local), &localLen) == 0) {
      endpoints_ = endpoints;
      published_ = LocalEndpoints::fromSockaddr(local);
      endpoints_->add(published_);
      isPublished_ = true;
    }
  }
  if (::connect(fd_, reinterpret_cast<const sockaddr*>(&addr), lengthOf(addr)) != 0 && errno != EINPROGRESS) {
    const int err = errno;
    close();
    return err;
  }
  if (isPublished_) {
    // Narrow the wildcard entry to the address the route chose.
    sockaddr_storage local{};
    socklen_t localLen = sizeof(local);
    if (::getsockname(fd_, reinterpret_cast<sockaddr*>(&local), &localLen) == 0) {
      const LocalEndpoints::Endpoint exact = LocalEndpoints::fromSockaddr(local);
      if (!(exact == published_)) {
        endpoints_->add(exact);
        endpoints_->remove(published_);
        published_ = exact;
      }
    }
  }
  return 0;
}

int MirrorSocket::connectResult() const {
  int soError = 0;
  socklen_t len = sizeof(soError);
  if (::getsockopt(fd_, SOL_SOCKET, SO_ERROR, &soError, &len) != 0) {
    return errno;
  }
  return soError;
}

void MirrorSocket::close() {
  if (fd_ >= 0) {
    ::close(fd_);
    fd_ = -1;
  }
  if (isPublished_) {
    endpoints_->remove(published_);
    isPublished_ = false;
  }
}

}  // namespace shadowtap::replay
