// libFuzzer target: the HTTP/2 response decoder of compare mode fed an
// arbitrary server-to-client byte stream.
// Input: [mode][cut seed][stream bytes...]
// mode bit 0: prepend a valid server SETTINGS frame (gets past the preface check);
//      bit 1: small limits (body, headers, streams, buffer, frame length, 101 head);
//      bit 2: a gap at a position chosen by the seed.
// The stream is fed twice: whole, and cut into pieces of 1..64 bytes chosen by
// the seed. Invariants: both runs give the same outcomes (stream ids, status,
// body length and hash, header count, reasons) and the same counters; every
// opened stream has exactly one outcome; nothing after onH2End; nothing stays
// buffered after the end; the counter identities hold.
#include <algorithm>
#include <cstdint>
#include <string>
#include <vector>

#include "base/strings.h"
#include "h2/h2_response_decoder.h"
#include "fuzz_check.h"

using namespace shadowtap;
using namespace shadowtap::h2;
using namespace shadowtap::http;

namespace {

struct Collect : H2ResponseHandler {
  std::vector<std::string> events;
  bool ended = false;
  void onH2Response(int32_t id, model::Response&& r) override {
    FUZZ_CHECK(!ended);
    FUZZ_CHECK(id > 0 && id % 2 == 1);
    FUZZ_CHECK(r.status >= 200 && r.status <= 599);
    FUZZ_CHECK(r.body.size() <= r.bodyLength);
    FUZZ_CHECK(r.bodyTruncated == (r.body.size() < r.bodyLength));
    FUZZ_CHECK(r.bodyHash == base::fnv1a64(r.body) || r.bodyTruncated);
    events.push_back("R" + std::to_string(id) + ":" + std::to_string(r.status) + ":" + std::to_string(r.bodyLength) +
                     ":" + std::to_string(r.bodyHash) + ":" + std::to_string(r.headers.size()));
  }
  void onH2NoResponse(int32_t id, NoResponse why) override {
    FUZZ_CHECK(!ended);
    events.push_back("N" + std::to_string(id) + toString(why));
  }
  void onH2GoAway(int32_t last) override {
    FUZZ_CHECK(!ended);
    events.push_back("G" + std::to_string(last));
  }
  void onH2End(NoResponse why) override {
    FUZZ_CHECK(!ended);
    ended = true;
    events.push_back(std::string("E") + toString(why));
  }
};

std::vector<uint64_t> snapshot(const H2ResponseStats& s) {
  std::vector<uint64_t> v;
  for (const std::atomic<uint64_t>* c :
       {&s.decoders, &s.upgraded, &s.decodeErrors, &s.badPreface, &s.hpackErrors, &s.frameTooLarge, &s.gaps,
        &s.goaways, &s.frames, &s.framesIgnored, &s.pushPromises, &s.streamsOpened, &s.responses, &s.reset,
        &s.evicted, &s.malformedStreams, &s.abandoned, &s.openStreams, &s.interim, &s.trailers, &s.badTrailers,
        &s.headerBlocksIgnored, &s.headersTruncated, &s.bodiesTruncated, &s.bufferLimited, &s.bytesIn,
        &s.bytesDecoded, &s.bytesIgnored}) {
    v.push_back(c->load(std::memory_order_relaxed));
  }
  return v;
}

std::vector<std::string> run(const std::string& bytes, uint8_t mode, uint8_t seed, bool cut, H2ResponseStats& st) {
  ResponseLimits rl;
  H2ResponseLimits hl;
  if ((mode & 2) != 0) {
    rl.maxBodyBytes = 16;
    rl.maxHeaderBytes = 64;
    hl.maxStreams = 2;
    hl.maxBufferedBytes = 48;
    hl.maxFrameLength = 256;
    hl.maxUpgradeHeadBytes = 64;
  }
  const size_t gapAt = (mode & 4) != 0 && !bytes.empty() ? seed % bytes.size() : bytes.size();
  Collect c;
  {
    H2ResponseDecoder d(c, rl, hl, st);
    uint32_t x = seed;
    auto feed = [&](size_t from, size_t to) {
      while (from < to) {
        x = x * 1103515245u + 12345u;
        const size_t n = cut ? std::min<size_t>(1 + (x >> 16) % 64, to - from) : to - from;
        d.onData({reinterpret_cast<const uint8_t*>(bytes.data()) + from, n}, from + 1);
        from += n;
      }
    };
    feed(0, gapAt);
    if (gapAt < bytes.size()) {
      d.onGap(1);
    }
    feed(gapAt, bytes.size());
    d.onEnd(flow::EndReason::kFin);
    FUZZ_CHECK(d.bufferedBytes() == 0);
    FUZZ_CHECK(d.openStreams() == 0);
  }
  FUZZ_CHECK(c.ended);
  const auto v = snapshot(st);
  FUZZ_CHECK(st.streamsOpened.load() == st.responses.load() + st.reset.load() + st.evicted.load() +
                                           st.malformedStreams.load() + st.abandoned.load() + st.openStreams.load());
  FUZZ_CHECK(st.openStreams.load() == 0);
  FUZZ_CHECK(st.bytesIn.load() == st.bytesDecoded.load() + st.bytesIgnored.load());
  return c.events;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 2) {
    return 0;
  }
  const uint8_t mode = data[0];
  const uint8_t seed = data[1];
  std::string bytes;
  if ((mode & 1) != 0) {
    bytes.assign("\x00\x00\x00\x04\x00\x00\x00\x00\x00", 9);
  }
  bytes.append(reinterpret_cast<const char*>(data) + 2, size - 2);
  H2ResponseStats whole;
  H2ResponseStats pieces;
  const auto a = run(bytes, mode, seed, false, whole);
  const auto b = run(bytes, mode, seed, true, pieces);
  FUZZ_CHECK(a == b);
  FUZZ_CHECK(snapshot(whole) == snapshot(pieces));
  return 0;
}
