// libFuzzer target: the HTTP/2 path (protocol sniffer, HTTP/2 stream decoder
// over an observing nghttp2 session) fed an arbitrary client byte stream.
// Input: [mode][cut seed][stream bytes...]
// mode bit 0: through the ProtocolSniffer (HTTP/1, h2c upgrade and prior
//             knowledge all reachable), else straight into an H2StreamDecoder;
//      bit 1: small limits (streams, header list, bodies, buffer);
//      bit 2: a gap at a position chosen by the seed;
//      bit 3: do not prepend the client preface.
// The stream is fed twice: whole, and cut into pieces of 1..64 bytes chosen by
// the seed. Invariants: both runs emit the same requests (stream id, fields,
// body, trailers) and end with the same counters; every opened stream has
// exactly one outcome; nothing stays buffered after the end.
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "fuzz_check.h"
#include "h2/h2_stream_decoder.h"
#include "h2/preface.h"
#include "h2/protocol_sniffer.h"

using namespace shadowtap;
using namespace shadowtap::h2;

namespace {

struct Collect : model::RequestSink {
  std::vector<model::Request> h2;
  std::vector<std::string> http1;
  void onRequest(model::Request&& r) override {
    if (r.isHttp2()) {
      h2.push_back(std::move(r));
    } else {
      http1.push_back(std::move(r.bytes));
    }
  }
};

std::vector<uint64_t> snapshot(const H2DecoderStats& s) {
  std::vector<uint64_t> v;
  for (const std::atomic<uint64_t>* c :
       {&s.connections, &s.upgrades, &s.prefaceMismatch, &s.decodeErrors, &s.gaps, &s.goaways, &s.bytesDecoded,
        &s.bytesSkipped, &s.streamsOpened, &s.requests, &s.streamsReset, &s.streamsRefused,
        &s.streamsHeadersTooLarge, &s.streamsBodyTooLarge, &s.streamsBufferFull, &s.streamsMalformed,
        &s.streamsAbandoned, &s.trailers, &s.invalidFrames}) {
    v.push_back(c->load());
  }
  // After a connection error, how the stream's bytes split between decoded
  // and skipped depends on where the chunk that carried the error ended.
  v[6] += v[7];
  v[7] = 0;
  return v;
}

struct Outcome {
  std::vector<model::Request> h2;
  std::vector<std::string> http1;
  std::vector<uint64_t> stats;
  std::vector<uint64_t> sniff;
};

Outcome run(const std::string& stream, uint8_t mode, size_t gapAt, const std::vector<size_t>& cuts) {
  H2DecoderLimits limits;
  if (mode & 2) {
    limits.maxConcurrentStreams = 2;
    limits.maxHeaderListBytes = 300;
    limits.maxStreamBodyBytes = 100;
    limits.maxConnectionBufferedBytes = 400;
    limits.maxHeaderTableBytes = 256;
    limits.maxContinuations = 2;
  }
  http::FramerLimits fl;
  fl.maxRequestBytes = 2048;
  fl.maxHeaderBytes = 1024;
  Collect sink;
  ProtocolSnifferFactory sniffers(sink, fl, limits);
  H2DecoderStats ownStats;
  std::unique_ptr<flow::StreamConsumer> c;
  if (mode & 1) {
    c = sniffers.create(model::FlowKey{}, 1, true);
  } else {
    c = std::make_unique<H2StreamDecoder>(model::FlowKey{}, 1, sink, limits, ownStats);
  }
  const auto* p = reinterpret_cast<const uint8_t*>(stream.data());
  size_t off = 0;
  for (size_t n : cuts) {
    if (off == gapAt) {
      c->onGap(7);
    }
    c->onData({p + off, n}, off);
    off += n;
    FUZZ_CHECK(c->bufferedBytes() < (64u << 20));
  }
  if (off == gapAt) {
    c->onGap(7);
  }
  c->onEnd(flow::EndReason::kFin);
  FUZZ_CHECK(c->bufferedBytes() == 0);
  c.reset();

  const H2DecoderStats& s = (mode & 1) ? sniffers.decoders().stats() : ownStats;
  FUZZ_CHECK(s.streamsOpened.load() == s.streamOutcomes());
  FUZZ_CHECK(s.requests.load() == sink.h2.size());
  FUZZ_CHECK(s.bufferedBytes.load() == 0);
  FUZZ_CHECK(s.connections.load() >= s.prefaceMismatch.load() + s.decodeErrors.load() + s.gaps.load());
  const SnifferStats& ss = sniffers.stats();
  FUZZ_CHECK(ss.connections.load() == ss.prefaceH2.load() + ss.http1.load() + ss.midstream.load());
  FUZZ_CHECK(ss.upgradesSeen.load() == ss.upgradesAccepted.load() + ss.upgradesDeclined.load());
  FUZZ_CHECK(ss.heldBytes.load() == 0);
  for (const model::Request& r : sink.h2) {
    FUZZ_CHECK(r.streamId > 0 && r.ruleId == 1);
    FUZZ_CHECK(!(mode & 2) || r.body.size() <= limits.maxStreamBodyBytes);
  }
  return {std::move(sink.h2), std::move(sink.http1), snapshot(s),
          {ss.prefaceH2.load(), ss.http1.load(), ss.upgradesAccepted.load(), ss.upgradesDeclined.load()}};
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 2) {
    return 0;
  }
  const uint8_t mode = data[0];
  uint32_t seed = data[1] * 2654435761u + 1;
  std::string stream;
  if (!(mode & 8)) {
    stream = std::string(kClientPreface);
  }
  stream.append(reinterpret_cast<const char*>(data + 2), size - 2);
  if (stream.empty()) {
    return 0;
  }
  const size_t gapAt = (mode & 4) ? seed % (stream.size() + 1) : SIZE_MAX;

  // Whole (split only at the gap), then in small pieces (also split at the gap).
  std::vector<size_t> whole;
  std::vector<size_t> pieces;
  if (gapAt != SIZE_MAX && gapAt > 0 && gapAt < stream.size()) {
    whole = {gapAt, stream.size() - gapAt};
  } else {
    whole = {stream.size()};
  }
  for (size_t off = 0; off < stream.size();) {
    seed = seed * 1103515245u + 12345u;
    size_t n = 1 + (seed >> 16) % 64;
    n = std::min(n, stream.size() - off);
    if (gapAt > off && gapAt < off + n) {
      n = gapAt - off;
    }
    pieces.push_back(n);
    off += n;
  }

  const Outcome a = run(stream, mode, gapAt, whole);
  const Outcome b = run(stream, mode, gapAt, pieces);
  FUZZ_CHECK(a.h2.size() == b.h2.size());
  for (size_t i = 0; i < a.h2.size(); ++i) {
    FUZZ_CHECK(a.h2[i].streamId == b.h2[i].streamId);
    FUZZ_CHECK(a.h2[i].headers == b.h2[i].headers);
    FUZZ_CHECK(a.h2[i].body == b.h2[i].body);
    FUZZ_CHECK(a.h2[i].trailers == b.h2[i].trailers);
  }
  FUZZ_CHECK(a.http1 == b.http1);
  FUZZ_CHECK(a.stats == b.stats);
  FUZZ_CHECK(a.sniff == b.sniff);
  return 0;
}
