// Mirror-side I/O, epoll against io_uring (#16 item 2: "measured against a
// batched-epoll alternative before choosing"). The pool's pattern without the
// pool: C keep-alive HTTP/1.1 connections to a real mirror, at most one request
// in flight on each (no pipelining), requests handed over in batches as a
// worker's ring consume hands them to a pool (every --tick-us at --rate, or
// closed loop with --rate 0), responses read and framed by Content-Length.
//
//   epoll: epoll_wait for a batch of readable sockets, then one recv(2) per
//          response and one send(2) per request (today's MirrorPool loop);
//   uring: one io_uring_enter per batch submits every send and recv and waits
//          for completions (liburing; a recv armed with its send completes when
//          the response arrives).
//
//   mirror_io_bench --mode epoll|uring --mirror HOST:PORT [--connections C]
//                   [--seconds S] [--rate R] [--tick-us T]
//
// Prints one JSON object: answered requests/s, the process's CPU-microseconds
// per answered request (user + system), system calls avoided are the difference.
#include <arpa/inet.h>
#include <errno.h>
#include <liburing.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <deque>
#include <string>
#include <string_view>
#include <vector>

namespace {

constexpr std::string_view kRequest =
    "GET /bench/items?id=42 HTTP/1.1\r\nHost: svc-shadow:8000\r\nUser-Agent: mirror_io_bench\r\nAccept: */*\r\n\r\n";

struct Options {
  std::string mode = "epoll";
  std::string mirror;
  int connections = 64;
  double seconds = 4;
  double rate = 20000;  // 0: closed loop
  int tickUs = 1000;
};

uint64_t nowNs() {
  timespec ts{};
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<uint64_t>(ts.tv_sec) * 1'000'000'000ULL + static_cast<uint64_t>(ts.tv_nsec);
}

double cpuSeconds() {
  rusage ru{};
  getrusage(RUSAGE_SELF, &ru);
  return static_cast<double>(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) +
         static_cast<double>(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1e6;
}

// Frames one response by its Content-Length (the mirror sends small, identical ones).
struct Conn {
  int fd = -1;
  bool busy = false;
  std::string in;
  char buf[4096];
  size_t sendOff = 0;

  // True once `in` holds a whole response (then consumed from `in`).
  bool responseDone() {
    const size_t head = in.find("\r\n\r\n");
    if (head == std::string::npos) {
      return false;
    }
    size_t length = 0;
    if (const size_t cl = in.find("Content-Length: "); cl != std::string::npos && cl < head) {
      length = std::strtoul(in.c_str() + cl + 16, nullptr, 10);
    }
    if (in.size() < head + 4 + length) {
      return false;
    }
    in.erase(0, head + 4 + length);
    return true;
  }
};

int connectTo(const sockaddr_in& addr) {
  const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0 || ::connect(fd, reinterpret_cast<const sockaddr*>(&addr), sizeof(addr)) != 0) {
    std::perror("connect");
    std::exit(2);
  }
  int one = 1;
  ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
  return fd;
}

// How many requests are due: the rate's share of elapsed ticks (closed loop: all connections).
class Pacer {
 public:
  explicit Pacer(const Options& o) : o_(o), start_(nowNs()) {}
  uint64_t due(uint64_t now) const {
    if (o_.rate <= 0) {
      return UINT64_MAX;
    }
    const uint64_t tickNs = static_cast<uint64_t>(o_.tickUs) * 1000;
    const uint64_t ticks = (now - start_) / tickNs + 1;
    return static_cast<uint64_t>(static_cast<double>(ticks * tickNs) * o_.rate / 1e9);
  }
  // Time until the next tick, for the wait.
  uint64_t untilNextTickNs(uint64_t now) const {
    const uint64_t tickNs = static_cast<uint64_t>(o_.tickUs) * 1000;
    return tickNs - (now - start_) % tickNs;
  }

 private:
  const Options& o_;
  uint64_t start_;
};

struct Result {
  uint64_t answered = 0;
  uint64_t issued = 0;
  uint64_t backlogMax = 0;
  // At the end of the warm-up: answered so far, CPU and time.
  uint64_t warmAnswered = 0;
  double warmCpu = 0;
  uint64_t warmNs = 0;

