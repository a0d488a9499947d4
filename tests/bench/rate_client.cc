// Constant-rate (open-loop) HTTP/1.1 load generator for the impact and fidelity
// benchmarks. Request k is due at start + k/rate whether or not earlier ones have
// been answered; its latency is measured from that due time (so a server that
// stalls is charged for every request that had to wait: no coordinated omission).
// Keep-alive connections, one request in flight on each, no pipelining.
//
// Usage: rate_client --addr IPv4 --port N --rate R --duration S [--connections N]
//        [--host H] [--path P] [--unique] [--body BYTES] [--drain-ms MS] [--json FILE]
//        [--threads T]
// --unique appends /<seq> to the path so every request is distinct (fidelity).
// --threads splits the rate and the connections over T threads (one core is
// good for about 100,000 requests/s), each with its own epoll loop and its
// share of the schedule; the figures are of all of them together, and the
// sequence numbers stay distinct (thread t numbers t, t+T, t+2T, ...).

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <deque>
#include <string>
#include <thread>
#include <vector>

namespace {

int64_t nowNs() {
  timespec ts{};
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return int64_t(ts.tv_sec) * 1'000'000'000LL + ts.tv_nsec;
}

struct Options {
  std::string addr = "198.18.0.2";
  int port = 80;
  double rate = 1000;
  double duration = 5;
  int connections = 64;
  std::string host = "service";
  std::string path = "/";
  bool unique = false;
  std::string json;
  int drainMs = 3000;
  size_t bodyBytes = 0;  // > 0: POST with a body of this many bytes instead of GET
  int threads = 1;
};

struct Conn {
  int fd = -1;
  bool connected = false;
  bool busy = false;
  int64_t dueNs = 0;  // due time of the request in flight
  std::string out;
  size_t outOff = 0;
  std::string in;
};

struct Totals {
  uint64_t sent = 0;
  uint64_t completed = 0;
  uint64_t non2xx = 0;
  uint64_t errors = 0;  // connection failed with the request in flight
  uint64_t unsent = 0;  // still waiting for a connection at the end
  uint64_t unanswered = 0;  // in flight at the end of the drain
  std::vector<int64_t> latNs;
  int64_t endNs = 0;
};

int openConn(const Options& o) {
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) {
    return -1;
  }
  int one = 1;
  setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
  sockaddr_in sa{};
  sa.sin_family = AF_INET;
  sa.sin_port = htons(uint16_t(o.port));
  inet_pton(AF_INET, o.addr.c_str(), &sa.sin_addr);
  if (connect(fd, reinterpret_cast<sockaddr*>(&sa), sizeof(sa)) != 0 && errno != EINPROGRESS) {
    close(fd);
    return -1;
  }
  return fd;
}

// Length of a complete response at the start of `b`, 0 if incomplete, -1 if unusable.
long responseLength(const std::string& b, int* status) {
  const size_t he = b.find("\r\n\r\n");
  if (he == std::string::npos) {
    return 0;
  }
  if (b.size() < 12 || b.compare(0, 5, "HTTP/") != 0) {
    return -1;
  }
  *status = std::atoi(b.c_str() + 9);
  std::string head = b.substr(0, he);
  for (auto& ch : head) {
    ch = char(std::tolower(static_cast<unsigned char>(ch)));
  }
  const size_t bodyStart = he + 4;
  size_t cl = head.find("\r\ncontent-length:");
  if (cl != std::string::npos) {
    const long len = std::atol(head.c_str() + cl + 17);
    return b.size() >= bodyStart + size_t(len) ? long(bodyStart) + len : 0;
  }
  if (head.find("\r\ntransfer-encoding: chunked") != std::string::npos) {
    const size_t end = b.find("\r\n0\r\n\r\n", bodyStart - 2);
    return end == std::string::npos ? 0 : long(end + 7);
  }
  return long(bodyStart);  // 204/304 or no body
}

double pct(std::vector<int64_t>& v, double p) {
  if (v.empty()) {
    return 0;
  }
  const size_t i = std::min(v.size() - 1, size_t(p / 100.0 * double(v.size())));
  return double(v[i]) / 1000.0;  // microseconds
}

