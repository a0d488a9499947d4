#pragma once

#include <cstdint>

#include "base/stats_sink.h"
#include "compare/compare_engine.h"
#include "compare/diff_writer.h"
#include "compare/response_pairing.h"

namespace shadowtap::compare {

// Compare mode's counters: exchanges by rule, endpoint and result, what was
// not compared and why, the primary's response streams (pairing may be null),
// the diff lines written (diff may be null). `responseSegments`: segments of
// the primary's responses the pipeline gave to reassembly.
void exportStats(const CompareEngine& engine, const ResponsePairing* pairing, const DiffWriter* diff,
                 uint64_t responseSegments, base::StatsSink& out);
// The primary's response streams of one pairing (exportStats exports them too
// when given one); with workers, each worker's pairing under the same names.
void exportPairing(const ResponsePairing& pairing, base::StatsSink& out);

}  // namespace shadowtap::compare
