#pragma once

#include <cstddef>

#include "flow/segment.h"

namespace shadowtap::capture {

// Turns one ring buffer record (the kernel's st_segment header, then cap_len
// payload bytes) into a Segment whose payload points into the record. False for
// a record that cannot be one: shorter than the header, another ABI version, a
// payload longer than the record, an unknown address family or direction.
// Control flags belong to the whole TCP segment, while a record is one chunk of
// it: SYN stays only on the first chunk and FIN/RST only on the last, so that
// reassembly sees them in sequence.
bool decodeRecord(const void* data, size_t size, flow::Segment* out);

}  // namespace shadowtap::capture
