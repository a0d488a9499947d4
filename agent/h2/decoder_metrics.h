#pragma once

#include "base/stats_sink.h"
#include "h2/h2_decoder_stats.h"
#include "h2/protocol_sniffer.h"

namespace shadowtap::h2 {

// The protocol sniffers' and the HTTP/2 request decoders' counters.
void exportStats(const SnifferStats& sniffing, const H2DecoderStats& decoding, base::StatsSink& out);

}  // namespace shadowtap::h2
