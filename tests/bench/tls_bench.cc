// What --tls costs the probed process (issue 18 item 4): ns per SSL_read of a
// TLS server (a child process, OpenSSL 3's libssl.so.3) without shadowtap's
// TLS programs, with them attached but the connection not followed (no rule
// on its port: the uprobe and uretprobe run and look the SSL object up), and
// with the connection followed (a rule: every read is copied into the ring).
//
// The client writes every record before the server starts its clock, so the
// server's loop measures SSL_read itself (decryption of one record plus, when
// attached, the probes), not waiting. Loopback TCP in a private network
// namespace; root. Runs interleaved, median.
//
// Usage: tls_bench [--runs N] [--reads N] [--json FILE]

#include <arpa/inet.h>
#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <net/if.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/ssl.h>
#include <sched.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include "capture/loader.h"
#include "capture/tls_probes.h"
#include "shadowtap/capture_abi.h"

using shadowtap::capture::CaptureOptions;
using shadowtap::capture::LoadedProgram;
using shadowtap::capture::TlsProbes;

namespace {

constexpr uint16_t kPort = 18443;
constexpr int kBufBytes = 128 << 20;

enum class Case { kOff, kNoRule, kFollowed };
const char* caseName(Case c) {
  return c == Case::kOff ? "no probes (baseline)" : c == Case::kNoRule ? "probes, connection not followed (no rule)"
                                                                       : "probes, connection followed (copied)";
}

uint64_t nowNs() {
  timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return uint64_t(ts.tv_sec) * 1000000000ULL + uint64_t(ts.tv_nsec);
}

bool loopbackUp() {
  if (unshare(CLONE_NEWNET) != 0) {
    return false;
  }
  const int s = socket(AF_INET, SOCK_DGRAM, 0);
  ifreq ifr{};
  std::strcpy(ifr.ifr_name, "lo");
  const bool ok = ioctl(s, SIOCGIFFLAGS, &ifr) == 0 && (ifr.ifr_flags |= IFF_UP, ioctl(s, SIOCSIFFLAGS, &ifr) == 0);
  close(s);
  return ok;
}

void bigBuffers(int fd) {
  setsockopt(fd, SOL_SOCKET, SO_RCVBUFFORCE, &kBufBytes, sizeof(kBufBytes));
  setsockopt(fd, SOL_SOCKET, SO_SNDBUFFORCE, &kBufBytes, sizeof(kBufBytes));
}

// One measurement: ns per SSL_read of `size`-byte records, `reads` of them,
// read by a child server process. -1 on failure.
double measure(SSL_CTX* sctx, SSL_CTX* cctx, size_t size, int reads) {
  const int lsn = socket(AF_INET, SOCK_STREAM, 0);
  const int one = 1;
  setsockopt(lsn, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
  bigBuffers(lsn);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(kPort);
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (bind(lsn, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0 || listen(lsn, 1) != 0) {
    std::perror("bind/listen");
    return -1;
  }
  int go[2], result[2];
  if (pipe(go) != 0 || pipe(result) != 0) {
    return -1;
  }
  const pid_t child = fork();
  if (child == 0) {
    const int fd = accept(lsn, nullptr, nullptr);
    SSL* ssl = SSL_new(sctx);
    SSL_set_fd(ssl, fd);
    double ns = -1;
    if (SSL_accept(ssl) == 1) {
      char c;
      std::vector<char> buf(size);
      if (read(go[0], &c, 1) == 1) {
        const uint64_t t0 = nowNs();
        int ok = 0;
        for (int i = 0; i < reads; ++i) {
          ok += SSL_read(ssl, buf.data(), static_cast<int>(size)) == static_cast<int>(size);
        }
        ns = ok == reads ? double(nowNs() - t0) / reads : -1;
      }
    }
    SSL_free(ssl);
    close(fd);
    [[maybe_unused]] ssize_t w = write(result[1], &ns, sizeof(ns));
    _exit(0);
  }
  const int fd = socket(AF_INET, SOCK_STREAM, 0);
  bigBuffers(fd);
  setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
  double ns = -1;
  if (connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) == 0) {
    SSL* ssl = SSL_new(cctx);
    SSL_set_fd(ssl, fd);
    if (SSL_connect(ssl) == 1) {
      std::vector<char> msg(size, 'x');
      bool ok = true;
      for (int i = 0; i < reads && ok; ++i) {
        ok = SSL_write(ssl, msg.data(), static_cast<int>(size)) == static_cast<int>(size);
      }
      usleep(200000);  // everything written is in the server's receive queue before its clock starts
      [[maybe_unused]] ssize_t w = write(go[1], "g", 1);
      if (read(result[0], &ns, sizeof(ns)) != sizeof(ns) || !ok) {
        ns = -1;
      }
    }
    SSL_free(ssl);
  }
  close(fd);
  waitpid(child, nullptr, 0);
  for (int p : {go[0], go[1], result[0], result[1], lsn}) {
    close(p);
  }
  return ns;
}

int drain(void*, void*, size_t) { return 0; }

}  // namespace

int main(int argc, char** argv) {
  int runs = 5;
  int reads = 2000;
  const char* jsonPath = nullptr;
  for (int i = 1; i < argc; ++i) {
    if (!std::strcmp(argv[i], "--runs") && i + 1 < argc) {
      runs = std::atoi(argv[++i]);
    } else if (!std::strcmp(argv[i], "--reads") && i + 1 < argc) {
      reads = std::atoi(argv[++i]);
    } else if (!std::strcmp(argv[i], "--json") && i + 1 < argc) {
      jsonPath = argv[++i];
    } else {
      std::fprintf(stderr, "usage: %s [--runs N] [--reads N] [--json FILE]\n", argv[0]);
      return 2;
    }
  }
  if (geteuid() != 0 || !loopbackUp()) {
    std::fprintf(stderr, "tls_bench needs root (a private network namespace, BPF)\n");
    return 77;
  }
  if (std::system("openssl req -x509 -newkey rsa:2048 -nodes -days 1 -subj /CN=bench "
                  "-keyout /tmp/st-tls-bench-key.pem -out /tmp/st-tls-bench-cert.pem 2>/dev/null") != 0) {
    return 1;
  }
  SSL_CTX* sctx = SSL_CTX_new(TLS_server_method());
  SSL_CTX* cctx = SSL_CTX_new(TLS_client_method());
  SSL_CTX_use_certificate_file(sctx, "/tmp/st-tls-bench-cert.pem", SSL_FILETYPE_PEM);
  SSL_CTX_use_PrivateKey_file(sctx, "/tmp/st-tls-bench-key.pem", SSL_FILETYPE_PEM);
  std::remove("/tmp/st-tls-bench-key.pem");
  std::remove("/tmp/st-tls-bench-cert.pem");

  CaptureOptions options;
  options.ringBufferBytes = 64u << 20;  // the followed case's records fit without a consumer racing the clock
  std::string error;
  auto program = LoadedProgram::load(options, &error);
  if (!program) {
    std::fprintf(stderr, "%s\n", error.c_str());
    return 1;
  }
  ring_buffer* ring = ring_buffer__new(program->eventsFd(), &drain, nullptr, nullptr);

  const std::vector<size_t> sizes = {64, 1024, 16384};
  const Case cases[] = {Case::kOff, Case::kNoRule, Case::kFollowed};
  std::vector<std::vector<std::vector<double>>> ns(3, std::vector<std::vector<double>>(sizes.size()));
  for (int run = 0; run < runs; ++run) {
    for (Case c : cases) {
      std::unique_ptr<TlsProbes> probes;
      if (c != Case::kOff) {
        probes = TlsProbes::open(program->xdpShared(), "", &error);
        if (!probes) {
          std::fprintf(stderr, "%s\n", error.c_str());
          return 1;
        }
      }
      const uint32_t key = kPort;
      const st_rule rule{c == Case::kFollowed ? 1u : 0u, ST_SAMPLE_SCALE, 0};
      bpf_map_update_elem(program->rulesFd(), &key, &rule, BPF_ANY);
      for (size_t s = 0; s < sizes.size(); ++s) {
        const double v = measure(sctx, cctx, sizes[s], sizes[s] >= 16384 ? reads / 2 : reads);
        if (v < 0) {
          std::fprintf(stderr, "measurement failed\n");
          return 1;
        }
        ns[static_cast<int>(c)][s].push_back(v);
        ring_buffer__consume(ring);
      }
    }
  }
  const auto counters = program->counters();
  auto median = [](std::vector<double> v) {
    std::sort(v.begin(), v.end());
    return v[v.size() / 2];
  };
  std::printf("| case | record | ns per SSL_read (median) | added ns | ratio | all runs (ns) |\n|---|---:|---:|---:|---:|---|\n");
  std::string json = "{\"runs\": " + std::to_string(runs) + ", \"reads\": " + std::to_string(reads) + ", \"cases\": [";
  for (Case c : cases) {
    for (size_t s = 0; s < sizes.size(); ++s) {
      const double m = median(ns[static_cast<int>(c)][s]);
      const double base = median(ns[0][s]);
      std::string all;
      for (double v : ns[static_cast<int>(c)][s]) {
        all += (all.empty() ? "" : ", ") + std::to_string(static_cast<long>(v + 0.5));
      }
      std::printf("| %s | %zu B | %.0f | %+.0f | %.2fx | %s |\n", caseName(c), sizes[s], m, m - base, m / base,
                  all.c_str());
      char item[256];
      std::snprintf(item, sizeof(item), "%s{\"case\": \"%s\", \"bytes\": %zu, \"ns\": %.1f, \"baseline_ns\": %.1f}",
                    json.back() == '[' ? "" : ", ", caseName(c), sizes[s], m, base);
      json += item;
    }
  }
  json += "]}\n";
  std::printf("\nkernel counters: tls_set_fd %llu, tls_matched %llu, tls_copied %llu, tls_copied_bytes %llu, "
              "ringbuf_full %llu, tls_read_fault %llu\n",
              (unsigned long long)counters.tlsSetFd, (unsigned long long)counters.tlsMatched,
              (unsigned long long)counters.tlsCopied, (unsigned long long)counters.tlsCopiedBytes,
              (unsigned long long)counters.ringbufFull, (unsigned long long)counters.tlsReadFault);
  if (jsonPath) {
    if (FILE* f = std::fopen(jsonPath, "w")) {
      std::fputs(json.c_str(), f);
      std::fclose(f);
    }
  }
  ring_buffer__free(ring);
  SSL_CTX_free(sctx);
  SSL_CTX_free(cctx);
  return 0;
}
