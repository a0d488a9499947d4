#include "record/record_stats.h"

#include "base/counters.h"

namespace shadowtap::record {

void exportStats(const RecordStats& w, base::StatsSink& out) {
  auto v = [](const auto& a) { return static_cast<double>(base::load(a)); };
  out.counters("shadowtap_record_items_total",
               "Requests (HAR, JSON lines) or segments (pcap) given to the recorder, by outcome.", "outcome",
               {{"written", v(w.written)},
                {"dropped_queue_full", v(w.dropped)},
                {"malformed", v(w.malformed)},
                {"write_error", v(w.writeErrors)}});
  out.counter("shadowtap_record_bytes_written_total", "Bytes written to recording files.", v(w.bytesWritten));
  out.counter("shadowtap_record_redacted_values_total", "Header and query values redacted.", v(w.redactedValues));
  out.counter("shadowtap_record_rotations_total", "Recording files closed by size or time.", v(w.rotations));
  out.counter("shadowtap_record_files_deleted_total", "Oldest recording files removed for the disk cap.",
              v(w.filesDeleted));
  out.gauge("shadowtap_record_disk_bytes", "Bytes in recording files now.", v(w.diskBytes));
  out.gauge("shadowtap_record_queue_items", "Records waiting for the writer thread.", v(w.queueDepth));
}

}  // namespace shadowtap::record