// One thread's share: `o` holds its rate and connections. Requests it sends
// are numbered index, index + threads, ... (--unique).
void runClient(const Options& o, int index, int threads, int64_t start, Totals& t) {
  const int ep = epoll_create1(EPOLL_CLOEXEC);
  std::vector<Conn> conns(size_t(o.connections));
  auto arm = [&](size_t i, uint32_t events) {
    epoll_event ev{};
    ev.events = events;
    ev.data.u64 = i;
    if (epoll_ctl(ep, EPOLL_CTL_MOD, conns[i].fd, &ev) != 0) {
      epoll_ctl(ep, EPOLL_CTL_ADD, conns[i].fd, &ev);
    }
  };
  auto reopen = [&](size_t i) {
    if (conns[i].fd >= 0) {
      epoll_ctl(ep, EPOLL_CTL_DEL, conns[i].fd, nullptr);
      close(conns[i].fd);
    }
    conns[i] = Conn{};
    conns[i].fd = openConn(o);
    if (conns[i].fd >= 0) {
      arm(i, EPOLLOUT | EPOLLIN);
    }
  };
  for (size_t i = 0; i < conns.size(); ++i) {
    reopen(i);
  }

  t.latNs.reserve(size_t(o.rate * o.duration * 1.1) + 16);
  std::deque<int64_t> backlog;  // due times of requests waiting for a connection
  const double intervalNs = 1e9 / o.rate;
  const uint64_t total = uint64_t(o.rate * o.duration);
  uint64_t scheduled = 0;
  const int64_t genEnd = start + int64_t(o.duration * 1e9);
  const int64_t hardEnd = genEnd + int64_t(o.drainMs) * 1'000'000;
  std::vector<size_t> idle;

  auto send = [&](size_t i, int64_t due) {
    Conn& c = conns[i];
    char path[256];
    if (o.unique) {
      std::snprintf(path, sizeof(path), "%s/%llu", o.path.c_str(), (unsigned long long)(t.sent * uint64_t(threads) + uint64_t(index)));
    } else {
      std::snprintf(path, sizeof(path), "%s", o.path.c_str());
    }
    if (o.bodyBytes == 0) {
      c.out = std::string("GET ") + path + " HTTP/1.1\r\nHost: " + o.host +
              "\r\nUser-Agent: shadowtap-rate-client\r\nAccept: */*\r\n\r\n";
    } else {
      c.out = std::string("POST ") + path + " HTTP/1.1\r\nHost: " + o.host +
              "\r\nUser-Agent: shadowtap-rate-client\r\nContent-Type: application/octet-stream\r\n"
              "Content-Length: " + std::to_string(o.bodyBytes) + "\r\n\r\n" + std::string(o.bodyBytes, 'b');
    }
    c.outOff = 0;
    c.busy = true;
    c.dueNs = due;
    ++t.sent;
    ssize_t n = write(c.fd, c.out.data(), c.out.size());
    if (n > 0) {
      c.outOff = size_t(n);
    }
    arm(i, c.outOff < c.out.size() ? (EPOLLIN | EPOLLOUT) : EPOLLIN);
  };
  auto dispatch = [&]() {
    for (size_t i = 0; i < conns.size() && !backlog.empty(); ++i) {
      Conn& c = conns[i];
      if (c.fd >= 0 && c.connected && !c.busy) {
        send(i, backlog.front());
        backlog.pop_front();
      }
    }
  };

  epoll_event events[256];
  for (;;) {
    const int64_t now = nowNs();
    if (scheduled < total) {
      bool added = false;
      while (scheduled < total && start + int64_t(double(scheduled) * intervalNs) <= now) {
        backlog.push_back(start + int64_t(double(scheduled) * intervalNs));
        ++scheduled;
        added = true;
      }
      if (added) {
        dispatch();
      }
    }
    bool inFlight = false;
    for (const auto& c : conns) {
      inFlight = inFlight || c.busy;
    }
    if (scheduled >= total && backlog.empty() && !inFlight) {
      break;
    }
    if (now >= hardEnd) {
      break;
    }
    int64_t waitNs = 100'000'000;
    if (scheduled < total) {
      waitNs = std::max<int64_t>(0, start + int64_t(double(scheduled) * intervalNs) - now);
    }
    timespec ts{waitNs / 1'000'000'000, waitNs % 1'000'000'000};
    const int n = epoll_pwait2(ep, events, 256, &ts, nullptr);
    const int64_t after = nowNs();
    for (int k = 0; k < n; ++k) {
      const size_t i = events[k].data.u64;
      Conn& c = conns[i];
      if (!c.connected) {
        int err = 0;
        socklen_t len = sizeof(err);
        getsockopt(c.fd, SOL_SOCKET, SO_ERROR, &err, &len);
        if (err != 0 || (events[k].events & (EPOLLERR | EPOLLHUP))) {
          reopen(i);  // the server may still be starting; try again
          continue;
        }
        c.connected = true;
        arm(i, EPOLLIN);
        dispatch();
        continue;
      }
      if ((events[k].events & EPOLLOUT) && c.busy && c.outOff < c.out.size()) {
        ssize_t w = write(c.fd, c.out.data() + c.outOff, c.out.size() - c.outOff);
        if (w > 0) {
          c.outOff += size_t(w);
        }
        if (c.outOff == c.out.size()) {
          arm(i, EPOLLIN);
        }
      }
      if (events[k].events & (EPOLLIN | EPOLLERR | EPOLLHUP)) {
        char buf[16384];
        bool dead = false;
        for (;;) {
          ssize_t r = read(c.fd, buf, sizeof(buf));
          if (r > 0) {
            c.in.append(buf, size_t(r));
            continue;
          }
          if (r == 0 || (errno != EAGAIN && errno != EINTR)) {
            dead = true;
          }
          break;
        }
        int status = 0;
        const long len = c.busy ? responseLength(c.in, &status) : 0;
        if (len > 0) {
          ++t.completed;
          t.latNs.push_back(after - c.dueNs);
          if (status < 200 || status >= 300) {
            ++t.non2xx;
          }
          c.in.erase(0, size_t(len));
          c.busy = false;
        } else if (len < 0) {
          dead = true;
        }
        if (dead) {
          if (c.busy) {
            ++t.errors;
          }
          reopen(i);
        } else if (!c.busy && !backlog.empty()) {
          send(i, backlog.front());
          backlog.pop_front();
        }
      }
    }
  }
  // What never got an answer: charged with a lower bound of its latency.
  t.endNs = nowNs();
  const int64_t end = t.endNs;
  t.unsent = backlog.size() + (total - scheduled);
  for (int64_t due : backlog) {
    t.latNs.push_back(end - due);
  }
  for (auto& c : conns) {
    if (c.busy) {
      ++t.unanswered;
      t.latNs.push_back(end - c.dueNs);
    }
    if (c.fd >= 0) {
      close(c.fd);
    }
  }
  close(ep);
}

}  // namespace

