// The TLS programs (capture_tls.bpf.c, ABI 5) on the real libssl.so.3: this
// process runs an OpenSSL server and client over TCP on the loopback of a
// private network namespace, and the records its uprobes produce are checked
// field by field: the socket's 4-tuple from the file table, SYN at SSL_set_fd,
// each SSL_read/SSL_read_ex as one record at the plaintext offset after the
// ISN, FIN at SSL_free, the worker of the symmetric flow hash, responses only
// for rules that compare, and the client side (no rule on its port) not read.
// Loading it also runs the verifier on the programs (the kernel matrix: 6.1).

#include <arpa/inet.h>
#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <dlfcn.h>
#include <gtest/gtest.h>
#include <link.h>
#include <net/if.h>
#include <netinet/in.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <sched.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <string>
#include <thread>
#include <vector>

#include "capture_tc.skel.h"
#include "capture_tls.skel.h"
#include "packet_builder.h"
#include "reference_hash.h"
#include "shadowtap/capture_abi.h"

namespace shadowtap::bpftest {
namespace {

constexpr uint32_t kWorkers = 2;
constexpr uint32_t kSeed = 0x5eed;
constexpr uint32_t kRuleId = 7;
const std::string kRequest1 = "POST /tls HTTP/1.1\r\nHost: primary\r\nContent-Length: 5\r\n\r\n";
const std::string kRequest2 = "hello";
const std::string kResponse = "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n";

struct Seen {
  uint32_t worker = 0;
  st_segment hdr{};
  std::string payload;
};

struct RingCtx {
  std::vector<Seen>* out;
  uint32_t worker;
};

int onRecord(void* ctx, void* data, size_t size) {
  auto* rc = static_cast<RingCtx*>(ctx);
  Seen s;
  s.worker = rc->worker;
  std::memcpy(&s.hdr, data, sizeof(st_segment));
  s.payload.assign(static_cast<const char*>(data) + sizeof(st_segment), s.hdr.cap_len);
  if (size >= sizeof(st_segment) + s.hdr.cap_len) {
    rc->out->push_back(std::move(s));
  }
  return 0;
}

std::string loaderLibssl() {
  void* h = dlopen("libssl.so.3", RTLD_LAZY);
  link_map* map = nullptr;
  std::string path;
  if (h && dlinfo(h, RTLD_DI_LINKMAP, &map) == 0 && map) {
    char buf[PATH_MAX];
    if (realpath(map->l_name, buf)) {
      path = buf;
    }
  }
  return path;
}

// A self-signed P-256 certificate, made here: no files.
bool selfSigned(SSL_CTX* ctx) {
  EVP_PKEY* key = EVP_EC_gen("P-256");
  X509* cert = X509_new();
  if (!key || !cert) {
    return false;
  }
  ASN1_INTEGER_set(X509_get_serialNumber(cert), 1);
  X509_gmtime_adj(X509_getm_notBefore(cert), 0);
  X509_gmtime_adj(X509_getm_notAfter(cert), 3600);
  X509_set_pubkey(cert, key);
  X509_NAME_add_entry_by_txt(X509_get_subject_name(cert), "CN", MBSTRING_ASC,
                             reinterpret_cast<const unsigned char*>("primary"), -1, -1, 0);
  X509_set_issuer_name(cert, X509_get_subject_name(cert));
  const bool ok = X509_sign(cert, key, EVP_sha256()) > 0 && SSL_CTX_use_certificate(ctx, cert) == 1 &&
                  SSL_CTX_use_PrivateKey(ctx, key) == 1;
  X509_free(cert);
  EVP_PKEY_free(key);
  return ok;
}

class CaptureTlsTest : public ::testing::TestWithParam<bool> {
 protected:
  bool compare() const { return GetParam(); }

