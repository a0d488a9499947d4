#pragma once

#include <cstdint>
#include <string>

#include "record/record_writer.h"

struct pcap;
struct pcap_dumper;

namespace shadowtap::record {

// pcap recorder: every captured client-to-server TCP segment as an IPv4/IPv6
// packet (LINKTYPE_RAW, microsecond timestamps), written with libpcap's dump
// writer, so tcpdump -r and Wireshark read it. The IP and TCP headers are
// synthesised from the segment (addresses, ports, seq, ack, flags as
// captured; window 65535 and IP id/TTL made up, since the capture does not
// carry them) with valid lengths and checksums. A payload over 65,000 bytes
// (GSO/BIG TCP) is written as several packets with consecutive sequence
// numbers. Only the client-to-server direction is captured, so the file holds
// no responses. Segments are stored unredacted (see checkRecordOptions).
class PcapWriter final : public RecordWriter {
 public:
  explicit PcapWriter(RecordOptions opts);
  ~PcapWriter() override;

  bool wantsSegments() const override { return true; }

  // The largest TCP payload put in one packet.
  static constexpr size_t kMaxPayloadPerPacket = 65000;

 private:
  bool openFile(const std::string& path) override;
  WriteResult writeItem(Item& item) override;
  bool flushFile() override;
  bool closeFile() override;
  uint64_t fileBytes() const override { return bytes_; }

  struct pcap* dead_ = nullptr;
  struct pcap_dumper* dumper_ = nullptr;
  std::FILE* f_ = nullptr;
  uint64_t bytes_ = 0;
  uint16_t ipId_ = 0;
  std::string packet_;  // reused
};

// One synthesised packet (IP header + TCP header + payload) for tests and the
// writer: IPv4 or IPv6 after key.family.
std::string buildTcpPacket(const model::FlowKey& key, uint32_t seq, uint32_t ack, uint8_t flags,
                           std::string_view payload, uint16_t ipId);

}  // namespace shadowtap::record
