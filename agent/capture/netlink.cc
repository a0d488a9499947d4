#include "capture/netlink.h"

#include <linux/if_link.h>
#include <linux/netlink.h>
#include <linux/pkt_cls.h>
#include <linux/pkt_sched.h>
#include <linux/rtnetlink.h>
#include <sys/socket.h>
#include <unistd.h>

#include <array>
#include <cerrno>
#include <cstring>

namespace shadowtap::capture {
namespace {

constexpr size_t kRecvBuffer = 64 * 1024;

class Socket {
 public:
  explicit Socket(int fd) : fd_(fd) {}
  ~Socket() {
    if (fd_ >= 0) {
      close(fd_);
    }
  }
  Socket(const Socket&) = delete;
  Socket& operator=(const Socket&) = delete;
  int get() const { return fd_; }

 private:
  int fd_;
};

// Calls fn(type, payload, len) for every attribute in [data, data + len).
template <typename Fn>
void forEachAttr(const void* data, size_t len, Fn&& fn) {
  const auto* rta = static_cast<const rtattr*>(data);
  int left = static_cast<int>(len);
  for (; RTA_OK(rta, left); rta = RTA_NEXT(rta, left)) {
    fn(static_cast<uint16_t>(rta->rta_type & NLA_TYPE_MASK), RTA_DATA(rta), RTA_PAYLOAD(rta));
  }
}

std::string attrString(const void* data, size_t len) {
  const char* s = static_cast<const char*>(data);
  return std::string(s, strnlen(s, len));
}

}  // namespace

std::vector<IngressFilter> dumpIngressFilters(int ifindex, std::string* error, bool egress) {
  std::vector<IngressFilter> out;
  Socket sock(socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, NETLINK_ROUTE));
  if (sock.get() < 0) {
    *error = std::string("cannot open an rtnetlink socket: ") + std::strerror(errno);
    return out;
  }
  struct {
    nlmsghdr nh;
    tcmsg tc;
  } req{};
  req.nh.nlmsg_len = sizeof(req);
  req.nh.nlmsg_type = RTM_GETTFILTER;
  req.nh.nlmsg_flags = NLM_F_REQUEST | NLM_F_DUMP;
  req.nh.nlmsg_seq = 1;
  req.tc.tcm_family = AF_UNSPEC;
  req.tc.tcm_ifindex = ifindex;
  req.tc.tcm_parent = TC_H_MAKE(TC_H_CLSACT, egress ? TC_H_MIN_EGRESS : TC_H_MIN_INGRESS);
  if (send(sock.get(), &req, sizeof(req), 0) < 0) {
    *error = std::string("cannot ask rtnetlink for tc filters: ") + std::strerror(errno);
    return out;
  }

  std::vector<char> buf(kRecvBuffer);
  for (;;) {
    ssize_t n = recv(sock.get(), buf.data(), buf.size(), 0);
    if (n < 0) {
      if (errno == EINTR) {
        continue;
      }
      *error = std::string("cannot read tc filters from rtnetlink: ") + std::strerror(errno);
      return out;
    }
    int left = static_cast<int>(n);
    for (auto* nh = reinterpret_cast<nlmsghdr*>(buf.data()); NLMSG_OK(nh, left); nh = NLMSG_NEXT(nh, left)) {
      if (nh->nlmsg_type == NLMSG_DONE) {
        return out;
      }
      if (nh->nlmsg_type == NLMSG_ERROR) {
        const auto* e = static_cast<const nlmsgerr*>(NLMSG_DATA(nh));
        // No clsact qdisc (or no such device): nothing of anyone's is attached.
        if (e->error == -EINVAL || e->error == -ENOENT) {
          return out;
        }
        *error = std::string("rtnetlink refused to list tc filters: ") + std::strerror(-e->error);
        return out;
      }
      if (nh->nlmsg_type != RTM_NEWTFILTER) {
        continue;
      }
      const auto* tc = static_cast<const tcmsg*>(NLMSG_DATA(nh));
      if (tc->tcm_handle == 0) {
        continue;  // the per-priority "proto" entry, not a filter
      }
      IngressFilter f;
      f.priority = TC_H_MAJ(tc->tcm_info) >> 16;
      f.handle = tc->tcm_handle;
      const size_t attrLen = nh->nlmsg_len - NLMSG_LENGTH(sizeof(tcmsg));
      forEachAttr(reinterpret_cast<const char*>(tc) + NLMSG_ALIGN(sizeof(tcmsg)), attrLen,
                  [&](uint16_t type, const void* data, size_t len) {
                    if (type == TCA_KIND) {
                      f.kind = attrString(data, len);
                    } else if (type == TCA_OPTIONS) {
                      forEachAttr(data, len, [&](uint16_t t2, const void* d2, size_t l2) {
                        if (t2 == TCA_BPF_NAME) {
                          f.bpfName = attrString(d2, l2);
                        } else if (t2 == TCA_BPF_ID && l2 >= sizeof(uint32_t)) {
                          std::memcpy(&f.progId, d2, sizeof(uint32_t));
                        }
                      });
                    }
                  });
      out.push_back(std::move(f));
    }
  }
}

