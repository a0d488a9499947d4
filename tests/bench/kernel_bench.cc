// Kernel cost per packet: st_capture_tc through bpf_prog_test_run_opts with a
// large repeat, against the do-nothing TC program (st_testing_noop) in the same
// run. Needs root (or CAP_BPF + CAP_NET_ADMIN).
//
// Cases: a TCP packet to a port without a rule (unmatched), a matched packet of a
// connection outside the sample (0 %), and matched 64-byte and 1460-byte segments
// at 100 % (copied into the ring buffer). The ring buffer is drained between
// batches, so it never fills; the program's ringbuf_full counter is checked.
//
// Usage: kernel_bench [--runs N] [--repeat N] [--json FILE]

#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "capture_tc.skel.h"
#include "shadowtap/capture_abi.h"
#include "testing_noop_tc.skel.h"

namespace {

using Bytes = std::vector<uint8_t>;

void put16(Bytes& b, uint16_t v) {
  b.push_back(uint8_t(v >> 8));
  b.push_back(uint8_t(v));
}
void put32(Bytes& b, uint32_t v) {
  put16(b, uint16_t(v >> 16));
  put16(b, uint16_t(v));
}

// Ethernet + IPv4 (20 B) + TCP (20 B + 12 B of timestamp-sized NOP options, as
// Linux sends) + payload. Checksums are zero: the program never reads them.
Bytes tcpFrame(uint16_t dport, size_t payloadLen) {
  Bytes b = {0x02, 0, 0, 0, 0, 0x02, 0x02, 0, 0, 0, 0, 0x01, 0x08, 0x00};
  const size_t tcpLen = 32;
  b.push_back(0x45);
  b.push_back(0);
  put16(b, uint16_t(20 + tcpLen + payloadLen));
  put16(b, 0x1234);
  put16(b, 0x4000);
  b.push_back(64);
  b.push_back(6);
  put16(b, 0);
  for (uint8_t a : {198, 18, 0, 1}) b.push_back(a);
  for (uint8_t a : {198, 18, 1, 1}) b.push_back(a);
  put16(b, 40000);
  put16(b, dport);
  put32(b, 1000);
  put32(b, 2000);
  b.push_back(uint8_t((tcpLen / 4) << 4));
  b.push_back(0x18);  // PSH|ACK
  put16(b, 65535);
  put16(b, 0);
  put16(b, 0);
  b.insert(b.end(), tcpLen - 20, 0x01);
  for (size_t i = 0; i < payloadLen; ++i) {
    b.push_back(uint8_t('a' + i % 26));
  }
  return b;
}

int noopRecord(void*, void*, size_t) { return 0; }

struct Case {
  std::string name;
  int progFd;
  Bytes frame;
  uint32_t batch;  // repeat per test run, small enough that the ring never fills
  std::vector<double> nsPerPacket;
};

// Average ns per run over `total` runs, in batches of c.batch, draining the ring
// between batches (the drain is not timed: only the kernel's own duration counts).
double measure(Case& c, uint64_t total, ring_buffer* ring) {
  uint64_t done = 0;
  double ns = 0;
  while (done < total) {
    const uint32_t rep = uint32_t(std::min<uint64_t>(c.batch, total - done));
    LIBBPF_OPTS(bpf_test_run_opts, opts, .data_in = c.frame.data(),
                .data_size_in = uint32_t(c.frame.size()), .repeat = static_cast<int>(rep));
    const int err = bpf_prog_test_run_opts(c.progFd, &opts);
    if (err != 0) {
      std::fprintf(stderr, "%s: bpf_prog_test_run_opts: %s\n", c.name.c_str(), std::strerror(-err));
      std::exit(1);
    }
    if (int32_t(opts.retval) != -1) {
      std::fprintf(stderr, "%s: verdict %d, expected TC_ACT_UNSPEC\n", c.name.c_str(), int(opts.retval));
      std::exit(1);
    }
    ns += double(opts.duration) * rep;
    done += rep;
    if (ring) {
      ring_buffer__consume(ring);
    }
  }
  return ns / double(total);
}

std::array<uint64_t, ST_CNT_MAX> counters(capture_tc* skel) {
  std::array<uint64_t, ST_CNT_MAX> sum{};
  const int cpus = libbpf_num_possible_cpus();
  std::vector<uint64_t> per(static_cast<size_t>(cpus));
  for (uint32_t i = 0; i < ST_CNT_MAX; ++i) {
    if (bpf_map__lookup_elem(skel->maps.st_counters, &i, sizeof(i), per.data(), per.size() * 8, 0) == 0) {
      for (uint64_t v : per) sum[i] += v;
    }
  }
  return sum;
}

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  const size_t n = v.size();
  return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

}  // namespace