  void SetUp() override {
    if (geteuid() != 0) {
      const char* ci = std::getenv("CI");
      if (ci && std::string(ci) == "true") {
        FAIL() << "BPF tests need root (CI=true, so this is a failure, not a skip)";
      }
      GTEST_SKIP() << "BPF tests need root";
    }
    library_ = loaderLibssl();
    ASSERT_FALSE(library_.empty()) << "no libssl.so.3 for the loader";
    // Our own loopback: nothing leaves this namespace.
    ASSERT_EQ(unshare(CLONE_NEWNET), 0) << std::strerror(errno);
    const int s = socket(AF_INET, SOCK_DGRAM, 0);
    ifreq ifr{};
    std::strcpy(ifr.ifr_name, "lo");
    ASSERT_EQ(ioctl(s, SIOCGIFFLAGS, &ifr), 0);
    ifr.ifr_flags |= IFF_UP;
    ASSERT_EQ(ioctl(s, SIOCSIFFLAGS, &ifr), 0);
    close(s);

    tc_ = capture_tc__open();
    ASSERT_NE(tc_, nullptr);
    tc_->rodata->st_workers = kWorkers;
    tc_->rodata->st_hash_seed = kSeed;
    ASSERT_EQ(capture_tc__load(tc_), 0);
    ring1_ = bpf_map_create(BPF_MAP_TYPE_RINGBUF, "st_test_ring", 0, 0, 1u << 20, nullptr);
    ASSERT_GE(ring1_, 0);
    const uint32_t one = 1;
    ASSERT_EQ(bpf_map_update_elem(bpf_map__fd(tc_->maps.st_rings), &one, &ring1_, BPF_ANY), 0);
    ctx_[0] = {&seen_, 0};
    ctx_[1] = {&seen_, 1};
    reader_ = ring_buffer__new(bpf_map__fd(tc_->maps.st_events), &onRecord, &ctx_[0], nullptr);
    ASSERT_NE(reader_, nullptr);
    ASSERT_EQ(ring_buffer__add(reader_, ring1_, &onRecord, &ctx_[1]), 0);

    tls_ = capture_tls__open();
    ASSERT_NE(tls_, nullptr);
    tls_->rodata->st_workers = kWorkers;
    tls_->rodata->st_hash_seed = kSeed;
    tls_->rodata->st_self_tgid = 0;  // this process is the one read
    ASSERT_EQ(bpf_map__reuse_fd(tls_->maps.st_rules, bpf_map__fd(tc_->maps.st_rules)), 0);
    ASSERT_EQ(bpf_map__reuse_fd(tls_->maps.st_prefix_rules, bpf_map__fd(tc_->maps.st_prefix_rules)), 0);
    ASSERT_EQ(bpf_map__reuse_fd(tls_->maps.st_events, bpf_map__fd(tc_->maps.st_events)), 0);
    ASSERT_EQ(bpf_map__reuse_fd(tls_->maps.st_rings, bpf_map__fd(tc_->maps.st_rings)), 0);
    ASSERT_EQ(bpf_map__reuse_fd(tls_->maps.st_counters, bpf_map__fd(tc_->maps.st_counters)), 0);
    ASSERT_EQ(capture_tls__load(tls_), 0) << "the verifier refused the TLS programs (LIBBPF_DEBUG=1 for the log)";
    const std::pair<bpf_program*, std::pair<const char*, bool>> probes[] = {
        {tls_->progs.st_tls_set_fd, {"SSL_set_fd", false}},
        {tls_->progs.st_tls_read, {"SSL_read", false}},
        {tls_->progs.st_tls_read_ret, {"SSL_read", true}},
        {tls_->progs.st_tls_read_ex, {"SSL_read_ex", false}},
        {tls_->progs.st_tls_read_ex_ret, {"SSL_read_ex", true}},
        {tls_->progs.st_tls_write, {"SSL_write", false}},
        {tls_->progs.st_tls_write_ret, {"SSL_write", true}},
        {tls_->progs.st_tls_free, {"SSL_free", false}},
    };
    for (const auto& [prog, where] : probes) {
      LIBBPF_OPTS(bpf_uprobe_opts, opts, .retprobe = where.second, .func_name = where.first);
      bpf_link* link = bpf_program__attach_uprobe_opts(prog, -1, library_.c_str(), 0, &opts);
      ASSERT_NE(link, nullptr) << where.first << ": " << std::strerror(errno);
      links_.push_back(link);
    }
  }

