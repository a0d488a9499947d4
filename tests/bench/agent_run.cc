#include "agent_run.h"

#include <arpa/inet.h>
#include <llhttp.h>
#include <netinet/in.h>
#include <spdlog/spdlog.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <pthread.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <memory>
#include <string>
#include <thread>
#include <unordered_map>

#include "config.h"
#include "pipeline.h"
#include "synthetic_source.h"

namespace shadowtap::bench {
namespace {

double threadCpuSeconds() {
  timespec ts{};
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  return double(ts.tv_sec) + double(ts.tv_nsec) / 1e9;
}

double processCpuSeconds() {
  rusage ru{};
  getrusage(RUSAGE_SELF, &ru);
  return double(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) + double(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1e6;
}

uint64_t nowNs() {
  timespec ts{};
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return uint64_t(ts.tv_sec) * 1'000'000'000ULL + uint64_t(ts.tv_nsec);
}

// An HTTP/1 mirror that answers every request with an empty 204 and counts
// them: llhttp per connection, one thread, epoll.
class SinkMirror {
 public:
  SinkMirror() {
    listen_ = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof(a);
    if (bind(listen_, reinterpret_cast<sockaddr*>(&a), sizeof(a)) != 0 || ::listen(listen_, 1024) != 0 ||
        getsockname(listen_, reinterpret_cast<sockaddr*>(&a), &len) != 0) {
      spdlog::error("sink mirror: cannot listen on loopback");
    }
    port_ = ntohs(a.sin_port);
    llhttp_settings_init(&settings_);
    settings_.on_message_complete = [](llhttp_t* p) {
      ++static_cast<Conn*>(p->data)->complete;
      return 0;
    };
    thread_ = std::thread([this] { run(); });
  }
  ~SinkMirror() {
    stop_ = true;
    thread_.join();
    for (auto& [fd, c] : conns_) {
      close(fd);
    }
    close(listen_);
  }
  uint16_t port() const { return port_; }
  uint64_t answered() const { return answered_.load(std::memory_order_relaxed); }
  // The sink thread's CPU time so far (its own clock, read from any thread).
  double cpuSeconds() {
    clockid_t id;
    timespec ts{};
    if (pthread_getcpuclockid(thread_.native_handle(), &id) != 0 || clock_gettime(id, &ts) != 0) {
      return 0;
    }
    return double(ts.tv_sec) + double(ts.tv_nsec) / 1e9;
  }

 private:
  struct Conn {
    llhttp_t parser;
    uint64_t complete = 0;
  };

  void run() {
    const int ep = epoll_create1(EPOLL_CLOEXEC);
    add(ep, listen_);
    const std::string response = "HTTP/1.1 204 No Content\r\n\r\n";
    char buf[65536];
    while (!stop_) {
      epoll_event evs[64];
      const int n = epoll_wait(ep, evs, 64, 20);
      for (int i = 0; i < n; ++i) {
        const int fd = evs[i].data.fd;
        if (fd == listen_) {
          for (int c; (c = accept4(listen_, nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC)) >= 0;) {
            auto conn = std::make_unique<Conn>();
            llhttp_init(&conn->parser, HTTP_REQUEST, &settings_);
            conn->parser.data = conn.get();
            conns_[c] = std::move(conn);
            add(ep, c);
          }
          continue;
        }
        Conn& c = *conns_[fd];
        ssize_t r;
        while ((r = read(fd, buf, sizeof(buf))) > 0) {
          llhttp_execute(&c.parser, buf, size_t(r));
        }
        if (c.complete > 0) {
          std::string out;
          for (uint64_t k = 0; k < c.complete; ++k) {
            out += response;
          }
          [[maybe_unused]] ssize_t w = send(fd, out.data(), out.size(), MSG_NOSIGNAL);
          answered_.fetch_add(c.complete, std::memory_order_relaxed);
          c.complete = 0;
        }
        if (r == 0) {
          epoll_ctl(ep, EPOLL_CTL_DEL, fd, nullptr);
          close(fd);
          conns_.erase(fd);
        }
      }
    }
    close(ep);
  }
  static void add(int ep, int fd) {
    epoll_event ev{};
    ev.events = EPOLLIN;
    ev.data.fd = fd;
    epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev);
  }

  int listen_ = -1;
  uint16_t port_ = 0;
  llhttp_settings_t settings_{};
  std::unordered_map<int, std::unique_ptr<Conn>> conns_;
  std::atomic<uint64_t> answered_{0};
  std::atomic<bool> stop_{false};
  std::thread thread_;
};

Config benchConfig(uint16_t mirrorPort, uint32_t workers) {
  std::vector<std::string> args = {"shadowtap", "-i", "bench0", "--rule",
                                   "port=8000,mirror=127.0.0.1:" + std::to_string(mirrorPort), "--workers",
                                   std::to_string(workers), "--metrics-address", "off", "--summary-interval", "0"};
  std::vector<char*> argv;
  for (auto& a : args) {
    argv.push_back(a.data());
  }
  Config c;
  std::string error;
  if (!reparseConfig(static_cast<int>(argv.size()), argv.data(), c, &error)) {
    spdlog::error("bench config: {}", error);
  }
  return c;
}

}  // namespace

AgentRun runAgent(const std::vector<AgentSegment>& segments, uint64_t requests, uint32_t workers, uint64_t window) {
  spdlog::set_level(spdlog::level::warn);
  AgentRun out;
  auto mirror = std::make_unique<SinkMirror>();
  testing::SyntheticSource* source = nullptr;
  std::string error;
  auto p = Pipeline::create(benchConfig(mirror->port(), workers), &error,
                            [&source](const capture::CaptureOptions& o, std::string*) {
                              auto s = std::make_unique<testing::SyntheticSource>(o.workers);
                              source = s.get();
                              return s;
                            });
  if (!p) {
    spdlog::error("bench pipeline: {}", error);
    return out;
  }
  const double cpu0 = processCpuSeconds(), producer0 = threadCpuSeconds(), sink0 = mirror->cpuSeconds();
  const uint64_t t0 = nowNs();
  uint64_t pushed = 0;
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(60);
  for (const AgentSegment& s : segments) {
    // Held back by the window; past the deadline (requests lost, never
    // answered) it goes on, and the run reports them lost.
    while (pushed > mirror->answered() + window && std::chrono::steady_clock::now() < deadline) {
      std::this_thread::sleep_for(std::chrono::microseconds(50));
    }
    source->push(s.segment);
    pushed += s.endsRequest ? 1 : 0;
  }
  const auto end = std::max(deadline, std::chrono::steady_clock::now() + std::chrono::seconds(5));
  while (mirror->answered() < requests && std::chrono::steady_clock::now() < end) {
    std::this_thread::sleep_for(std::chrono::microseconds(200));
  }
  out.seconds = double(nowNs() - t0) / 1e9;
  const double producer = threadCpuSeconds() - producer0;
  const double sink = mirror->cpuSeconds() - sink0;
  const double all = processCpuSeconds() - cpu0;
  out.answered = mirror->answered();
  p->stop();
  const metrics::Snapshot snap = p->counters();
  out.lost = uint64_t(snap.sum("shadowtap_mirror_requests_total") -
                      snap.sum("shadowtap_mirror_requests_total", {{"outcome", "response_2xx"}}));
  out.agentCpuSeconds = all - producer - sink;
  return out;
}

}  // namespace shadowtap::bench