int main(int argc, char** argv) {
  Options o;
  for (int i = 1; i + 1 < argc || (i < argc && !std::strcmp(argv[i], "--unique")); ++i) {
    std::string a = argv[i];
    if (a == "--unique") {
      o.unique = true;
      continue;
    }
    std::string v = argv[++i];
    if (a == "--addr") o.addr = v;
    else if (a == "--port") o.port = std::atoi(v.c_str());
    else if (a == "--rate") o.rate = std::atof(v.c_str());
    else if (a == "--duration") o.duration = std::atof(v.c_str());
    else if (a == "--connections") o.connections = std::atoi(v.c_str());
    else if (a == "--host") o.host = v;
    else if (a == "--path") o.path = v;
    else if (a == "--json") o.json = v;
    else if (a == "--drain-ms") o.drainMs = std::atoi(v.c_str());
    else if (a == "--body") o.bodyBytes = size_t(std::atol(v.c_str()));
    else if (a == "--threads") o.threads = std::atoi(v.c_str());
    else {
      std::fprintf(stderr, "unknown option %s\n", a.c_str());
      return 2;
    }
  }
  if (o.threads < 1 || o.threads > o.connections) {
    std::fprintf(stderr, "--threads must be from 1 to --connections (%d)\n", o.connections);
    return 2;
  }
  const int64_t start = nowNs() + 50'000'000;  // let connects finish first
  std::vector<Totals> shares(size_t(o.threads));
  std::vector<std::thread> threads;
  for (int k = 0; k < o.threads; ++k) {
    Options share = o;
    share.rate = o.rate / o.threads;
    share.connections = o.connections / o.threads + (k < o.connections % o.threads ? 1 : 0);
    threads.emplace_back([share, k, &o, start, &shares] { runClient(share, k, o.threads, start, shares[size_t(k)]); });
  }
  for (auto& th : threads) {
    th.join();
  }
  Totals t;
  int64_t end = 0;
  for (auto& sh : shares) {
    t.sent += sh.sent;
    t.completed += sh.completed;
    t.non2xx += sh.non2xx;
    t.errors += sh.errors;
    t.unsent += sh.unsent;
    t.unanswered += sh.unanswered;
    t.latNs.insert(t.latNs.end(), sh.latNs.begin(), sh.latNs.end());
    end = std::max(end, sh.endNs);
  }
  const int64_t genEnd = start + int64_t(o.duration * 1e9);
  std::sort(t.latNs.begin(), t.latNs.end());
  const double secs = double(std::min(end, genEnd) - start) / 1e9;
  char out[1024];
  std::snprintf(out, sizeof(out),
                "{\"rate\": %.0f, \"duration_s\": %.2f, \"connections\": %d, \"threads\": %d, \"sent\": %llu, \"completed\": %llu,"
                " \"non2xx\": %llu, \"errors\": %llu, \"unsent\": %llu, \"unanswered\": %llu,"
                " \"achieved_rps\": %.1f, \"p50_us\": %.1f, \"p90_us\": %.1f, \"p99_us\": %.1f,"
                " \"p999_us\": %.1f, \"max_us\": %.1f}\n",
                o.rate, o.duration, o.connections, o.threads, (unsigned long long)t.sent, (unsigned long long)t.completed,
                (unsigned long long)t.non2xx, (unsigned long long)t.errors, (unsigned long long)t.unsent,
                (unsigned long long)t.unanswered, double(t.completed) / std::max(secs, 1e-9), pct(t.latNs, 50),
                pct(t.latNs, 90), pct(t.latNs, 99), pct(t.latNs, 99.9),
                t.latNs.empty() ? 0.0 : double(t.latNs.back()) / 1000.0);
  std::fputs(out, stdout);
  if (!o.json.empty()) {
    if (FILE* f = std::fopen(o.json.c_str(), "w")) {
      std::fputs(out, f);
      std::fclose(f);
    }
  }
  return 0;
}
