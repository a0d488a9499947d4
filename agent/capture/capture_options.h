#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "capture/attach_mode.h"
#include "capture/port_rule.h"

namespace shadowtap::capture {

struct CaptureOptions {
  // Interface names or fnmatch(3) patterns ("veth*", "cali*"). Every interface
  // matching one is attached at start and when it appears later; a plain name
  // (no *?[) must exist at start.
  std::vector<std::string> interfaces;
  std::vector<PortRule> rules;
  AttachMode attach = AttachMode::kAuto;
  uint32_t ringBufferBytes = 16u << 20;  // power of two, >= page size; all workers' rings together
  // Workers, each reading its own ring buffer (1..ST_MAX_WORKERS): the kernel
  // sends a connection's records, both directions, to one worker by its flow
  // hash. Each ring gets ringBytesPerWorker() of ringBufferBytes.
  uint32_t workers = 1;
  uint32_t tcHandle = 0x5354;            // "ST"; tc mode only
  uint32_t tcPriority = 1;               // tc mode only
  // tc mode: where the slot locks live (SlotLock), shared by the instances of a
  // host; empty: none, so a filter of ours is always taken for a leftover.
  std::string stateDir;
  uint32_t hashSeed = 0;                 // seed of the per-connection sampling hash
  // Adaptive wakeups: the kernel wakes the agent only once wakeupBytes are
  // waiting (0: ringBufferBytes / 8); otherwise the agent polls every
  // pollIntervalUs while records flow, backing off to idlePollIntervalUs when
  // the ring is quiet. false: the kernel's default wakeup on every record
  // committed while the agent is caught up.
  bool adaptiveWakeups = true;
  uint32_t wakeupBytes = 0;
  uint32_t pollIntervalUs = 2000;
  uint32_t idlePollIntervalUs = 50000;
  // --tls: also the plaintext of OpenSSL 3 connections of the processes that
  // map tlsLibrary (empty: the loader's libssl.so.3), through uprobes
  // (TlsProbes): SSL_read as requests, SSL_write as responses for compare.
  bool tls = false;
  std::string tlsLibrary;
};

// Each worker's ring buffer: the largest power of two not above
// ringBufferBytes / workers, at least one page (4096 bytes); LoadedProgram::load
// refuses less than kMinRingBytesPerWorker (checkRingShare).
uint32_t ringBytesPerWorker(uint32_t ringBufferBytes, uint32_t workers);

// The smallest ring a worker may get: the smallest power of two that holds the
// largest record the programs write (65,624 bytes: a segment's 64 KiB chunk;
// loader.cc checks this against the ABI). In a smaller ring every chunk over
// 16 KiB would be lost, counted as ringbuf_full like a slow reader's losses.
inline constexpr uint32_t kMinRingBytesPerWorker = 128u << 10;

// Empty when ringBytesPerWorker(ringBufferBytes, workers) is at least
// kMinRingBytesPerWorker, else one line saying what to raise
// (--ring-buffer-mib) or lower (--workers), and to what.
std::string checkRingShare(uint32_t ringBufferBytes, uint32_t workers);

}  // namespace shadowtap::capture
