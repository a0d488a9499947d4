#include "record/pcap_writer.h"

#include <pcap/pcap.h>

#include <cstring>

namespace shadowtap::record {
namespace {

void put16(std::string& b, size_t at, uint16_t v) {
  b[at] = static_cast<char>(v >> 8);
  b[at + 1] = static_cast<char>(v & 0xff);
}

void put32(std::string& b, size_t at, uint32_t v) {
  put16(b, at, static_cast<uint16_t>(v >> 16));
  put16(b, at + 2, static_cast<uint16_t>(v & 0xffff));
}

uint32_t sum16(std::string_view data, uint32_t acc) {
  size_t i = 0;
  for (; i + 1 < data.size(); i += 2) {
    acc += (uint32_t(uint8_t(data[i])) << 8) | uint8_t(data[i + 1]);
  }
  if (i < data.size()) {
    acc += uint32_t(uint8_t(data[i])) << 8;
  }
  return acc;
}

uint16_t fold(uint32_t acc) {
  while (acc >> 16) {
    acc = (acc & 0xffff) + (acc >> 16);
  }
  return static_cast<uint16_t>(~acc & 0xffff);
}

}  // namespace

std::string buildTcpPacket(const model::FlowKey& key, uint32_t seq, uint32_t ack, uint8_t flags,
                           std::string_view payload, uint16_t ipId) {
  const bool v6 = key.family == 6;
  const size_t ipLen = v6 ? 40 : 20;
  const size_t tcpLen = 20 + payload.size();
  std::string b(ipLen + 20, '\0');
  b.append(payload);
  const std::string_view src(reinterpret_cast<const char*>(key.saddr.data()), v6 ? 16 : 4);
  const std::string_view dst(reinterpret_cast<const char*>(key.daddr.data()), v6 ? 16 : 4);
  if (v6) {
    b[0] = 0x60;
    put16(b, 4, static_cast<uint16_t>(tcpLen));
    b[6] = 6;    // next header: TCP
    b[7] = 64;   // hop limit
    std::memcpy(&b[8], src.data(), 16);
    std::memcpy(&b[24], dst.data(), 16);
  } else {
    b[0] = 0x45;
    put16(b, 2, static_cast<uint16_t>(ipLen + tcpLen));
    put16(b, 4, ipId);
    put16(b, 6, 0x4000);  // DF
    b[8] = 64;
    b[9] = 6;
    std::memcpy(&b[12], src.data(), 4);
    std::memcpy(&b[16], dst.data(), 4);
    put16(b, 10, fold(sum16(std::string_view(b).substr(0, 20), 0)));
  }
  const size_t t = ipLen;
  put16(b, t, key.sport);
  put16(b, t + 2, key.dport);
  put32(b, t + 4, seq);
  put32(b, t + 8, ack);
  b[t + 12] = 0x50;  // data offset: 5 words, no options
  b[t + 13] = static_cast<char>(flags);
  put16(b, t + 14, 65535);
  // Checksum over the pseudo-header (addresses, protocol, TCP length) and the segment.
  uint32_t acc = sum16(src, 0);
  acc = sum16(dst, acc);
  acc += 6;
  acc += static_cast<uint32_t>(tcpLen & 0xffff) + static_cast<uint32_t>(tcpLen >> 16);
  acc = sum16(std::string_view(b).substr(t), acc);
  put16(b, t + 16, fold(acc));
  return b;
}

PcapWriter::PcapWriter(RecordOptions opts) : RecordWriter(std::move(opts)) {
  dead_ = pcap_open_dead(DLT_RAW, 65535);
}

PcapWriter::~PcapWriter() {
  close();
  if (dead_ != nullptr) {
    pcap_close(dead_);
  }
}

bool PcapWriter::openFile(const std::string& path) {
  bytes_ = 0;
  if (dead_ == nullptr) {
    return false;
  }
  f_ = std::fopen(path.c_str(), "wbx");
  if (f_ == nullptr) {
    return false;
  }
  std::setvbuf(f_, nullptr, _IOFBF, 1 << 20);
  // pcap_dump_fopen writes the file header and takes ownership of f_.
  dumper_ = pcap_dump_fopen(dead_, f_);
  if (dumper_ == nullptr) {
    std::fclose(f_);
    f_ = nullptr;
    return false;
  }
  bytes_ = static_cast<uint64_t>(pcap_dump_ftell64(dumper_));
  return std::ferror(f_) == 0;
}

RecordWriter::WriteResult PcapWriter::writeItem(Item& item) {
  auto* seg = std::get_if<SegmentCopy>(&item);
  if (seg == nullptr || (seg->key.family != 4 && seg->key.family != 6)) {
    return WriteResult::kMalformed;
  }
  const int64_t unixNs = static_cast<int64_t>(seg->tsNs) + realtimeOffsetNs();
  pcap_pkthdr h{};
  h.ts.tv_sec = static_cast<time_t>(unixNs / 1'000'000'000);
  h.ts.tv_usec = static_cast<suseconds_t>((unixNs % 1'000'000'000) / 1000);
  const std::string_view payload(seg->payload);
  size_t off = 0;
  do {
    const std::string_view piece = payload.substr(off, kMaxPayloadPerPacket);
    // Only the last piece carries FIN; the others are plain data (ACK/PSH kept).
    uint8_t flags = seg->flags;
    if (off + piece.size() < payload.size()) {
      flags &= static_cast<uint8_t>(~flow::kTcpFin);
    }
    packet_ = buildTcpPacket(seg->key, seg->seq + static_cast<uint32_t>(off), seg->ack, flags, piece, ipId_++);
    h.caplen = h.len = static_cast<bpf_u_int32>(packet_.size());
    pcap_dump(reinterpret_cast<u_char*>(dumper_), &h, reinterpret_cast<const u_char*>(packet_.data()));
    mutableStats().packets.fetch_add(1, std::memory_order_relaxed);
    off += piece.size();
  } while (off < payload.size());
  if (std::ferror(f_) != 0) {
    std::clearerr(f_);
    return WriteResult::kError;
  }
  bytes_ = static_cast<uint64_t>(pcap_dump_ftell64(dumper_));
  return WriteResult::kOk;
}

bool PcapWriter::flushFile() { return dumper_ != nullptr && pcap_dump_flush(dumper_) == 0; }

bool PcapWriter::closeFile() {
  if (dumper_ == nullptr) {
    return true;
  }
  bool ok = pcap_dump_flush(dumper_) == 0;
  const int64_t pos = pcap_dump_ftell64(dumper_);
  if (pos >= 0) {
    bytes_ = static_cast<uint64_t>(pos);
  }
  pcap_dump_close(dumper_);  // closes f_
  dumper_ = nullptr;
  f_ = nullptr;
  return ok;
}

}  // namespace shadowtap::record