  void TearDown() override {
    for (bpf_link* l : links_) {
      bpf_link__destroy(l);
    }
    if (reader_) {
      ring_buffer__free(reader_);
    }
    if (ring1_ >= 0) {
      close(ring1_);
    }
    capture_tls__destroy(tls_);
    capture_tc__destroy(tc_);
  }

  void addRule(uint16_t port) {
    const uint32_t key = port;
    const st_rule rule{kRuleId, ST_SAMPLE_SCALE, compare() ? uint32_t{ST_RULE_F_COMPARE} : 0u};
    ASSERT_EQ(bpf_map_update_elem(bpf_map__fd(tc_->maps.st_rules), &key, &rule, BPF_ANY), 0);
  }

  uint64_t counter(uint32_t idx) {
    const int n = libbpf_num_possible_cpus();
    std::vector<uint64_t> v(static_cast<size_t>(n));
    uint64_t sum = 0;
    if (bpf_map_lookup_elem(bpf_map__fd(tc_->maps.st_counters), &idx, v.data()) == 0) {
      for (uint64_t x : v) {
        sum += x;
      }
    }
    return sum;
  }

  std::string library_;
  capture_tc* tc_ = nullptr;
  capture_tls* tls_ = nullptr;
  int ring1_ = -1;
  ring_buffer* reader_ = nullptr;
  RingCtx ctx_[2]{};
  std::vector<Seen> seen_;
  std::vector<bpf_link*> links_;
};

TEST_P(CaptureTlsTest, ServerPlaintextBecomesOneOrderedStreamOfItsFourTuple) {
  const int lsn = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ASSERT_EQ(bind(lsn, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)), 0);
  ASSERT_EQ(listen(lsn, 4), 0);
  socklen_t len = sizeof(addr);
  getsockname(lsn, reinterpret_cast<sockaddr*>(&addr), &len);
  const uint16_t port = ntohs(addr.sin_port);
  addRule(port);

  const int cfd = socket(AF_INET, SOCK_STREAM, 0);
  ASSERT_EQ(connect(cfd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)), 0);
  sockaddr_in caddr{};
  len = sizeof(caddr);
  getsockname(cfd, reinterpret_cast<sockaddr*>(&caddr), &len);
  const int sfd = accept(lsn, nullptr, nullptr);
  ASSERT_GE(sfd, 0);

  SSL_CTX* sctx = SSL_CTX_new(TLS_server_method());
  SSL_CTX* cctx = SSL_CTX_new(TLS_client_method());
  ASSERT_TRUE(selfSigned(sctx));
  SSL* server = SSL_new(sctx);
  SSL* client = SSL_new(cctx);
  ASSERT_EQ(SSL_set_fd(server, sfd), 1);
  ASSERT_EQ(SSL_set_fd(client, cfd), 1);

  std::string got;
  std::thread srv([&] {
    char buf[4096];
    if (SSL_accept(server) != 1) {
      return;
    }
    const int n = SSL_read(server, buf, static_cast<int>(kRequest1.size()));  // the head: SSL_read
    if (n > 0) {
      got.append(buf, static_cast<size_t>(n));
    }
    size_t m = 0;
    if (SSL_read_ex(server, buf, sizeof(buf), &m) == 1) {  // the body: SSL_read_ex
      got.append(buf, m);
    }
    SSL_write(server, kResponse.data(), static_cast<int>(kResponse.size()));
  });
  ASSERT_EQ(SSL_connect(client), 1);
  ASSERT_EQ(SSL_write(client, kRequest1.data(), static_cast<int>(kRequest1.size())), static_cast<int>(kRequest1.size()));
  usleep(50000);  // two TLS records, two reads
  ASSERT_EQ(SSL_write(client, kRequest2.data(), static_cast<int>(kRequest2.size())), static_cast<int>(kRequest2.size()));
  char rbuf[256];
  ASSERT_EQ(SSL_read(client, rbuf, sizeof(rbuf)), static_cast<int>(kResponse.size()));
  srv.join();
  ASSERT_EQ(got, kRequest1 + kRequest2);
  SSL_free(server);
  SSL_free(client);
  SSL_CTX_free(sctx);
  SSL_CTX_free(cctx);
  close(sfd);
  close(cfd);
  close(lsn);

