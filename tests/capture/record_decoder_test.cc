// Ring buffer record -> Segment, and what counts as a bad record (pure).

#include "capture/record_decoder.h"

#include <arpa/inet.h>
#include <gtest/gtest.h>

#include <cstring>
#include <string>
#include <vector>

#include "shadowtap/capture_abi.h"

namespace shadowtap::capture {
namespace {

// A record as the kernel writes it: header, then the payload chunk.
struct Record {
  st_segment head{};
  std::string payload;

  Record() {
    head.ts_ns = 123456789;
    head.saddr[0] = 198, head.saddr[1] = 18, head.saddr[3] = 1;
    head.daddr[0] = 198, head.daddr[1] = 19, head.daddr[3] = 2;
    head.sport = htons(40000);
    head.dport = htons(8080);
    head.seq = 1000;
    head.ack = 2000;
    head.ifindex = 7;
    head.rule_id = 3;
    head.family = ST_FAMILY_IPV4;
    head.tcp_flags = ST_TCP_ACK;
    head.abi_version = SHADOWTAP_ABI_VERSION;
    head.direction = ST_DIR_TO_SERVER;
    setPayload("GET / HTTP/1.1\r\n\r\n");
  }
  void setPayload(const std::string& p) {
    payload = p;
    head.payload_len = static_cast<uint32_t>(p.size());
    head.chunk_offset = 0;
    head.cap_len = static_cast<uint32_t>(p.size());
  }
  std::vector<uint8_t> bytes() const {
    std::vector<uint8_t> out(sizeof(head) + payload.size());
    std::memcpy(out.data(), &head, sizeof(head));
    std::memcpy(out.data() + sizeof(head), payload.data(), payload.size());
    return out;
  }
};

TEST(CaptureRecordDecoderTest, FieldsAreCarriedOverInHostOrder) {
  const Record r;
  const std::vector<uint8_t> bytes = r.bytes();
  flow::Segment s;
  ASSERT_TRUE(decodeRecord(bytes.data(), bytes.size(), &s));
  EXPECT_EQ(s.key.family, 4);
  EXPECT_EQ(s.key.saddr[0], 198);
  EXPECT_EQ(s.key.daddr[1], 19);
  EXPECT_EQ(s.key.sport, 40000);
  EXPECT_EQ(s.key.dport, 8080);
  EXPECT_EQ(s.seq, 1000u);
  EXPECT_EQ(s.ack, 2000u);
  EXPECT_EQ(s.flags, flow::kTcpAck);
  EXPECT_EQ(s.ruleId, 3u);
  EXPECT_EQ(s.tsNs, 123456789u);
  EXPECT_EQ(s.ifindex, 7u);
  EXPECT_FALSE(s.fromServer);
  EXPECT_EQ(std::string(reinterpret_cast<const char*>(s.payload.data()), s.payload.size()), r.payload);
  EXPECT_EQ(s.payload.data(), bytes.data() + sizeof(st_segment)) << "points into the record, no copy";
}

TEST(CaptureRecordDecoderTest, EgressRecordsAreResponses) {
  Record r;
  r.head.direction = ST_DIR_FROM_SERVER;
  const std::vector<uint8_t> bytes = r.bytes();
  flow::Segment s;
  ASSERT_TRUE(decodeRecord(bytes.data(), bytes.size(), &s));
  EXPECT_TRUE(s.fromServer);
}

TEST(CaptureRecordDecoderTest, ControlFlagsGoToTheFirstAndLastChunk) {
  // A 3-chunk segment with SYN, FIN and RST set: SYN only on the first chunk,
  // FIN and RST only on the last; a one-chunk segment keeps them all.
  const uint8_t all = ST_TCP_SYN | ST_TCP_FIN | ST_TCP_RST | ST_TCP_ACK;
  struct Chunk {
    uint32_t offset;
    uint8_t want;
  };
  for (const Chunk c : {Chunk{0, ST_TCP_SYN | ST_TCP_ACK}, Chunk{10, ST_TCP_ACK},
                        Chunk{20, ST_TCP_FIN | ST_TCP_RST | ST_TCP_ACK}}) {
    Record r;
    r.setPayload("0123456789");
    r.head.payload_len = 30;
    r.head.chunk_offset = c.offset;
    r.head.tcp_flags = all;
    const std::vector<uint8_t> bytes = r.bytes();
    flow::Segment s;
    ASSERT_TRUE(decodeRecord(bytes.data(), bytes.size(), &s));
    EXPECT_EQ(s.flags, c.want) << "chunk at " << c.offset;
  }
  Record whole;
  whole.head.tcp_flags = all;
  const std::vector<uint8_t> bytes = whole.bytes();
  flow::Segment s;
  ASSERT_TRUE(decodeRecord(bytes.data(), bytes.size(), &s));
  EXPECT_EQ(s.flags, all);
}

TEST(CaptureRecordDecoderTest, BadRecordsAreRefused) {
  flow::Segment s;
  const std::vector<uint8_t> good = Record().bytes();
  EXPECT_FALSE(decodeRecord(good.data(), sizeof(st_segment) - 1, &s)) << "shorter than the header";
  EXPECT_FALSE(decodeRecord(good.data(), good.size() - 1, &s)) << "cap_len beyond the record";
  EXPECT_TRUE(decodeRecord(good.data(), good.size() + 0, &s));

  auto refused = [](void (*edit)(Record&)) {
    Record r;
    edit(r);
    const std::vector<uint8_t> bytes = r.bytes();
    flow::Segment out;
    return !decodeRecord(bytes.data(), bytes.size(), &out);
  };
  EXPECT_TRUE(refused([](Record& r) { r.head.abi_version = SHADOWTAP_ABI_VERSION + 1; }));
  EXPECT_TRUE(refused([](Record& r) { r.head.abi_version = SHADOWTAP_ABI_VERSION - 1; }));
  EXPECT_TRUE(refused([](Record& r) { r.head.family = 5; }));
  EXPECT_TRUE(refused([](Record& r) { r.head.direction = 2; }));
  EXPECT_FALSE(refused([](Record& r) { r.head.family = ST_FAMILY_IPV6; }));
}

TEST(CaptureRecordDecoderTest, RecordPaddingPastCapLenIsIgnored) {
  // Reservations come in size classes: the record is longer than cap_len.
  Record r;
  std::vector<uint8_t> bytes = r.bytes();
  bytes.resize(sizeof(st_segment) + ST_CLASS_0, 0xee);
  flow::Segment s;
  ASSERT_TRUE(decodeRecord(bytes.data(), bytes.size(), &s));
  EXPECT_EQ(s.payload.size(), r.payload.size());
}

}  // namespace
}  // namespace shadowtap::capture