  // Called every turn: takes the snapshot once the warm-up is over.
  void mark(uint64_t now, uint64_t warmEndNs) {
    if (warmNs == 0 && now >= warmEndNs) {
      warmAnswered = answered;
      warmCpu = cpuSeconds();
      warmNs = now;
    }
  }
};

// Today's loop: epoll_wait, recv per response, send per request.
Result runEpoll(std::vector<Conn>& conns, const Options& o, uint64_t warmEndNs, uint64_t endNs) {
  const int ep = epoll_create1(EPOLL_CLOEXEC);
  for (size_t i = 0; i < conns.size(); ++i) {
    epoll_event ev{};
    ev.events = EPOLLIN;
    ev.data.u64 = i;
    epoll_ctl(ep, EPOLL_CTL_ADD, conns[i].fd, &ev);
  }
  Pacer pacer(o);
  std::vector<size_t> idle;
  for (size_t i = 0; i < conns.size(); ++i) {
    idle.push_back(i);
  }
  Result r;
  epoll_event events[64];
  for (uint64_t now = nowNs(); now < endNs; now = nowNs()) {
    r.mark(now, warmEndNs);
    const uint64_t due = pacer.due(now);
    while (!idle.empty() && r.issued < due) {
      Conn& c = conns[idle.back()];
      idle.pop_back();
      if (::send(c.fd, kRequest.data(), kRequest.size(), MSG_NOSIGNAL | MSG_DONTWAIT) !=
          static_cast<ssize_t>(kRequest.size())) {
        std::perror("send");
        std::exit(2);
      }
      c.busy = true;
      ++r.issued;
    }
    if (due != UINT64_MAX && due > r.issued) {
      r.backlogMax = std::max<uint64_t>(r.backlogMax, due - r.issued);
    }
    const int timeout = o.rate > 0 ? static_cast<int>((pacer.untilNextTickNs(now) + 999'999) / 1'000'000) : 100;
    const int n = epoll_wait(ep, events, 64, timeout);
    for (int i = 0; i < n; ++i) {
      Conn& c = conns[events[i].data.u64];
      const ssize_t got = ::recv(c.fd, c.buf, sizeof(c.buf), MSG_DONTWAIT);
      if (got <= 0) {
        if (got < 0 && errno == EAGAIN) {
          continue;
        }
        std::fprintf(stderr, "recv: %s\n", got == 0 ? "closed" : std::strerror(errno));
        std::exit(2);
      }
      c.in.append(c.buf, static_cast<size_t>(got));
      if (c.responseDone()) {
        c.busy = false;
        ++r.answered;
        idle.push_back(events[i].data.u64);
      }
    }
  }
  ::close(ep);
  return r;
}

// One io_uring_enter per batch: every due send and its recv, and the wait.
Result runUring(std::vector<Conn>& conns, const Options& o, uint64_t warmEndNs, uint64_t endNs) {
  io_uring ring{};
  // Completions run when this thread asks for them (no interrupting task work);
  // kernels before 6.1 fall back to cooperative task work.
  int e = io_uring_queue_init(4096, &ring, IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_DEFER_TASKRUN);
  if (e == -EINVAL) {
    e = io_uring_queue_init(4096, &ring, IORING_SETUP_COOP_TASKRUN);
  }
  if (e < 0) {
    std::fprintf(stderr, "io_uring_queue_init: %s\n", std::strerror(-e));
    std::exit(2);
  }
  Pacer pacer(o);
  std::vector<size_t> idle;
  for (size_t i = 0; i < conns.size(); ++i) {
    idle.push_back(i);
  }
  auto recvOn = [&](size_t i) {
    io_uring_sqe* sqe = io_uring_get_sqe(&ring);
    io_uring_prep_recv(sqe, conns[i].fd, conns[i].buf, sizeof(conns[i].buf), 0);
    sqe->ioprio |= IORING_RECVSEND_POLL_FIRST;  // the response is not there yet: wait for it, do not try first
    io_uring_sqe_set_data64(sqe, (i << 1) | 1);
  };
  Result r;
  for (uint64_t now = nowNs(); now < endNs; now = nowNs()) {
    r.mark(now, warmEndNs);
    const uint64_t due = pacer.due(now);
    while (!idle.empty() && r.issued < due) {
      const size_t i = idle.back();
      idle.pop_back();
      io_uring_sqe* sqe = io_uring_get_sqe(&ring);
      io_uring_prep_send(sqe, conns[i].fd, kRequest.data(), kRequest.size(), MSG_NOSIGNAL);
      io_uring_sqe_set_data64(sqe, i << 1);
      recvOn(i);
      conns[i].busy = true;
      ++r.issued;
    }
    if (due != UINT64_MAX && due > r.issued) {
      r.backlogMax = std::max<uint64_t>(r.backlogMax, due - r.issued);
    }
    __kernel_timespec ts{};
    const uint64_t waitNs = o.rate > 0 ? pacer.untilNextTickNs(now) : 100'000'000ULL;
    ts.tv_sec = static_cast<long long>(waitNs / 1'000'000'000ULL);
    ts.tv_nsec = static_cast<long long>(waitNs % 1'000'000'000ULL);
    io_uring_cqe* cqe = nullptr;
    const int w = io_uring_submit_and_wait_timeout(&ring, &cqe, 1, &ts, nullptr);
    if (w < 0 && w != -ETIME && w != -EINTR) {
      std::fprintf(stderr, "io_uring_submit_and_wait_timeout: %s\n", std::strerror(-w));
      std::exit(2);
    }
    unsigned head = 0;
    unsigned seen = 0;
    io_uring_for_each_cqe(&ring, head, cqe) {
      ++seen;
      const uint64_t data = io_uring_cqe_get_data64(cqe);
      const size_t i = data >> 1;
      Conn& c = conns[i];
      if ((data & 1) == 0) {
        if (cqe->res != static_cast<int>(kRequest.size())) {
          std::fprintf(stderr, "send: %d\n", cqe->res);
          std::exit(2);
        }
        continue;
      }
      if (cqe->res <= 0) {
        std::fprintf(stderr, "recv: %s\n", cqe->res == 0 ? "closed" : std::strerror(-cqe->res));
        std::exit(2);
      }
      c.in.append(c.buf, static_cast<size_t>(cqe->res));
      if (c.responseDone()) {
        c.busy = false;
        ++r.answered;
        idle.push_back(i);
      } else {
        recvOn(i);
      }
    }
    io_uring_cq_advance(&ring, seen);
  }
  io_uring_queue_exit(&ring);
  return r;
}

Options parse(int argc, char** argv) {
  Options o;
  for (int i = 1; i + 1 < argc; i += 2) {
    const std::string k = argv[i];
    const char* v = argv[i + 1];
    if (k == "--mode") {
      o.mode = v;
    } else if (k == "--mirror") {
      o.mirror = v;
    } else if (k == "--connections") {
      o.connections = std::atoi(v);
    } else if (k == "--seconds") {
      o.seconds = std::atof(v);
    } else if (k == "--rate") {
      o.rate = std::atof(v);
    } else if (k == "--tick-us") {
      o.tickUs = std::atoi(v);
    } else {
      std::fprintf(stderr, "unknown option %s\n", k.c_str());
      std::exit(2);
    }
  }
  if (o.mirror.empty() || (o.mode != "epoll" && o.mode != "uring") || o.connections < 1 || o.tickUs < 1) {
    std::fprintf(stderr,
                 "usage: mirror_io_bench --mode epoll|uring --mirror HOST:PORT [--connections C] [--seconds S] "
                 "[--rate R (0: closed loop)] [--tick-us T]\n");
    std::exit(2);
  }
  return o;
}

}  // namespace

int main(int argc, char** argv) {
  const Options o = parse(argc, argv);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  const size_t colon = o.mirror.rfind(':');
  addr.sin_port = htons(static_cast<uint16_t>(std::atoi(o.mirror.c_str() + colon + 1)));
  if (colon == std::string::npos || inet_pton(AF_INET, o.mirror.substr(0, colon).c_str(), &addr.sin_addr) != 1) {
    std::fprintf(stderr, "--mirror wants IPV4:PORT\n");
    return 2;
  }
  std::vector<Conn> conns(static_cast<size_t>(o.connections));
  for (Conn& c : conns) {
    c.fd = connectTo(addr);
  }
  // A second of warm-up (connections, caches, nginx's own), then the measured window.
  const uint64_t start = nowNs();
  const uint64_t warmEnd = start + 1'000'000'000ULL;
  const uint64_t end = warmEnd + static_cast<uint64_t>(o.seconds * 1e9);
  const Result r = o.mode == "epoll" ? runEpoll(conns, o, warmEnd, end) : runUring(conns, o, warmEnd, end);
  const double secs = static_cast<double>(nowNs() - r.warmNs) / 1e9;
  const double cpu = cpuSeconds() - r.warmCpu;
  const uint64_t answered = r.answered - r.warmAnswered;
  std::printf(
      "{\"mode\": \"%s\", \"rate\": %.0f, \"tick_us\": %d, \"connections\": %d, \"seconds\": %.2f, "
      "\"answered_per_s\": %.0f, \"cpu_us_per_request\": %.2f, \"cpu_share\": %.3f, \"backlog_max\": %llu}\n",
      o.mode.c_str(), o.rate, o.tickUs, o.connections, secs, static_cast<double>(answered) / secs,
      answered > 0 ? cpu * 1e6 / static_cast<double>(answered) : 0.0, cpu / secs,
      static_cast<unsigned long long>(r.backlogMax));
  for (Conn& c : conns) {
    ::close(c.fd);
  }
  return 0;
}