  ASSERT_GE(ring_buffer__consume(reader_), 0);
  Ip6Addr lo{127, 0, 0, 1};
  const uint16_t cport = ntohs(caddr.sin_port);
  const uint32_t worker = referenceWorker(referenceFlowHash(lo, cport, lo, port, kSeed), kWorkers);

  std::vector<Seen> in, out;
  for (const Seen& s : seen_) {
    (s.hdr.direction == ST_DIR_TO_SERVER ? in : out).push_back(s);
    EXPECT_EQ(s.hdr.source, ST_SRC_TLS);
    EXPECT_EQ(s.hdr.abi_version, SHADOWTAP_ABI_VERSION);
    EXPECT_EQ(s.hdr.rule_id, kRuleId);
    EXPECT_EQ(s.hdr.family, ST_FAMILY_IPV4);
    EXPECT_EQ(s.worker, worker) << "every record of the connection goes to its flow hash's worker";
    EXPECT_EQ(s.hdr.ifindex, 0u);
  }
  ASSERT_EQ(in.size(), 4u) << "SYN, the SSL_read, the SSL_read_ex, FIN; the client (no rule) is not read";
  const uint32_t isn = in[0].hdr.seq;
  EXPECT_EQ(in[0].hdr.tcp_flags, ST_TCP_SYN);
  EXPECT_EQ(in[0].hdr.cap_len, 0u);
  EXPECT_EQ(in[1].payload, kRequest1);
  EXPECT_EQ(in[1].hdr.seq, isn + 1);
  EXPECT_EQ(in[1].hdr.payload_len, kRequest1.size());
  EXPECT_EQ(in[2].payload, kRequest2);
  EXPECT_EQ(in[2].hdr.seq, isn + 1 + kRequest1.size());
  EXPECT_EQ(in[3].hdr.tcp_flags, ST_TCP_FIN | ST_TCP_ACK);
  EXPECT_EQ(in[3].hdr.seq, isn + 1 + kRequest1.size() + kRequest2.size());
  // To-server orientation: the client is the source, the server's port the destination.
  EXPECT_EQ(ntohs(in[1].hdr.sport), cport);
  EXPECT_EQ(ntohs(in[1].hdr.dport), port);
  EXPECT_EQ(std::memcmp(in[1].hdr.saddr, lo.data(), 4), 0);
  EXPECT_EQ(std::memcmp(in[1].hdr.daddr, lo.data(), 4), 0);

  if (compare()) {
    ASSERT_EQ(out.size(), 3u) << "SYN, the SSL_write, FIN";
    EXPECT_EQ(out[1].payload, kResponse);
    EXPECT_EQ(ntohs(out[1].hdr.sport), port);
    EXPECT_EQ(ntohs(out[1].hdr.dport), cport);
    EXPECT_EQ(out[2].hdr.seq, out[0].hdr.seq + 1 + kResponse.size());
  } else {
    EXPECT_TRUE(out.empty()) << "responses are copied only for rules that compare";
  }
  EXPECT_EQ(counter(ST_CNT_TLS_SET_FD), 2u);
  EXPECT_EQ(counter(ST_CNT_TLS_MATCHED), 1u);
  EXPECT_EQ(counter(ST_CNT_TLS_COPIED), compare() ? 3u : 2u);
  EXPECT_EQ(counter(ST_CNT_TLS_COPIED_BYTES),
            kRequest1.size() + kRequest2.size() + (compare() ? kResponse.size() : 0));
  EXPECT_EQ(counter(ST_CNT_TLS_FREED), 1u);
  EXPECT_EQ(counter(ST_CNT_TLS_READ_FAULT), 0u);
}

INSTANTIATE_TEST_SUITE_P(Compare, CaptureTlsTest, ::testing::Bool(),
                         [](const ::testing::TestParamInfo<bool>& i) { return i.param ? "compare" : "mirror"; });

}  // namespace
}  // namespace shadowtap::bpftest
