// Chunking of segments larger than one 64 KiB record cannot go through
// bpf_prog_test_run (it caps a frame at about one page). This test makes such
// skbs for real: a private network namespace whose loopback allows IPv6 BIG TCP
// (GSO skbs up to 512 KiB, IPv6 payload length 0 plus a hop-by-hop jumbo
// header), the capture program attached at lo's TC ingress, and one TCP
// connection over [::1] sending a known byte pattern.

#include <arpa/inet.h>
#include <fcntl.h>
#include <net/if.h>
#include <netinet/in.h>
#include <sched.h>
#include <sys/socket.h>

#include <map>
#include <thread>

#include "capture_fixture.h"

namespace shadowtap::bpftest {
namespace {

constexpr uint16_t kPort = 8080;
constexpr size_t kStreamBytes = 8u << 20;

uint8_t streamByte(size_t i) { return static_cast<uint8_t>((i * 131 + (i >> 12)) & 0xff); }

// Parameter: lo's gso_max_size. 196608 gives chunked segments that all fit
// ST_MAX_CHUNKS records (so the records must tile the stream exactly); 524280,
// the kernel maximum, also gives segments beyond that, which are truncated.
class CaptureTcBigTcpTest : public CaptureFixture, public ::testing::WithParamInterface<int> {
 protected:
  // Room for the whole stream even at one 64 KiB reservation per 1 byte chunk tail.
  uint32_t ringBytes() const override { return 64u << 20; }
};

// Non-blocking loopback transfer of kStreamBytes from client to server.
void transfer(int client, int server) {
  size_t sent = 0;
  size_t received = 0;
  std::vector<uint8_t> out(1u << 20);
  std::vector<uint8_t> in(1u << 20);
  while (received < kStreamBytes) {
    if (sent < kStreamBytes) {
      const size_t n = std::min(out.size(), kStreamBytes - sent);
      for (size_t i = 0; i < n; ++i) {
        out[i] = streamByte(sent + i);
      }
      const ssize_t w = send(client, out.data(), n, MSG_DONTWAIT);
      if (w > 0) {
        sent += static_cast<size_t>(w);
      } else if (errno != EAGAIN) {
        ADD_FAILURE() << "send: " << std::strerror(errno);
        return;
      }
    }
    const ssize_t r = recv(server, in.data(), in.size(), MSG_DONTWAIT);
    if (r > 0) {
      received += static_cast<size_t>(r);
    } else if (r == 0 || (errno != EAGAIN)) {
      ADD_FAILURE() << "recv: " << std::strerror(errno);
      return;
    }
  }
}

TEST_P(CaptureTcBigTcpTest, LargeGsoSkbsAreSplitIntoChunks) {
  // unshare() moves only this thread; a helper thread keeps the test process's
  // own namespace untouched. Everything created dies with the namespace.
  std::thread worker([this] {
    ASSERT_EQ(unshare(CLONE_NEWNET), 0) << std::strerror(errno);
    const std::string cmd =
        "ip link set dev lo up && ip link set dev lo gso_max_size " + std::to_string(GetParam()) + " 2>/dev/null";
    if (std::system(cmd.c_str()) != 0) {
      GTEST_SKIP() << "cannot raise lo gso_max_size (kernel without IPv6 BIG TCP?)";
    }
    setRule(kPort, 7, ST_SAMPLE_SCALE);
    const int lo = static_cast<int>(if_nametoindex("lo"));
    LIBBPF_OPTS(bpf_tc_hook, hook, .ifindex = lo, .attach_point = BPF_TC_INGRESS);
    ASSERT_EQ(bpf_tc_hook_create(&hook), 0);
    LIBBPF_OPTS(bpf_tc_opts, tc, .prog_fd = bpf_program__fd(skel_->progs.st_capture_tc));
    ASSERT_EQ(bpf_tc_attach(&hook, &tc), 0);

    const int listener = socket(AF_INET6, SOCK_STREAM, 0);
    sockaddr_in6 addr{};
    addr.sin6_family = AF_INET6;
    addr.sin6_port = htons(kPort);
    addr.sin6_addr = in6addr_loopback;
    ASSERT_EQ(bind(listener, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)), 0);
    ASSERT_EQ(listen(listener, 1), 0);
    const int client = socket(AF_INET6, SOCK_STREAM, 0);
    ASSERT_EQ(connect(client, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)), 0);
    const int server = accept(listener, nullptr, nullptr);
    ASSERT_GE(server, 0);
    transfer(client, server);
    close(client);
    close(server);
    close(listener);
    bpf_tc_hook_destroy(&hook);
  });
  worker.join();
  if (IsSkipped() || HasFailure()) {
    return;
  }

