#include "record/pcap_writer.h"

#include <arpa/inet.h>
#include <pcap/pcap.h>

#include <gtest/gtest.h>

#include "record_test_util.h"

namespace shadowtap::record {
namespace {

using testing::TempDir;

struct Parsed {
  int family = 0;
  std::string src, dst;  // raw address bytes
  uint16_t sport = 0, dport = 0;
  uint32_t seq = 0, ack = 0;
  uint8_t flags = 0;
  std::string payload;
  bool ipChecksumOk = true;
  bool tcpChecksumOk = false;
  uint64_t tsUs = 0;
};

uint16_t rd16(const uint8_t* p) { return static_cast<uint16_t>((p[0] << 8) | p[1]); }
uint32_t rd32(const uint8_t* p) { return (uint32_t(rd16(p)) << 16) | rd16(p + 2); }

// Ones'-complement sum, written independently of the writer's.
uint32_t csum(const uint8_t* p, size_t n, uint32_t acc) {
  for (size_t i = 0; i + 1 < n; i += 2) {
    acc += rd16(p + i);
  }
  if (n % 2) {
    acc += uint32_t(p[n - 1]) << 8;
  }
  return acc;
}
bool sumsToZero(uint32_t acc) {
  while (acc >> 16) {
    acc = (acc & 0xffff) + (acc >> 16);
  }
  return acc == 0xffff;
}

std::vector<Parsed> readBack(const std::string& path, int* linktype) {
  char err[PCAP_ERRBUF_SIZE];
  pcap_t* p = pcap_open_offline(path.c_str(), err);
  EXPECT_NE(p, nullptr) << err;
  if (p == nullptr) {
    return {};
  }
  *linktype = pcap_datalink(p);
  std::vector<Parsed> out;
  pcap_pkthdr* h;
  const u_char* d;
  while (pcap_next_ex(p, &h, &d) == 1) {
    Parsed x;
    EXPECT_EQ(h->caplen, h->len);
    x.tsUs = uint64_t(h->ts.tv_sec) * 1'000'000 + uint64_t(h->ts.tv_usec);
    size_t ipLen;
    size_t total;
    uint32_t pseudo = 0;
    if ((d[0] >> 4) == 4) {
      x.family = 4;
      ipLen = (d[0] & 0xf) * 4u;
      total = rd16(d + 2);
      EXPECT_EQ(d[9], 6);
      x.ipChecksumOk = sumsToZero(csum(d, ipLen, 0));
      x.src.assign(reinterpret_cast<const char*>(d + 12), 4);
      x.dst.assign(reinterpret_cast<const char*>(d + 16), 4);
      pseudo = csum(d + 12, 8, 0);
    } else {
      x.family = 6;
      ipLen = 40;
      total = 40 + rd16(d + 4);
      EXPECT_EQ(d[6], 6);
      x.src.assign(reinterpret_cast<const char*>(d + 8), 16);
      x.dst.assign(reinterpret_cast<const char*>(d + 24), 16);
      pseudo = csum(d + 8, 32, 0);
    }
    EXPECT_EQ(total, h->caplen);
    const uint8_t* t = d + ipLen;
    const size_t tcpLen = total - ipLen;
    pseudo += 6 + static_cast<uint32_t>(tcpLen);
    x.tcpChecksumOk = sumsToZero(csum(t, tcpLen, pseudo));
    x.sport = rd16(t);
    x.dport = rd16(t + 2);
    x.seq = rd32(t + 4);
    x.ack = rd32(t + 8);
    x.flags = t[13];
    const size_t off = (t[12] >> 4) * 4u;
    x.payload.assign(reinterpret_cast<const char*>(t + off), tcpLen - off);
    out.push_back(std::move(x));
  }
  pcap_close(p);
  return out;
}

flow::Segment segment(const model::FlowKey& key, uint32_t seq, std::string_view payload, uint8_t flags) {
  flow::Segment s;
  s.key = key;
  s.seq = seq;
  s.ack = 77;
  s.flags = flags;
  s.tsNs = 2'000'123'000;
  s.payload = {reinterpret_cast<const uint8_t*>(payload.data()), payload.size()};
  return s;
}

TEST(PcapWriter, SegmentsReadBackWithLibpcap) {
  TempDir dir;
  RecordOptions o;
  o.path = dir.path() + "/cap.pcap";
  o.format = RecordFormat::kPcap;
  o.redact = false;
  o.realtimeOffsetNs = int64_t{1714564800} * 1'000'000'000;
  std::string error;
  auto w = makeRecordWriter(o, &error);
  ASSERT_NE(w, nullptr) << error;
  ASSERT_TRUE(w->wantsSegments());

  model::FlowKey v4;
  v4.saddr = {198, 18, 0, 1};
  v4.daddr = {198, 18, 0, 2};
  v4.sport = 40000;
  v4.dport = 8000;
  model::FlowKey v6;
  v6.family = 6;
  v6.saddr = {0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1};
  v6.daddr = {0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2};
  v6.sport = 40001;
  v6.dport = 8000;
  const std::string get = "GET / HTTP/1.1\r\nHost: h\r\nAuthorization: x\r\n\r\n";
  std::string big(100'000, 'z');
  for (size_t i = 0; i < big.size(); ++i) {
    big[i] = static_cast<char>('a' + i % 26);
  }
  w->onSegment(segment(v4, 1000, "", flow::kTcpSyn));
  w->onSegment(segment(v4, 1001, get, flow::kTcpAck | 0x08));
  w->onSegment(segment(v6, 0xfffffff0u, get, flow::kTcpAck));  // seq wraps inside the payload
  w->onSegment(segment(v4, 5000, big, flow::kTcpAck | flow::kTcpFin));
  w->onRequest(testing::makeRequest(get));  // a pcap recorder takes no requests
  w->close();
  EXPECT_EQ(w->stats().offered, 4u);
  EXPECT_EQ(w->stats().written, 4u);
  EXPECT_EQ(w->stats().packets, 5u);

  const auto files = dir.files("cap", ".pcap");
  ASSERT_EQ(files.size(), 1u);
  int linktype = -1;
  const auto pk = readBack(files[0], &linktype);
  EXPECT_EQ(linktype, DLT_RAW);
  ASSERT_EQ(pk.size(), 5u);
  for (const auto& p : pk) {
    EXPECT_TRUE(p.ipChecksumOk);
    EXPECT_TRUE(p.tcpChecksumOk);
    EXPECT_EQ(p.dport, 8000);
    EXPECT_EQ(p.ack, 77u);
    EXPECT_EQ(p.tsUs, uint64_t{1714564802} * 1'000'000 + 123);
  }
  EXPECT_EQ(pk[0].flags, flow::kTcpSyn);
  EXPECT_EQ(pk[0].payload, "");
  EXPECT_EQ(pk[0].src, std::string("\xc6\x12\x00\x01", 4));
  EXPECT_EQ(pk[1].payload, get);  // unredacted: raw segments
  EXPECT_EQ(pk[1].seq, 1001u);
  EXPECT_EQ(pk[1].sport, 40000);
  EXPECT_EQ(pk[2].family, 6);
  EXPECT_EQ(pk[2].src, std::string(reinterpret_cast<const char*>(v6.saddr.data()), 16));
  EXPECT_EQ(pk[2].seq, 0xfffffff0u);
  // The 100 kB segment: two packets, consecutive sequence numbers, FIN only on the last.
  EXPECT_EQ(pk[3].seq, 5000u);
  EXPECT_EQ(pk[3].payload.size(), PcapWriter::kMaxPayloadPerPacket);
  EXPECT_EQ(pk[3].flags & flow::kTcpFin, 0);
  EXPECT_EQ(pk[4].seq, 5000u + PcapWriter::kMaxPayloadPerPacket);
  EXPECT_EQ(pk[4].flags & flow::kTcpFin, flow::kTcpFin);
  EXPECT_EQ(pk[3].payload + pk[4].payload, big);
}

// The pcap recorder does not look at the protocol: an h2c connection's
// segments (preface, SETTINGS, HPACK-coded HEADERS) go in byte for byte,
// and its decoded HTTP/2 requests are not taken (the segments already hold them).
TEST(PcapWriter, H2cSegmentsAreRecordedAsCaptured) {
  TempDir dir;
  RecordOptions o;
  o.path = dir.path() + "/h2c.pcap";
  o.format = RecordFormat::kPcap;
  o.redact = false;
  std::string error;
  auto w = makeRecordWriter(o, &error);
  ASSERT_NE(w, nullptr) << error;
  model::FlowKey k;
  k.saddr = {198, 18, 0, 1};
  k.daddr = {198, 18, 0, 2};
  k.sport = 40002;
  k.dport = 50051;
  const std::string preface = std::string("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n") +
                              std::string("\x00\x00\x00\x04\x00\x00\x00\x00\x00", 9);  // empty SETTINGS
  // HEADERS, stream 1, END_STREAM|END_HEADERS: :method GET, :scheme http, :path /, :authority (literal) "a".
  const std::string headers("\x00\x00\x06\x01\x05\x00\x00\x00\x01\x82\x86\x84\x41\x01\x61", 15);
  w->onSegment(segment(k, 1, preface, flow::kTcpAck));
  w->onSegment(segment(k, 1 + static_cast<uint32_t>(preface.size()), headers, flow::kTcpAck));
  model::Request decoded;
  decoded.headers = {{":method", "GET", false}, {":path", "/", false}};
  decoded.finishHttp2();
  w->record(decoded);
  w->close();
  EXPECT_EQ(w->stats().offered, 2u);
  EXPECT_EQ(w->stats().written, 2u);
  int linktype = -1;
  const auto pk = readBack(dir.files("h2c", ".pcap").at(0), &linktype);
  ASSERT_EQ(pk.size(), 2u);
  EXPECT_EQ(pk[0].payload, preface);
  EXPECT_EQ(pk[1].payload, headers);
  EXPECT_EQ(pk[1].seq, 1 + preface.size());
  EXPECT_EQ(pk[1].dport, 50051);
  EXPECT_TRUE(pk[1].tcpChecksumOk);
}

}  // namespace
}  // namespace shadowtap::record