int main(int argc, char** argv) {
  int runs = 5;
  uint64_t repeat = 1'000'000;
  const char* jsonPath = nullptr;
  for (int i = 1; i < argc; ++i) {
    if (!std::strcmp(argv[i], "--runs") && i + 1 < argc) {
      runs = std::atoi(argv[++i]);
    } else if (!std::strcmp(argv[i], "--repeat") && i + 1 < argc) {
      repeat = std::strtoull(argv[++i], nullptr, 10);
    } else if (!std::strcmp(argv[i], "--json") && i + 1 < argc) {
      jsonPath = argv[++i];
    } else {
      std::fprintf(stderr, "usage: %s [--runs N] [--repeat N] [--json FILE]\n", argv[0]);
      return 2;
    }
  }
  if (geteuid() != 0) {
    std::fprintf(stderr, "kernel_bench needs root (BPF_PROG_TEST_RUN)\n");
    return 77;
  }
  libbpf_set_print([](enum libbpf_print_level lvl, const char* fmt, va_list ap) {
    return lvl == LIBBPF_WARN ? std::vfprintf(stderr, fmt, ap) : 0;
  });

  constexpr uint32_t kRingBytes = 64u << 20;
  capture_tc* cap = capture_tc__open();
  if (!cap) {
    std::perror("capture_tc__open");
    return 1;
  }
  cap->rodata->st_hash_seed = 0x5eed1234;
  bpf_map__set_max_entries(cap->maps.st_events, kRingBytes);
  if (int err = capture_tc__load(cap); err != 0) {
    std::fprintf(stderr, "capture_tc__load: %s\n", std::strerror(-err));
    return 1;
  }
  testing_noop_tc* noop = testing_noop_tc__open_and_load();
  if (!noop) {
    std::perror("testing_noop_tc__open_and_load");
    return 1;
  }
  ring_buffer* ring = ring_buffer__new(bpf_map__fd(cap->maps.st_events), noopRecord, nullptr, nullptr);
  if (!ring) {
    std::perror("ring_buffer__new");
    return 1;
  }
  const uint32_t portAll = 8000, portNone = 8001;
  const st_rule all{1, ST_SAMPLE_SCALE, 0}, none{2, 0, 0};
  bpf_map__update_elem(cap->maps.st_rules, &portAll, 4, &all, sizeof(all), BPF_ANY);
  bpf_map__update_elem(cap->maps.st_rules, &portNone, 4, &none, sizeof(none), BPF_ANY);

  const int capFd = bpf_program__fd(cap->progs.st_capture_tc);
  const int noopFd = bpf_program__fd(noop->progs.st_testing_noop);
  // Record = 8 B ring header + st_segment + payload class: 1460 B uses the 2 KiB class.
  const uint32_t bigBatch = kRingBytes / (8 + sizeof(st_segment) + ST_CLASS_1) / 2;
  const uint32_t smallBatch = kRingBytes / (8 + sizeof(st_segment) + ST_CLASS_0) / 2;
  std::vector<Case> cases = {
      {"do-nothing TC program (baseline), 64 B segment", noopFd, tcpFrame(portAll, 64), 1'000'000, {}},
      {"unmatched port, 64 B segment", capFd, tcpFrame(9999, 64), 1'000'000, {}},
      {"matched, connection sampled out (0 %)", capFd, tcpFrame(portNone, 64), 1'000'000, {}},
      {"matched 64 B segment, copied (100 %)", capFd, tcpFrame(portAll, 64), smallBatch, {}},
      {"matched 1460 B segment, copied (100 %)", capFd, tcpFrame(portAll, 1460), bigBatch, {}},
  };
  // Warm-up, then interleaved runs.
  for (auto& c : cases) {
    measure(c, 20000, ring);
  }
  const auto before = counters(cap);
  for (int r = 0; r < runs; ++r) {
    for (auto& c : cases) {
      c.nsPerPacket.push_back(measure(c, repeat, ring));
    }
  }
  const auto after = counters(cap);
  const uint64_t ringFull = after[ST_CNT_RINGBUF_FULL] - before[ST_CNT_RINGBUF_FULL];
  const uint64_t copied = after[ST_CNT_COPIED] - before[ST_CNT_COPIED];
  const uint64_t expectCopied = 2 * uint64_t(runs) * repeat;

  const double base = median(cases[0].nsPerPacket);
  std::printf("kernel cost per packet, bpf_prog_test_run_opts, %d runs x %llu repeats (median)\n", runs,
              (unsigned long long)repeat);
  for (auto& c : cases) {
    const double m = median(c.nsPerPacket);
    std::printf("  %-48s %8.1f ns  %5.2fx baseline  (+%.1f ns)\n", c.name.c_str(), m, m / base, m - base);
  }
  std::printf("  copied %llu (expected %llu), ringbuf_full %llu\n", (unsigned long long)copied,
              (unsigned long long)expectCopied, (unsigned long long)ringFull);
  if (jsonPath) {
    FILE* f = std::fopen(jsonPath, "w");
    if (!f) {
      std::perror(jsonPath);
      return 1;
    }
    std::fprintf(f, "{\"runs\": %d, \"repeat\": %llu, \"copied\": %llu, \"expected_copied\": %llu,"
                    " \"ringbuf_full\": %llu, \"cases\": [\n",
                 runs, (unsigned long long)repeat, (unsigned long long)copied, (unsigned long long)expectCopied,
                 (unsigned long long)ringFull);
    for (size_t i = 0; i < cases.size(); ++i) {
      std::fprintf(f, "  {\"name\": \"%s\", \"frame_bytes\": %zu, \"ns\": %.2f, \"all_ns\": [", cases[i].name.c_str(),
                   cases[i].frame.size(), median(cases[i].nsPerPacket));
      for (size_t j = 0; j < cases[i].nsPerPacket.size(); ++j) {
        std::fprintf(f, "%s%.2f", j ? ", " : "", cases[i].nsPerPacket[j]);
      }
      std::fprintf(f, "]}%s\n", i + 1 < cases.size() ? "," : "");
    }
    std::fprintf(f, "]}\n");
    std::fclose(f);
  }
  ring_buffer__free(ring);
  testing_noop_tc__destroy(noop);
  capture_tc__destroy(cap);
  return (ringFull == 0 && copied == expectCopied) ? 0 : 1;
}