  const std::vector<Record> recs = drain();
  const Counters c = counters();
  std::printf("[ info ] records=%zu copied=%llu bytes=%llu truncated=%llu ringbuf_full=%llu\n", recs.size(),
              static_cast<unsigned long long>(c[ST_CNT_COPIED]),
              static_cast<unsigned long long>(c[ST_CNT_COPIED_BYTES]),
              static_cast<unsigned long long>(c[ST_CNT_TRUNCATED]),
              static_cast<unsigned long long>(c[ST_CNT_RINGBUF_FULL]));
  EXPECT_EQ(c[ST_CNT_RINGBUF_FULL], 0u);
  EXPECT_EQ(c[ST_CNT_MALFORMED], 0u);

  // The client's SYN gives the initial sequence number; stream byte i has seq isn + 1 + i.
  uint32_t isn = 0;
  bool haveSyn = false;
  for (const Record& r : recs) {
    if (r.hdr.dport == htons(kPort) && (r.hdr.tcp_flags & ST_TCP_SYN) != 0) {
      isn = r.hdr.seq;
      haveSyn = true;
    }
  }
  ASSERT_TRUE(haveSyn);

  size_t segments = 0;
  uint64_t capBytes = 0;
  for (const Record& r : recs) {
    segments += r.hdr.chunk_offset == 0 ? 1 : 0;
    capBytes += r.hdr.cap_len;
    if (r.hdr.payload_len > ST_MAX_CHUNKS * ST_MAX_CHUNK) {
      EXPECT_LT(r.hdr.chunk_offset, uint32_t{ST_MAX_CHUNKS * ST_MAX_CHUNK});
    }
  }
  // Every segment is either copied whole or truncated; the byte counter adds up.
  EXPECT_EQ(c[ST_CNT_COPIED] + c[ST_CNT_TRUNCATED], segments);
  EXPECT_EQ(c[ST_CNT_COPIED_BYTES], capBytes);

  size_t chunked = 0;
  size_t maxPayload = 0;
  std::map<uint32_t, uint32_t> covered;  // stream offset -> length
  for (const Record& r : recs) {
    const st_segment& h = r.hdr;
    if (h.dport != htons(kPort) || h.cap_len == 0) {
      continue;
    }
    EXPECT_EQ(h.family, ST_FAMILY_IPV6);
    EXPECT_LE(h.cap_len, uint32_t{ST_MAX_CHUNK});
    EXPECT_LE(h.chunk_offset + h.cap_len, h.payload_len);
    EXPECT_EQ(h.chunk_offset % ST_MAX_CHUNK, 0u);
    chunked += h.chunk_offset > 0 ? 1 : 0;
    maxPayload = std::max<size_t>(maxPayload, h.payload_len);
    const uint32_t streamOff = h.seq - isn - 1;
    ASSERT_LE(size_t{streamOff} + h.cap_len, kStreamBytes);
    for (uint32_t i = 0; i < h.cap_len; ++i) {
      if (r.payload[i] != streamByte(streamOff + i)) {
        ADD_FAILURE() << "byte mismatch at stream offset " << streamOff + i;
        break;
      }
    }
    covered[streamOff] = std::max(covered[streamOff], h.cap_len);
  }
  std::printf("[ info ] largest segment seen: %zu bytes, records with chunk_offset > 0: %zu\n", maxPayload,
              chunked);
  if (maxPayload <= ST_MAX_CHUNK) {
    GTEST_SKIP() << "the kernel built no skb above 64 KiB (largest " << maxPayload << "), chunking not exercised";
  }
  EXPECT_GT(chunked, 0u);

  if (GetParam() < ST_MAX_CHUNKS * ST_MAX_CHUNK) {
    EXPECT_EQ(c[ST_CNT_TRUNCATED], 0u);
  }
  if (c[ST_CNT_TRUNCATED] == 0) {
    // Nothing truncated or lost: the records tile the stream exactly.
    uint64_t next = 0;
    for (const auto& [off, len] : covered) {
      EXPECT_LE(off, next) << "gap before stream offset " << off;
      next = std::max<uint64_t>(next, uint64_t{off} + len);
    }
    EXPECT_EQ(next, kStreamBytes);
  }
}

INSTANTIATE_TEST_SUITE_P(GsoMaxSize, CaptureTcBigTcpTest, ::testing::Values(196608, 524280));

}  // namespace
}  // namespace shadowtap::bpftest
