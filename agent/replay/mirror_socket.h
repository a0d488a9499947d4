#pragma once

#include <sys/socket.h>

#include "replay/local_endpoints.h"

namespace shadowtap::replay {

// The TCP socket under a mirror connection of any kind: non-blocking,
// TCP_NODELAY, connected without waiting. With LocalEndpoints, its local
// endpoint is published there from before the SYN leaves (the port is bound
// first, so the capture side can recognise even the SYN as our own traffic)
// until the socket is closed.
class MirrorSocket {
 public:
  MirrorSocket() = default;
  ~MirrorSocket() { close(); }
  MirrorSocket(const MirrorSocket&) = delete;
  MirrorSocket& operator=(const MirrorSocket&) = delete;

  // Starts the connect. 0, or errno when no socket can be made or the connect
  // fails at once (the socket is then closed). An immediate success is still
  // reported through EPOLLOUT, which keeps one path.
  int connect(const sockaddr_storage& addr, LocalEndpoints* endpoints);
  // After EPOLLOUT/EPOLLERR/EPOLLHUP while connecting: 0 when the connect
  // succeeded, else its errno.
  int connectResult() const;
  void close();

  int fd() const { return fd_; }
  bool open() const { return fd_ >= 0; }
  const sockaddr_storage& remote() const { return remote_; }

 private:
  int fd_ = -1;
  sockaddr_storage remote_{};
  LocalEndpoints* endpoints_ = nullptr;
  LocalEndpoints::Endpoint published_{};
  bool isPublished_ = false;
};

}  // namespace shadowtap::replay