LinkWatcher::~LinkWatcher() {
  if (fd_ >= 0) {
    close(fd_);
  }
}

std::string LinkWatcher::open() {
  fd_ = socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC | SOCK_NONBLOCK, NETLINK_ROUTE);
  if (fd_ < 0) {
    return std::string("cannot open an rtnetlink socket for link notifications: ") + std::strerror(errno);
  }
  // Pods come and go in bursts; a larger receive buffer makes ENOBUFS (and the
  // full rescan it forces) rare. Best effort: the default works too.
  int rcvbuf = 1 << 20;
  setsockopt(fd_, SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof(rcvbuf));
  sockaddr_nl addr{};
  addr.nl_family = AF_NETLINK;
  addr.nl_groups = RTMGRP_LINK;
  if (bind(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0) {
    return std::string("cannot subscribe to link notifications: ") + std::strerror(errno);
  }
  return "";
}

std::vector<LinkEvent> LinkWatcher::read(bool* overflowed) {
  *overflowed = false;
  std::vector<LinkEvent> events;
  std::vector<char> buf(kRecvBuffer);
  for (;;) {
    ssize_t n = recv(fd_, buf.data(), buf.size(), MSG_DONTWAIT);
    if (n < 0) {
      if (errno == EINTR) {
        continue;
      }
      if (errno == ENOBUFS) {
        *overflowed = true;
        continue;
      }
      break;  // EAGAIN: all read
    }
    int left = static_cast<int>(n);
    for (auto* nh = reinterpret_cast<nlmsghdr*>(buf.data()); NLMSG_OK(nh, left); nh = NLMSG_NEXT(nh, left)) {
      if ((nh->nlmsg_type != RTM_NEWLINK && nh->nlmsg_type != RTM_DELLINK) ||
          nh->nlmsg_len < NLMSG_LENGTH(sizeof(ifinfomsg))) {
        continue;
      }
      const auto* ifi = static_cast<const ifinfomsg*>(NLMSG_DATA(nh));
      LinkEvent ev;
      ev.kind = nh->nlmsg_type == RTM_NEWLINK ? LinkEvent::Kind::kPresent : LinkEvent::Kind::kGone;
      ev.ifindex = ifi->ifi_index;
      ev.linkType = ifi->ifi_type;
      const size_t attrLen = nh->nlmsg_len - NLMSG_LENGTH(sizeof(ifinfomsg));
      forEachAttr(reinterpret_cast<const char*>(ifi) + NLMSG_ALIGN(sizeof(ifinfomsg)), attrLen,
                  [&](uint16_t type, const void* data, size_t len) {
                    if (type == IFLA_IFNAME) {
                      ev.name = attrString(data, len);
                    }
                  });
      events.push_back(std::move(ev));
    }
  }
  return events;
}

}  // namespace shadowtap::capture
