#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>

#include "model/flow_key.h"
#include "flow/stream_consumer.h"
#include "model/request.h"
#include "h2/h2_stream_decoder.h"
#include "h2/h2c_upgrade.h"
#include "model/request.h"
#include "http/request_framer.h"

namespace shadowtap::h2 {

// How the sniffers routed their connections. Written on the capture thread,
// read anywhere (relaxed). Once every sniffer has ended:
//   connections == prefaceH2 + http1 + midstream
//   upgradesSeen == upgradesAccepted + upgradesDeclined
struct SnifferStats {
  std::atomic<uint64_t> connections{0};       // sniffers created
  std::atomic<uint64_t> prefaceH2{0};         // started with the client preface: HTTP/2 decoder
  std::atomic<uint64_t> http1{0};             // seen from the SYN, not the preface: HTTP/1 framer
  std::atomic<uint64_t> midstream{0};         // joined mid-stream: HTTP/1 framer (it counts an HTTP/2
                                              // preface it may find as abandoned "http2")
  std::atomic<uint64_t> upgradesSeen{0};      // valid "Upgrade: h2c" requests held back
  std::atomic<uint64_t> upgradesAccepted{0};  // ... followed by the preface: the rest decoded as HTTP/2
  std::atomic<uint64_t> upgradesDeclined{0};  // ... followed by anything else, a gap or the end:
                                              // the request goes on as HTTP/1
  std::atomic<int64_t> heldBytes{0};          // gauge: preface candidates and held upgrade requests
};

class ProtocolSnifferFactory;

// The consumer of one client-to-server stream until its protocol is known.
// A stream seen from its SYN is held until its first bytes decide
// (matchPreface, at most 24 bytes): the client preface hands the stream to an
// H2StreamDecoder, anything else (or a gap, or the end) to the HTTP/1
// RequestFramer with the held bytes replayed. A stream joined mid-stream goes
// to the framer at once.
//
// "Upgrade: h2c": the framer emits the upgrade request and then abandons the
// stream. The factory (the framer's sink) holds that request back in the
// sniffer feeding the framer, and the sniffer looks at the bytes right after
// it: the preface means the server accepted, and the rest goes to an
// H2StreamDecoder that emits the request as stream 1; anything else means it
// declined, and the request is released to the HTTP/1 sink as usual and a new
// framer takes the rest of the stream from the request's end.
// Not thread-safe.
class ProtocolSniffer final : public flow::StreamConsumer {
 public:
  ProtocolSniffer(ProtocolSnifferFactory& factory, const model::FlowKey& key, uint32_t ruleId, bool fromStart);
  ~ProtocolSniffer() override;
  ProtocolSniffer(const ProtocolSniffer&) = delete;
  ProtocolSniffer& operator=(const ProtocolSniffer&) = delete;

  void onData(std::span<const uint8_t> bytes, uint64_t tsNs) override;
  void onGap(uint64_t bytes) override;
  void onEnd(flow::EndReason reason) override;
  size_t bufferedBytes() const override;

  const model::FlowKey& key() const { return key_; }
  bool decodingH2() const { return mode_ == Mode::kH2; }

 private:
  friend class ProtocolSnifferFactory;
  enum class Mode : uint8_t { kSniffPreface, kHttp1, kSniffUpgrade, kH2, kEnded };

  // Called by the factory while this sniffer feeds the framer.
  void holdUpgrade(model::Request&& request, H2cUpgrade&& upgrade);
  // Looks for the preface in held_ + bytes; decides or holds.
  void sniff(std::span<const uint8_t> bytes, uint64_t tsNs);
  void toHttp1(std::span<const uint8_t> bytes, uint64_t tsNs);
  void toH2(std::span<const uint8_t> bytes, uint64_t tsNs);
  void feedFramer(std::span<const uint8_t> bytes, uint64_t tsNs);
  void releaseUpgrade();
  void setHeld(std::string held);

  ProtocolSnifferFactory& factory_;
  const model::FlowKey key_;
  const uint32_t ruleId_;
  Mode mode_;
  std::string held_;  // stream bytes not yet given to anyone
  uint64_t heldTs_ = 0;
  std::unique_ptr<flow::StreamConsumer> framer_;
  std::unique_ptr<H2StreamDecoder> h2_;
  uint64_t framerPos_ = 0;  // bytes fed to the framer (its stream positions)
  // An "Upgrade: h2c" request held until the bytes after it say whether the
  // server switched. On the heap: rare, and a model::Request plus its HTTP/2
  // form would double the size of every idle connection's sniffer.
  struct PendingUpgrade {
    model::Request request;
    H2cUpgrade upgrade;
  };
  std::unique_ptr<PendingUpgrade> pending_;
  size_t heldCounted_ = 0;  // in stats heldBytes
};

// Creates a ProtocolSniffer per stream, and owns the HTTP/1 framer factory
// and the HTTP/2 decoder factory they hand streams to. Is the framers' sink:
// passes every request on to `sink` (HTTP/2 requests go there from the
// decoders directly), except an "Upgrade: h2c" request,
// which waits in its sniffer until the next bytes say which protocol follows.
class ProtocolSnifferFactory final : public flow::StreamConsumerFactory, public model::RequestSink {
 public:
  explicit ProtocolSnifferFactory(model::RequestSink& sink, http::FramerLimits framerLimits = {},
                                  H2DecoderLimits h2Limits = {});

  std::unique_ptr<flow::StreamConsumer> create(const model::FlowKey& key, uint32_t ruleId, bool fromStart) override;
  void onRequest(model::Request&& request) override;

  const http::RequestFramerFactory& framers() const { return framers_; }
  const H2StreamDecoderFactory& decoders() const { return decoders_; }
  const SnifferStats& stats() const { return stats_; }

 private:
  friend class ProtocolSniffer;

  model::RequestSink& sink_;
  http::RequestFramerFactory framers_;
  H2StreamDecoderFactory decoders_;
  SnifferStats stats_;
  ProtocolSniffer* feeding_ = nullptr;  // the sniffer inside framer->onData()
};

}  // namespace shadowtap::h2
